import BusContract
import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// MCP connections (issue 14) against a real MCP server and client: the Python SDK's FastMCP
/// server and its Streamable HTTP client (Tests/mcp), through `sluice run` and Kafka mode.
@Suite("MCP connections", .serialized)
struct MCPGatewayTests {
    /// The connection under test: `tools`, an MCP endpoint with tool rules.
    static func connection(_ server: MCPTestServer, holdWait: String = "30s") -> String {
        """
          - name: tools
            protocol: mcp
            upstream: \(server.endpoint)
            allow_groups: [ci]
            policy:
              tools:
                allow: [echo, get_config, "read_*", run_sql, transfer_funds, "delete_*"]
                deny: ["delete_*"]
                hold: [transfer_funds]
              hold_if: { tool: run_sql, argument: query, pattern: '(?i)\\b(drop|truncate)\\b' }
              approvers: [secops]
              hold_wait: \(holdWait)
        """
    }

    /// Runs `body` with a started MCP test server and a gateway whose `tools` connection points
    /// at it; stops both after.
    static func withGateway(
        _ mode: GatewayMode, secretResult: String = "none", jsonResponse: Bool = false,
        _ body: (MCPTestServer, Gateway) async throws -> Void
    ) async throws {
        let server = try await MCPTestServer.start(secretResult: secretResult, jsonResponse: jsonResponse)
        defer { server.stop() }
        let gw = try await Gateway(mode: mode, extraConnections: Self.connection(server))
        do {
            try await gw.start()
            try await body(server, gw)
        } catch {
            await gw.stop()
            throw error
        }
        await gw.stop()
    }

    /// What an MCP client sends with a POST.
    static let jsonHeaders = [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]

    struct ClientOutput {
        var object: [String: Any]
        var text: String
        var tools: [String]? { object["tools"] as? [String] }
        var result: [String: Any]? { object["result"] as? [String: Any] }
        var error: [String: Any]? { object["error"] as? [String: Any] }
        var resultText: String {
            ((result?["content"] as? [[String: Any]]) ?? []).compactMap { $0["text"] as? String }.joined(separator: "\n")
        }
    }

    /// The MCP client's arguments for `command` through the gateway's `tools` connection.
    static func clientArguments(_ gw: Gateway, _ command: [String], key: String = Gateway.ciKey) -> [String] {
        [MCPTestServer.scripts.appendingPathComponent("client.py").path, "--url", gw.baseURL + "/fn/tools", "--key", key] + command
    }

    static func parse(_ result: CommandResult) throws -> ClientOutput {
        let line = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let object = try #require(try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                                  "client printed no JSON (exit \(result.status)):\n\(result.stdout)\n\(result.stderr.suffix(3000))")
        return ClientOutput(object: object, text: line)
    }

    static func client(_ gw: Gateway, _ command: [String]) async throws -> ClientOutput {
        try parse(try await BackgroundCommand(MCPTestServer.python, clientArguments(gw, command)).finish())
    }

    @Test("tools/list is filtered; a secret in arguments is masked upstream, one in a streamed result at the caller; denied and unlisted tools get JSON-RPC errors", arguments: GatewayMode.available)
    func listCallMaskDeny(mode: GatewayMode) async throws {
        let canaries = Canaries.make()
        let argumentSecret = try #require(canaries.first { $0.rule == "github-pat-classic" }).secret
        let resultSecret = try #require(canaries.first { $0.rule == "stripe-secret-key" }).secret
        try await Self.withGateway(mode, secretResult: resultSecret) { server, gw in
            let listed = try await Self.client(gw, ["list"])
            #expect(listed.tools == ["echo", "get_config", "read_file", "run_sql", "transfer_funds"], "\(listed.text)")

            let echoed = try await Self.client(gw, ["call", "echo", "{\"text\": \"deploy with \(argumentSecret) now\"}"])
            #expect(echoed.result?["isError"] as? Bool == false, "\(echoed.text)")
            let echoCall = try #require(server.calls.last { $0.tool == "echo" })
            #expect(echoCall.arguments.contains("[MASKED:github-pat-classic:"), "\(echoCall.arguments)")
            #expect(!echoCall.arguments.contains(argumentSecret))
            #expect(!echoed.text.contains(argumentSecret))

            // The server answers tools/call as an event stream: the result is checked event by event.
            let config = try await Self.client(gw, ["call", "get_config", "{\"service\": \"payments\"}"])
            #expect(config.resultText.contains("region=eu-west-1"), "\(config.text)")
            #expect(config.resultText.contains("[MASKED:stripe-secret-key:"), "\(config.text)")
            #expect(!config.text.contains(resultSecret), "the secret in the tool result reached the caller")

            let denied = try await Self.client(gw, ["call", "delete_repository", "{\"name\": \"prod\"}"])
            let deniedError = try #require(denied.error, "\(denied.text)")
            #expect(deniedError["code"] as? Int == -32001)
            #expect((deniedError["message"] as? String ?? "").contains("tools.deny[0] \"delete_*\""), "\(denied.text)")
            #expect((deniedError["data"] as? [String: Any])?["rule"] as? String == "mcp-tool-denied")

            let unlisted = try await Self.client(gw, ["call", "write_file", "{\"path\": \"/etc/passwd\", \"content\": \"x\"}"])
            #expect(((unlisted.error?["message"] as? String) ?? "").contains("tools.allow (not listed)"), "\(unlisted.text)")
            #expect(!server.calls.contains { $0.tool == "delete_repository" || $0.tool == "write_file" })

            // The audit trail names methods, tools and ids, never an argument value.
            let blocked = try await gw.waitAuditEvents("blocked", count: 2)
            let tools = blocked.compactMap { ($0["details"] as? [String: String])?["mcp_tool"] }
            #expect(Set(tools) == ["delete_repository", "write_file"], "\(blocked)")
            #expect(blocked.allSatisfy { ($0["details"] as? [String: String])?["mcp_method"] == "tools/call" && ($0["details"] as? [String: String])?["mcp_id"] != nil })
            let audit = String(decoding: try Data(contentsOf: gw.dataDir.appendingPathComponent("audit.jsonl")), as: UTF8.self)
            #expect(audit.contains("\"mcp_tool\":\"get_config\""))
            #expect(!audit.contains(argumentSecret) && !audit.contains(resultSecret) && !audit.contains("payments"))
        }
    }

    @Test("a held tool call waits for a reviewer: approved, its result arrives on the same call; an argument condition holds run_sql, and a denial is a JSON-RPC error", arguments: GatewayMode.available)
    func heldCalls(mode: GatewayMode) async throws {
        try await Self.withGateway(mode) { server, gw in
            let transfer = try BackgroundCommand(MCPTestServer.python, Self.clientArguments(gw, ["call", "transfer_funds", "{\"amount\": 100, \"to\": \"acct-9\"}"]))
            let held = try await Self.waitOnePending(gw)
            #expect(server.calls.isEmpty, "a held call reached the server before approval")
            let listing = try await gw.api(.GET, "/v1/approvals?status=pending", key: Gateway.aliceKey)
            #expect(listing.text.contains("tool \\\"transfer_funds\\\": tools.hold[0] \\\"transfer_funds\\\""), "\(listing.text)")
            #expect(try await gw.approve(held, key: Gateway.aliceKey).status == 200)
            let approved = try Self.parse(try await transfer.finish())
            #expect(approved.resultText == "transferred 100 to acct-9", "\(approved.text)")
            #expect(server.calls.filter { $0.tool == "transfer_funds" }.count == 1)

            // An argument condition (hold_if) holds a destructive statement, spelled with an escape.
            let select = try await Self.client(gw, ["call", "run_sql", "{\"query\": \"select 1\"}"])
            #expect(select.resultText == "ran: select 1", "\(select.text)")
            let drop = try BackgroundCommand(MCPTestServer.python, Self.clientArguments(gw, ["call", "run_sql", "{\"query\": \"DR\\u004fP TABLE users\"}"]))
            let heldDrop = try await Self.waitOnePending(gw, except: [held])
            #expect(try await gw.deny(heldDrop, key: Gateway.bobKey).status == 200)
            let denied = try Self.parse(try await drop.finish())
            let error = try #require(denied.error, "\(denied.text)")
            #expect(error["code"] as? Int == -32001)
            #expect((error["message"] as? String ?? "").contains("denied"), "\(denied.text)")
            #expect((error["data"] as? [String: Any])?["status"] as? String == "denied")
            #expect(!server.calls.contains { $0.arguments.contains("DROP") })
            let decided = try await gw.waitAudit("approval_requested", requestID: heldDrop)
            #expect((decided["reasons"] as? [String] ?? []).contains("tool \"run_sql\": hold_if[0]"), "\(decided)")
        }
    }

    /// The one pending approval not in `except`, once the reviewer API lists it.
    static func waitOnePending(_ gw: Gateway, except: Set<String> = [], timeout: Duration = .seconds(30)) async throws -> String {
        var held: String?
        if try await eventually(timeout: timeout, {
            held = try await gw.approvalIDs().first { !except.contains($0) }
            return held != nil
        }), let held { return held }
        throw GatewayError("no call was held within \(timeout):\n\(gw.processLogs.suffix(4000))")
    }

    @Test("HTTP edges: GET and other paths are refused, a body that is not JSON-RPC is a 400, duplicate member names are refused, a batch with a denied call sends nothing; a JSON-answering server's tool list is filtered too")
    func httpEdges() async throws {
        try await Self.withGateway(.embedded, jsonResponse: true) { server, gw in
            let json = Self.jsonHeaders

            let get = try await gw.call(.GET, connection: "tools")
            #expect(get.status == 405)
            #expect(get.header("Allow") == "POST, DELETE")
            #expect(try await gw.call(.POST, connection: "tools", path: "/other", headers: json, body: Data("{}".utf8)).status == 404)
            #expect(try await gw.call(.PUT, connection: "tools", headers: json, body: Data("{}".utf8)).status == 405)
            // DELETE ends a session; messages in its body would reach the server unread.
            #expect(try await gw.call(.DELETE, connection: "tools", headers: json, body: Data(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repository"}}"#.utf8)).status == 400)

            let notJSON = try await gw.call(connection: "tools", headers: json, body: Data("tools/call delete_repository".utf8))
            #expect(notJSON.status == 400)
            #expect(notJSON.text.contains("not valid JSON"), "\(notJSON.text)")
            // Which `name` wins differs between parsers: refused, never guessed.
            let twice = try await gw.call(connection: "tools", headers: json, body: Data("""
                {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_repository","arguments":{}}}
                """.utf8))
            #expect(twice.status == 400)
            #expect(twice.text.contains("duplicate member name"), "\(twice.text)")
            let spelled = try await gw.call(connection: "tools", headers: json, body: Data("""
                {"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"delete_repository"}}
                """.utf8))
            #expect(spelled.status == 400)

            let batch = try await gw.call(connection: "tools", headers: json, body: Data("""
                [{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}},
                 {"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"\\uff44elete_repository","arguments":{}}}]
                """.utf8))
            #expect(batch.status == 200)
            let answers = try #require(try JSONSerialization.jsonObject(with: batch.body) as? [[String: Any]], "\(batch.text)")
            #expect(answers.count == 2)
            #expect(answers.map { ($0["error"] as? [String: Any])?["code"] as? Int } == [-32001, -32001])
            #expect(((answers[1]["error"] as? [String: Any])?["message"] as? String ?? "").contains("tools.deny[0]"), "\(batch.text)")
            #expect(server.calls.isEmpty)

            let listed = try await Self.client(gw, ["list"])
            #expect(listed.tools == ["echo", "get_config", "read_file", "run_sql", "transfer_funds"], "\(listed.text)")
        }
    }

    @Test("an MCP session is bound to the caller that opened it: another caller, or the server's id without Sluice's tag, gets 404")
    func sessionsAreBoundToTheirCaller() async throws {
        try await Self.withGateway(.embedded, jsonResponse: true) { server, gw in
            let json = Self.jsonHeaders
            let initialize = try await gw.call(connection: "tools", headers: json, body: Data("""
                {"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}
                """.utf8))
            #expect(initialize.status == 200, "\(initialize.text)")
            let session = try #require(initialize.header("Mcp-Session-Id"))
            let parts = session.split(separator: "~")
            #expect(parts.count == 2 && parts[1].count == 32, "\(session)")
            let serverID = String(parts[0])
            let initialized = Data(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.utf8)
            let list = Data(#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.utf8)

            let other = try await gw.call(connection: "tools", headers: json + [("Mcp-Session-Id", session)], body: list, key: Gateway.carolKey)
            #expect(other.status == 404, "\(other.text)")
            let untagged = try await gw.call(connection: "tools", headers: json + [("Mcp-Session-Id", serverID)], body: list)
            #expect(untagged.status == 404)
            let twice = try await gw.call(connection: "tools", headers: json + [("Mcp-Session-Id", session), ("Mcp-Session-Id", session)], body: list)
            #expect(twice.status == 400)

            #expect(try await gw.call(connection: "tools", headers: json + [("Mcp-Session-Id", session)], body: initialized).status == 202)
            let mine = try await gw.call(connection: "tools", headers: json + [("Mcp-Session-Id", session)], body: list)
            #expect(mine.status == 200, "\(mine.text)")
            #expect(mine.text.contains("\"echo\""))
            #expect(mine.header("Mcp-Session-Id") == session, "the same tagged id comes back")
        }
    }
}
