/// Why a body's content codings cannot be undone. Never contains body bytes.
///
/// Guarantees: each case maps to one HTTP refusal: `.unsupported` → 415 `unsupported_encoding`,
/// `.tooLarge` → 413 `body_too_large`, `.corrupt` → 400 `undecodable_body`.
public enum ContentCodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An unknown coding, or more layers than `ContentCodings.maxLayers`. The string names it (from the header, trimmed).
    case unsupported(String)
    /// A layer's decoded output would pass `limit` bytes.
    case tooLarge(limit: Int)
    /// The bytes do not decode as `coding` (invalid, truncated, or followed by bytes after the end).
    case corrupt(coding: String, reason: String)

    public var description: String {
        switch self {
        case .unsupported(let what): return "unsupported content coding \(what)"
        case .tooLarge(let limit): return "the decoded body is larger than \(limit) bytes"
        case .corrupt(let coding, let reason): return "the body does not decode as \(coding): \(reason)"
        }
    }
}
