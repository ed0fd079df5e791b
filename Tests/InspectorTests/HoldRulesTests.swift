import Foundation
import Inspector
import Pipeline
import Testing

@Suite("Hold clauses")
struct HoldRulesTests {
    static let aws = FindingSummary(rule: "aws-access-key-id", ruleClass: "credential", severity: "high", location: "body", start: 0, end: 20, fingerprint: "0123456789ab")

    static func policy(onSecret: PolicyConfig.OnSecret = .mask) -> (PolicyConfig, HoldRules) {
        var p = PolicyConfig(onSecret: onSecret)
        p.hold.methods = ["DELETE", "PUT"]
        p.hold.paths = ["/admin/*", "/ops/**/restart"]
        p.hold.bodyPatterns = ["(?i)drop\\s+table", "rm\\s+-rf\\s+/"]
        p.hold.groups = ["contractors"]
        return (p, try! HoldRules(p.hold))  // test fixture: the patterns are literals above
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var method = "POST"
        var path = "/v1/x"
        var body = "{}"
        var groups = ["ci"]
        var findings: [FindingSummary] = []
        var onSecret: PolicyConfig.OnSecret = .mask
        var decision: Decision
        var reasons: [String] = []
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "nothing matches", decision: .allow),
        Case(name: "finding under mask, no clause", findings: [aws], decision: .mask, reasons: ["secrets masked: aws-access-key-id"]),
        Case(name: "method", method: "DELETE", decision: .hold, reasons: ["method DELETE"]),
        Case(name: "method lowercase", method: "put", decision: .hold, reasons: ["method PUT"]),
        Case(name: "path glob one segment", path: "/admin/users", decision: .hold, reasons: ["path /admin/*"]),
        Case(name: "path glob does not cross segments", path: "/admin/users/1", decision: .allow),
        Case(name: "path ** crosses segments", path: "/ops/eu/web/restart", decision: .hold, reasons: ["path /ops/**/restart"]),
        Case(name: "body pattern, case-insensitive", body: "{\"sql\":\"DROP   TABLE users\"}", decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "second body pattern", body: "sh -c 'rm -rf /'", decision: .hold, reasons: ["body pattern #1"]),
        Case(name: "group", groups: ["ci", "contractors"], decision: .hold, reasons: ["group contractors"]),
        Case(name: "finding under on_secret hold", findings: [aws], onSecret: .hold, decision: .hold, reasons: ["finding aws-access-key-id"]),
        Case(name: "several clauses, in order", method: "DELETE", path: "/admin/x", groups: ["contractors"], decision: .hold,
             reasons: ["method DELETE", "path /admin/*", "group contractors"]),
        Case(name: "block wins over hold", method: "DELETE", findings: [aws], onSecret: .block, decision: .block,
             reasons: ["on_secret: block (aws-access-key-id)"]),
        Case(name: "clause plus finding under mask: held, still masked", method: "DELETE", findings: [aws], decision: .hold,
             reasons: ["method DELETE"]),
    ]

    @Test(arguments: cases)
    func verdict(_ c: Case) {
        let (policy, rules) = Self.policy(onSecret: c.onSecret)
        let v = PolicyEvaluator.verdict(
            for: PolicyInput(findings: c.findings, method: c.method, path: c.path, groups: c.groups, body: Data(c.body.utf8)),
            policy: policy, hold: rules, holdSupported: true)
        #expect(v.decision == c.decision)
        #expect(v.reasons == c.reasons)
        #expect(v.rules == c.findings.map(\.rule))
    }

    @Test("without the approvals flow a hold clause is enforced as a block")
    func holdUnsupported() {
        let (policy, rules) = Self.policy()
        let v = PolicyEvaluator.verdict(
            for: PolicyInput(findings: [], method: "DELETE", path: "/", groups: []), policy: policy, hold: rules, holdSupported: false)
        #expect(v.decision == .block)
    }
}
