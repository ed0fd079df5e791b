import Crypto
import Foundation

/// RFC 2104 HMAC-SHA256, computed by swift-crypto (`Crypto.HMAC<Crypto.SHA256>`). Immutable
/// after init: thread-safe.
///
/// Guarantees:
/// - `mac` is the standard HMAC-SHA256 (RFC 4231 vectors in `CryptoTests`), so fingerprints are
///   the same as those of the hand-written implementation this replaces.
/// - Pure: no shared mutable state. The key is prepared once: `keyed` holds the inner and outer
///   hash states after the padded key blocks (swift-crypto's `HMAC` value), and each MAC starts
///   from a copy of it (value semantics: the copy is never shared), so a MAC costs the message
///   and the two finalisations, not the key setup and its `SymmetricKey` allocations.
public struct HMACSHA256: Sendable {
    private let keyed: HMAC<Crypto.SHA256>

    /// Prepares the key (hashed first when longer than the 64-byte block, as RFC 2104 says).
    public init(key: [UInt8]) {
        keyed = HMAC<Crypto.SHA256>(key: SymmetricKey(data: key))
    }

    /// The 32-byte MAC of `message`.
    public func mac<C: Collection>(_ message: C) -> [UInt8] where C.Element == UInt8 {
        var h = keyed
        h.update(data: Array(message))
        return Array(h.finalize())
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
