/// Helpers that keep the built-in rule tables compact. Builders throw a
/// `DetectionError.invalidRule` naming the rule when a pattern does not parse.
enum RB {
    static func pattern(_ id: String, _ source: String) throws(DetectionError) -> TokenPattern {
        do { return try TokenPattern(source) } catch { throw DetectionError.invalidRule(rule: id, reason: error.message) }
    }

    /// A token rule: the pattern is anchored at the keyword (or `lead` bytes before it).
    /// Keywords default to the pattern's literal prefix.
    static func tok(_ id: String, _ title: String, _ severity: Severity, _ source: String,
                    kw: [String]? = nil, lead: Lead = .fixed(0), entropy: Double = 2.8,
                    validator: Validator = .none, confidence: Double = 0.92, priority: Int = 80,
                    right: ByteSet = .alnum, left: ByteSet = .alnum) throws(DetectionError) -> Rule {
        let p = try pattern(id, source)
        let keywords: [String]
        if let kw { keywords = kw } else {
            let lp = p.literalPrefix
            guard lp.count >= 3 else { throw DetectionError.invalidRule(rule: id, reason: "no keyword and literal prefix shorter than 3") }
            keywords = [String(decoding: lp, as: UTF8.self)]
        }
        return Rule(id: id, title: title, severity: severity, keywords: keywords, matcher: .token(p, lead: lead),
                    validator: validator, minEntropy: entropy, confidence: confidence, priority: priority,
                    rightBlock: right, leftBlock: left)
    }

    /// A contextual rule: a key containing one of `keywords`, an assignment, and a value matching `value` in full.
    static func ctx(_ id: String, _ title: String, _ severity: Severity, keywords: [String], value: String,
                    entropy: Double = 3.0, confidence: Double = 0.85, priority: Int = 60) throws(DetectionError) -> Rule {
        Rule(id: id, title: title, severity: severity, keywords: keywords, matcher: .assignment(try pattern(id, value)),
             minEntropy: entropy, confidence: confidence, priority: priority)
    }

    static func special(_ id: String, _ title: String, _ severity: Severity, cls: RuleClass = .credential,
                        keywords: [String], _ kind: SpecialKind, confidence: Double = 0.9, priority: Int = 70,
                        entropy: Double = 0) -> Rule {
        Rule(id: id, title: title, ruleClass: cls, severity: severity, keywords: keywords, matcher: .special(kind),
             minEntropy: entropy, confidence: confidence, priority: priority)
    }

    static let uuid = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
}

/// The built-in rule catalogue, split by provider family (see `BuiltinRules+*.swift`).
enum BuiltinRules {
    static func all() throws(DetectionError) -> [Rule] {
        var r: [Rule] = []
        r += try cloud()
        r += try sourceControl()
        r += try ciAndRegistries()
        r += try messaging()
        r += try payments()
        r += try ai()
        r += try saas()
        r += structural()
        r += pii()
        return r
    }
}
