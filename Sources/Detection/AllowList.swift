import Foundation

/// One allow-list entry as written in configuration (`detection.allow[i]`): silences the
/// findings of one rule (or of every rule, `"*"`) that also meet every condition given.
///
/// - `fingerprint`: the finding's fingerprint (12 hex chars, as printed by `sluice scan` and in
///   audit events; it depends on the fingerprint key, so copy it from the same deployment).
/// - `pattern`: a regular expression that must match the whole detected value.
/// - `path`: a glob (`PathGlob`: `*` within a segment, `**` across) that must match where the bytes come
///   from: the file path for `sluice scan`, `/<connection>/<path>` in the gateway. It must match
///   every reading of that path the scanner is given, so a spelling cannot widen it.
///
/// At least one condition is required: an entry with only `rule` would disable the rule (use
/// `EngineOptions.disabledRules` for that, visibly).
public struct AllowSpec: Sendable, Hashable, Codable {
    public var rule: String
    public var fingerprint: String?
    public var pattern: String?
    public var path: String?
    /// Why this value is not a secret (for people reading the config; shown by `--explain`).
    public var reason: String?

    public init(rule: String, fingerprint: String? = nil, pattern: String? = nil, path: String? = nil, reason: String? = nil) {
        self.rule = rule
        self.fingerprint = fingerprint
        self.pattern = pattern
        self.path = path
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case rule, fingerprint, pattern, path, reason }

    /// Strict: an unknown key is an error, since a misspelt condition (`paht:`) left out would
    /// silence more than meant.
    public init(from decoder: any Decoder) throws {
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        let all = try decoder.container(keyedBy: AnyKey.self)
        for key in all.allKeys where CodingKeys(rawValue: key.stringValue) == nil {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: all,
                debugDescription: "unknown key '\(key.stringValue)' (expected one of rule, fingerprint, pattern, path, reason)")
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rule = try c.decode(String.self, forKey: .rule)
        fingerprint = try c.decodeIfPresent(String.self, forKey: .fingerprint)
        pattern = try c.decodeIfPresent(String.self, forKey: .pattern)
        path = try c.decodeIfPresent(String.self, forKey: .path)
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
    }
}

/// Compiled allow-list entries. Immutable.
///
/// Guarantees: an entry silences a finding only when its rule matches and every condition it
/// states holds; a `path` condition never holds when the scan was given no path; nothing else
/// (no entry, no condition) silences anything.
struct AllowList: Sendable {
    struct Entry: Sendable {
        /// Rule id, or nil for every rule (`"*"`).
        let rule: String?
        let fingerprint: String?
        let pattern: RegexBox?
        let path: RegexBox?
        /// The entry's `reason`, for `explain`.
        let reason: String?
    }

    let entries: [Entry]
    var isEmpty: Bool { entries.isEmpty }

    /// Compiles `specs`, checking each against the loaded rule ids.
    /// - Throws: `DetectionError.invalidAllow` naming the entry's index and what is wrong.
    init(_ specs: [AllowSpec], ruleIDs: Set<String>) throws(DetectionError) {
        var out: [Entry] = []
        for (i, s) in specs.enumerated() {
            func bad(_ reason: String) -> DetectionError { .invalidAllow(index: i, reason: reason) }
            let rule = s.rule.trimmingCharacters(in: .whitespaces)
            guard rule == "*" || ruleIDs.contains(rule) else {
                throw bad(rule.isEmpty ? "rule is required (a rule id, or \"*\" for every rule)" : "unknown rule '\(rule)'")
            }
            guard s.fingerprint != nil || s.pattern != nil || s.path != nil else {
                throw bad("give at least one of fingerprint, pattern or path (to silence a rule everywhere, disable it)")
            }
            var fingerprint: String? = nil
            if let f = s.fingerprint {
                let lower = f.lowercased()
                guard lower.utf8.count == 12, lower.utf8.allSatisfy({ ByteSet.hex.contains($0) }) else {
                    throw bad("fingerprint must be 12 hex characters, as sluice prints it")
                }
                fingerprint = lower
            }
            var pattern: RegexBox? = nil
            if let p = s.pattern {
                guard !p.isEmpty else { throw bad("pattern is empty") }
                do { pattern = RegexBox(try NSRegularExpression(pattern: "^(?:" + p + ")$", options: [])) } catch {
                    throw bad("pattern does not compile: \(error.localizedDescription)")
                }
            }
            var path: RegexBox? = nil
            if let g = s.path {
                guard !g.isEmpty else { throw bad("path is empty") }
                do { path = RegexBox(try NSRegularExpression(pattern: PathGlob.regex(g), options: [])) } catch {
                    throw bad("path glob does not compile: \(error.localizedDescription)")
                }
            }
            out.append(Entry(rule: rule == "*" ? nil : rule, fingerprint: fingerprint, pattern: pattern, path: path, reason: s.reason))
        }
        entries = out
    }

    /// The index of the first entry that silences a finding of `rule` with this `fingerprint` and
    /// detected value `secret`, found in bytes that come from `paths`; nil when none does.
    func match(rule: String, fingerprint: String, secret: [UInt8], paths: [String]) -> Int? {
        for (i, e) in entries.enumerated() {
            if let r = e.rule, r != rule { continue }
            if let f = e.fingerprint, f != fingerprint { continue }
            if let p = e.pattern, !Self.wholeMatch(p.regex, String(decoding: secret, as: UTF8.self)) { continue }
            if let g = e.path {
                guard !paths.isEmpty, paths.allSatisfy({ Self.wholeMatch(g.regex, $0) }) else { continue }
            }
            return i
        }
        return nil
    }

    static func wholeMatch(_ regex: NSRegularExpression, _ s: String) -> Bool {
        let range = NSRange(s.startIndex..<s.endIndex, in: s)
        guard let m = regex.firstMatch(in: s, options: [.anchored], range: range) else { return false }
        return m.range == range
    }
}
