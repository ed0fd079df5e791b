import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// End to end: a real `sluice` deployment (one process on the embedded bus, or one process
/// per stage on Kafka) in front of a real HTTP upstream.
@Suite("Gateway end to end", .serialized)
struct GatewayTests {
    @Test("clean request is delivered byte-identical and the response comes back", arguments: GatewayMode.available)
    func cleanRequestDelivered(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        try await gw.start()
        await gw.upstream.setResponse(body: "{\"result\":\"done\",\"n\":42}")
        let body = Data("{\"task\":\"deploy\",\"items\":[1,2,3],\"note\":\"nothing secret here\"}".utf8)
        let r = try await gw.call(.PUT, connection: "billing", path: "/v1/invoices/7", query: "limit=10&sort=asc",
                                  headers: [("Content-Type", "application/json"), ("X-Trace", "abc")], body: body)
        #expect(r.status == 200)
        #expect(r.text == "{\"result\":\"done\",\"n\":42}")
        #expect(r.header("X-Sluice-Request-Id") != nil)
        let got = await gw.upstream.requests
        try #require(got.count == 1)
        #expect(got[0].method == "PUT")
        #expect(got[0].path == "/v1/invoices/7")
        #expect(got[0].query == "limit=10&sort=asc")
        #expect(got[0].body == body)
        #expect(got[0].header("Content-Type") == "application/json")
        #expect(got[0].header("X-Trace") == "abc")
        #expect(got[0].header("Authorization") == "Bearer \(Gateway.upstreamToken)")
        #expect(got[0].header("Idempotency-Key") == r.header("X-Sluice-Request-Id"))
        await gw.stop()
    }

    @Test("X-Sluice-Session: a malformed one is refused (400 bad_session), nothing delivered; the session used is echoed")
    func sessionHeader() async throws {
        let gw = try await Gateway(mode: .embedded)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let refused = try await gw.call(connection: "billing", headers: [("X-Sluice-Session", "bad session/../x")], body: Data("{}".utf8))
        #expect(refused.status == 400)
        #expect(refused.text.contains("\"bad_session\""))
        #expect(refused.text.contains("1-128 characters"))
        let named = try await gw.call(connection: "billing", headers: [("X-Sluice-Session", "agent-7:run.1")], body: Data("{}".utf8))
        #expect(named.status == 200)
        #expect(named.header("X-Sluice-Session") == "agent-7:run.1")
        let unnamed = try await gw.call(connection: "billing", body: Data("{}".utf8))
        #expect(unnamed.status == 200)
        #expect(unnamed.header("X-Sluice-Session") != nil && unnamed.header("X-Sluice-Session") == unnamed.header("X-Sluice-Request-Id"))
        #expect(await gw.upstream.requests.count == 2, "the refused call reached the upstream")
        await gw.stop()
    }

    @Test("secrets in nested JSON, the query string and a custom header reach the upstream masked", arguments: GatewayMode.available)
    func secretsMasked(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let canaries = Canaries.make()
        let aws = canaries[0].secret, gh = canaries[2].secret, slack = canaries[7].secret
        let body = gw.json(["tool": "deploy", "arguments": ["env": ["AWS_ACCESS_KEY_ID": aws, "region": "eu-west-1"], "list": [["k": slack]]]])
        let r = try await gw.call(connection: "billing", path: "/run", query: "token=\(gh)&x=1",
                                  headers: [("Content-Type", "application/json"), ("X-Api-Token", gh)], body: body)
        #expect(r.status == 200)
        let got = await gw.upstream.requests
        try #require(got.count == 1)
        let received = got[0]
        for secret in [aws, gh, slack] {
            #expect(!received.bodyText.contains(secret))
            #expect(!received.query.contains(secret))
            #expect(!(received.header("X-Api-Token") ?? "").contains(secret))
        }
        #expect(received.bodyText.contains("[MASKED:aws-access-key-id:"))
        #expect(received.query.contains("MASKED"))
        #expect(received.query.hasSuffix("&x=1"))
        #expect((received.header("X-Api-Token") ?? "").contains("[MASKED:github-pat-classic:"))
        let parsed = try JSONSerialization.jsonObject(with: received.body) as? [String: Any]
        #expect(parsed?["tool"] as? String == "deploy")
        await gw.stop()
    }

    @Test("block policy answers 403 with the rule and delivers nothing", arguments: GatewayMode.available)
    func blockPolicy(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let secret = Canaries.make()[0].secret
        let r = try await gw.call(connection: "strict", path: "/x", headers: [("Content-Type", "application/json")],
                                  body: gw.json(["key": secret]))
        #expect(r.status == 403)
        #expect(r.json?["error"] as? String == "blocked")
        #expect(r.json?["rule"] as? String == "aws-access-key-id")
        #expect(r.json?["request_id"] as? String != nil)
        #expect(!r.text.contains(secret))
        try await Task.sleep(for: .milliseconds(500))
        #expect(await gw.upstream.requests.isEmpty)
        await gw.stop()
    }

    @Test("bad callers get clear JSON errors and nothing is published", arguments: GatewayMode.available)
    func rejections(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let noKey = try await gw.call(connection: "billing", body: Data("{}".utf8), key: nil)
        #expect(noKey.status == 401)
        #expect(noKey.json?["error"] != nil)
        let wrongKey = try await gw.call(connection: "billing", body: Data("{}".utf8), key: "not-a-key")
        #expect(wrongKey.status == 401)
        let forbidden = try await gw.call(connection: "billing", body: Data("{}".utf8), key: Gateway.otherKey)
        #expect(forbidden.status == 403)
        let group = try await gw.call(connection: "admin-only", body: Data("{}".utf8))
        #expect(group.status == 403)
        let unknown = try await gw.call(connection: "nope", body: Data("{}".utf8))
        #expect(unknown.status == 404)
        let big = try await gw.call(connection: "billing", body: Data(repeating: 65, count: 70_000))
        #expect(big.status == 413)
        for r in [noKey, wrongKey, forbidden, group, unknown, big] {
            #expect(r.header("Content-Type")?.contains("json") == true)
        }
        try await Task.sleep(for: .milliseconds(300))
        let stored = try await gw.storedTopicBytes(["requests"])
        #expect(stored["requests"]?.isEmpty ?? true, "a rejected request was published")
        #expect(await gw.upstream.requests.isEmpty)
        // The refused credentials reach the audit sink, without an identity and without the credential.
        for (r, kind) in [(noKey, "none"), (wrongKey, "api_key")] {
            let id = try #require(r.header("X-Sluice-Request-Id"))
            let event = try await gw.waitAudit("request_rejected", requestID: id)
            #expect(event["status"] as? Int == 401)
            #expect(event["identity"] == nil)
            #expect((event["details"] as? [String: String])?["credential"] == kind)
        }
        #expect(!gw.auditEvents().map { "\($0)" }.joined().contains("not-a-key"))
        await gw.stop()
    }

    @Test("leak canaries: no secret in clear on any topic, file, recording, sink or log; requests are sealed", arguments: GatewayMode.available)
    func leakCanaries(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let canaries = Canaries.make()
        #expect(Set(canaries.map(\.secret)).count >= 20)
        // Every secret travels in a body; some also in the query string and headers; the upstream echoes one back.
        var object: [String: Any] = [:]
        for c in canaries { object[c.field] = c.secret }
        let marker = "plain-marker-\(UUID().uuidString)"
        object["note"] = marker
        await gw.upstream.setResponse(body: "{\"echo\":\"\(canaries[0].secret)\"}")
        let r = try await gw.call(connection: "billing", path: "/ingest", query: "token=\(canaries[2].secret)",
                                  headers: [("Content-Type", "application/json"), ("X-Sluice-Session", "canary-session"),
                                            ("X-Github-Token", canaries[3].secret)],
                                  body: gw.json(object))
        #expect(r.status == 200)
        #expect(!r.text.contains(canaries[0].secret), "the upstream's response reached the caller unmasked")
        let blocked = try await gw.call(connection: "strict", headers: [("Content-Type", "application/json")],
                                        body: gw.json(["k": canaries[5].secret]))
        #expect(blocked.status == 403)
        let received = await gw.upstream.requests
        try #require(received.count == 1)
        var missed: [String] = []
        for c in canaries where received[0].bodyText.contains(c.secret) { missed.append(c.rule) }
        #expect(missed.isEmpty, "reached the upstream unmasked: \(missed)")

        // Let the recorder catch up, then stop everything so logs are flushed.
        try await Task.sleep(for: .seconds(2))
        let topics = try await gw.storedTopicBytes()
        await gw.stop()
        let files = gw.dataDirectoryBytes()
        let logs = gw.processLogs
        for c in canaries {
            let needle = Data(c.secret.utf8)
            for (topic, bytes) in topics {
                #expect(bytes.range(of: needle) == nil, "\(c.rule) in clear on topic \(topic)")
            }
            #expect(files.range(of: needle) == nil, "\(c.rule) in clear in the data directory")
            #expect(!logs.contains(c.secret), "\(c.rule) in clear in the process logs")
        }
        // Invariant 2: the sealed topics hold neither a body nor a plain marker.
        for topic in ["requests", "inspected", "replies"] {
            #expect(!(topics[topic] ?? Data()).isEmpty, "nothing stored on \(topic)?")
            #expect(topics[topic]?.range(of: Data(marker.utf8)) == nil, "body in clear on \(topic)")
            #expect(topics[topic]?.range(of: Data("\"task\"".utf8)) == nil)
        }
        // The recording of the session exists and shows findings by fingerprint only.
        let recording = String(decoding: files, as: UTF8.self)
        #expect(recording.contains("canary-session"))
        #expect(recording.contains("aws-access-key-id"))
    }
}

extension GatewayMode: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}
