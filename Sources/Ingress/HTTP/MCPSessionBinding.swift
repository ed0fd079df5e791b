import Crypto
import Foundation
import Pipeline

/// Binds an MCP server's session (`Mcp-Session-Id`) to the caller identity that opened it, so
/// one caller cannot use another's session: the id a caller sees is the server's with a tag
/// (`<server id>~<tag>`, tag = hex HMAC-SHA256 over the identity and the server's id, 128 bits),
/// and a presented id is passed on to the server only when its tag is this identity's.
///
/// Guarantees:
/// - Stateless: any Ingress with the same key (derived from `sealing.fingerprint_key`) checks
///   any other's ids, across restarts.
/// - `unbind` compares tags in constant time; an id without a tag, with another identity's tag
///   or with a changed server id gives nil (the Ingress then answers 404, which an MCP client
///   takes as "start a new session").
/// - The tagged id stays within the transport's visible-ASCII rule when the server's does.
struct MCPSessionBinding: Sendable {
    static let header = "Mcp-Session-Id"
    static let separator: Character = "~"
    let key: SymmetricKey

    /// `secret`: the Ingress's derivation secret (empty: a random key for this process).
    init(secret: [UInt8]) {
        if secret.isEmpty {
            key = SymmetricKey(size: .bits256)
        } else {
            // A key of its own, separated from the other uses of the secret.
            let derived = HMAC<SHA256>.authenticationCode(for: Array("sluice mcp session binding".utf8), using: SymmetricKey(data: secret))
            key = SymmetricKey(data: Data(derived))
        }
    }

    /// The tag of `serverID` for `identity`: 32 lower-case hex digits (128 bits of HMAC-SHA256).
    func tag(_ serverID: String, identity: String) -> [UInt8] {
        let message = Array(identity.utf8) + [0] + Array(serverID.utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: key).prefix(16)
        return Array(mac.map { String(format: "%02x", $0) }.joined().utf8)
    }

    /// The id the caller sees for the server's `serverID`.
    func bind(_ serverID: String, identity: String) -> String {
        serverID + String(Self.separator) + String(decoding: tag(serverID, identity: identity), as: UTF8.self)
    }

    /// The server's id when `presented` was bound to `identity`; nil otherwise. The tags are
    /// compared as text, in constant time (an upper-case or cut tag is not this identity's).
    func unbind(_ presented: String, identity: String) -> String? {
        guard let cut = presented.lastIndex(of: Self.separator) else { return nil }
        let serverID = String(presented[..<cut])
        let given = Array(presented[presented.index(after: cut)...].utf8)
        let expected = tag(serverID, identity: identity)
        guard !serverID.isEmpty, given.count == expected.count else { return nil }
        var diff: UInt8 = 0
        for k in 0..<expected.count { diff |= given[k] ^ expected[k] }
        return diff == 0 ? serverID : nil
    }

    /// `fields` with every `Mcp-Session-Id` value bound to `identity` (a reply to the caller).
    func binding(_ fields: [Pipeline.HTTPField], identity: String) -> [Pipeline.HTTPField] {
        fields.map { field in
            guard field.name.caseInsensitiveCompare(Self.header) == .orderedSame else { return field }
            return Pipeline.HTTPField(field.name, bind(field.value, identity: identity))
        }
    }
}
