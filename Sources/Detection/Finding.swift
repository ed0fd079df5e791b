import Codings

/// The class of data a rule detects. Policy is set per class and per connection.
public enum RuleClass: String, Sendable, Hashable, Codable, CaseIterable {
    /// Credentials: API keys, tokens, passwords, private keys, connection strings.
    case credential
    /// Personal data: email addresses, payment cards, IBANs, SSNs, phone numbers.
    case pii
}

/// How bad a finding is, ordered from `low` to `critical`.
public enum Severity: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case low, medium, high, critical

    var rank: Int {
        switch self {
        case .low: return 0
        case .medium: return 1
        case .high: return 2
        case .critical: return 3
        }
    }

    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }

    /// One step lower (`low` stays `low`): the severity of a shape match whose checksum fails.
    public var lowered: Severity {
        switch self {
        case .critical: return .high
        case .high: return .medium
        case .medium, .low: return .low
        }
    }
}

/// One detected secret or personal datum.
///
/// Guarantees: a `Finding` never contains the detected bytes themselves, nor any
/// text derived from them other than ``fingerprint`` (a keyed HMAC prefix).
/// `start..<end` is a byte range of the *original* input passed to
/// ``DetectionEngine/scan(_:context:)``; when the secret was found inside an
/// encoding (base64, percent-encoding, JSON escapes, gzip), the range covers the
/// whole encoded span that must be replaced to remove the secret.
public struct Finding: Sendable, Hashable, Codable {
    /// The rule id, e.g. `github-pat-classic`.
    public var rule: String
    /// The rule's class.
    public var ruleClass: RuleClass
    /// The rule's severity.
    public var severity: Severity
    /// First byte of the span to mask (inclusive), in the original input.
    public var start: Int
    /// End of the span to mask (exclusive), in the original input.
    public var end: Int
    /// 0...1; checksummed or strongly prefixed formats score highest, keyword-gated generic values lowest.
    public var confidence: Double
    /// First 12 lowercase hex chars of HMAC-SHA256(fingerprint key, secret bytes).
    /// Stable for the same secret and key, whatever encoding it was found in.
    public var fingerprint: String
    /// The decoders applied, outermost first, e.g. `["json-escape", "base64"]`. Empty for bare findings.
    public var decodedVia: [String]

    public init(rule: String, ruleClass: RuleClass, severity: Severity, start: Int, end: Int,
                confidence: Double, fingerprint: String, decodedVia: [String]) {
        self.rule = rule
        self.ruleClass = ruleClass
        self.severity = severity
        self.start = start
        self.end = end
        self.confidence = confidence
        self.fingerprint = fingerprint
        self.decodedVia = decodedVia
    }

    /// The replacement text used by masking: `[MASKED:<rule-id>:<fingerprint>]`.
    public var maskText: String { "[MASKED:\(rule):\(fingerprint)]" }
}

/// What kind of content is being scanned; it changes how the input is framed, never which rules run.
public enum ContentHint: Sendable, Hashable {
    /// A JSON document (request or response body).
    case json
    /// Free text (logs, files, unknown bodies).
    case text
    /// A URL query string (`a=b&c=d`); `+` is decoded as a space.
    case query
    /// A form body (`application/x-www-form-urlencoded`).
    case form
    /// A single header value; the name gives context (e.g. `Authorization`, `X-Api-Key`).
    case header(name: String)
}

/// Per-call scan parameters.
public struct ScanContext: Sendable, Hashable {
    /// Whether credential rules run.
    public var credentials: Bool
    /// Whether PII rules run (separately switchable per connection).
    public var pii: Bool
    /// What the bytes are.
    public var hint: ContentHint
    /// The content codings applied to the bytes, in the order they were applied (as listed in
    /// `Content-Encoding`; see `ContentCodings.parse`). Empty for identity.
    public var contentCodings: [ContentCoding]
    /// Where the bytes come from, every reading of it (a file path; in the gateway
    /// `/<connection>/<path>` as given, without matrix parameters, percent-decoded): an
    /// allow-list entry's `path` glob applies only when it matches all of them, and never when
    /// this is empty.
    public var paths: [String]

    public init(credentials: Bool = true, pii: Bool = true, hint: ContentHint = .text,
                contentCodings: [ContentCoding] = [], paths: [String] = []) {
        self.credentials = credentials
        self.pii = pii
        self.hint = hint
        self.contentCodings = contentCodings
        self.paths = paths
    }

    /// Credentials and PII, plain text, no content coding.
    public static let `default` = ScanContext()

    func enables(_ c: RuleClass) -> Bool {
        switch c {
        case .credential: return credentials
        case .pii: return pii
        }
    }
}
