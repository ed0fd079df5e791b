import Pipeline

/// What the policy sees of a request: its findings and the request line. Pure data.
public struct PolicyInput: Sendable {
    public var findings: [FindingSummary]
    public var method: String
    public var path: String
    public var groups: [String]

    public init(findings: [FindingSummary], method: String, path: String, groups: [String]) {
        self.findings = findings
        self.method = method
        self.path = path
        self.groups = groups
    }
}

/// Turns findings into a verdict under a connection's policy. Pure and synchronous.
///
/// - No finding: `allow`.
/// - Findings: `on_secret` decides — `mask` forwards masked, `block` never forwards,
///   `hold` parks the (masked) request for approval; until the approvals flow is
///   enabled (`holdSupported == false`) a hold is enforced as a block, never as a pass.
public enum PolicyEvaluator {
    public static func verdict(for input: PolicyInput, policy: PolicyConfig, holdSupported: Bool = false) -> Verdict {
        var rules: [String] = []
        for f in input.findings where !rules.contains(f.rule) { rules.append(f.rule) }
        guard !input.findings.isEmpty else { return Verdict(decision: .allow) }
        switch policy.onSecret {
        case .mask:
            return Verdict(decision: .mask, rules: rules, reasons: ["secrets masked: \(rules.joined(separator: ", "))"])
        case .block:
            return Verdict(decision: .block, rules: rules, reasons: ["on_secret: block (\(rules.joined(separator: ", ")))"])
        case .hold:
            if holdSupported {
                return Verdict(decision: .hold, rules: rules, reasons: ["on_secret: hold (\(rules.joined(separator: ", ")))"])
            }
            return Verdict(decision: .block, rules: rules, reasons: ["on_secret: hold, enforced as block until approvals are enabled (\(rules.joined(separator: ", ")))"])
        }
    }
}
