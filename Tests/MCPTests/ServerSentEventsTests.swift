import MCP
import Testing

struct ServerSentEventsTests {
    @Test func parsesFieldsDataAndLineEnds() {
        let text = "\u{FEFF}: keep-alive\nevent: message\r\nid: 7\rdata: {\"a\":\ndata:1}\n\ndata\n\nretry: 10\n\n: only a comment\n\ndata: cut"
        let parsed = ServerSentEvents.parse(Array(text.utf8))
        #expect(parsed.events == [
            ServerSentEvent(fields: [.init(name: "event", value: "message"), .init(name: "id", value: "7")], data: "{\"a\":\n1}"),
            ServerSentEvent(fields: [], data: ""),
            ServerSentEvent(fields: [.init(name: "retry", value: "10")], data: nil),
        ])
        #expect(parsed.unfinished)
        #expect(!ServerSentEvents.parse(Array("data: x\n\n".utf8)).unfinished)
        #expect(ServerSentEvents.parse(Array("data: x\n".utf8)).events.isEmpty)  // never finished
    }

    @Test func roundTrips() {
        let events = [
            ServerSentEvent(fields: [.init(name: "event", value: "message")], data: "{\"jsonrpc\":\"2.0\"}"),
            ServerSentEvent(fields: [.init(name: "id", value: "x")], data: "line1\nline2\n"),
            ServerSentEvent(fields: [], data: ""),
        ]
        let bytes = ServerSentEvents.serialize(events)
        #expect(ServerSentEvents.parse(bytes) == ServerSentEvents.Parsed(events: events, unfinished: false))
        // A carriage return inside data cannot end a line on the way out.
        let cr = ServerSentEvents.serialize([ServerSentEvent(data: "a\rb")])
        #expect(ServerSentEvents.parse(cr).events == [ServerSentEvent(data: "a\nb")])
    }
}
