import Inspector
import Pipeline
import Testing

@Suite("Policy")
struct PolicyEvaluatorTests {
    static let aws = FindingSummary(rule: "aws-access-key-id", ruleClass: "credential", severity: "high", location: "body", start: 3, end: 23, fingerprint: "0123456789ab")
    static let tooCostly = FindingSummary(rule: "inspection-limit-exceeded", ruleClass: "credential", severity: "critical", location: "body", start: 0, end: 1_048_576, fingerprint: "00112233aabb")
    static let bomb = FindingSummary(rule: "decode-limit-exceeded", ruleClass: "credential", severity: "critical", location: "header:x-data", start: 0, end: 900, fingerprint: "aabb00112233")
    static let gh = FindingSummary(rule: "github-pat-classic", ruleClass: "credential", severity: "high", location: "query", start: 0, end: 40, fingerprint: "ba9876543210")

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var findings: [FindingSummary]
        var onSecret: PolicyConfig.OnSecret
        var holdSupported: Bool
        var decision: Decision
        var rules: [String]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "clean under mask", findings: [], onSecret: .mask, holdSupported: false, decision: .allow, rules: []),
        Case(name: "clean under block", findings: [], onSecret: .block, holdSupported: false, decision: .allow, rules: []),
        Case(name: "clean under hold", findings: [], onSecret: .hold, holdSupported: true, decision: .allow, rules: []),
        Case(name: "secret under mask", findings: [aws], onSecret: .mask, holdSupported: false, decision: .mask, rules: ["aws-access-key-id"]),
        Case(name: "secret under block", findings: [aws, gh], onSecret: .block, holdSupported: false, decision: .block, rules: ["aws-access-key-id", "github-pat-classic"]),
        Case(name: "hold without approvals fails closed", findings: [gh], onSecret: .hold, holdSupported: false, decision: .block, rules: ["github-pat-classic"]),
        Case(name: "hold with approvals", findings: [gh], onSecret: .hold, holdSupported: true, decision: .hold, rules: ["github-pat-classic"]),
        Case(name: "a body too costly to inspect is blocked, even under mask", findings: [aws, tooCostly], onSecret: .mask, holdSupported: true, decision: .block, rules: ["inspection-limit-exceeded"]),
        Case(name: "a header that decodes past the budget is blocked, even under hold", findings: [bomb], onSecret: .hold, holdSupported: true, decision: .block, rules: ["decode-limit-exceeded"]),
        Case(name: "rules listed once, in order", findings: [gh, aws, gh], onSecret: .mask, holdSupported: false, decision: .mask, rules: ["github-pat-classic", "aws-access-key-id"]),
    ]

    @Test(arguments: cases)
    func verdict(_ c: Case) {
        let v = PolicyEvaluator.verdict(
            for: PolicyInput(findings: c.findings, method: "POST", path: "/x", groups: ["ci"]),
            policy: PolicyConfig(onSecret: c.onSecret), holdSupported: c.holdSupported)
        #expect(v.decision == c.decision)
        #expect(v.rules == c.rules)
        if c.decision != .allow { #expect(!v.reasons.isEmpty) }
    }
}
