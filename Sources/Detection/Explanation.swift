/// Why the engine reported a finding, or why the allow-list silenced it: what
/// `sluice scan --explain` prints, for tuning custom rules and allow-lists.
///
/// Guarantees: holds no secret bytes and nothing derived from them but the finding's
/// fingerprint and the value's length and entropy; `keyword` is the rule's own literal.
public struct Explanation: Sendable, Hashable, Codable {
    /// The finding, exactly as `scan` reports it (or would have, for a silenced one).
    public var finding: Finding
    /// The rule's title.
    public var title: String
    /// How the rule matched, e.g. "token with its provider's fixed prefix".
    public var method: String
    /// The rule's literal whose hit anchored the match (e.g. `ghp_`, `password`); nil when a
    /// structural trigger (a digit run, a base64 run) anchored it.
    public var keyword: String?
    /// The decoded view the value was found in, outermost decoder first ("raw bytes" when none).
    public var view: String
    /// Length of the detected value in bytes (as decoded).
    public var length: Int
    /// Shannon entropy of the detected value, bits per byte.
    public var entropy: Double
    /// The rule's entropy floor for its value (0: no entropy gate).
    public var minEntropy: Double
    /// The format's checksum or structural check and its outcome; nil when the format has none.
    public var checksum: String?
    /// Other checks the value passed before it was kept.
    public var checks: [String]
    /// Rules that also matched an overlapping span and lost to this one (higher priority,
    /// confidence or longer span wins).
    public var outranked: [String]
    /// The allow-list entry (`detection.allow[i]`) that silenced it; nil when it is reported.
    public var allowedBy: Int?
    /// That entry's `reason`, when it gives one.
    public var allowReason: String? = nil
}

/// What the scanner kept about a match for `explain` (only when explaining).
struct Evidence {
    var keyword: [UInt8]?
    var length: Int
    var entropy: Double
    var outranked: [Int] = []
}

extension Rule {
    /// How this rule matches, in a phrase.
    var method: String {
        switch matcher {
        case .token(_, let lead):
            if case .fixed(0) = lead { return "token with its provider's fixed prefix and format" }
            return "token of its provider's format around a fixed literal"
        case .assignment: return "value of the provider's format assigned to a key naming the provider"
        case .regex: return "custom pattern near its keyword"
        case .special(let kind):
            switch kind {
            case .pemPrivateKey: return "PEM private key block (BEGIN and END lines)"
            case .uriPassword: return "password in a URL's user information"
            case .authHeader(let scheme): return "credential of an Authorization header (\(scheme))"
            case .generic(let g):
                let family: String
                switch g {
                case .password: family = "password"
                case .secret: family = "secret"
                case .token: family = "token"
                case .apiKey: family = "API key"
                }
                return "generic: value assigned to a \(family)-named key or header"
            case .email: return "email address"
            case .paymentCard: return "payment card number"
            case .iban: return "IBAN"
            case .ssn: return "US social security number"
            case .phone: return "phone number"
            case .azureSAS: return "Azure shared access signature (sig with its sv/se parameters)"
            case .dockerAuth: return "structured: Docker config.json auths entry, base64 user:password"
            case .dockerToken: return "structured: Docker config.json identity or registry token"
            case .bundlerCredential: return "structured: Bundler gem-server credential user:password"
            case .kubernetesSecret: return "structured: a value of a Kubernetes Secret's data or stringData"
            case .prose: return "credential noun in running text followed by its value"
            case .curlUser: return "curl -u user:password"
            case .atlassianDataCenterPAT: return "structured: Atlassian Data Center PAT (base64 of id:random)"
            }
        }
    }

    /// The format's own check and how it came out (nil when the format has none).
    func checksum(failed: Bool) -> String? {
        let name: String
        switch validator {
        case .githubChecksum: name = "GitHub CRC32 (base62) checksum"
        case .jwt: name = "JWT header decodes to a JSON object with alg"
        case .notFirebaseWebConfig: return nil
        case .none:
            switch matcher {
            case .special(.paymentCard): name = "Luhn check digit and card brand"
            case .special(.iban): name = "IBAN mod-97 check digits"
            case .special(.ssn): name = "SSN area, group and serial ranges"
            case .special(.atlassianDataCenterPAT): name = "decodes to a numeric id, a colon and random bytes"
            default: return nil
            }
        }
        return name + (failed ? ": failed (reported one severity lower)" : ": passed")
    }

    /// The filters a kept value passed, beyond its pattern.
    var checks: [String] {
        var out: [String] = []
        if case .special(.generic) = matcher {
            out.append("the key is not a known non-secret name (token counts, ids, hashes)")
            out.append("the value is not a reference (${VAR}, {{ secrets.X }}), an identifier, a hash or a value another rule explains")
        }
        if case .special(.prose) = matcher {
            out.append("the value is not a reference, an identifier, a hash or a value another rule explains")
        }
        if placeholderCheck { out.append("not a placeholder or a documented example value") }
        if validator == .notFirebaseWebConfig { out.append("not the apiKey of a Firebase web-app config (public by design)") }
        if rightBlock.contains(UInt8(ascii: "a")) || leftBlock.contains(UInt8(ascii: "a")) {
            out.append("bounded: no letter or digit runs on into it")
        }
        return out
    }
}
