import Crypto
import Foundation
import Pipeline

/// Authenticates API keys against `identities.api_keys` (SHA-256 digests; keys are never stored).
///
/// Guarantees: the identity id is `apikey:<config id>` (never equal to an OIDC identity's), the
/// person the key's `person` (default its id). the presented key is hashed with SHA-256 and its digest compared with
/// every configured digest in constant time (no early exit, per entry or per byte), so
/// the response time does not depend on how much of a digest matched. The key is never
/// logged or kept.
public struct APIKeyAuthenticator: Authenticator {
    struct Entry: Sendable {
        var digest: [UInt8]
        var identity: CallerIdentity
    }

    let entries: [Entry]

    /// - Throws: `ConfigError` when a digest is not 64 hex characters.
    public init(keys: [IdentitiesConfig.APIKey]) throws {
        entries = try keys.enumerated().map { i, key in
            guard let digest = hexBytes(key.sha256), digest.count == 32 else {
                throw ConfigError(path: "identities.api_keys[\(i)].sha256", message: "must be 64 hex characters (SHA-256 of the key)")
            }
            return Entry(digest: digest, identity: Self.identity(for: key))
        }
    }

    /// The identity a configured key stands for: id `apikey:<id>`, person `person` (default the id).
    static func identity(for key: IdentitiesConfig.APIKey) -> CallerIdentity {
        CallerIdentity(id: "apikey:" + key.id, groups: key.groups, method: "api_key", person: key.person)
    }

    public func authenticate(bearer credential: String) async throws -> CallerIdentity {
        let presented = Array(SHA256.hash(data: Array(credential.utf8)))
        var match: Int? = nil
        for (i, entry) in entries.enumerated() {
            var difference: UInt8 = 0
            for j in 0..<32 { difference |= presented[j] ^ entry.digest[j] }
            if difference == 0 { match = i }
        }
        guard let match else { throw AuthenticationError.invalid(reason: "unknown API key") }
        return entries[match].identity
    }
}

/// The bytes of a hex string, or `nil` when it is not hex of even length.
func hexBytes(_ hex: String) -> [UInt8]? {
    let chars = Array(hex.utf8)
    guard chars.count % 2 == 0 else { return nil }
    func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(chars.count / 2)
    var i = 0
    while i < chars.count {
        guard let hi = value(chars[i]), let lo = value(chars[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}
