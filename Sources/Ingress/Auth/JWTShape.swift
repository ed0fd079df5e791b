import Foundation

/// The unverified header fields of a token that looks like a JWT.
///
/// Only used to decide how to verify a token (which authenticator, which key);
/// nothing read here is trusted before the signature is checked.
struct JWTShape: Sendable, Equatable {
    var alg: String?
    var kid: String?

    /// Returns the header fields when `token` is three non-empty base64url segments and the
    /// first decodes to a JSON object; otherwise `nil`.
    static func parse(_ token: String) -> JWTShape? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(isBase64URL) }) else { return nil }
        guard let headerData = base64URLDecode(parts[0]),
              let object = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any]
        else { return nil }
        return JWTShape(alg: object["alg"] as? String, kid: object["kid"] as? String)
    }

    private static func isBase64URL(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
            || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
    }
}

/// Decodes unpadded base64url text.
func base64URLDecode(_ text: Substring) -> Data? {
    var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    let rest = s.count % 4
    if rest == 1 { return nil }
    if rest > 0 { s += String(repeating: "=", count: 4 - rest) }
    return Data(base64Encoded: s)
}
