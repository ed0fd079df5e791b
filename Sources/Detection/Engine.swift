import Foundation

/// Tuning knobs for ``DetectionEngine``. Defaults suit request bodies up to a few MiB.
public struct EngineOptions: Sendable, Hashable {
    /// Use Hyperscan for the first pass when libhs.so.5 is loadable. Findings are identical either way.
    public var useHyperscan: Bool
    /// Maximum decoder nesting (e.g. JSON escape → base64 → percent is depth 3).
    public var maxDecodeDepth: Int
    /// Minimum length of a base64/base64url run worth decoding.
    public var minBase64Length: Int
    /// Hard limit on a decompressed (gzip/deflate) body; more is a decompression bomb.
    public var maxDecompressedBytes: Int
    /// Total decoded bytes allowed per scan, as a multiple of the input size (plus 1 MiB).
    public var expansionFactor: Int
    /// Rule ids to skip.
    public var disabledRules: Set<String>

    public init(useHyperscan: Bool = true, maxDecodeDepth: Int = 4, minBase64Length: Int = 16,
                maxDecompressedBytes: Int = 32 << 20, expansionFactor: Int = 8, disabledRules: Set<String> = []) {
        self.useHyperscan = useHyperscan
        self.maxDecodeDepth = maxDecodeDepth
        self.minBase64Length = minBase64Length
        self.maxDecompressedBytes = maxDecompressedBytes
        self.expansionFactor = expansionFactor
        self.disabledRules = disabledRules
    }
}

/// The detection engine: rules, first-pass prefilter and fingerprint key, all immutable.
///
/// Guarantees:
/// - `scan` and `mask` are pure, synchronous and safe to call from many tasks at once.
/// - Findings never contain secret bytes; only a keyed HMAC prefix (`fingerprint`).
/// - The Hyperscan path and the pure-Swift path return identical findings (the first
///   pass only proposes anchors; all confirmation is the same Swift code).
/// - Clean bytes cost a table lookup (fallback) or nothing in Swift (Hyperscan); no
///   allocation happens per clean byte.
public final class DetectionEngine: Sendable {
    let rules: [Rule]
    let keywords: [[UInt8]]
    let keywordRules: [[Int32]]
    let hmac: HMACSHA256
    let options: EngineOptions
    let fallback: FallbackPrefilter
    let hyperscan: HyperscanPrefilter?
    let cardRule: Int?, ssnRule: Int?, phoneRule: Int?, ibanRule: Int?
    /// The rule checked on base64 runs of a fixed length instead of by keyword.
    let atlassianDCRule: Int?
    /// Per rule, a check on the keyword hit's bytes that runs before the rule is read (`RuleGate`).
    let gates: [RuleGate]
    /// Per rule, its class and (generic assignment rules) its key family: read on every keyword
    /// hit without reading the `Rule` (an array read copies it: a retain and release per field).
    let ruleClasses: [RuleClass]
    let genericKinds: [GenericKind?]
    /// Confidences of the card, SSN and phone rules (nil when disabled): all the numeric
    /// PII matchers need, so no `Rule` is copied per numeric region.
    let numericRules: (card: Double?, ssn: Double?, phone: Double?)
    /// Custom rules without keywords: run over the whole input.
    let wholeInputRules: [Int]
    /// A JSON string whose escapes are all `\" \n \r \t \b \f` need not be decoded when its raw
    /// bytes hold no event but backslashes: the decoded string then holds no event at all (see
    /// `JSONEscapeDecoder.onlyInertEscapes`), so its nested scan would return nothing. True when
    /// that reasoning holds for this engine: no rule runs without an event (no whole-input
    /// custom rule) and no keyword contains a byte those escapes decode to.
    let escapesInert: Bool
    /// `detection.allow`: findings it matches are not reported (see ``AllowSpec``).
    let allow: AllowList
    /// Told of every finding the allow-list silenced (the data path counts them; never silent).
    let allowObserver: (@Sendable (AllowedFinding) -> Void)?
    /// Buffers and Hyperscan scratch spaces reused from one scan to the next.
    let scratchPool = ScratchPool()

    /// Creates an engine.
    /// - Parameters:
    ///   - fingerprintKey: HMAC key for finding fingerprints (bytes; any length).
    ///   - customRules: extra rules from configuration; each is validated like a built-in.
    ///   - allow: allow-list entries (`detection.allow`); each must name a loaded rule (or `"*"`)
    ///     and at least one condition.
    ///   - allowObserver: called (synchronously, from the scanning task) for every finding the
    ///     allow-list silences, e.g. to count it.
    /// - Throws: `DetectionError.invalidRule` naming the first bad rule, `.invalidAllow` the first bad entry.
    public init(fingerprintKey: [UInt8], customRules: [RuleSpec] = [], allow: [AllowSpec] = [],
                options: EngineOptions = EngineOptions(),
                allowObserver: (@Sendable (AllowedFinding) -> Void)? = nil) throws(DetectionError) {
        var all = try BuiltinRules.all()
        var ids = Set(all.map(\.id))
        for spec in customRules {
            let r = try Self.compile(spec)
            guard !ids.contains(r.id) else { throw DetectionError.invalidRule(rule: spec.id, reason: "duplicate rule id") }
            ids.insert(r.id)
            all.append(r)
        }
        self.allow = try AllowList(allow, ruleIDs: ids)
        allowsByPath = self.allow.entries.contains { $0.path != nil }
        self.allowObserver = allowObserver
        all.removeAll { options.disabledRules.contains($0.id) }
        rules = all
        self.options = options
        hmac = HMACSHA256(key: fingerprintKey)
        var kwIndex: [[UInt8]: Int] = [:]
        var kws: [[UInt8]] = []
        var kr: [[Int32]] = []
        var whole: [Int] = []
        for (ri, r) in all.enumerated() {
            if r.keywords.isEmpty, case .regex = r.matcher { whole.append(ri) }
            for kw in r.keywords where !kw.isEmpty {
                if let k = kwIndex[kw] { kr[k].append(Int32(ri)) } else {
                    kwIndex[kw] = kws.count
                    kws.append(kw)
                    kr.append([Int32(ri)])
                }
            }
        }
        keywords = kws
        keywordRules = kr
        wholeInputRules = whole
        let escapeBytes: Set<UInt8> = [34, 10, 13, 9, 8, 12]
        escapesInert = whole.isEmpty && !kws.contains { $0.contains(where: escapeBytes.contains) }
        func idx(_ id: String) -> Int? { all.firstIndex { $0.id == id } }
        cardRule = idx("payment-card"); ssnRule = idx("us-ssn"); phoneRule = idx("phone-number"); ibanRule = idx("iban")
        atlassianDCRule = idx("atlassian-datacenter-pat")
        gates = all.map(RuleGate.init)
        ruleClasses = all.map(\.ruleClass)
        genericKinds = all.map { r -> GenericKind? in
            if case .special(.generic(let g)) = r.matcher { return g }
            return nil
        }
        numericRules = (card: cardRule.map { all[$0].confidence }, ssn: ssnRule.map { all[$0].confidence }, phone: phoneRule.map { all[$0].confidence })
        fallback = FallbackPrefilter(keywords: kws, minBase64: options.minBase64Length)
        let credential = kr.map { $0.contains { all[Int($0)].ruleClass == .credential } }
        hyperscan = options.useHyperscan ? HyperscanPrefilter(keywords: kws, credential: credential, minBase64: options.minBase64Length) : nil
    }

    /// True when `detection.allow` has entries.
    public var hasAllowList: Bool { !allow.isEmpty }

    /// True when an allow-list entry has a `path` condition (callers need only give
    /// `ScanContext.paths` then).
    /// (Decided once: the Inspector asks per request.)
    public let allowsByPath: Bool

    /// True when the first pass runs on Hyperscan.
    public var usesHyperscan: Bool { hyperscan != nil }

    /// Whether Hyperscan can be loaded on this machine.
    public static var hyperscanAvailable: Bool { HyperscanPrefilter.available }

    /// The loaded rules (built-in and custom).
    public var ruleInfos: [RuleInfo] {
        rules.map { RuleInfo(id: $0.id, title: $0.title, ruleClass: $0.ruleClass, severity: $0.severity,
                             keywords: $0.keywords.map { String(decoding: $0, as: UTF8.self) }) }
    }

    /// The fingerprint of `secret` under this engine's key (12 hex chars), as used in findings and masks.
    public func fingerprint(of secret: [UInt8]) -> String { hmac.fingerprint(secret) }

    // MARK: custom rules

    static func compile(_ spec: RuleSpec) throws(DetectionError) -> Rule {
        let id = spec.id
        guard !id.isEmpty, id.utf8.count <= 64, id.utf8.allSatisfy({ isAlnum($0) || $0 == 45 || $0 == 95 || $0 == 46 }) else {
            throw DetectionError.invalidRule(rule: id, reason: "id must be 1-64 characters of [A-Za-z0-9._-]")
        }
        guard !spec.pattern.isEmpty else { throw DetectionError.invalidRule(rule: id, reason: "empty pattern") }
        guard spec.minEntropy >= 0 && spec.minEntropy <= 8 else {
            throw DetectionError.invalidRule(rule: id, reason: "min_entropy must be between 0 and 8")
        }
        let regex: NSRegularExpression
        do { regex = try NSRegularExpression(pattern: spec.pattern, options: []) } catch {
            throw DetectionError.invalidRule(rule: id, reason: "pattern does not compile: \(error.localizedDescription)")
        }
        if regex.firstMatch(in: "", options: [], range: NSRange(location: 0, length: 0)) != nil {
            throw DetectionError.invalidRule(rule: id, reason: "pattern matches the empty string")
        }
        var kws = spec.keywords.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if kws.isEmpty, let tp = try? TokenPattern(spec.pattern), tp.literalPrefix.count >= 3 {
            kws = [String(decoding: tp.literalPrefix, as: UTF8.self)]
        }
        return Rule(id: id, title: spec.description ?? "Custom rule \(id)", ruleClass: spec.ruleClass, severity: spec.severity,
                    keywords: kws, matcher: .regex(RegexBox(regex)), minEntropy: spec.minEntropy, confidence: 0.8, priority: 65)
    }
}
