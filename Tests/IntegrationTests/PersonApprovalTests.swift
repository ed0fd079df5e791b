import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// Invariant 5 end to end: persons, not identities. One person with a key in `agents` (here `ci`)
/// and another in the reviewers group (`secops`) cannot approve their own call; two identities of
/// one person count once towards `approvals_required`; refused attempts are audited.
@Suite("Person-level approvals", .serialized)
struct PersonApprovalTests {
    static let malloryAgentKey = "test-key-mallory-agent-0001"
    static let malloryReviewerKey = "test-key-mallory-review-002"
    static let aliceSecondKey = "test-key-alice-second-00003"

    /// A gateway with Mallory's two keys (one person) and a second key of Alice's.
    static func gateway(_ mode: GatewayMode) async throws -> Gateway {
        let gw = try await Gateway(mode: mode, holdWait: "200ms", extraAPIKeys: """
                - { id: mallory-agent, sha256: "\(sha256Hex(malloryAgentKey))", groups: [ci], person: "mallory@example.com" }
                - { id: mallory-reviewer, sha256: "\(sha256Hex(malloryReviewerKey))", groups: [secops], person: "Mallory@Example.com" }
                - { id: alice-second, sha256: "\(sha256Hex(aliceSecondKey))", groups: [secops], person: alice }
            """)
        try await gw.start()
        return gw
    }

    static func refusals(_ gw: Gateway, _ id: String) -> [[String: Any]] {
        gw.auditEvents().filter { $0["kind"] as? String == "approval_refused" && $0["request_id"] as? String == id }
    }

    @Test("self-approval under a second identity of the same person: 403 self_approval, audited, never delivered", arguments: GatewayMode.available)
    func selfApprovalAcrossIdentities(mode: GatewayMode) async throws {
        let gw = try await Self.gateway(mode)
        defer { Task { await gw.stop() } }
        let id = try await ApprovalTests.holdOne(gw, key: Self.malloryAgentKey)
        try await gw.waitPending(id)
        let own = try await gw.approve(id, key: Self.malloryReviewerKey, reason: "trust me, secret reason text")
        #expect(own.status == 403, "\(own.text)")
        #expect(own.json?["error"] as? String == "self_approval")
        #expect((own.json?["message"] as? String)?.isEmpty == false)
        #expect(own.json?["request_id"] as? String == id)
        // Denying one's own request is refused the same way.
        #expect(try await gw.deny(id, key: Self.malloryReviewerKey).json?["error"] as? String == "self_approval")

        let event = try await gw.waitAudit("approval_refused", requestID: id)
        #expect(event["identity"] as? String == "apikey:mallory-reviewer")
        let details = try #require(event["details"] as? [String: String])
        #expect(details["reason"] == "self_approval")
        #expect(details["person"] == "Mallory@Example.com")
        #expect(details["requester"] == "apikey:mallory-agent")
        #expect(!gw.auditEvents().contains { String(describing: $0).contains("secret reason text") }, "the reason text is never audited")
        // Both refused attempts (approve and deny) are audited, once each.
        let deadline = ContinuousClock.now + .seconds(10)
        while Self.refusals(gw, id).count < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(Self.refusals(gw, id).count == 2)

        let listed = try await gw.api(.GET, "/v1/approvals/\(id)", key: Gateway.aliceKey)
        #expect(listed.json?["status"] as? String == "pending" && listed.json?["approvals"] as? Int == 0)
        #expect(listed.json?["requester"] as? String == "apikey:mallory-agent")
        #expect(await gw.upstream.requests.isEmpty)

        // Another person releases it.
        #expect(try await gw.approve(id, key: Gateway.aliceKey).status == 200)
        #expect(try await gw.waitFinal(id, key: Self.malloryAgentKey).status == 200)
        #expect(await gw.upstream.requests.count == 1)
        await gw.stop()
    }

    @Test("N-of-M: two identities of one person do not reach 2; a second person does", arguments: GatewayMode.available)
    func distinctPersonsCount(mode: GatewayMode) async throws {
        let gw = try await Self.gateway(mode)
        defer { Task { await gw.stop() } }
        let first = try await gw.call(.DELETE, connection: "held2", path: "/items/1", key: Gateway.ciKey)
        #expect(first.status == 202, "\(first.text)")
        let id = try #require(first.json?["request_id"] as? String)
        try await gw.waitPending(id)

        let a1 = try await gw.approve(id, key: Gateway.aliceKey)
        #expect(a1.status == 200 && a1.json?["approvals"] as? Int == 1, "\(a1.text)")
        let a2 = try await gw.approve(id, key: Self.aliceSecondKey)
        #expect(a2.status == 409, "\(a2.text)")
        #expect(a2.json?["error"] as? String == "already_approved")
        let state = try await gw.api(.GET, "/v1/approvals/\(id)", key: Gateway.bobKey)
        #expect(state.json?["status"] as? String == "pending")
        #expect(state.json?["approvals"] as? Int == 1 && state.json?["approvals_required"] as? Int == 2)
        #expect(await gw.upstream.requests.isEmpty)

        // A non-approver is refused and audited as `forbidden`.
        let outsider = try await gw.approve(id, key: Gateway.ciKey)
        #expect(outsider.status == 403 && outsider.json?["error"] as? String == "forbidden")
        let refused = try await gw.waitAudit("approval_refused", requestID: id)
        #expect((refused["details"] as? [String: String])?["reason"] == "forbidden")
        #expect(refused["identity"] as? String == "apikey:ci-bot")

        #expect(try await gw.approve(id, key: Gateway.bobKey).status == 200)
        #expect(try await gw.waitFinal(id).status == 200)
        #expect(await gw.upstream.requests.count == 1)
        await gw.stop()
    }
}
