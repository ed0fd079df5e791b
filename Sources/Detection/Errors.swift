/// Errors raised by Detection. None of them ever contains scanned bytes.
public enum DetectionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A custom rule is invalid (bad pattern, empty id, duplicate id...). `rule` names it.
    case invalidRule(rule: String, reason: String)
    /// A decoder produced more output than allowed (decompression bomb or nesting abuse).
    case decodeLimitExceeded(decoder: String, limit: Int)
    /// A compressed body could not be decoded.
    case corruptEncoding(decoder: String, reason: String)
    /// A needed system library (zlib) is unavailable.
    case libraryUnavailable(String)
    /// A path given to the scanner cannot be read.
    case unreadablePath(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidRule(let rule, let reason): return "invalid rule '\(rule)': \(reason)"
        case .decodeLimitExceeded(let d, let limit): return "\(d) output exceeds the limit of \(limit) bytes"
        case .corruptEncoding(let d, let reason): return "cannot decode \(d) body: \(reason)"
        case .libraryUnavailable(let l): return "\(l) is not available on this system"
        case .unreadablePath(let p, let reason): return "\(p): \(reason)"
        }
    }
}
