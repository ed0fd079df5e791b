import Detection
import Foundation
import Pipeline

/// What the policy sees of a request: its findings and the request line. Pure data.
public struct PolicyInput: Sendable {
    public var findings: [FindingSummary]
    public var method: String
    /// The path below the connection as published by the Ingress: it must be canonical
    /// (`CanonicalPath.canonicalize` returns it unchanged), else the request is blocked.
    public var path: String
    public var groups: [String]
    /// The request body with every content coding undone (matched by `hold.body_patterns`
    /// through its decoded views; never logged or published).
    public var body: Data
    /// Why the body's content codings could not be undone (one sentence without request
    /// content); `nil` when `body` is the decoded body. Set: the request is blocked.
    public var undecodableBody: String?
    /// The path as it will be delivered (secrets masked), also matched by the path globs;
    /// `nil` when it is `path`.
    public var deliveredPath: String?
    /// What the MCP rules say (`protocol: mcp` connections only).
    public var mcp: MCPInput?

    public init(findings: [FindingSummary], method: String, path: String, groups: [String], body: Data = Data(),
                undecodableBody: String? = nil, deliveredPath: String? = nil, mcp: MCPInput? = nil) {
        self.mcp = mcp
        self.findings = findings
        self.method = method
        self.path = path
        self.groups = groups
        self.body = body
        self.undecodableBody = undecodableBody
        self.deliveredPath = deliveredPath
    }
}

extension PolicyInput {
    /// What the policy sees of `request` once `RequestInspector` has inspected it: the path as
    /// published (which must be canonical), the decoded body (or why it could not be decoded)
    /// and the masked path as delivered.
    public init(inspected result: RequestInspector.Result, original request: HTTPRequestData, groups: [String]) {
        self.init(
            findings: result.findings, method: request.method, path: request.path, groups: groups,
            body: result.decodedBody, undecodableBody: result.undecodableBody, deliveredPath: result.request.path)
    }
}

/// A connection's `policy.hold` clauses, compiled once (body patterns as regular expressions,
/// path globs as anchored expressions).
///
/// Path globs match `{rest}` (the canonical path below the connection, starting with `/`): `*`
/// matches within one segment (no `/`), `**` matches across segments, anything else literally.
///
/// Guarantees (upstreams differ in how they read a path and a body, so every plausible reading
/// is checked and a request is held when any of them matches):
/// - Path globs match case-insensitively, against the path, the path with `;matrix` parameters
///   stripped from each segment, and both of those percent-decoded; also against the delivered
///   (masked) path when it differs.
/// - Body patterns match every decoded view of the body (`BodyViews`): raw, JSON-unescaped
///   (repeatedly, JSON inside JSON), form/percent-decoded, NFKC-normalised. When the views cannot
///   all be built, `reasons(for:)` throws instead of matching a subset.
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
            do { return (glob, try NSRegularExpression(pattern: Self.regex(forGlob: glob), options: [.caseInsensitive])) } catch {
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

    /// An anchored regular expression for a path glob (`PathGlob`, shared with `detection.allow`).
    static func regex(forGlob glob: String) -> String { PathGlob.regex(glob) }

    /// The readings of a path that the globs are matched against: as given, with each
    /// segment's `;matrix` parameters stripped, and both percent-decoded. Distinct, `path` first.
    public static func pathViews(_ path: String) -> [String] {
        var views: [String] = []
        for candidate in [path, stripMatrix(path)] {
            for view in [candidate, candidate.removingPercentEncoding ?? candidate] where !views.contains(view) {
                views.append(view)
            }
        }
        // Stripping `;` that only percent-decoding revealed (`%3B`).
        for view in views.map(stripMatrix) where !views.contains(view) { views.append(view) }
        return views
    }

    /// `path` with everything from the first `;` to the end of each segment removed.
    static func stripMatrix(_ path: String) -> String {
        guard path.contains(";") else { return path }
        return path.split(separator: "/", omittingEmptySubsequences: false)
            .map { segment in segment.firstIndex(of: ";").map { segment[..<$0] } ?? segment }
            .joined(separator: "/")
    }

    /// The reasons `input` is held, one per matching clause, in clause order: `method DELETE`,
    /// `path /admin/*`, `body pattern #0`, `group contractors`. Never contains request content.
    /// - Throws: `BodyViews.Unbuildable` when the body's decoded views cannot all be built
    ///   (only when there are body patterns and a body).
    public func reasons(for input: PolicyInput) throws(BodyViews.Unbuildable) -> [String] {
        var reasons: [String] = []
        let method = input.method.uppercased()
        if methods.contains(method) { reasons.append("method \(method)") }
        if !paths.isEmpty {
            var views = Self.pathViews(input.path)
            if let delivered = input.deliveredPath, delivered != input.path {
                for view in Self.pathViews(delivered) where !views.contains(view) { views.append(view) }
            }
            for (glob, regex) in paths {
                let matches = views.contains { view in
                    regex.firstMatch(in: view, range: NSRange(view.startIndex..., in: view)) != nil
                }
                if matches { reasons.append("path \(glob)") }
            }
        }
        if !bodyPatterns.isEmpty, !input.body.isEmpty {
            let views = try BodyViews.views(of: Array(input.body))
            for (i, regex) in bodyPatterns.enumerated() {
                let matches = views.contains { text in
                    regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
                }
                if matches { reasons.append("body pattern #\(i)") }
            }
        }
        for g in groups where input.groups.contains(g) { reasons.append("group \(g)") }
        return reasons
    }
}

/// Turns findings and the hold clauses into a verdict under a connection's policy. Pure and
/// synchronous.
///
/// In order, the first that applies:
/// - The path is not canonical (`CanonicalPath.canonicalize` refuses it or spells it
///   differently): `block`, rule `non-canonical-path` (the Ingress refuses these first).
/// - The body's content codings could not be undone, or its decoded views could not all be
///   built: `block`, rule `undecodable-body` (fails closed: never matched on a partial view).
/// - Detection could not inspect a part whole (`decode-limit-exceeded`,
///   `inspection-limit-exceeded`): `block`, with that rule.
/// - An MCP connection's body is not an MCP message: `block`, rule `mcp-invalid-message`.
/// - Findings under `on_secret: block`: `block` (block wins over hold).
/// - An MCP tool call is denied (`tools.deny`, or not in `tools.allow`): `block`, rule
///   `mcp-tool-denied`, one reason per denied call.
/// - Any hold clause matches, an MCP rule holds a tool call (`tools.hold`, `hold_if`), or findings under `on_secret: hold`: `hold`, with one reason per
///   matching clause (`method DELETE`, `path /admin/*`, `body pattern #0`, `group contractors`,
///   `finding aws-access-key-id`); the request is still masked. Until the approvals flow is
///   enabled (`holdSupported == false`) a hold is enforced as a block, never as a pass.
/// - Otherwise findings: `mask`; nothing: `allow`.
///
/// Guarantees: reasons never contain request content (paths, bodies, header values), except
/// the name of an MCP tool as it is delivered (masked), which a reviewer needs to see.
public enum PolicyEvaluator {
    /// The rule of a block for a path that is not canonical.
    public static let nonCanonicalPathRule = "non-canonical-path"
    /// The rule of a block for a body that cannot be decoded.
    public static let undecodableBodyRule = "undecodable-body"
    /// The rule of a block for a body that is not an MCP message on an MCP connection.
    public static let mcpInvalidRule = "mcp-invalid-message"
    /// The rule of a block for a denied MCP tool call.
    public static let mcpDeniedRule = "mcp-tool-denied"
    /// Detection's fail-closed findings (over the whole body, header or query), and why: the
    /// request is blocked, not forwarded with everything masked (the upstream would get a body
    /// that is one mask token; the caller learns nothing of why).
    public static let uninspectableRules = [
        "decode-limit-exceeded": "its nested encodings decode to more than the detection budget",
        "inspection-limit-exceeded": "it is built so that scanning it would cost more than the detection budget",
    ]

    public static func verdict(for input: PolicyInput, policy: PolicyConfig, holdSupported: Bool = false) -> Verdict {
        verdict(for: input, policy: policy, hold: .none, holdSupported: holdSupported)
    }

    public static func verdict(for input: PolicyInput, policy: PolicyConfig, hold: HoldRules, holdSupported: Bool) -> Verdict {
        do throws(CanonicalPath.Refusal) {
            let canonical = try CanonicalPath.canonicalize(input.path)
            if canonical != input.path {
                return Verdict(decision: .block, rules: [nonCanonicalPathRule],
                               reasons: ["the path is not in its canonical spelling"])
            }
        } catch {
            return Verdict(decision: .block, rules: [nonCanonicalPathRule], reasons: ["the path is refused: \(error.reason)"])
        }
        if let why = input.undecodableBody {
            return Verdict(decision: .block, rules: [undecodableBodyRule], reasons: ["the body cannot be decoded: \(why)"])
        }
        if let f = input.findings.first(where: { uninspectableRules[$0.rule] != nil }) {
            return Verdict(decision: .block, rules: [f.rule],
                           reasons: ["the \(f.location) could not be inspected whole: \(uninspectableRules[f.rule] ?? f.rule)"])
        }
        if let why = input.mcp?.invalid {
            return Verdict(decision: .block, rules: [mcpInvalidRule], reasons: ["the body is not an MCP message: \(why)"])
        }
        var rules: [String] = []
        for f in input.findings where !rules.contains(f.rule) { rules.append(f.rule) }
        if !rules.isEmpty, policy.onSecret == .block {
            return Verdict(decision: .block, rules: rules, reasons: ["on_secret: block (\(rules.joined(separator: ", ")))"])
        }
        if let denied = input.mcp?.denied, !denied.isEmpty {
            return Verdict(decision: .block, rules: [mcpDeniedRule] + rules, reasons: denied)
        }
        var holdReasons: [String]
        do throws(BodyViews.Unbuildable) { holdReasons = try hold.reasons(for: input) } catch {
            return Verdict(decision: .block, rules: [undecodableBodyRule] + rules,
                           reasons: ["the body's decoded views cannot be built: \(error.reason)"])
        }
        holdReasons += input.mcp?.holdReasons ?? []
        if policy.onSecret == .hold { holdReasons += rules.map { "finding \($0)" } }
        if !holdReasons.isEmpty {
            if holdSupported { return Verdict(decision: .hold, rules: rules, reasons: holdReasons) }
            return Verdict(decision: .block, rules: rules, reasons: ["hold enforced as block until approvals are enabled"] + holdReasons)
        }
        guard !rules.isEmpty else { return Verdict(decision: .allow) }
        return Verdict(decision: .mask, rules: rules, reasons: ["secrets masked: \(rules.joined(separator: ", "))"])
    }
}
