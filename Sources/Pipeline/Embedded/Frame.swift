#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One checksummed `LogRecord` frame as found in a log file.
///
/// Guarantees: a `Frame` exists only for bytes whose magic, length and checksum matched, so its
/// payload is exactly what was appended (see `LogRecord` for the two frame forms).
struct Frame {
    /// File position of the frame's first byte.
    var position: Int64
    /// The stored offset (`SLU2`), or `nil` when the offset is implied (`SLU1`).
    var storedOffset: Int64?
    var payload: [UInt8]
    /// `crc32(payload)`, whichever form the frame has.
    var payloadCRC: UInt32
    /// Bytes the whole frame takes in the file.
    var length: Int { (storedOffset == nil ? LogRecord.frameHeaderSize : LogRecord.offsetFrameHeaderSize) + payload.count }

    /// What reading at a position found.
    enum Read {
        case frame(Frame)
        /// The position is the end of the file (or of the range read).
        case end
        /// Not a valid frame: why.
        case damaged(String)
    }

    /// Reads the frame at `position` of `fd`, not looking past `limit` (the file's size or a snapshot of it).
    /// Throws only for I/O errors; bytes that are not a valid frame are `.damaged`.
    static func read(fd: Int32, path: String, at position: Int64, limit: Int64) throws -> Read {
        let available = limit - position
        if available <= 0 { return .end }
        guard available >= Int64(LogRecord.frameHeaderSize) else { return .damaged("incomplete frame header") }
        let head = try readExactly(fd: fd, path: path, count: Int(min(available, Int64(LogRecord.offsetFrameHeaderSize))), at: position)
        let magic = le32(head, 0)
        let headerSize: Int
        switch magic {
        case LogRecord.magic: headerSize = LogRecord.frameHeaderSize
        case LogRecord.magicWithOffset: headerSize = LogRecord.offsetFrameHeaderSize
        default: return .damaged("bad frame magic")
        }
        guard head.count >= headerSize else { return .damaged("incomplete frame header") }
        let length = Int(le32(head, 4))
        guard length <= LogRecord.maxPayload else { return .damaged("frame length \(length) beyond the maximum") }
        guard Int64(headerSize + length) <= available else { return .damaged("frame overruns the file") }
        let payload = try readExactly(fd: fd, path: path, count: length, at: position + Int64(headerSize))
        return verify(position: position, head: head, headerSize: headerSize, payload: payload)
    }

    /// Decodes a whole frame held in memory (as read by `Segment.read`).
    static func decode(_ bytes: [UInt8], position: Int64) -> Read {
        guard bytes.count >= LogRecord.frameHeaderSize else { return .damaged("incomplete frame header") }
        let headerSize: Int
        switch le32(bytes, 0) {
        case LogRecord.magic: headerSize = LogRecord.frameHeaderSize
        case LogRecord.magicWithOffset: headerSize = LogRecord.offsetFrameHeaderSize
        default: return .damaged("bad frame magic")
        }
        guard bytes.count >= headerSize, Int(le32(bytes, 4)) == bytes.count - headerSize else {
            return .damaged("frame length does not match the index")
        }
        return verify(position: position, head: Array(bytes[0..<headerSize]), headerSize: headerSize, payload: Array(bytes[headerSize...]))
    }

    private static func verify(position: Int64, head: [UInt8], headerSize: Int, payload: [UInt8]) -> Read {
        let crc = CRC32.checksum(payload)
        if headerSize == LogRecord.frameHeaderSize {
            guard crc == le32(head, 8) else { return .damaged("checksum mismatch") }
            return .frame(Frame(position: position, storedOffset: nil, payload: payload, payloadCRC: crc))
        }
        let offsetBytes = Array(head[12..<20])
        guard CRC32.checksum(offsetBytes, continuing: crc) == le32(head, 8) else { return .damaged("checksum mismatch") }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(offsetBytes[i]) << (8 * i) }
        return .frame(Frame(position: position, storedOffset: Int64(bitPattern: v), payload: payload, payloadCRC: crc))
    }
}

// MARK: - File helpers shared by the embedded bus's files

func readExactly(fd: Int32, path: String, count: Int, at position: Int64) throws -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(position) + off_t(done)) }
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { throw BusError(.io, "short read in \(path) at \(position): \(n < 0 ? errnoText() : "end of file")") }
        done += n
    }
    return buffer
}

func pwriteAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int64) -> Int {
    var done = 0
    while done < buffer.count {
        let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
        if n < 0, errno == EINTR { continue }
        if n <= 0 { return done }
        done += n
    }
    return done
}

/// `fsync`s a directory, so a file created, renamed or removed in it survives a machine crash.
func syncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw BusError(.io, "cannot open directory \(path): \(errnoText())") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw BusError(.io, "fsync directory \(path) failed: \(errnoText())") }
}

/// The size of the file at `path`, or `nil` when it does not exist.
func fileSize(_ path: String) -> Int64? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return Int64(st.st_size)
}

func le32(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
}

func errnoText() -> String { String(cString: strerror(errno)) }
