import Foundation
import Pipeline
import Testing

@Suite("W3C trace context")
struct TraceContextTests {
    static let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let parent = "00f067aa0ba902b7"

    /// (value, expected trace id / parent id / flags, or the refusal)
    static let cases: [(String, Result<(String, String, UInt8), TraceParent.Refusal>)] = [
        ("00-\(trace)-\(parent)-01", .success((trace, parent, 1))),
        ("00-\(trace)-\(parent)-00", .success((trace, parent, 0))),
        ("00-\(trace)-\(parent)-ff", .success((trace, parent, 0xff))),
        // A later version: read by its first four fields, more only after a dash.
        ("01-\(trace)-\(parent)-01", .success((trace, parent, 1))),
        ("cc-\(trace)-\(parent)-01-what-the-future-adds", .success((trace, parent, 1))),
        ("cc-\(trace)-\(parent)-01x", .failure(.malformed)),
        // Wrong version.
        ("ff-\(trace)-\(parent)-01", .failure(.badVersion)),
        ("0g-\(trace)-\(parent)-01", .failure(.badHex)),
        ("0-\(trace)-\(parent)-011", .failure(.malformed)),
        // All-zero ids.
        ("00-00000000000000000000000000000000-\(parent)-01", .failure(.zeroTraceID)),
        ("00-\(trace)-0000000000000000-01", .failure(.zeroParentID)),
        // Bad hex and uppercase.
        ("00-4bf92f3577b34da6a3ce929d0e0e473g-\(parent)-01", .failure(.badHex)),
        ("00-\(trace)-00f067aa0ba902bz-01", .failure(.badHex)),
        ("00-\(trace)-\(parent)-0x", .failure(.badHex)),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-\(parent)-01", .failure(.badHex)),
        ("00-\(trace)-00F067AA0BA902B7-01", .failure(.badHex)),
        ("00-\(trace)-\(parent)-0A", .failure(.badHex)),
        // Extra fields on version 00, and too long.
        ("00-\(trace)-\(parent)-01-extra", .failure(.extraFields)),
        ("00-\(trace)-\(parent)-01 ", .failure(.extraFields)),
        ("cc-\(trace)-\(parent)-01-" + String(repeating: "a", count: 500), .failure(.tooLong)),
        // Short, wrong separators, empty, non-ASCII.
        ("", .failure(.malformed)),
        ("00-\(trace)-\(parent)-1", .failure(.malformed)),
        ("00_\(trace)-\(parent)-01", .failure(.malformed)),
        ("00-\(trace)_\(parent)-01", .failure(.malformed)),
        ("00-4bf92f3577b34da6a3ce929d0e0e47é-\(parent)-01", .failure(.badHex)),  // é is two bytes: 32 bytes, not hex
    ]

    @Test("traceparent parse: valid, wrong version, all-zero ids, bad hex, uppercase, extra fields, too long")
    func parseTable() {
        for (value, expected) in Self.cases {
            let got = TraceParent.parse(value)
            switch (got, expected) {
            case (.success(let p), .success(let e)):
                #expect(p.traceID == e.0 && p.parentID == e.1 && p.flags == e.2, "\(value)")
            case (.failure(let r), .failure(let e)):
                #expect(r == e, "\(value)")
            default:
                Issue.record("\(value): got \(got), expected \(expected)")
            }
        }
    }

    @Test("format writes version 00 and round-trips what parse accepted")
    func formatRoundTrips() throws {
        for value in ["00-\(Self.trace)-\(Self.parent)-01", "00-\(Self.trace)-\(Self.parent)-00"] {
            #expect(try TraceParent.parse(value).get().format() == value)
        }
        #expect(try TraceParent.parse("cc-\(Self.trace)-\(Self.parent)-01-more").get().format() == "00-\(Self.trace)-\(Self.parent)-01")
    }

    @Test("a caller's value is continued with a span of our own; anything else starts a new trace, saying why")
    func fromCaller() throws {
        let (kept, none) = TraceContext.fromCaller([" 00-\(Self.trace)-\(Self.parent)-03 "])
        #expect(none == nil)
        #expect(kept.traceID == Self.trace && kept.parentSpanID == Self.parent && kept.spanID != Self.parent)
        #expect(kept.flags == 1, "unknown flags are cleared, sampled is kept")
        let sent = try TraceParent.parse(kept.traceparent).get()
        #expect(sent.traceID == Self.trace && sent.parentID == kept.spanID)

        for (values, reason) in [(["00-\(Self.trace)-\(Self.parent)-01", "00-\(Self.trace)-\(Self.parent)-01"], "repeated"), (["garbage"], "malformed")] {
            let (fresh, refusal) = TraceContext.fromCaller(values)
            #expect(refusal == reason)
            #expect(fresh.traceID != Self.trace && fresh.parentSpanID == nil)
            #expect((try? TraceParent.parse(fresh.traceparent).get()) != nil, "a new trace is itself valid")
        }
        let (started, noRefusal) = TraceContext.fromCaller([])
        #expect(noRefusal == nil && started.parentSpanID == nil && started.flags == 1)
        #expect(TraceContext.root().traceID != TraceContext.root().traceID)
    }

    static func sealer() throws -> PayloadSealer {
        try PayloadSealer(keys: [PayloadSealer.Key(id: "k1", bytes: Array(repeating: 3, count: 32))])
    }

    static func received(_ m: OutgoingMessage) -> BusMessage {
        BusMessage(topic: m.topic, partition: 0, offset: 0, key: m.key, headers: m.headers, value: m.value, timestampMillis: 1)
    }

    @Test("the codec puts the current span's traceparent on every kind it builds, and none outside a request's scope")
    func codecCarriesTheTrace() throws {
        let codec = MessageCodec(sealer: try Self.sealer(), topics: Topics())
        let jsonCodec = MessageCodec(sealer: try Self.sealer(), topics: Topics(), binaryEnvelopes: false)
        let request = BinaryEnvelopeTests.inspectionRequests[0]
        let inspected = BinaryEnvelopeTests.inspected[0]
        let reply = BinaryEnvelopeTests.replies[0]
        let event = AuditEvent(kind: .delivered, stage: "forwarder", requestID: "r-1", sessionID: "s", timeMillis: 0, eventID: "e")
        func all(_ c: MessageCodec) throws -> [OutgoingMessage] {
            [try c.request(request), try c.inspected(inspected), try c.reply(reply, to: "ingress-a"), try c.audit(event), try c.outcome(event),
             try c.sealed(reply, kind: "reply", topic: "t", key: "k", requestID: "r-1")]
        }
        for message in try all(codec) + all(jsonCodec) {
            #expect(message.headers.allSatisfy { $0.name != "traceparent" }, "\(message.topic) outside a scope")
        }
        let span = TraceContext.continuing(try TraceParent.parse("00-\(Self.trace)-\(Self.parent)-01").get())
        let built = try TraceContext.$current.withValue(span) { try all(codec) + all(jsonCodec) }
        for message in built {
            #expect(message.headers.filter { $0.name == "traceparent" }.map(\.stringValue) == [span.traceparent], "\(message.topic)")
            // The next stage continues it with a span of its own.
            let (next, restarted) = TraceContext.continuing(Self.received(message))
            #expect(!restarted && next.traceID == Self.trace && next.parentSpanID == span.spanID && next.spanID != span.spanID)
        }
        // The value is beside the header: the message opens as before, and deadletter keeps the header.
        #expect(try codec.open(InspectedRequest.self, from: Self.received(built[1])) == inspected)
        let dead = codec.deadletter(Self.received(built[0]), reason: "test")
        #expect(dead.headers.contains { $0.name == "traceparent" && $0.stringValue == span.traceparent })
    }

    @Test("a message without a (valid) traceparent opens as before and gets a new trace at the next stage")
    func oldMessagesStartANewTrace() throws {
        let codec = MessageCodec(sealer: try Self.sealer(), topics: Topics())
        var old = Self.received(try codec.inspected(BinaryEnvelopeTests.inspected[0]))
        #expect(try codec.open(InspectedRequest.self, from: old) == BinaryEnvelopeTests.inspected[0])
        let (fresh, restarted) = TraceContext.continuing(old)
        #expect(restarted && fresh.parentSpanID == nil)
        old.headers.append(BusHeader("traceparent", "00-\(Self.trace)-0000000000000000-01"))
        #expect(TraceContext.continuing(old).restarted)
    }

    @Test("the logging metadata provider adds trace_id and span_id inside a request's scope only")
    func metadataProvider() {
        #expect(TraceContext.loggingMetadataProvider.get().isEmpty)
        let span = TraceContext.root()
        let inside = TraceContext.$current.withValue(span) { TraceContext.loggingMetadataProvider.get() }
        #expect(inside["trace_id"]?.description == span.traceID)
        #expect(inside["span_id"]?.description == span.spanID)
    }
}
