import Foundation

/// Text for URLs, forms and tokens: one definition of base64url and of percent-encoding.
public enum URLText {
    /// RFC 3986 unreserved characters, ASCII only (`CharacterSet.alphanumerics` would also let
    /// non-ASCII letters through unencoded).
    public static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// `text` with everything but unreserved characters percent-encoded (a path segment, a
    /// form value).
    public static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    /// Base64url without padding (RFC 4648 §5).
    public static func base64URL<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// `count` bytes from the system's secure generator (`getrandom` on Linux), base64url.
    public static func randomToken(bytes count: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        return base64URL((0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }
}
