import BusContract
import Foundation
import GatewayHarness
import Pipeline
import Testing

@testable import Recorder

/// The HEC and webhook sinks: their bodies (pure), and delivery to a real HTTP receiver.
@Suite("HTTP batch sinks (HEC, webhook)", .serialized)
struct HTTPBatchSinkTests {
    let t: Int64 = 1_764_400_000_123

    func batch(_ n: Int) -> ([AuditEvent], [[UInt8]]) {
        let events = (0..<n).map { i in event(.requestReceived, request: "r-\(i)", time: t + Int64(i), id: "evt-\(i)") }
        return (events, events.map(AuditEventLine.encode))
    }

    @Test("a webhook body is a JSON array of the lines, byte for byte, without their newlines")
    func webhookBody() throws {
        let (events, lines) = batch(3)
        let sink = HTTPBatchSink(label: "webhook:test", url: "http://127.0.0.1:1/in", headers: [], format: .jsonArray)
        let bodies = sink.bodies(events: events, lines: lines)
        #expect(bodies.count == 1)
        let expected = "[" + lines.map { String(decoding: $0.dropLast(), as: UTF8.self) }.joined(separator: ",") + "]"
        #expect(String(decoding: bodies[0], as: UTF8.self) == expected)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(bodies[0])) as? [[String: Any]])
        #expect(parsed.map { $0["event_id"] as? String } == ["evt-0", "evt-1", "evt-2"])
    }

    @Test("a HEC body is one envelope per event: time in seconds, host, source, sourcetype, index, the line as event", arguments: [
        (String?.some("security"), true), (String?.none, false),
    ])
    func hecBody(index: String?, hasIndex: Bool) throws {
        let (events, lines) = batch(2)
        let sink = HTTPBatchSink(
            label: "hec:test", url: "https://splunk.example:8088", headers: [],
            format: .hec(index: index, sourcetype: "sluice:audit", source: "sluice", host: "gw-1"))
        #expect(sink.url == "https://splunk.example:8088/services/collector/event")
        let body = try #require(sink.bodies(events: events, lines: lines).first)
        let objects = String(decoding: body, as: UTF8.self).split(separator: "\n")
        #expect(objects.count == 2)
        for (i, text) in objects.enumerated() {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            #expect((o["time"] as? Double).map { abs($0 - Double(t + Int64(i)) / 1000) < 0.0005 } == true)
            #expect(o["host"] as? String == "gw-1" && o["source"] as? String == "sluice" && o["sourcetype"] as? String == "sluice:audit")
            #expect((o["index"] as? String) == index && (o["index"] != nil) == hasIndex)
            #expect((o["event"] as? [String: Any])?["event_id"] as? String == "evt-\(i)")
            // The line itself, byte for byte.
            #expect(text.hasSuffix("\"event\":" + String(decoding: lines[i].dropLast(), as: UTF8.self) + "}"))
        }
    }

    @Test("the chain's own records in a line (segment start, checkpoint) become items of their own, in order")
    func chainRecords() throws {
        let e = event(.delivered, time: t, id: "evt-c", status: 200)
        let eventLine = String(decoding: AuditEventLine.encode(e).dropLast(), as: UTF8.self)
        let line = #"{"after_offset":4,"kind":"chain_start","time_ms":1}"# + "\n" + eventLine + "\n" + #"{"count":1,"kind":"checkpoint","time_ms":1}"# + "\n"
        let webhook = HTTPBatchSink(label: "webhook:test", url: "http://127.0.0.1:1/in", headers: [], format: .jsonArray)
        let array = try #require(try JSONSerialization.jsonObject(with: Data(webhook.bodies(events: [e], lines: [Array(line.utf8)])[0])) as? [[String: Any]])
        #expect(array.map { $0["kind"] as? String } == ["chain_start", "delivered", "checkpoint"])
        let hec = HTTPBatchSink(label: "hec:test", url: "http://127.0.0.1:1", headers: [], format: .hec(index: nil, sourcetype: "s", source: "s", host: "h"))
        let objects = String(decoding: hec.bodies(events: [e], lines: [Array(line.utf8)])[0], as: UTF8.self).split(separator: "\n")
        #expect(objects.count == 3)
        #expect(objects.map { o in ((try? JSONSerialization.jsonObject(with: Data(o.utf8)) as? [String: Any])?["event"] as? [String: Any])?["kind"] as? String }
            == ["chain_start", "delivered", "checkpoint"])
    }

    @Test("a batch over max_request_bytes goes as several requests, in order; an event larger than that alone")
    func splitting() throws {
        let (events, lines) = batch(10)
        let one = lines[0].count + 2
        let sink = HTTPBatchSink(label: "webhook:test", url: "http://x/", headers: [], format: .jsonArray, maxRequestBytes: one * 3)
        let bodies = sink.bodies(events: events, lines: lines)
        #expect(bodies.count > 1)
        var ids: [String] = []
        for body in bodies {
            #expect(body.count <= one * 3 + 2)
            let parsed = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [[String: Any]])
            ids += parsed.compactMap { $0["event_id"] as? String }
        }
        #expect(ids == events.map(\.eventID))
        let tiny = HTTPBatchSink(label: "webhook:test", url: "http://x/", headers: [], format: .jsonArray, maxRequestBytes: 10)
        #expect(tiny.bodies(events: events, lines: lines).count == 10)
    }

    @Test("JSON strings in the HEC envelope are escaped", arguments: [
        ("plain", "\"plain\""), ("a\"b", "\"a\\\"b\""), ("back\\slash", "\"back\\\\slash\""), ("tab\there", "\"tab\\there\""),
        ("bell\u{07}", "\"bell\\u0007\""),
    ])
    func escaping(raw: String, literal: String) {
        #expect(HTTPBatchSink.jsonString(raw) == literal)
    }

    @Test("a receiver answering with the request's credential in its error text: the sink's error holds [redacted], never the token")
    func echoedCredentialIsRedacted() async throws {
        let receiver = try await TestUpstream.start()
        defer { receiver.stop() }
        let sink = HTTPBatchSink(
            label: "hec:\(receiver.url)", url: receiver.url, headers: [("Authorization", "Splunk tok-echo-9f2c41")],
            format: .hec(index: nil, sourcetype: "s", source: "s", host: "h"))
        await receiver.setResponse(status: 401, body: "bad Authorization: Splunk tok-echo-9f2c41 (and tok-echo-9f2c41)")
        let (events, lines) = batch(1)
        do {
            try await sink.write(batch: events, lines: lines)
            Issue.record("a 401 was taken as delivered")
        } catch {
            #expect(!"\(error)".contains("tok-echo-9f2c41"), "\(error)")
            #expect("\(error)".contains("HTTP 401") && "\(error)".contains("[redacted]"), "\(error)")
        }
    }

    @Test("HEC against a receiver: one POST to /services/collector/event with the Splunk token; a 503 throws and the retry delivers")
    func hecDelivery() async throws {
        let receiver = try await TestUpstream.start()
        defer { receiver.stop() }
        let probe = MetricsProbe()
        let sink = HTTPBatchSink(
            label: "hec:\(receiver.url)", url: receiver.url, headers: [("Authorization", "Splunk tok-123")],
            format: .hec(index: "security", sourcetype: "sluice:audit", source: "sluice", host: "gw"), metricsFactory: probe)
        let (events, lines) = batch(5)
        await receiver.setResponse(status: 503, body: "{\"text\":\"Server is busy\",\"code\":9}")
        await #expect(throws: RecorderError.self) { try await sink.write(batch: events, lines: lines) }
        do {
            try await sink.write(batch: events, lines: lines)
            Issue.record("a 503 was taken as delivered")
        } catch {
            #expect("\(error)".contains("HTTP 503"))
            #expect("\(error)".contains("Server is busy"))
            #expect(!"\(error)".contains("tok-123"))
        }
        #expect(probe.value("sluice_sink_failures_total", [("sink", sink.label)]) == 2)
        #expect(probe.value("sluice_sink_events_total", [("sink", sink.label)]) ?? 0 == 0)
        await receiver.setResponse(status: 200, body: "{\"text\":\"Success\",\"code\":0}")
        try await sink.write(batch: events, lines: lines)
        #expect(probe.value("sluice_sink_events_total", [("sink", sink.label)]) == 5)
        #expect(probe.value("sluice_sink_failures_total", [("sink", sink.label)]) == 2)
        let got = await receiver.requests
        #expect(got.count == 3)
        let last = try #require(got.last)
        #expect(last.method == "POST" && last.path == "/services/collector/event")
        #expect(last.header("Authorization") == "Splunk tok-123")
        #expect(last.header("Content-Type") == "application/json")
        let ids = try last.bodyText.split(separator: "\n").map { line in
            try #require(((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["event"] as? [String: Any])?["event_id"] as? String)
        }
        #expect(ids == events.map(\.eventID))
    }

    @Test("through the Recorder: a webhook that is down holds the commit back; once it answers, every event arrives and is committed")
    func webhookThroughTheRecorder() async throws {
        let receiver = try await TestUpstream.start()
        defer { receiver.stop() }
        await receiver.setResponse(status: 502, body: "down")
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let bus = CommitRecordingBus(env.bus)
        let webhook = HTTPBatchSink(
            label: "webhook:\(receiver.url)", url: receiver.url + "/ingest", headers: [("X-Collector-Key", "k-1")], format: .jsonArray)
        let service = try RecorderService(
            config: env.config(sinks: "[]"), context: RecorderBatchTests.context(env, bus: bus), extraSinks: [webhook],
            retry: RecorderBatchTests.fastRetry)
        let day = RecordingDay(millis: Int64(Date().timeIntervalSince1970 * 1000)).startMillis
        let events = (0..<20).map { i in event(.requestReceived, session: "s-\(i % 3)", request: "r-\(i)", time: day + Int64(i), id: "w-\(i)") }
        for e in events { try await env.publish(e) }
        try await RecorderBatchTests.running(service) {
            // Refused: retried, nothing committed.
            #expect(await eventually { await receiver.requests.count >= 3 })
            let sinkGroup = env.context.topics.consumerGroup("recorder-sink-extra-0")
            #expect(bus.commits(group: sinkGroup).isEmpty, "committed while the webhook answered 502")
            await receiver.setResponse(status: 200, body: "{}")
            // Committed only once every event was answered 2xx (the events, and the Recorder's
            // sink_failed and sink_recovered).
            let last = try await RecorderBatchTests.highestOffsets(env, topic: env.context.topics.audit, count: events.count + 2)
            #expect(await eventually { bus.committed(group: sinkGroup).filter { $0.key.topic == env.context.topics.audit } == last })
        }
        var delivered: [String] = []
        for r in await receiver.requests {
            #expect(r.method == "POST" && r.path == "/ingest" && r.header("X-Collector-Key") == "k-1")
            let array = try #require(try JSONSerialization.jsonObject(with: r.body) as? [[String: Any]])
            delivered += array.compactMap { ($0["kind"] as? String)?.hasPrefix("sink_") == true ? nil : $0["event_id"] as? String }
        }
        #expect(Set(delivered) == Set(events.map(\.eventID)))
    }
}
