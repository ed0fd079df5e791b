import Crypto
import Foundation

/// FIPS 180-4 SHA-256 over swift-crypto (`Crypto.SHA256`), with the byte-array API the rest of
/// Detection (and its tests) use. Value type: thread-safe.
///
/// Guarantees:
/// - Digests are standard SHA-256 (FIPS 180-4 vectors in `CryptoTests`).
/// - `update` may be called any number of times before `finalize`; the hasher must not be
///   used after `finalize`.
public struct SHA256: Sendable {
    private var inner = Crypto.SHA256()

    public init() {}

    /// Absorbs `data`.
    public mutating func update<C: Collection>(_ data: C) where C.Element == UInt8 {
        inner.update(data: Array(data))
    }

    /// Returns the 32-byte digest. The hasher must not be used afterwards.
    public mutating func finalize() -> [UInt8] { Array(inner.finalize()) }

    /// One-shot digest of `data`.
    public static func hash<C: Collection>(_ data: C) -> [UInt8] where C.Element == UInt8 {
        var s = SHA256()
        s.update(data)
        return s.finalize()
    }
}
