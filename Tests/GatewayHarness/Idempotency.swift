import Crypto
import Foundation

extension Gateway {
    /// The `Idempotency-Key` the upstream must receive for a caller's own `key` sent by
    /// `identity` (e.g. `apikey:ci-bot`): hex HMAC-SHA256(fingerprint key, identity ‖ 0x00 ‖ key).
    public static func derivedIdempotencyKey(identity: String, callerKey key: String) -> String {
        let secret = SymmetricKey(data: Data(base64Encoded: fingerprintKey) ?? Data())
        let message = Array(identity.utf8) + [0] + Array(key.utf8)
        return HMAC<SHA256>.authenticationCode(for: message, using: secret).map { String(format: "%02x", $0) }.joined()
    }

    /// Rewrites the generated configuration before `start()`: `replace` pairs applied in order.
    public func editConfig(_ replace: [(String, String)]) throws {
        var text = try String(contentsOf: configPath, encoding: .utf8)
        for (from, to) in replace {
            guard text.contains(from) else { throw GatewayError("config has no \"\(from)\"") }
            text = text.replacingOccurrences(of: from, with: to)
        }
        try text.write(to: configPath, atomically: true, encoding: .utf8)
    }
}
