import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// Idempotency end to end (invariant 8): a caller's `Idempotency-Key` maps a retry to the first
/// request's id and outcome; the upstream sees one call, with a key derived from (identity, key).
@Suite("Idempotency", .serialized)
struct IdempotencyTests {
    static let json = [("Content-Type", "application/json")]

    @Test("retry after a 504: the first request's outcome and id; the upstream saw exactly one call with the derived key", arguments: GatewayMode.available)
    func retryAfterTimeout(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, requestTimeout: "2s")
        defer { Task { await gw.stop() } }
        try await gw.start()
        // The 2 s deadline must be spent at the slow upstream, not on consumer start-up.
        let warmUp = try await gw.waitPipelineFlowing()
        await gw.upstream.setResponse(body: "{\"charged\":true}", headers: [], delay: .seconds(5))
        let body = gw.json(["amount": 10])
        let headers = Self.json + [("Idempotency-Key", "order-1001")]

        let first = Task { try await gw.call(connection: "billing", path: "/charges", headers: headers, body: body) }
        _ = try await gw.waitUpstream(count: 1)
        // A retry while the first is in flight waits for it and gets its outcome.
        let during = try await gw.call(connection: "billing", path: "/charges", headers: headers, body: body)
        let original = try await first.value
        #expect(original.status == 504, "\(original.text)")
        let firstID = try #require(original.header("X-Sluice-Request-Id"))
        #expect(original.header("X-Sluice-Idempotent-Replay") == nil)
        #expect(during.status == original.status && during.header("X-Sluice-Request-Id") == firstID)
        #expect(during.header("X-Sluice-Idempotent-Replay") == "true")

        // After the 504, the retry gets the same outcome: same status, body and request id.
        let after = try await gw.call(connection: "billing", path: "/charges", headers: headers, body: body)
        #expect(after.status == original.status && after.body == original.body, "\(after.text)")
        #expect(after.header("X-Sluice-Request-Id") == firstID)
        #expect(after.header("X-Sluice-Idempotent-Replay") == "true")

        // A different body under the same key is refused.
        let reused = try await gw.call(connection: "billing", path: "/charges", headers: headers, body: gw.json(["amount": 99]))
        #expect(reused.status == 422 && reused.json?["error"] as? String == "idempotency_key_reused", "\(reused.text)")

        // Once the Forwarder has ended the first request, still exactly one call, with the derived key.
        _ = try await gw.waitOutcome(firstID)
        let seen = await gw.upstream.requests
        #expect(seen.count == 1)
        let derived = Gateway.derivedIdempotencyKey(identity: "apikey:ci-bot", callerKey: "order-1001")
        #expect(seen.first?.header("Idempotency-Key") == derived)
        #expect(seen.first?.header("Idempotency-Key") != "order-1001", "the caller's raw key never reaches the upstream")
        // Exactly one outcome for the one accepted request; the retries published nothing.
        let events = gw.auditEvents().filter { !warmUp.contains($0["request_id"] as? String ?? "") }
        let outcomes = events.filter { ["delivered", "failed", "expired", "blocked", "denied"].contains($0["kind"] as? String ?? "") }
        #expect(outcomes.count == 1 && outcomes.first?["request_id"] as? String == firstID)
        #expect(events.filter { $0["kind"] as? String == "request_received" }.count == 1)
        // Each retry is audited once: two replays of the first request, one refusal (422).
        let replays = try await gw.waitAuditEvents("idempotent_replay", count: 2)
        #expect(replays.count == 2)
        #expect(replays.allSatisfy { ($0["details"] as? [String: String])?["first_request_id"] == firstID })
        let rejected = try await gw.waitAuditEvents("request_rejected", count: 1)
        #expect(rejected.count == 1 && rejected.first?["status"] as? Int == 422)
        await gw.stop()
    }

    @Test("a successful call replayed; another identity with the same key is a different request", arguments: GatewayMode.available)
    func replayAndPerIdentity(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        try await gw.start()
        await gw.upstream.setResponse(status: 201, body: "{\"id\":\"ch_1\"}")
        let headers = Self.json + [("Idempotency-Key", "k-42")]
        let body = gw.json(["amount": 5])
        let first = try await gw.call(connection: "billing", path: "/charges", headers: headers, body: body)
        #expect(first.status == 201, "\(first.text)")
        let again = try await gw.call(connection: "billing", path: "/charges", headers: headers, body: body)
        #expect(again.status == 201 && again.text == "{\"id\":\"ch_1\"}")
        #expect(again.header("X-Sluice-Request-Id") == first.header("X-Sluice-Request-Id"))
        #expect(again.header("X-Sluice-Idempotent-Replay") == "true")
        #expect(await gw.upstream.requests.count == 1)

        // Carol (also in `ci`) with the same caller key: her own first request, her own derived key.
        let carol = try await gw.call(connection: "billing", path: "/charges", headers: headers, body: body, key: Gateway.carolKey)
        #expect(carol.status == 201 && carol.header("X-Sluice-Idempotent-Replay") == nil)
        let seen = await gw.upstream.requests
        #expect(seen.count == 2)
        #expect(seen.map { $0.header("Idempotency-Key") } == [
            Gateway.derivedIdempotencyKey(identity: "apikey:ci-bot", callerKey: "k-42"),
            Gateway.derivedIdempotencyKey(identity: "apikey:carol", callerKey: "k-42"),
        ])
        // Without a key, each call is its own (the request id is the upstream's key).
        let plain = try await gw.call(connection: "billing", path: "/charges", headers: Self.json, body: body)
        #expect(await gw.upstream.requests.last?.header("Idempotency-Key") == plain.header("X-Sluice-Request-Id"))
        // An unusable key is refused before anything is published.
        let bad = try await gw.call(connection: "billing", path: "/charges", headers: Self.json + [("Idempotency-Key", "has space")], body: body)
        #expect(bad.status == 400)
        await gw.stop()
    }
}
