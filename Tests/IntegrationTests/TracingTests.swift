import BusContract
import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// W3C trace context through the stages, and `--log-format json`, end to end.
@Suite("Tracing and JSON logs end to end", .serialized)
struct TracingTests {
    static let callerTrace = "0af7651916cd43dd8448eb211c80319c"
    static let callerParent = "b7ad6b7169203331"

    /// Every span id on `bytes` in a `traceparent` of `trace` (bus headers are stored as bytes).
    static func spans(of trace: String, in bytes: Data) -> [String] {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let regex = try? NSRegularExpression(pattern: "00-\(trace)-([0-9a-f]{16})-0[01]") else { return [] }
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    @Test("a caller's traceparent crosses every stage and reaches the upstream with the Forwarder's span; JSON log lines carry request and trace ids, never the body's secret",
          arguments: GatewayMode.available)
    func traceCrossesTheStages(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        gw.extraArguments = ["--log-format", "json"]
        try await gw.start()
        let secret = Canaries.make()[0].secret
        let r = try await gw.call(
            connection: "billing", path: "/v1/trace",
            headers: [
                ("Content-Type", "application/json"), ("traceparent", "00-\(Self.callerTrace)-\(Self.callerParent)-01"),
                ("tracestate", "vendor=opaque"),
            ],
            body: gw.json(["note": "traced", "key": secret]))
        #expect(r.status == 200, "\(r.text)")
        let requestID = try #require(r.header("X-Sluice-Request-Id"))

        // The upstream: the same trace, the Forwarder's span as the parent, the caller's tracestate.
        let got = await gw.upstream.requests
        try #require(got.count == 1)
        let sent = try #require(got[0].header("traceparent"))
        let upstreamSpan = String(sent.dropFirst(36).prefix(16))
        #expect(sent.hasPrefix("00-\(Self.callerTrace)-") && sent.count == 55, "\(sent)")
        #expect(upstreamSpan != Self.callerParent)
        #expect(got[0].header("tracestate") == "vendor=opaque")
        #expect(got[0].headers.filter { $0.0.lowercased() == "traceparent" }.count == 1)

        // The bus: every message of the request carries the trace; each stage its own span.
        var topics: [String: Data] = [:]
        let complete = try await eventually(timeout: .seconds(20)) {
            topics = try await gw.storedTopicBytes(["requests", "inspected", "replies", "outcomes", "audit"])
            return ["requests", "inspected", "replies", "outcomes"].allSatisfy { !Self.spans(of: Self.callerTrace, in: topics[$0] ?? Data()).isEmpty }
        }
        #expect(complete, "topics without the trace: \(topics.filter { Self.spans(of: Self.callerTrace, in: $0.value).isEmpty }.keys.sorted())")
        let ingressSpans = Set(Self.spans(of: Self.callerTrace, in: topics["requests"] ?? Data()))
        let inspectorSpans = Set(Self.spans(of: Self.callerTrace, in: topics["inspected"] ?? Data()))
        let forwarderSpans = Set(Self.spans(of: Self.callerTrace, in: topics["outcomes"] ?? Data()))
        #expect(ingressSpans.count == 1 && inspectorSpans.count == 1 && forwarderSpans.count == 1)
        #expect(ingressSpans.isDisjoint(with: inspectorSpans) && inspectorSpans.isDisjoint(with: forwarderSpans))
        #expect(!ingressSpans.contains(Self.callerParent))
        #expect(forwarderSpans == [upstreamSpan], "the upstream's parent is the Forwarder's span")
        #expect(Set(Self.spans(of: Self.callerTrace, in: topics["replies"] ?? Data())) == forwarderSpans)
        // request_received (Ingress) and inspected (Inspector) audit events.
        let auditSpans = Set(Self.spans(of: Self.callerTrace, in: topics["audit"] ?? Data()))
        #expect(ingressSpans.isSubset(of: auditSpans) && inspectorSpans.isSubset(of: auditSpans), "\(auditSpans)")

        // The logs: every line one JSON object; per-request lines carry request_id and trace_id.
        await gw.stop()
        var objects: [[String: Any]] = []
        for process in gw.processes {
            for line in process.output.split(separator: "\n", omittingEmptySubsequences: true) {
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object != nil, "\(process.name): not a JSON object: \(line.prefix(300))")
                if let object { objects.append(object) }
            }
            #expect(!process.output.contains(secret), "\(process.name)'s log holds the body's secret")
        }
        #expect(objects.allSatisfy { ($0["ts"] as? String)?.hasSuffix("Z") == true && $0["level"] != nil && $0["message"] != nil })
        let requestLines = objects.filter { $0["request_id"] as? String == requestID }
        #expect(!requestLines.isEmpty, "no log line names the request")
        for line in requestLines {
            #expect(line["trace_id"] as? String == Self.callerTrace, "\(line)")
        }
        let stages = Set(requestLines.compactMap { $0["stage"] as? String })
        #expect(stages.isSuperset(of: ["inspector", "forwarder"]), "stages with a line for the request: \(stages)")
    }

    @Test("an invalid caller traceparent is ignored (a new trace, counted), never an error", arguments: GatewayMode.available)
    func invalidTraceparentIgnored(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let bad = "00-\(Self.callerTrace.uppercased())-\(Self.callerParent)-01"
        let r = try await gw.call(
            connection: "billing", headers: [("traceparent", bad), ("tracestate", "vendor=opaque")], body: Data("{\"a\":1}".utf8))
        #expect(r.status == 200, "\(r.text)")
        let got = await gw.upstream.requests
        try #require(got.count == 1)
        let sent = try #require(got[0].header("traceparent"))
        #expect(sent.count == 55 && sent.hasPrefix("00-") && !sent.lowercased().contains(Self.callerTrace), "\(sent)")
        #expect(got[0].header("tracestate") == nil, "a tracestate without its trace is not passed on")
        let text = try await ExposureTests().get(gw, gw.adminURL + "/metrics").body
        #expect(text.contains("sluice_ingress_traceparent_invalid_total{reason=\"bad_hex\"} 1"), "\(text.split(separator: "\n").filter { $0.contains("traceparent") })")
        // No traceparent at all: a new trace, not counted as invalid.
        let plain = try await gw.call(connection: "billing", body: Data("{\"a\":2}".utf8))
        #expect(plain.status == 200)
        let second = await gw.upstream.requests
        try #require(second.count == 2)
        #expect(second[1].header("traceparent").map { (try? TraceParentCheck.valid($0)) ?? false } == true)
        await gw.stop()
    }
}

extension TracingTests {
    @Test("with --log-format json a start-up failure is one JSON line with the error (exit 1); in text the CLI's Error: line as before")
    func startupFailureIsJSON() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-logfmt-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = dir.appendingPathComponent("bad.yaml")
        try "listen: 127.0.0.1:1\nbogus_key: 1\n".write(to: config, atomically: true, encoding: .utf8)
        for command in ["run", "inspector"] {
            let json = try runToCompletion(SluiceProcess.binary, [command, "--config", config.path, "--log-format", "json"], in: dir)
            #expect(json.status == 1)
            let lines = json.stderr.split(separator: "\n")
            try #require(lines.count == 1, "\(json.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            #expect(object["level"] as? String == "critical")
            #expect((object["error"] as? String)?.contains("bogus_key") == true, "\(object)")
            #expect(object["role"] as? String == (command == "run" ? "all" : command))
            let text = try runToCompletion(SluiceProcess.binary, [command, "--config", config.path], in: dir)
            #expect(text.status == 1 && text.stderr.hasPrefix("Error: ") && text.stderr.contains("bogus_key"), "\(text.stderr)")
        }
    }
}

/// The test's own check of a version-00 value (not the code under test's parser).
enum TraceParentCheck {
    static func valid(_ s: String) throws -> Bool {
        let regex = try NSRegularExpression(pattern: "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
        return regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
            && !s.contains("00000000000000000000000000000000") && !s.contains("-0000000000000000-")
    }
}
