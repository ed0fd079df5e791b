import Foundation
import Pipeline
import Testing

@testable import Recorder

@Suite("OCSF API Activity mapping")
struct OCSFEventTests {
    @Test("activity from the HTTP method", arguments: [
        ("POST", 1), ("post", 1), ("GET", 2), ("HEAD", 2), ("PUT", 3), ("PATCH", 3), ("DELETE", 4), ("OPTIONS", 99), (nil, 99),
    ] as [(String?, Int)])
    func activity(method: String?, id: Int) {
        #expect(OCSFEvent.activityID(method: method) == id)
    }

    @Test("status and severity by kind", arguments: [
        (AuditEvent.Kind.delivered, 200, 1, 1), (.blocked, 403, 2, 3), (.denied, 403, 2, 3), (.requestRejected, 401, 2, 3),
        (.failed, 502, 2, 2), (.expired, 410, 2, 2), (.requestReceived, nil, 0, 1), (.inspected, nil, 0, 1),
        (.sinkFailed, nil, 2, 3), (.sinkRecovered, nil, 1, 1), (.sinkEventsDropped, nil, 2, 4), (.configLoaded, nil, 1, 1),
    ] as [(AuditEvent.Kind, Int?, Int, Int)])
    func statusAndSeverity(kind: AuditEvent.Kind, status: Int?, statusID: Int, severityID: Int) {
        let e = event(kind, time: 1, status: status)
        #expect(OCSFEvent.statusID(e) == statusID)
        #expect(OCSFEvent.severityID(e) == severityID)
    }

    @Test("a blocked call: class, type, time, actor, api, http, findings as enrichments, the rest under unmapped.sluice")
    func blockedCall() throws {
        let finding = FindingSummary(
            rule: "aws-access-key-id", ruleClass: "credential", severity: "high", location: "body", start: 10, end: 30, fingerprint: "0123456789ab")
        var e = event(.blocked, time: 1_764_400_000_123, id: "evt-9", status: 403, findings: [finding], decision: .block)
        e.details = ["rule": "aws-access-key-id"]
        let line = OCSFEvent.line(e, productVersion: "0.1.0")
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(OCSFEvent.line(e, productVersion: "0.1.0") == line, "not deterministic")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(line.dropLast())) as? [String: Any])
        #expect(o["class_uid"] as? Int == 6003 && o["category_uid"] as? Int == 6)
        #expect(o["activity_id"] as? Int == 1 && o["type_uid"] as? Int == 600301)
        #expect(o["time"] as? Int64 == 1_764_400_000_123)
        #expect(o["severity_id"] as? Int == 4 && o["status_id"] as? Int == 2 && o["status"] as? String == "Failure")
        #expect(o["status_code"] as? String == "403")
        #expect(((o["actor"] as? [String: Any])?["user"] as? [String: Any])?["uid"] as? String == "ci-bot")
        let api = try #require(o["api"] as? [String: Any])
        #expect(api["operation"] as? String == "blocked")
        #expect((api["service"] as? [String: Any])?["name"] as? String == "billing")
        #expect((api["request"] as? [String: Any])?["uid"] as? String == "r-1")
        let http = try #require(o["http_request"] as? [String: Any])
        #expect(http["http_method"] as? String == "POST" && (http["url"] as? [String: Any])?["path"] as? String == "/v1/charges")
        let metadata = try #require(o["metadata"] as? [String: Any])
        #expect(metadata["uid"] as? String == "evt-9" && metadata["correlation_uid"] as? String == "s-1")
        #expect((metadata["product"] as? [String: Any])?["name"] as? String == "Sluice")
        #expect((metadata["product"] as? [String: Any])?["version"] as? String == "0.1.0")
        let enrichment = try #require((o["enrichments"] as? [[String: Any]])?.first)
        #expect(enrichment["value"] as? String == "aws-access-key-id")
        #expect((enrichment["data"] as? [String: Any])?["fingerprint"] as? String == "0123456789ab")
        let sluice = try #require((o["unmapped"] as? [String: Any])?["sluice"] as? [String: Any])
        #expect(sluice["decision"] as? String == "block" && (sluice["details"] as? [String: String])?["rule"] == "aws-access-key-id")
    }

    @Test("a refused credential has no user id")
    func anonymous() throws {
        let e = AuditEvent(kind: .requestRejected, stage: "ingress", requestID: "r", sessionID: "r", method: "GET", status: 401)
        let o = try #require(try JSONSerialization.jsonObject(with: Data(OCSFEvent.line(e, productVersion: "x").dropLast())) as? [String: Any])
        let user = try #require((o["actor"] as? [String: Any])?["user"] as? [String: Any])
        #expect(user["uid"] == nil && user["name"] as? String == "unauthenticated")
        #expect(o["activity_id"] as? Int == 2)
    }
}

@Suite("OCSF sink")
struct OCSFSinkTests {
    /// Keeps what it was handed.
    actor Capture: AuditSink {
        nonisolated var label: String { "capture" }
        var batches: [[[UInt8]]] = []
        func write(_ event: AuditEvent) async throws { batches.append([AuditEventLine.encode(event)]) }
        func write(batch events: [AuditEvent], lines: [[UInt8]]) async throws { batches.append(lines) }
    }

    @Test("the wrapped sink gets one OCSF line per event, in order, in one batch")
    func wraps() async throws {
        let capture = Capture()
        let sink = OCSFSink(inner: capture, productVersion: SluiceVersion.current)
        let events = (0..<3).map { i in event(.delivered, request: "r-\(i)", time: Int64(i), id: "e-\(i)", status: 200) }
        try await sink.write(batch: events, lines: events.map(AuditEventLine.encode))
        let batches = await capture.batches
        #expect(batches.count == 1)
        let uids = try batches[0].map { line in
            try #require(((try JSONSerialization.jsonObject(with: Data(line.dropLast())) as? [String: Any])?["metadata"] as? [String: Any])?["uid"] as? String)
        }
        #expect(uids == ["e-0", "e-1", "e-2"])
        #expect(sink.label == "capture (ocsf)")
    }

    @Test("the chain members are read from the event record of a Sluice line; chain records are skipped", arguments: [
        (#"{"after_offset":4,"kind":"chain_start","time_ms":1,"chain_id":"a/0","prev":"00","seq":4,"chain":"11"}"# + "\n"
            + #"{"event_id":"e","kind":"x","chain_id":"sluice.audit/3","prev":"11","seq":42,"chain":"00ff"}"# + "\n"
            + #"{"count":1,"kind":"checkpoint","time_ms":1,"chain_id":"a/0","prev":"00ff","seq":42,"chain":"22"}"# + "\n",
         ChainFields(chainID: "sluice.audit/3", prev: "11", seq: 42, chain: "00ff")),
        (#"{"kind":"x"}"#, nil),
        (#"{"event_id":"e","chain_id":"a","prev":"0","seq":"x","chain":"00"}"#, nil),
    ] as [(String, ChainFields?)])
    func chainFields(line: String, expected: ChainFields?) {
        #expect(ChainFields.parse(Array(line.utf8)) == expected)
    }

    @Test("a sink line splits into the chain's records and the event's, in order")
    func records() {
        let line = #"{"after_offset":4,"kind":"chain_start"}"# + "\n" + #"{"event_id":"e"}"# + "\n" + #"{"count":1,"kind":"checkpoint"}"# + "\n"
        let records = AuditChain.records(of: Array(line.utf8))
        #expect(records.map(\.kind) == [.chainStart, .event, .checkpoint])
        #expect(records.map { String(decoding: $0.bytes, as: UTF8.self) } == [
            #"{"after_offset":4,"kind":"chain_start"}"#, #"{"event_id":"e"}"#, #"{"count":1,"kind":"checkpoint"}"#,
        ])
        #expect(AuditChain.records(of: Array((#"{"event_id":"e"}"# + "\n").utf8)).map(\.kind) == [.event])
    }
}
