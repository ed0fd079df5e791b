#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An append-only, checksummed file of `LogRecord` frames: one topic partition.
///
/// Guarantees:
/// - `append` returns after the frame is written to the file in one `write` (and,
///   with `sync`, after `fdatasync`), so it survives a crash of the process.
/// - On open, frames are read from the start; the first incomplete or corrupt frame
///   and everything after it (a torn tail from a crash) is cut off and never read.
/// - Offsets are record indexes, starting at 0, dense.
///
/// Not thread-safe: its owner (the `EmbeddedBus` actor) serialises access.
final class PartitionLog {
    let path: String
    private let fd: Int32
    private let sync: Bool
    /// File position of each record's frame.
    private var positions: [Int64] = []
    private var end: Int64 = 0
    /// Bytes cut off the tail when the log was opened (0 when it was clean).
    private(set) var truncatedBytes: Int64 = 0

    init(path: String, sync: Bool) throws {
        self.path = path
        self.sync = sync
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BusError(.io, "cannot open log \(path): \(errnoText())") }
        self.fd = fd
        do {
            try recover()
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// The offset the next appended record gets.
    var nextOffset: Int64 { Int64(positions.count) }

    /// Appends one record and returns its offset.
    func append(_ record: LogRecord) throws -> Int64 {
        let frame = record.encodedFrame()
        let written = frame.withUnsafeBytes { pwriteAll(fd, $0, at: end) }
        guard written == frame.count else {
            // Leave no partial frame behind: the next append overwrites from `end`.
            _ = ftruncate(fd, off_t(end))
            throw BusError(.io, "append to \(path) failed: \(errnoText())")
        }
        if sync, fdatasync(fd) != 0 { throw BusError(.io, "fdatasync \(path) failed: \(errnoText())") }
        positions.append(end)
        end += Int64(frame.count)
        return Int64(positions.count - 1)
    }

    /// Reads the record at `offset`.
    func read(at offset: Int64) throws -> LogRecord {
        guard offset >= 0, offset < nextOffset else { throw BusError(.io, "offset \(offset) out of range in \(path)") }
        let position = positions[Int(offset)]
        let header = try readExactly(Int(LogRecord.frameHeaderSize), at: position)
        let length = Int(le32(header, 4))
        let payload = try readExactly(length, at: position + Int64(LogRecord.frameHeaderSize))
        guard CRC32.checksum(payload) == le32(header, 8) else {
            throw BusError(.corrupt, "checksum mismatch at offset \(offset) in \(path)")
        }
        return try LogRecord.decode(payload: payload)
    }

    /// Scans the file, indexes complete frames and cuts off a torn or corrupt tail.
    private func recover() throws {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw BusError(.io, "stat \(path): \(errnoText())") }
        let size = Int64(st.st_size)
        var position: Int64 = 0
        while position + Int64(LogRecord.frameHeaderSize) <= size {
            guard let header = try? readExactly(LogRecord.frameHeaderSize, at: position),
                  le32(header, 0) == LogRecord.magic else { break }
            let length = Int(le32(header, 4))
            guard length <= LogRecord.maxPayload,
                  position + Int64(LogRecord.frameHeaderSize + length) <= size,
                  let payload = try? readExactly(length, at: position + Int64(LogRecord.frameHeaderSize)),
                  CRC32.checksum(payload) == le32(header, 8) else { break }
            positions.append(position)
            position += Int64(LogRecord.frameHeaderSize + length)
        }
        end = position
        if position < size {
            truncatedBytes = size - position
            guard ftruncate(fd, off_t(position)) == 0 else { throw BusError(.io, "truncate \(path): \(errnoText())") }
        }
    }

    private func readExactly(_ count: Int, at position: Int64) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(position) + off_t(done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw BusError(.io, "short read in \(path) at \(position)") }
            done += n
        }
        return buffer
    }
}

private func le32(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
}

private func pwriteAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int64) -> Int {
    var done = 0
    while done < buffer.count {
        let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
        if n < 0, errno == EINTR { continue }
        if n <= 0 { return done }
        done += n
    }
    return done
}

func errnoText() -> String { String(cString: strerror(errno)) }
