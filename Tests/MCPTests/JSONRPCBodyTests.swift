import MCP
import Testing

struct JSONRPCBodyTests {
    @Test func classifiesMessages() throws {
        let body = try JSONRPCBody.parse(Array("""
            [{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_sql","arguments":{"query":"select 1"}}},
             {"jsonrpc":"2.0","method":"notifications/initialized"},
             {"jsonrpc":"2.0","id":"s-1","result":{}},
             {"jsonrpc":"2.0","id":"1","method":"tools/list"}]
            """.utf8))
        #expect(body.isBatch)
        #expect(body.messages.map(\.kind) == [.request, .notification, .response, .request])
        #expect(body.messages[0].tool == "run_sql")
        #expect(body.messages[0].arguments?["query"]?.stringValue == "select 1")
        #expect(body.messages[0].id == "1")
        #expect(body.messages[3].id == "\"1\"")  // a string id differs from the number
        #expect(body.requests.count == 2)
    }

    @Test(arguments: [
        ("{\"id\":1,\"method\":\"ping\"}", "lacks"),
        ("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", "lacks"),
        ("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", "neither a string nor a number"),
        ("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}", "neither a string nor a number"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"Tools/Call\",\"params\":{\"name\":\"x\"}}", "another spelling"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call \",\"params\":{\"name\":\"x\"}}", "another spelling"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\\u0000\",\"params\":{\"name\":\"x\"}}", "another spelling"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools\\uff0fcall\",\"params\":{\"name\":\"x\"}}", "another spelling"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}", "without params"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"arguments\":{}}}", "without a tool name"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":7}}", "without a tool name"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"arguments\":[1]}}", "arguments are not an object"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"name\":\"y\"}}", "not valid JSON"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"result\":{}}", "both a call and a response"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1}", "exactly one of result and error"),
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{}}", "exactly one of result and error"),
        ("{\"jsonrpc\":\"2.0\"}", "neither a method nor an id"),
        ("{\"jsonrpc\":\"2.0\",\"method\":5}", "not a string"),
        ("[]", "empty batch"),
        ("[1]", "is not an object"),
        ("\"tools/call\"", "neither a JSON-RPC message nor a batch"),
        ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}]", "repeats the id"),
        ("not json", "not valid JSON"),
    ])
    func refuses(_ text: String, _ why: String) {
        do {
            _ = try JSONRPCBody.parse(Array(text.utf8))
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.reason.contains(why), "\(text): \(error.reason)")
        }
    }

    @Test func errorsAnswerEveryRequestInOrder() throws {
        let body = try JSONRPCBody.parse(Array("""
            [{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":2,"method":"ping"}]
            """.utf8))
        let bytes = try #require(JSONRPCErrors.responses(to: body, code: -32001, data: [("rule", .string("r"))]) { "no \($0.method ?? "")" })
        #expect(String(decoding: bytes, as: UTF8.self) == """
            [{"jsonrpc":"2.0","id":"a","error":{"code":-32001,"message":"no tools/call","data":{"rule":"r"}}},\
            {"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"no ping","data":{"rule":"r"}}}]
            """)
        let notification = try JSONRPCBody.parse(Array("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}".utf8))
        #expect(JSONRPCErrors.responses(to: notification, code: -32001, data: []) { _ in "" } == nil)
    }
}
