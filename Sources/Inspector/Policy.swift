import Foundation
import Pipeline

/// What the policy sees of a request: its findings and the request line. Pure data.
public struct PolicyInput: Sendable {
    public var findings: [FindingSummary]
    public var method: String
    public var path: String
    public var groups: [String]
    /// The request body as received (matched by `hold.body_patterns`; never logged or published).
    public var body: Data

    public init(findings: [FindingSummary], method: String, path: String, groups: [String], body: Data = Data()) {
        self.findings = findings
        self.method = method
        self.path = path
        self.groups = groups
        self.body = body
    }
}

/// A connection's `policy.hold` clauses, compiled once (body patterns as regular expressions,
/// path globs as anchored expressions).
///
/// Path globs match `{rest}` (the path below the connection, starting with `/`): `*` matches
/// within one segment (no `/`), `**` matches across segments, anything else literally.
public struct HoldRules: Sendable {
    public let methods: Set<String>
    public let paths: [(glob: String, regex: NSRegularExpression)]
    public let bodyPatterns: [NSRegularExpression]
    public let groups: [String]

    /// No clause: nothing is held except by `on_secret: hold`.
    public static let none = HoldRules(methods: [], paths: [], bodyPatterns: [], groups: [])

    init(methods: Set<String>, paths: [(glob: String, regex: NSRegularExpression)], bodyPatterns: [NSRegularExpression], groups: [String]) {
        self.methods = methods
        self.paths = paths
        self.bodyPatterns = bodyPatterns
        self.groups = groups
    }

    /// Compiles `hold`; throws a `ConfigError` naming the clause when a pattern does not compile
    /// (the config decoder has already checked them, so this is a second line of defence).
    public init(_ hold: PolicyConfig.Hold, path configPath: String = "policy.hold") throws {
        methods = Set(hold.methods.map { $0.uppercased() })
        paths = try hold.paths.enumerated().map { i, glob in
            do { return (glob, try NSRegularExpression(pattern: Self.regex(forGlob: glob))) } catch {
                throw ConfigError(path: "\(configPath).paths[\(i)]", message: "invalid glob \"\(glob)\"")
            }
        }
        bodyPatterns = try hold.bodyPatterns.enumerated().map { i, p in
            do { return try NSRegularExpression(pattern: p) } catch {
                throw ConfigError(path: "\(configPath).body_patterns[\(i)]", message: "invalid pattern \"\(p)\"")
            }
        }
        groups = hold.groups
    }

    /// An anchored regular expression for a path glob.
    static func regex(forGlob glob: String) -> String {
        var out = "^"
        var chars = Array(glob)[...]
        while let c = chars.popFirst() {
            if c == "*" {
                if chars.first == "*" {
                    chars.removeFirst()
                    out += ".*"
                } else {
                    out += "[^/]*"
                }
            } else {
                out += NSRegularExpression.escapedPattern(for: String(c))
            }
        }
        return out + "$"
    }

    /// The reasons `input` is held, one per matching clause, in clause order: `method DELETE`,
    /// `path /admin/*`, `body pattern #0`, `group contractors`. Never contains request content.
    public func reasons(for input: PolicyInput) -> [String] {
        var reasons: [String] = []
        let method = input.method.uppercased()
        if methods.contains(method) { reasons.append("method \(method)") }
        let path = input.path
        for (glob, regex) in paths where regex.firstMatch(in: path, range: NSRange(path.startIndex..., in: path)) != nil {
            reasons.append("path \(glob)")
        }
        if !bodyPatterns.isEmpty, !input.body.isEmpty {
            let text = String(decoding: input.body, as: UTF8.self)
            let range = NSRange(text.startIndex..., in: text)
            for (i, regex) in bodyPatterns.enumerated() where regex.firstMatch(in: text, range: range) != nil {
                reasons.append("body pattern #\(i)")
            }
        }
        for g in groups where input.groups.contains(g) { reasons.append("group \(g)") }
        return reasons
    }
}

/// Turns findings and the hold clauses into a verdict under a connection's policy. Pure and
/// synchronous.
///
/// - Findings under `on_secret: block`: `block` (block wins over hold).
/// - Any hold clause matches, or findings under `on_secret: hold`: `hold`, with one reason per
///   matching clause (`method DELETE`, `path /admin/*`, `body pattern #0`, `group contractors`,
///   `finding aws-access-key-id`); the request is still masked. Until the approvals flow is
///   enabled (`holdSupported == false`) a hold is enforced as a block, never as a pass.
/// - Otherwise findings: `mask`; nothing: `allow`.
public enum PolicyEvaluator {
    public static func verdict(for input: PolicyInput, policy: PolicyConfig, holdSupported: Bool = false) -> Verdict {
        verdict(for: input, policy: policy, hold: .none, holdSupported: holdSupported)
    }

    public static func verdict(for input: PolicyInput, policy: PolicyConfig, hold: HoldRules, holdSupported: Bool) -> Verdict {
        var rules: [String] = []
        for f in input.findings where !rules.contains(f.rule) { rules.append(f.rule) }
        if !rules.isEmpty, policy.onSecret == .block {
            return Verdict(decision: .block, rules: rules, reasons: ["on_secret: block (\(rules.joined(separator: ", ")))"])
        }
        var holdReasons = hold.reasons(for: input)
        if policy.onSecret == .hold { holdReasons += rules.map { "finding \($0)" } }
        if !holdReasons.isEmpty {
            if holdSupported { return Verdict(decision: .hold, rules: rules, reasons: holdReasons) }
            return Verdict(decision: .block, rules: rules, reasons: ["hold enforced as block until approvals are enabled"] + holdReasons)
        }
        guard !rules.isEmpty else { return Verdict(decision: .allow) }
        return Verdict(decision: .mask, rules: rules, reasons: ["secrets masked: \(rules.joined(separator: ", "))"])
    }
}
