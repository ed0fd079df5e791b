import BusContract
import Foundation
import Pipeline
import Testing
@testable import Detection
@testable import Forwarder

/// A fake GitHub token in the right format (valid CRC32 checksum), assembled so repository
/// secret scanners stay quiet. Not a real credential.
func fakeGitHubToken() -> String {
    let body = "Zq8" + "xV2mN4pL6rT1sW3yB5cD7fG9hJ0"
    let crc = Checksums.crc32(Array(body.utf8))
    return "gh" + "p_" + body + String(decoding: Checksums.base62(crc), as: UTF8.self)
}

@Suite("Forwarder service", .serialized)
struct ForwarderServiceTests {
    @Test func cleanRequestIsDeliveredByteIdenticalWithCredentialAndIdempotencyKey() async throws {
        let env = try ForwarderTestEnv()
        let upstream = try await TestUpstream.start(response: CannedResponse(
            status: 201, headers: [("Content-Type", "application/json"), ("X-Upstream", "yes"), ("Connection", "keep-alive")],
            body: Array("{\"id\":\"ch_1\"}".utf8)))
        let service = try env.service(upstream: "http://127.0.0.1:\(upstream.port)/base/")
        let body = "{ \"amount\" : 10,\n\t\"note\":\"caf\u{e9} \u{1F600}\" }"
        let request = env.inspected(
            id: "r-clean", method: "PATCH", path: "/v1/charges/a%2Fb;x=1", query: "a=1&b=%20c&c=%E2%9C%93",
            headers: [
                HTTPField("Content-Type", "application/json; charset=utf-8"), HTTPField("X-Custom", "kept"),
                HTTPField("authorization", "Bearer caller-must-not-pass"), HTTPField("Idempotency-Key", "caller"),
                HTTPField("Connection", "x-hop"), HTTPField("X-Hop", "dropped"), HTTPField("Keep-Alive", "timeout=5"),
            ],
            body: body)
        try await env.publish(request)
        let task = Task { try await service.run() }
        #expect(try await eventually { try await env.auditEvents().contains { $0.kind == .delivered } })
        task.cancel()
        try await task.value

        let received = try #require(upstream.received.first)
        #expect(upstream.received.count == 1)
        #expect(received.method == "PATCH")
        #expect(received.uri == "/base/v1/charges/a%2Fb;x=1?a=1&b=%20c&c=%E2%9C%93")
        #expect(received.body == Array(body.utf8))
        #expect(received.values("Content-Type") == ["application/json; charset=utf-8"])
        #expect(received.values("Authorization") == ["Bearer \(ForwarderTestEnv.token)"])
        #expect(received.values("Idempotency-Key") == ["r-clean"])
        #expect(received.values("X-Custom") == ["kept"])
        #expect(received.values("X-Hop").isEmpty && received.values("Keep-Alive").isEmpty)

        let reply = try #require(try await env.replies().first)
        #expect(reply.requestID == "r-clean")
        #expect(reply.response.status == 201)
        #expect(reply.response.body == Data("{\"id\":\"ch_1\"}".utf8))
        #expect(reply.response.headers.contains(HTTPField("X-Upstream", "yes")))
        #expect(!reply.response.headers.contains { $0.name.lowercased() == "connection" || $0.name.lowercased() == "content-length" })

        let outcomes = try await env.auditEvents().filter(\.isOutcome)
        #expect(outcomes.count == 1)
        let delivered = try #require(outcomes.first)
        #expect(delivered.kind == .delivered && delivered.status == 201 && delivered.stage == "forwarder")
        #expect(delivered.requestID == "r-clean" && delivered.connection == "billing" && delivered.identity == "apikey:ci-bot")
        #expect(delivered.durationMillis != nil)
        // The credential is never published (invariant 4).
        for message in try await env.drain(env.context.topics.audit) + env.drain(env.context.topics.outcomes) + env.drain(env.context.topics.replies) {
            #expect(!String(decoding: message.value, as: UTF8.self).contains(ForwarderTestEnv.token))
        }
        await upstream.stop()
        await env.cleanUp()
    }

    @Test func expiredRequestIsNeverDeliveredAndAuditedExpired() async throws {
        let env = try ForwarderTestEnv()
        let upstream = try await TestUpstream.start()
        let service = try env.service(upstream: "http://127.0.0.1:\(upstream.port)")
        try await env.publish(env.inspected(id: "r-late", deadlineIn: -1))
        let task = Task { try await service.run() }
        #expect(try await eventually { try await env.auditEvents().contains { $0.kind == .expired } })
        task.cancel()
        try await task.value
        #expect(upstream.received.isEmpty)
        #expect(try await env.replies().isEmpty)
        #expect(try await env.auditEvents().filter(\.isOutcome).map(\.kind) == [.expired])
        await upstream.stop()
        await env.cleanUp()
    }

    @Test func upstreamDownThenUpIsDeliveredAfterRetries() async throws {
        let env = try ForwarderTestEnv()
        let port = try await TestUpstream.freePort()
        let service = try env.service(upstream: "http://127.0.0.1:\(port)")
        try await env.publish(env.inspected(id: "r-retry", deadlineIn: 8_000))
        let task = Task { try await service.run() }
        try await Task.sleep(for: .milliseconds(600))
        let upstream = try await TestUpstream.start(port: port)
        #expect(try await eventually { try await env.auditEvents().contains(where: \.isOutcome) })
        task.cancel()
        try await task.value
        let outcome = try #require(try await env.auditEvents().first(where: \.isOutcome))
        #expect(outcome.kind == .delivered)
        #expect(Int(outcome.details?["attempts"] ?? "0")! > 1)
        #expect(upstream.received.count == 1)
        #expect(try await env.replies().first?.response.status == 200)
        await upstream.stop()
        await env.cleanUp()
    }

    @Test func upstreamNeverUpRepliesBadGatewayAndAuditsFailed() async throws {
        let env = try ForwarderTestEnv()
        let port = try await TestUpstream.freePort()
        let service = try env.service(upstream: "http://127.0.0.1:\(port)")
        try await env.publish(env.inspected(id: "r-down", deadlineIn: 800))
        let task = Task { try await service.run() }
        #expect(try await eventually { try await env.auditEvents().contains(where: \.isOutcome) })
        task.cancel()
        try await task.value
        let reply = try #require(try await env.replies().first)
        #expect(reply.response.status == 502)
        let json = try JSONSerialization.jsonObject(with: reply.response.body) as? [String: String]
        #expect(json?["error"] == "upstream_unavailable" && json?["request_id"] == "r-down")
        #expect(json?["message"]?.isEmpty == false)
        let outcome = try #require(try await env.auditEvents().first(where: \.isOutcome))
        #expect(outcome.kind == .failed && outcome.status == 502)
        #expect(outcome.details?["error_kind"] != nil)
        await env.cleanUp()
    }

    @Test func upstreamSlowerThanDeadlineRepliesGatewayTimeout() async throws {
        let env = try ForwarderTestEnv()
        let upstream = try await TestUpstream.start(response: CannedResponse(delay: .seconds(3)))
        let service = try env.service(upstream: "http://127.0.0.1:\(upstream.port)")
        let request = env.inspected(id: "r-slow", deadlineIn: 700)
        try await env.publish(request)
        let task = Task { try await service.run() }
        #expect(try await eventually { try await env.auditEvents().contains(where: \.isOutcome) })
        let finishedAt = currentMillis()
        task.cancel()
        try await task.value
        #expect(finishedAt < request.metadata.deadlineMillis + 500, "delivery must fail by the deadline")
        let reply = try #require(try await env.replies().first)
        #expect(reply.response.status == 504)
        let json = try JSONSerialization.jsonObject(with: reply.response.body) as? [String: String]
        #expect(json?["error"] == "upstream_timeout" && json?["request_id"] == "r-slow")
        #expect(json?["message"]?.isEmpty == false)
        let outcome = try #require(try await env.auditEvents().first(where: \.isOutcome))
        #expect(outcome.kind == .failed && outcome.status == 504)
        await upstream.stop()
        await env.cleanUp()
    }

    @Test func secretInResponseComesBackMasked() async throws {
        let env = try ForwarderTestEnv()
        let secret = fakeGitHubToken()
        let upstream = try await TestUpstream.start(response: CannedResponse(body: Array("{\"token\":\"\(secret)\"}".utf8)))
        let service = try env.service(upstream: "http://127.0.0.1:\(upstream.port)")
        try await env.publish(env.inspected(id: "r-secret"))
        let task = Task { try await service.run() }
        #expect(try await eventually { try await env.auditEvents().contains(where: \.isOutcome) })
        task.cancel()
        try await task.value
        let reply = try #require(try await env.replies().first)
        #expect(reply.response.status == 200)
        #expect(!String(decoding: reply.response.body, as: UTF8.self).contains(secret))
        let outcome = try #require(try await env.auditEvents().first(where: \.isOutcome))
        #expect(outcome.kind == .delivered)
        let finding = try #require(outcome.findings?.first)
        #expect(finding.location == "response" && finding.fingerprint.count == 12)
        for message in try await env.drain(env.context.topics.audit) + env.drain(env.context.topics.outcomes) {
            #expect(!String(decoding: message.value, as: UTF8.self).contains(secret))
        }
        await upstream.stop()
        await env.cleanUp()
    }

    /// Block is never delivered; hold is parked (pending reply, `approval_requested`), not delivered.
    @Test func blockAndHoldVerdictsAreNeverDelivered() async throws {
        let env = try ForwarderTestEnv()
        let upstream = try await TestUpstream.start()
        let service = try env.service(upstream: "http://127.0.0.1:\(upstream.port)")
        try await env.publish(env.inspected(id: "r-block", decision: .block))
        try await env.publish(env.inspected(id: "r-hold", decision: .hold))
        try await env.publish(env.inspected(id: "r-ok", decision: .mask))
        let task = Task { try await service.run() }
        #expect(try await eventually { try await env.auditEvents().contains(where: \.isOutcome) })
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        try await task.value
        #expect(upstream.received.map { $0.values("Idempotency-Key") } == [["r-ok"]])
        let replies = try await env.replies()
        #expect(Set(replies.map(\.requestID)) == ["r-ok", "r-hold"])
        #expect(replies.first { $0.requestID == "r-hold" }?.response.status == 202)
        let events = try await env.auditEvents()
        #expect(events.filter(\.isOutcome).map(\.requestID) == ["r-ok"])
        #expect(events.filter { $0.kind == .approvalRequested }.map(\.requestID) == ["r-hold"])
        await upstream.stop()
        await env.cleanUp()
    }

    @Test func tamperedMessageGoesToDeadletterAndIsCommitted() async throws {
        let env = try ForwarderTestEnv()
        let upstream = try await TestUpstream.start()
        let service = try env.service(upstream: "http://127.0.0.1:\(upstream.port)")
        var message = try env.context.codec.inspected(env.inspected(id: "r-tampered"))
        message.value[message.value.count / 2] ^= 0x40
        try await env.bus.publish(message)
        let task = Task { try await service.run() }
        #expect(try await eventually { try await !env.deadletters().isEmpty })
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        try await task.value
        #expect(upstream.received.isEmpty)
        #expect(try await env.replies().isEmpty)
        // Committed: a new member of the group does not see it again.
        let again = Task { try await service.run() }
        try await Task.sleep(for: .milliseconds(300))
        again.cancel()
        try await again.value
        #expect(try await env.deadletters().count == 1)
        await upstream.stop()
        await env.cleanUp()
    }

    @Test func manyRequestsAreAllDeliveredOnceEach() async throws {
        let env = try ForwarderTestEnv()
        let upstream = try await TestUpstream.start()
        let service = try env.service(upstream: "http://127.0.0.1:\(upstream.port)")
        for i in 0..<40 { try await env.publish(env.inspected(id: "r-\(i)")) }
        let task = Task { try await service.run() }
        #expect(try await eventually { try await env.auditEvents().filter(\.isOutcome).count == 40 })
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        try await task.value
        #expect(Set(upstream.received.flatMap { $0.values("Idempotency-Key") }).count == 40)
        // Everything was committed: a restarted forwarder delivers nothing again.
        let again = Task { try await service.run() }
        try await Task.sleep(for: .milliseconds(300))
        again.cancel()
        try await again.value
        #expect(upstream.received.count == 40)
        await upstream.stop()
        await env.cleanUp()
    }
}
