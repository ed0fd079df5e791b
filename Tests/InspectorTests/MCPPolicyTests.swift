import Foundation
import MCP
import Pipeline
import Testing
@testable import Inspector

/// The MCP rules of a connection applied to JSON-RPC bodies: table-driven.
@Suite("MCP policy")
struct MCPPolicyTests {
    static let compiled = Result { () throws -> MCPPolicy in
        var config = PolicyConfig()
        config.tools = .init(allow: ["echo", "run_sql", "transfer_*", "delete_*"], deny: ["delete_*"], hold: ["transfer_*"])
        config.holdIf = [
            .init(tool: "run_sql", argument: "query", pattern: "(?i)\\b(drop|truncate)\\b"),
            .init(tool: nil, argument: nil, pattern: "prod-db"),
        ]
        return try MCPPolicy(config)
    }
    static var policy: MCPPolicy { get throws { try compiled.get() } }

    static func call(_ tool: String, _ arguments: String = "{}", id: Int = 1) -> String {
        #"{"jsonrpc":"2.0","id":\#(id),"method":"tools/call","params":{"name":"\#(tool)","arguments":\#(arguments)}}"#
    }

    @Test(arguments: [
        (call("echo", #"{"text":"hi"}"#), MCPInput()),
        (call("delete_branch"), MCPInput(denied: [#"tool "delete_branch": tools.deny[0] "delete_*""#])),
        (call("shell"), MCPInput(denied: [#"tool "shell": tools.allow (not listed)"#])),
        (call("transfer_funds"), MCPInput(holdReasons: [#"tool "transfer_funds": tools.hold[0] "transfer_*""#])),
        (call("run_sql", #"{"query":"select 1"}"#), MCPInput()),
        (call("run_sql", #"{"query":"DROP TABLE t"}"#), MCPInput(holdReasons: [#"tool "run_sql": hold_if[0]"#])),
        // Encodings inside the argument do not hide the statement.
        (call("run_sql", #"{"query":"DR\u004fP TABLE t"}"#), MCPInput(holdReasons: [#"tool "run_sql": hold_if[0]"#])),
        (call("run_sql", #"{"query":"DR%4FP%20TABLE t"}"#), MCPInput(holdReasons: [#"tool "run_sql": hold_if[0]"#])),
        (call("run_sql", #"{"query":"\uff24\uff32\uff2f\uff30 TABLE t"}"#), MCPInput(holdReasons: [#"tool "run_sql": hold_if[0]"#])),
        // A condition without a tool or argument reads every call's whole arguments.
        (call("echo", #"{"text":{"nested":"prod-db"}}"#), MCPInput(holdReasons: [#"tool "echo": hold_if[1]"#])),
        // The argument condition is for run_sql only.
        (call("echo", #"{"query":"drop table"}"#), MCPInput()),
        ("[\(call("echo", id: 1)),\(call("delete_x", id: 2))]", MCPInput(denied: [#"tool "delete_x": tools.deny[0] "delete_*""#])),
        (#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, MCPInput()),
        // A tools/call sent as a notification is judged all the same.
        (#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_x"}}"#, MCPInput(denied: [#"tool "delete_x": tools.deny[0] "delete_*""#])),
        (#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, MCPInput()),
        ("{}", MCPInput(invalid: #"the message lacks "jsonrpc": "2.0""#)),
    ] as [(String, MCPInput)])
    func evaluates(_ body: String, _ expected: MCPInput) throws {
        let bytes = Array(body.utf8)
        #expect(try Self.policy.evaluate(method: "POST", received: bytes, delivered: bytes).input == expected, "\(body)")
    }

    @Test func methods() throws {
        #expect(try Self.policy.evaluate(method: "DELETE", received: [], delivered: []).input == MCPInput())
        let body = Array(Self.call("delete_x").utf8)
        #expect(try Self.policy.evaluate(method: "DELETE", received: body, delivered: body).input.invalid != nil)
        #expect(try Self.policy.evaluate(method: "GET", received: [], delivered: []).input.invalid != nil)
        #expect(try Self.policy.evaluate(method: "POST", received: [], delivered: []).input.invalid != nil)
    }

    @Test func bothReadingsCount() throws {
        // Masking changed a tool's name: the rules see both; reasons name the delivered one.
        let received = Array(Self.call("delete_branch").utf8)
        let delivered = Array(Self.call("[MASKED:x:1]").utf8)
        let input = try Self.policy.evaluate(method: "POST", received: received, delivered: delivered).input
        #expect(input.denied == [#"tool "[MASKED:x:1]": tools.deny[0] "delete_*""#])
        // Masking that breaks the body is not delivered.
        let broken = try Self.policy.evaluate(method: "POST", received: received, delivered: Array("{\"jsonrpc\":".utf8)).input
        #expect(broken.invalid != nil)
    }

    @Test func verdicts() {
        func verdict(_ mcp: MCPInput, onSecret: PolicyConfig.OnSecret = .mask, findings: [FindingSummary] = []) -> Verdict {
            PolicyEvaluator.verdict(
                for: PolicyInput(findings: findings, method: "POST", path: "/", groups: [], mcp: mcp),
                policy: PolicyConfig(onSecret: onSecret), hold: .none, holdSupported: true)
        }
        let finding = FindingSummary(rule: "github-pat-classic", ruleClass: "credential", severity: "high", location: "body", start: 0, end: 4, fingerprint: "f")
        #expect(verdict(MCPInput(invalid: "x")).rules == [PolicyEvaluator.mcpInvalidRule])
        #expect(verdict(MCPInput(denied: ["d"])) == Verdict(decision: .block, rules: [PolicyEvaluator.mcpDeniedRule], reasons: ["d"]))
        #expect(verdict(MCPInput(denied: ["d"], holdReasons: ["h"])).decision == .block, "deny wins over hold")
        #expect(verdict(MCPInput(holdReasons: ["h"]), findings: [finding]) == Verdict(decision: .hold, rules: ["github-pat-classic"], reasons: ["h"]))
        #expect(verdict(MCPInput(denied: ["d"]), onSecret: .block, findings: [finding]).rules == ["github-pat-classic"], "on_secret: block first")
        #expect(verdict(MCPInput()).decision == .allow)
    }
}
