import Foundation
import MCP
import Pipeline
import Testing
@testable import Forwarder

/// MCP responses: event streams checked event by event, tool lists filtered, what cannot be
/// read withheld.
@Suite("MCP responses")
struct MCPResponseTests {
    static func target() throws -> UpstreamTarget {
        let json = """
        {"name": "tools", "protocol": "mcp", "upstream": "http://127.0.0.1:9/mcp/", "allow_groups": ["ci"],
         "policy": {"tools": {"allow": ["echo", "delete_*"], "deny": ["delete_*"]}}}
        """
        let config = try JSONDecoder().decode(ConnectionConfig.self, from: Data(json.utf8))
        return try UpstreamTarget(config, index: 0, environment: [:], fingerprintKey: Array(repeating: 1, count: 32))
    }

    static func exchange(_ body: String) throws -> ResponseInspector.MCPExchange {
        ResponseInspector.MCPExchange(request: try JSONRPCBody.parse(Array(body.utf8)), rules: try #require(try target().mcp))
    }

    static let listRequest = #"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#
    static let list = #"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"echo"},{"name":"delete_repo"},{"name":"shell"}]}}"#
    static let secret = "ghp_" + String(repeating: "x", count: 36)

    @Test func anEndpointIsCalledExactlyWhereConfigured() throws {
        let target = try Self.target()
        #expect(target.url(for: HTTPRequestData(method: "POST", path: "/", query: "", headers: [], body: Data())) == "http://127.0.0.1:9/mcp/")
    }

    @Test func eventStreamsAreCheckedEventByEventAndListsFiltered() throws {
        let inspector = try ResponseInspectorTests.inspector
        let canary = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gH3j"
        let body = ": ping\n\nevent: message\nid: 1\ndata: \(Self.list)\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"data\":\"token=\(canary)\"}}\n\ndata: {\"cut\":"
        let headers = [HTTPField("Content-Type", "text/event-stream"), HTTPField("Content-Length", "\(body.utf8.count)")]
        let r = inspector.inspect(body: Array(body.utf8), headers: headers, target: try Self.target(), mcp: try Self.exchange(Self.listRequest))
        #expect(r.withheld == nil)
        let parsed = ServerSentEvents.parse(r.body)
        #expect(!parsed.unfinished)
        #expect(parsed.events.count == 2, "the unfinished event and the comment are dropped")
        #expect(parsed.events[0].fields == [.init(name: "event", value: "message"), .init(name: "id", value: "1")])
        #expect(parsed.events[0].data == #"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"echo"}]}}"#)
        let text = String(decoding: r.body, as: UTF8.self)
        #expect(!text.contains(canary))
        #expect(text.contains("[MASKED:"))
        #expect(!r.headers.contains { $0.name == "Content-Length" })
    }

    @Test func jsonListsAreFilteredAndBatchesToo() throws {
        let inspector = try ResponseInspectorTests.inspector
        let headers = [HTTPField("Content-Type", "application/json")]
        let one = inspector.inspect(body: Array(Self.list.utf8), headers: headers, target: try Self.target(), mcp: try Self.exchange(Self.listRequest))
        #expect(String(decoding: one.body, as: UTF8.self) == #"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"echo"}]}}"#)
        let batch = inspector.inspect(
            body: Array("[\(Self.list),{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}]".utf8), headers: headers, target: try Self.target(),
            mcp: try Self.exchange("[\(Self.listRequest),{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}]"))
        #expect(String(decoding: batch.body, as: UTF8.self).contains(#"{"tools":[{"name":"echo"}]}"#))
        // The answer to another call is not touched, byte for byte.
        let other = #"{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"shell"}]}}"#
        let untouched = inspector.inspect(
            body: Array(other.utf8), headers: headers, target: try Self.target(), mcp: try Self.exchange(#"{"jsonrpc":"2.0","id":9,"method":"resources/list"}"#))
        #expect(untouched.body == Array(other.utf8))
    }

    @Test func aListThatCannotBeReadIsWithheld() throws {
        let inspector = try ResponseInspectorTests.inspector
        let broken = inspector.inspect(
            body: Array("{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"tools\":[{\"name\":\"shell\"}],\"tools\":[]}}".utf8),
            headers: [HTTPField("Content-Type", "application/json")], target: try Self.target(), mcp: try Self.exchange(Self.listRequest))
        #expect(broken.withheld == "response_not_json_rpc")
        let stream = inspector.inspect(
            body: Array("data: {not json\n\n".utf8), headers: [HTTPField("Content-Type", "text/event-stream")], target: try Self.target(),
            mcp: try Self.exchange(Self.listRequest))
        #expect(stream.withheld == "response_not_json_rpc")
        // A list under another declared type is still filtered, or withheld.
        let plain = inspector.inspect(
            body: Array(Self.list.utf8), headers: [HTTPField("Content-Type", "text/plain")], target: try Self.target(), mcp: try Self.exchange(Self.listRequest))
        #expect(String(decoding: plain.body, as: UTF8.self).contains(#"{"tools":[{"name":"echo"}]}"#))
        let html = inspector.inspect(
            body: Array("<html>".utf8), headers: [], target: try Self.target(), mcp: try Self.exchange(Self.listRequest))
        #expect(html.withheld == "response_not_json_rpc")
    }
}
