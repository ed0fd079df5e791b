/// RFC 2104 HMAC-SHA256 with a precomputed key schedule. Immutable after init: thread-safe.
public struct HMACSHA256: Sendable {
    private let innerPad: [UInt8]
    private let outerPad: [UInt8]

    /// Prepares the key (hashed first when longer than the 64-byte block).
    public init(key: [UInt8]) {
        var k = key.count > 64 ? SHA256.hash(key) : key
        k += [UInt8](repeating: 0, count: 64 - k.count)
        innerPad = k.map { $0 ^ 0x36 }
        outerPad = k.map { $0 ^ 0x5c }
    }

    /// The 32-byte MAC of `message`.
    public func mac<C: Collection>(_ message: C) -> [UInt8] where C.Element == UInt8 {
        var inner = SHA256()
        inner.update(innerPad)
        inner.update(message)
        let ih = inner.finalize()
        var outer = SHA256()
        outer.update(outerPad)
        outer.update(ih)
        return outer.finalize()
    }

    /// One-shot MAC.
    public static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] { HMACSHA256(key: key).mac(message) }

    /// The first 12 lowercase hex characters of the MAC: the finding fingerprint.
    public func fingerprint<C: Collection>(_ message: C) -> String where C.Element == UInt8 {
        Hex.encode(mac(message).prefix(6))
    }
}

/// Lowercase hex encoding.
public enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
