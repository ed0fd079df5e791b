import Foundation

/// A custom rule as written in configuration (YAML/JSON is parsed by the caller).
///
/// `pattern` is a regular expression. Patterns in Detection's fast subset
/// (classes, escapes and quantifiers, no groups/alternation) run on the
/// hand-written matcher; others run on NSRegularExpression inside a window
/// around each keyword hit. When the pattern has a capture group, group 1 is the
/// secret (masked and fingerprinted); otherwise the whole match is.
/// `keywords` (case-insensitive literals) trigger the rule; without keywords the
/// literal prefix of the pattern is used, and failing that the whole input is
/// searched with NSRegularExpression (slow; avoid in the hot path).
public struct RuleSpec: Sendable, Hashable, Codable {
    public var id: String
    public var pattern: String
    public var keywords: [String]
    /// Minimum Shannon entropy (bits per byte) of the secret; 0 disables the gate.
    public var minEntropy: Double
    public var ruleClass: RuleClass
    public var severity: Severity
    public var description: String?

    public init(id: String, pattern: String, keywords: [String] = [], minEntropy: Double = 0,
                ruleClass: RuleClass = .credential, severity: Severity = .high, description: String? = nil) {
        self.id = id
        self.pattern = pattern
        self.keywords = keywords
        self.minEntropy = minEntropy
        self.ruleClass = ruleClass
        self.severity = severity
        self.description = description
    }

    enum CodingKeys: String, CodingKey {
        case id, pattern, keywords, description, severity
        case minEntropy = "min_entropy"
        case ruleClass = "class"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        pattern = try c.decode(String.self, forKey: .pattern)
        keywords = try c.decodeIfPresent([String].self, forKey: .keywords) ?? []
        minEntropy = try c.decodeIfPresent(Double.self, forKey: .minEntropy) ?? 0
        ruleClass = try c.decodeIfPresent(RuleClass.self, forKey: .ruleClass) ?? .credential
        severity = try c.decodeIfPresent(Severity.self, forKey: .severity) ?? .high
        description = try c.decodeIfPresent(String.self, forKey: .description)
    }
}

/// Extra validation applied to a candidate secret after the pattern matched.
enum Validator: Sendable, Hashable {
    case none
    /// GitHub CRC32/base62 checksum on the 36 chars after the 4-char prefix.
    case githubChecksum
    /// JWT: header segment must base64url-decode to a JSON object with "alg".
    case jwt
    /// Google API keys: not inside a Firebase web-app config (`authDomain`, `messagingSenderId`,
    /// `*.firebaseapp.com` nearby), which every browser loading the app receives by design.
    case notFirebaseWebConfig
}

/// A built-in special matcher: logic that does not fit a token pattern.
enum SpecialKind: Sendable, Hashable {
    case pemPrivateKey(labels: [String])
    case uriPassword(schemes: [String])
    case authHeader(scheme: String)
    case generic(GenericKind)
    case email, paymentCard, iban, ssn, phone
    case azureSAS
    /// Docker `config.json`: `auth` (base64 `user:password`) and `identitytoken` values.
    case dockerAuth, dockerToken
    /// Bundler credentials for a gem server (`BUNDLE_GEMS__CONTRIBSYS__COM=user:pass`).
    case bundlerCredential
    /// Every value of a Kubernetes `Secret`'s `data` / `stringData` (several matches per hit).
    case kubernetesSecret
    /// A credential noun in running text followed by the value (`ProseMatcher`).
    case prose
    /// `curl -u user:password` (`CurlUserMatcher`).
    case curlUser
    /// Found by the structural base64 trigger, not by keyword (`AtlassianDataCenterPAT`).
    case atlassianDataCenterPAT
}

/// A necessary condition on a keyword hit, checked before a rule is read (reading a `Rule`
/// copies it, and the rules below share the busiest keywords: most of their hits fail on a byte).
enum RuleGate: UInt8, Sendable {
    case none, prose, exactKey, kindSecret
    /// The keyword is the token's first bytes and must not follow an alphanumeric (`00D` inside hex).
    case alnumBoundary
    /// `@` of an email address: `PIIMatcher.emailPlausible`.
    case email

    init(_ rule: Rule) {
        switch rule.matcher {
        case .special(.prose): self = .prose
        case .special(.dockerAuth), .special(.dockerToken): self = .exactKey
        case .special(.kubernetesSecret): self = .kindSecret
        case .special(.email): self = .email
        case .token(_, lead: .fixed(0)) where rule.id == "salesforce-access-token": self = .alnumBoundary
        default: self = .none
        }
    }
}

/// Which family of key names a generic assignment rule covers.
enum GenericKind: Sendable, Hashable {
    case password, secret, token, apiKey
}

/// Where a token starts relative to its keyword hit.
enum Lead: Sendable, Hashable {
    /// The token starts this many bytes before the keyword (0: the keyword is the prefix).
    case fixed(Int)
    /// The token starts after extending left over bytes of the set, `min...max` of them.
    case back(ByteSet, min: Int, max: Int)
}

/// How a rule finds its candidate after a keyword hit.
enum Matcher: Sendable {
    /// A token that contains the keyword at `lead` bytes from its start
    /// (usually 0: the keyword is the token's prefix).
    case token(TokenPattern, lead: Lead)
    /// `<key containing keyword> <op> <value>`: the value must match the pattern in full.
    case assignment(TokenPattern)
    case special(SpecialKind)
    /// A custom rule on NSRegularExpression.
    case regex(RegexBox)
}

/// Wraps an immutable NSRegularExpression.
/// `@unchecked Sendable`: NSRegularExpression is immutable after init and documented
/// thread-safe for concurrent matching; we never mutate it.
final class RegexBox: @unchecked Sendable {
    let regex: NSRegularExpression
    init(_ r: NSRegularExpression) { regex = r }
}

/// A rule as the engine runs it. Immutable.
///
/// A class, not a struct: the engine reads a rule from its array on keyword hits, and reading
/// a struct with this many reference fields copied it (an outlined copy: a retain and a release
/// per field); reading a class is one retain. Every stored property is a `let` of a `Sendable`
/// type, so sharing one instance between scanning tasks is safe.
final class Rule: Sendable {
    let id: String
    let title: String
    let ruleClass: RuleClass
    let severity: Severity
    /// Case-insensitive literals that trigger the rule (lowercased).
    let keywords: [[UInt8]]
    let matcher: Matcher
    let validator: Validator
    /// Minimum Shannon entropy of the token body (token rules: bytes after the keyword prefix).
    let minEntropy: Double
    let confidence: Double
    /// Higher wins when findings overlap (specific formats > contextual > generic).
    let priority: Int
    /// Whether to apply the placeholder/example filter.
    let placeholderCheck: Bool
    /// Right boundary: the byte after the token must not be in this set.
    let rightBlock: ByteSet
    /// Left boundary: the byte before the token must not be in this set.
    let leftBlock: ByteSet

    init(id: String, title: String, ruleClass: RuleClass = .credential, severity: Severity,
         keywords: [String], matcher: Matcher, validator: Validator = .none, minEntropy: Double = 0,
         confidence: Double = 0.9, priority: Int = 50, placeholderCheck: Bool = true,
         rightBlock: ByteSet = .alnum, leftBlock: ByteSet = .alnum) {
        self.id = id
        self.title = title
        self.ruleClass = ruleClass
        self.severity = severity
        self.keywords = keywords.map { Array($0.lowercased().utf8) }
        self.matcher = matcher
        self.validator = validator
        self.minEntropy = minEntropy
        self.confidence = confidence
        self.priority = priority
        self.placeholderCheck = placeholderCheck
        self.rightBlock = rightBlock
        self.leftBlock = leftBlock
    }
}

/// Public, read-only description of a loaded rule (for `--list-rules`, docs and tests).
public struct RuleInfo: Sendable, Hashable {
    public let id: String
    public let title: String
    public let ruleClass: RuleClass
    public let severity: Severity
    public let keywords: [String]
}
