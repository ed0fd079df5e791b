import AsyncHTTPClient
import BusContract
import Foundation
import NIOCore
import GatewayHarness
import Testing

/// Span export over OTLP/HTTP (`telemetry.otlp_endpoint`), received by an in-process OTLP
/// receiver (a `TestUpstream` answering `{}` as `application/json`): one request is one trace
/// with a span per stage, each the child of the stage before, and no span holds the payload.
@Suite("Span export over OTLP", .serialized)
struct SpanExportTests {
    /// One exported span, as the OTLP/HTTP JSON encoding has it (ids as hex).
    struct ExportedSpan {
        var traceID: String
        var spanID: String
        var parentSpanID: String
        var name: String
        var attributes: [String: String]
    }

    static func receiver() async throws -> TestUpstream {
        let receiver = try await TestUpstream.start()
        await receiver.setResponse(status: 200, body: "{}", headers: [("Content-Type", "application/json")])
        return receiver
    }

    static func telemetry(_ receiver: TestUpstream) -> String {
        "telemetry: { otlp_endpoint: \"\(receiver.url)\", otlp_protocol: http/json, service_name: sluice-test }"
    }

    /// A started deployment exporting its spans to `receiver` over OTLP/HTTP JSON.
    static func gateway(_ mode: GatewayMode, exportingTo receiver: TestUpstream) async throws -> Gateway {
        let gw = try await Gateway(mode: mode, extraTopLevel: telemetry(receiver))
        do { try await gw.start() } catch {
            await gw.stop()
            throw error
        }
        return gw
    }

    /// Every span in the OTLP JSON export requests `received` (`resourceSpans[].scopeSpans[].spans[]`).
    static func spans(_ received: [ReceivedRequest]) throws -> [ExportedSpan] {
        var out: [ExportedSpan] = []
        for request in received {
            let root = try #require(try JSONSerialization.jsonObject(with: request.body) as? [String: Any], "\(request.bodyText.prefix(300))")
            for resource in root["resourceSpans"] as? [[String: Any]] ?? [] {
                for scope in resource["scopeSpans"] as? [[String: Any]] ?? [] {
                    for span in scope["spans"] as? [[String: Any]] ?? [] {
                        var attributes: [String: String] = [:]
                        for attribute in span["attributes"] as? [[String: Any]] ?? [] {
                            guard let key = attribute["key"] as? String, let value = attribute["value"] as? [String: Any] else { continue }
                            attributes[key] = value.values.first.map { "\($0)" }
                        }
                        out.append(ExportedSpan(
                            traceID: hexID(span["traceId"]), spanID: hexID(span["spanId"]), parentSpanID: hexID(span["parentSpanId"]),
                            name: span["name"] as? String ?? "", attributes: attributes))
                    }
                }
            }
        }
        return out
    }

    /// An id as lowercase hex: OTLP/JSON writes hex, protobuf's JSON mapping base64.
    static func hexID(_ value: Any?) -> String {
        guard let text = value as? String, !text.isEmpty else { return "" }
        if text.count == 32 || text.count == 16, text.allSatisfy(\.isHexDigit) { return text.lowercased() }
        guard let bytes = Data(base64Encoded: text) else { return text }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    @Test("a collector that refuses spans is counted on /metrics (sluice_telemetry_problems_total{kind=\"export_failed\"}), and calls go on")
    func refusedExportsAreCounted() async throws {
        let receiver = try await TestUpstream.start()
        defer { receiver.stop() }
        await receiver.setResponse(status: 400, body: "{\"error\":\"no\"}")
        let gw = try await Self.gateway(.embedded, exportingTo: receiver)
        defer { Task { await gw.stop() } }
        let r = try await gw.call(connection: "billing", path: "/v1/x", headers: [("Content-Type", "application/json")], body: gw.json(["a": 1]))
        #expect(r.status == 200, "\(r.text)")
        // Spans leave in batches (every 5 s by default): wait for one to be refused.
        var metrics = ""
        _ = try await eventually(timeout: .seconds(30)) {
            var request = HTTPClientRequest(url: gw.adminURL + "/metrics")
            request.method = .GET
            let response = try await gw.http.execute(request, timeout: .seconds(10))
            metrics = String(buffer: try await response.body.collect(upTo: 8 << 20))
            return metrics.contains("sluice_telemetry_problems_total{kind=\"export_failed\"}")
        }
        #expect(metrics.contains("sluice_telemetry_problems_total{kind=\"export_failed\"}"), "\(gw.processLogs.suffix(3000))")
        #expect(await receiver.requests.contains { $0.path == "/v1/traces" })
        #expect(try await gw.call(connection: "billing", path: "/v1/y", headers: [("Content-Type", "application/json")], body: gw.json(["a": 2])).status == 200)
    }

    @Test("one call is one trace: a span per stage, each the child of the one before, the caller's span the Ingress's parent; ids and statuses only, never the payload",
          arguments: GatewayMode.available)
    func oneTracePerRequest(mode: GatewayMode) async throws {
        let receiver = try await Self.receiver()
        defer { receiver.stop() }
        let gw = try await Self.gateway(mode, exportingTo: receiver)
        defer { Task { await gw.stop() } }
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        let callerSpan = "00f067aa0ba902b7"
        let secret = Canaries.make()[0].secret
        let marker = "payload-marker-\(UUID().uuidString.prefix(8))"
        let r = try await gw.call(
            connection: "billing", path: "/v1/\(marker)",
            headers: [("Content-Type", "application/json"), ("traceparent", "00-\(trace)-\(callerSpan)-01")],
            body: gw.json(["note": marker, "key": secret]))
        #expect(r.status == 200, "\(r.text)")
        let requestID = try #require(r.header("X-Sluice-Request-Id"))
        let upstreamParent = try #require(await gw.upstream.requests.first?.header("traceparent")).split(separator: "-")[2]

        // A graceful stop flushes every process's batched spans.
        await gw.stop()
        let received = await receiver.requests
        #expect(!received.isEmpty && received.allSatisfy { $0.method == "POST" && $0.path == "/v1/traces" }, "\(received.map { "\($0.method) \($0.path)" })")
        #expect(received.allSatisfy { $0.header("Content-Type") == "application/json" })
        let all = try Self.spans(received)
        let spans = all.filter { $0.traceID == trace }
        let byName = Dictionary(grouping: spans, by: \.name)
        #expect(byName.keys.sorted() == ["sluice.forwarder", "sluice.ingress", "sluice.inspector", "sluice.recorder"], "\(all.map { "\($0.name) \($0.traceID)" })")
        #expect(byName.values.allSatisfy { $0.count == 1 }, "\(byName.mapValues(\.count))")
        let ingress = try #require(byName["sluice.ingress"]?.first)
        let inspector = try #require(byName["sluice.inspector"]?.first)
        let forwarder = try #require(byName["sluice.forwarder"]?.first)
        let recorder = try #require(byName["sluice.recorder"]?.first)
        #expect(ingress.parentSpanID == callerSpan)
        #expect(inspector.parentSpanID == ingress.spanID)
        #expect(forwarder.parentSpanID == inspector.spanID)
        #expect(recorder.parentSpanID == forwarder.spanID)
        #expect(String(upstreamParent) == forwarder.spanID, "the upstream's parent is the Forwarder's exported span")
        #expect(Set(spans.map(\.spanID)).count == 4)

        #expect(spans.allSatisfy { $0.attributes["sluice.request_id"] == requestID }, "\(spans.map(\.attributes))")
        #expect(ingress.attributes["http.response.status_code"] == "200")
        #expect(ingress.attributes["sluice.connection"] == "billing")
        #expect(inspector.attributes["sluice.decision"] == "mask")
        #expect(forwarder.attributes["sluice.outcome"] == "delivered")
        #expect(forwarder.attributes["http.response.status_code"] == "200")
        // Nothing of the call in any export: not the secret, not the body, not the path.
        for request in received {
            #expect(!request.bodyText.contains(secret) && !request.bodyText.contains(marker), "\(request.bodyText.prefix(2000))")
        }
        // The resource names the service and each process's role.
        let text = received.map(\.bodyText).joined()
        #expect(text.contains("sluice-test") && text.contains("sluice.role"))
    }

    @Test("a blocked call without a caller trace: a new trace of Ingress, Inspector and Recorder (no Forwarder span); the Recorder continues the Inspector, which ended it",
          arguments: GatewayMode.available)
    func blockedCallTrace(mode: GatewayMode) async throws {
        let receiver = try await Self.receiver()
        defer { receiver.stop() }
        let gw = try await Self.gateway(mode, exportingTo: receiver)
        defer { Task { await gw.stop() } }
        let secret = Canaries.make()[0].secret
        let r = try await gw.call(connection: "strict", body: gw.json(["key": secret]))
        #expect(r.status == 403, "\(r.text)")
        let requestID = try #require(r.header("X-Sluice-Request-Id"))
        await gw.stop()

        let received = await receiver.requests
        let spans = try Self.spans(received).filter { $0.attributes["sluice.request_id"] == requestID }
        let byName = Dictionary(grouping: spans, by: \.name)
        #expect(byName.keys.sorted() == ["sluice.ingress", "sluice.inspector", "sluice.recorder"], "\(spans.map(\.name))")
        let ingress = try #require(byName["sluice.ingress"]?.first)
        let inspector = try #require(byName["sluice.inspector"]?.first)
        let recorder = try #require(byName["sluice.recorder"]?.first)
        #expect(Set(spans.map(\.traceID)).count == 1)
        #expect(ingress.parentSpanID.isEmpty, "a trace started at the Ingress has no parent")
        #expect(inspector.parentSpanID == ingress.spanID && recorder.parentSpanID == inspector.spanID)
        #expect(ingress.attributes["http.response.status_code"] == "403")
        #expect(inspector.attributes["sluice.decision"] == "block")
        for request in received { #expect(!request.bodyText.contains(secret)) }
    }

    @Test("a held call stays one trace across the wait: its delivery after approval is a child of the span that parked it, and the upstream continues it",
          arguments: GatewayMode.available)
    func heldCallTrace(mode: GatewayMode) async throws {
        let receiver = try await Self.receiver()
        defer { receiver.stop() }
        let gw = try await Self.gateway(mode, exportingTo: receiver)
        defer { Task { await gw.stop() } }
        let trace = "5cf92f3577b34da6a3ce929d0e0e4737"
        let callerSpan = "01f067aa0ba902b8"
        let r = try await gw.call(.DELETE, connection: "held", path: "/items/7", headers: [("traceparent", "00-\(trace)-\(callerSpan)-01")])
        #expect(r.status == 202, "\(r.text)")
        let id = try #require(r.json?["request_id"] as? String)
        try await gw.waitPending(id)
        #expect(try await gw.approve(id, key: Gateway.aliceKey).status == 200)
        _ = try await gw.waitUpstream()
        #expect(try await gw.waitFinal(id).status == 200)
        _ = try await gw.waitOutcome(id)
        let upstreamParent = try #require(await gw.upstream.requests.first?.header("traceparent")).split(separator: "-")
        await gw.stop()

        let spans = try Self.spans(await receiver.requests).filter { $0.traceID == trace }
        let byName = Dictionary(grouping: spans, by: \.name)
        #expect(byName.keys.sorted() == ["sluice.forwarder", "sluice.forwarder.release", "sluice.ingress", "sluice.inspector", "sluice.recorder"], "\(spans.map(\.name))")
        let forwarder = try #require(byName["sluice.forwarder"]?.first)
        let release = try #require(byName["sluice.forwarder.release"]?.first)
        let recorder = try #require(byName["sluice.recorder"]?.first)
        #expect(byName["sluice.inspector"]?.first?.attributes["sluice.decision"] == "hold")
        #expect(release.parentSpanID == forwarder.spanID, "the release continues the parking span")
        #expect(release.attributes["sluice.decision"] == "approved" && release.attributes["sluice.outcome"] == "delivered", "\(release.attributes)")
        #expect(upstreamParent.count == 4 && upstreamParent[1] == Substring(trace) && String(upstreamParent[2]) == release.spanID)
        #expect(recorder.parentSpanID == release.spanID)
    }
}
