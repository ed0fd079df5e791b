import Crypto
import Foundation

/// Seals message payloads with AES-256-GCM before they go on a topic (invariant 2).
///
/// Guarantees:
/// - The sealed form is `nonce (12) | ciphertext | tag (16)`; the key id travels in the
///   `sluice-key-id` header and the request id is the associated data, so a payload
///   moved to another request fails to open.
/// - The first key of the ring seals; every key in the ring opens (key rotation).
/// - Opening with an unknown key id, the wrong key, wrong associated data or any
///   altered byte throws a `SealingError`; no partial plaintext is ever returned.
public struct PayloadSealer: Sendable {
    /// Header naming the key a payload was sealed with.
    public static let keyIDHeader = "sluice-key-id"

    public struct Key: Sendable {
        public let id: String
        fileprivate let key: SymmetricKey

        /// A key from its 32 raw bytes.
        public init(id: String, bytes: [UInt8]) throws {
            guard bytes.count == 32 else { throw SealingError.badKey(id: id, reason: "must be 32 bytes, got \(bytes.count)") }
            guard !id.isEmpty else { throw SealingError.badKey(id: id, reason: "key id is empty") }
            self.id = id
            self.key = SymmetricKey(data: bytes)
        }

        /// A key from its base64 text (as kept in an `env:` or `file:` reference).
        public init(id: String, base64: String) throws {
            guard let data = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw SealingError.badKey(id: id, reason: "is not valid base64")
            }
            try self.init(id: id, bytes: Array(data))
        }
    }

    private let sealingKey: Key
    private let ring: [String: Key]

    /// - Parameter keys: the key ring; the first one seals. Ids must be unique.
    public init(keys: [Key]) throws {
        guard let first = keys.first else { throw SealingError.badKey(id: "", reason: "the key ring is empty") }
        var ring: [String: Key] = [:]
        for k in keys {
            guard ring[k.id] == nil else { throw SealingError.badKey(id: k.id, reason: "duplicate key id") }
            ring[k.id] = k
        }
        self.sealingKey = first
        self.ring = ring
    }

    /// The id of the key that seals.
    public var sealingKeyID: String { sealingKey.id }

    /// Seals `plaintext` bound to `associatedData` (the request id); returns the sealed bytes and the key id header.
    public func seal(_ plaintext: [UInt8], associatedData: String) throws -> (sealed: [UInt8], header: BusHeader) {
        do {
            let box = try AES.GCM.seal(plaintext, using: sealingKey.key, authenticating: Array(associatedData.utf8))
            guard let combined = box.combined else { throw SealingError.sealFailed("no combined representation") }
            return (Array(combined), BusHeader(Self.keyIDHeader, sealingKey.id))
        } catch let error as SealingError {
            throw error
        } catch {
            throw SealingError.sealFailed(String(describing: error))
        }
    }

    /// Opens a payload sealed with the key named `keyID` for `associatedData`.
    public func open(_ sealed: [UInt8], keyID: String, associatedData: String) throws -> [UInt8] {
        guard let key = ring[keyID] else { throw SealingError.unknownKeyID(keyID) }
        guard sealed.count >= 28 else { throw SealingError.authenticationFailed(keyID: keyID) }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return Array(try AES.GCM.open(box, using: key.key, authenticating: Array(associatedData.utf8)))
        } catch {
            throw SealingError.authenticationFailed(keyID: keyID)
        }
    }

    /// Opens a bus message's value, taking the key id from its header.
    public func open(_ message: BusMessage, associatedData: String) throws -> [UInt8] {
        guard let id = message.header(Self.keyIDHeader).flatMap({ String(validating: $0, as: UTF8.self) }) else {
            throw SealingError.missingKeyID
        }
        return try open(message.value, keyID: id, associatedData: associatedData)
    }
}

/// Why a payload could not be sealed or opened. Never carries key material or plaintext.
public enum SealingError: Error, Equatable, CustomStringConvertible, Sendable {
    case badKey(id: String, reason: String)
    case unknownKeyID(String)
    case missingKeyID
    case authenticationFailed(keyID: String)
    case sealFailed(String)

    public var description: String {
        switch self {
        case .badKey(let id, let reason): "sealing key \"\(id)\" \(reason)"
        case .unknownKeyID(let id): "payload sealed with unknown key id \"\(id)\""
        case .missingKeyID: "payload has no \(PayloadSealer.keyIDHeader) header"
        case .authenticationFailed(let id): "payload failed authentication with key \"\(id)\" (tampered, wrong key or wrong request)"
        case .sealFailed(let reason): "sealing failed: \(reason)"
        }
    }
}
