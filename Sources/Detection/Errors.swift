import Codings

/// Errors raised by Detection. None of them ever contains scanned bytes.
public enum DetectionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A custom rule is invalid (bad pattern, empty id, duplicate id...). `rule` names it.
    case invalidRule(rule: String, reason: String)
    /// A decoder produced more output than allowed (decompression bomb or nesting abuse).
    case decodeLimitExceeded(decoder: String, limit: Int)
    /// The matchers would read more than `limit` bytes for this input (keyword hits packed inside
    /// each other's values, built to make scanning slow): the scan stops and fails closed.
    case inspectionLimitExceeded(limit: Int)
    /// A compressed body could not be decoded.
    case corruptEncoding(decoder: String, reason: String)
    /// A needed system library is unavailable. (Content codings link their libraries, so decoding
    /// no longer raises it; kept for API compatibility.)
    case libraryUnavailable(String)
    /// A path given to the scanner cannot be read.
    case unreadablePath(path: String, reason: String)
    /// An allow-list entry (`detection.allow[index]`) is invalid.
    case invalidAllow(index: Int, reason: String)

    public var description: String {
        switch self {
        case .invalidRule(let rule, let reason): return "invalid rule '\(rule)': \(reason)"
        case .decodeLimitExceeded(let d, let limit): return "\(d) output exceeds the limit of \(limit) bytes"
        case .inspectionLimitExceeded(let limit):
            return "inspection would read more than \(limit) bytes (keyword hits packed inside each other's values)"
        case .corruptEncoding(let d, let reason): return "cannot decode \(d) body: \(reason)"
        case .libraryUnavailable(let l): return "\(l) is not available on this system"
        case .unreadablePath(let p, let reason): return "\(p): \(reason)"
        case .invalidAllow(let i, let reason): return "invalid allow-list entry \(i): \(reason)"
        }
    }
}

extension DetectionError {
    /// The rule id of the finding `DetectionEngine.scan` reports over the whole input for this error.
    public var failClosedRule: String {
        switch self {
        case .decodeLimitExceeded: "decode-limit-exceeded"
        case .inspectionLimitExceeded: "inspection-limit-exceeded"
        default: "undecodable-body"
        }
    }

    /// Every rule id `failClosedRule` can be.
    public static let failClosedRules: Set<String> = ["decode-limit-exceeded", "inspection-limit-exceeded", "undecodable-body"]

    /// The Detection view of a content-coding failure: over the cap → `decodeLimitExceeded`,
    /// anything else → `corruptEncoding`.
    init(_ error: ContentCodingError, codings: [ContentCoding]) {
        let name = codings.isEmpty ? "identity" : codings.map(\.rawValue).joined(separator: ", ")
        switch error {
        case .tooLarge(let limit): self = .decodeLimitExceeded(decoder: name, limit: limit)
        case .corrupt(let coding, let reason): self = .corruptEncoding(decoder: coding, reason: reason)
        case .unsupported(let what): self = .corruptEncoding(decoder: name, reason: "unsupported: \(what)")
        }
    }
}
