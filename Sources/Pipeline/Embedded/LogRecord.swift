/// The on-disk form of one message in an embedded partition log.
///
/// Two frame forms, little-endian:
/// - `SLU1`: `magic u32 | length u32 | crc32(payload) u32 | payload[length]`. Its offset is
///   implied: the previous record's offset + 1 (the segment's base offset for the first).
///   Every append writes this form.
/// - `SLU2`: `magic u32 | length u32 | crc32(payload ‖ offset) u32 | offset i64 | payload[length]`.
///   The offset is stored, so records can be sparse: compaction writes this form.
///
/// The payload is `timestamp i64 | keyLength i32 (-1 = none) | key | headerCount u32 |
/// (nameLength u16 | name | valueLength u32 | value)* | valueLength u32 | value`.
/// A frame whose magic, length or checksum does not match is never decoded.
struct LogRecord: Sendable, Equatable {
    static let magic: UInt32 = 0x534C_5531  // "SLU1"
    static let magicWithOffset: UInt32 = 0x534C_5532  // "SLU2"
    static let frameHeaderSize = 12
    static let offsetFrameHeaderSize = 20
    /// Largest payload a frame may claim; a larger length means a corrupt frame.
    static let maxPayload = 64 << 20

    var timestampMillis: Int64
    var key: [UInt8]?
    var headers: [BusHeader]
    var value: [UInt8]

    /// The whole `SLU1` frame, ready to append.
    func encodedFrame() -> [UInt8] {
        let payload = encodedPayload()
        var frame: [UInt8] = []
        frame.reserveCapacity(Self.frameHeaderSize + payload.count)
        frame.appendLE(Self.magic)
        frame.appendLE(UInt32(payload.count))
        frame.appendLE(CRC32.checksum(payload))
        frame.append(contentsOf: payload)
        return frame
    }

    /// An `SLU2` frame (stored offset) around a payload whose `crc32` is `payloadCRC`.
    static func offsetFrame(payload: [UInt8], payloadCRC: UInt32, offset: Int64) -> [UInt8] {
        var offsetBytes: [UInt8] = []
        offsetBytes.appendLE(UInt64(bitPattern: offset))
        var frame: [UInt8] = []
        frame.reserveCapacity(Self.offsetFrameHeaderSize + payload.count)
        frame.appendLE(Self.magicWithOffset)
        frame.appendLE(UInt32(payload.count))
        frame.appendLE(CRC32.checksum(offsetBytes, continuing: payloadCRC))
        frame.append(contentsOf: offsetBytes)
        frame.append(contentsOf: payload)
        return frame
    }

    /// The payload (see the type's documentation).
    func encodedPayload() -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(32 + (key?.count ?? 0) + value.count + headers.reduce(0) { $0 + 6 + $1.name.utf8.count + $1.value.count })
        payload.appendLE(UInt64(bitPattern: timestampMillis))
        if let key {
            payload.appendLE(UInt32(key.count))
            payload.append(contentsOf: key)
        } else {
            payload.appendLE(UInt32(bitPattern: -1))
        }
        payload.appendLE(UInt32(headers.count))
        for h in headers {
            let name = Array(h.name.utf8)
            payload.appendLE(UInt16(truncatingIfNeeded: name.count))
            payload.append(contentsOf: name.prefix(Int(UInt16.max)))
            payload.appendLE(UInt32(h.value.count))
            payload.append(contentsOf: h.value)
        }
        payload.appendLE(UInt32(value.count))
        payload.append(contentsOf: value)
        return payload
    }

    /// The record's timestamp, read from a payload without decoding the rest (`nil` if too short).
    static func timestamp(ofPayload payload: [UInt8]) -> Int64? {
        guard payload.count >= 8 else { return nil }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(payload[i]) << (8 * i) }
        return Int64(bitPattern: v)
    }

    /// Decodes a payload whose checksum has already been verified.
    static func decode(payload: [UInt8]) throws -> LogRecord {
        var r = ByteReader(payload)
        let ts = Int64(bitPattern: try r.u64())
        let keyLength = Int32(bitPattern: try r.u32())
        let key: [UInt8]? = keyLength < 0 ? nil : try r.bytes(Int(keyLength))
        let headerCount = Int(try r.u32())
        var headers: [BusHeader] = []
        headers.reserveCapacity(min(headerCount, 64))
        for _ in 0..<headerCount {
            let name = try r.bytes(Int(try r.u16()))
            let value = try r.bytes(Int(try r.u32()))
            headers.append(BusHeader(String(decoding: name, as: UTF8.self), value))
        }
        let value = try r.bytes(Int(try r.u32()))
        guard r.isAtEnd else { throw BusError(.corrupt, "trailing bytes in log record") }
        return LogRecord(timestampMillis: ts, key: key, headers: headers, value: value)
    }
}

extension [UInt8] {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
}

/// Bounds-checked little-endian reads over a byte array.
struct ByteReader {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position == bytes.count }

    mutating func bytes(_ n: Int) throws -> [UInt8] {
        guard n >= 0, n <= bytes.count - position else { throw BusError(.corrupt, "record field overruns its frame") }
        defer { position += n }
        return Array(bytes[position..<position + n])
    }

    mutating func u16() throws -> UInt16 { try int() }
    mutating func u32() throws -> UInt32 { try int() }
    mutating func u64() throws -> UInt64 { try int() }

    private mutating func int<T: FixedWidthInteger>() throws -> T {
        let size = MemoryLayout<T>.size
        guard size <= bytes.count - position else { throw BusError(.corrupt, "record field overruns its frame") }
        var v: T = 0
        for i in 0..<size { v |= T(bytes[position + i]) << (8 * i) }
        position += size
        return v
    }
}
