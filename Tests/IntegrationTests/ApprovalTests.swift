import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// Hold for approval, end to end: a real `sluice` deployment, a real upstream, the reviewer API.
@Suite("Hold for approval", .serialized)
struct ApprovalTests {
    static let json = [("Content-Type", "application/json")]

    /// Calls `held` with a request that carries a secret (held by `on_secret: hold`); returns the 202's request id.
    static func holdOne(_ gw: Gateway, key: String = Gateway.ciKey, secret: String = Canaries.make()[0].secret) async throws -> String {
        let r = try await gw.call(connection: "held", path: "/deploy", headers: json, body: gw.json(["key": secret, "task": "deploy"]), key: key)
        try #require(r.status == 202, "expected 202, got \(r.status) \(r.text)")
        #expect(r.json?["status"] as? String == "pending_approval")
        let id = try #require(r.json?["request_id"] as? String)
        #expect(r.json?["poll"] as? String == "/v1/requests/\(id)")
        #expect(!r.text.contains(secret))
        return id
    }

    @Test("approve: held → 202 → approve → poll returns the upstream's response; delivered once, masked", arguments: GatewayMode.available)
    func approvePath(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "500ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        await gw.upstream.setResponse(body: "{\"deployed\":true}")
        let secret = Canaries.make()[0].secret
        let id = try await Self.holdOne(gw, secret: secret)
        #expect(try await gw.poll(id).status == 202)
        #expect(try await gw.poll(id, key: Gateway.otherKey).status == 404, "another identity may not poll")
        try await gw.waitPending(id)
        let listed = try await gw.api(.GET, "/v1/approvals", key: Gateway.aliceKey)
        let item = try #require((listed.json?["approvals"] as? [[String: Any]])?.first { $0["request_id"] as? String == id })
        #expect(item["requester"] as? String == "apikey:ci-bot")
        #expect(item["connection"] as? String == "held")
        #expect((item["reasons"] as? [String]) == ["finding aws-access-key-id"])
        #expect((item["preview"] as? String)?.contains("[MASKED:aws-access-key-id:") == true)
        #expect(!listed.text.contains(secret))
        #expect(await gw.upstream.requests.isEmpty)

        let started = ContinuousClock.now
        let approved = try await gw.approve(id, key: Gateway.aliceKey)
        #expect(approved.status == 200, "\(approved.text)")
        let arrived = try await gw.waitUpstream()
        print("[measure] \(mode.rawValue): decision → upstream delivery \(arrived - started)")
        let final = try await gw.waitFinal(id)
        #expect(final.status == 200)
        #expect(final.text == "{\"deployed\":true}")
        #expect(final.header("X-Sluice-Status") == "delivered")
        try await Task.sleep(for: .milliseconds(500))
        let got = await gw.upstream.requests
        try #require(got.count == 1)
        #expect(!got[0].bodyText.contains(secret))
        #expect(got[0].bodyText.contains("[MASKED:aws-access-key-id:"))
        #expect(got[0].header("Idempotency-Key") == id)
        #expect(got[0].header("Authorization") == "Bearer \(Gateway.upstreamToken)")
        let decided = try await gw.waitAudit("approval_decided", requestID: id)
        #expect(decided["identity"] as? String == "apikey:alice")
        #expect((decided["details"] as? [String: String])?["reason"] == "looks fine")
        _ = try await gw.waitAudit("delivered", requestID: id)
        #expect(gw.auditEvents().filter { $0["request_id"] as? String == id && ["delivered", "denied", "expired", "failed"].contains($0["kind"] as? String ?? "") }.count == 1)
        await gw.stop()
    }

    @Test("fast path: approved within hold_wait, the caller's original request gets the response", arguments: GatewayMode.available)
    func fastPath(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "20s")
        defer { Task { await gw.stop() } }
        try await gw.start()
        await gw.upstream.setResponse(body: "{\"fast\":true}")
        // Twice: the first hold after a start also pays each producer's first publish to a topic.
        for round in 1...2 {
            let call = Task { try await gw.call(.DELETE, connection: "held", path: "/items/\(round)", key: Gateway.ciKey) }
            var id: String?
            let deadline = ContinuousClock.now + .seconds(15)
            while id == nil, ContinuousClock.now < deadline {
                id = try await gw.approvalIDs().first
                if id == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            let held = try #require(id)
            let started = ContinuousClock.now
            #expect(try await gw.approve(held, key: Gateway.bobKey).status == 200)
            let r = try await call.value
            print("[measure] \(mode.rawValue): decision → caller's response (fast path, round \(round)) \(ContinuousClock.now - started)")
            #expect(r.status == 200)
            #expect(r.text == "{\"fast\":true}")
            #expect(await gw.upstream.requests.count == round)
            #expect(await gw.upstream.requests.last?.method == "DELETE")
        }
        await gw.stop()
    }

    @Test("deny: 403 with the reason, upstream never called", arguments: GatewayMode.available)
    func denyPath(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "200ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let id = try await Self.holdOne(gw)
        try await gw.waitPending(id)
        // The reviewer pastes a credential into the reason: it is masked before it goes anywhere.
        let pasted = Canaries.make()[0].secret
        let denied = try await gw.deny(id, key: Gateway.aliceKey, reason: "no deploys on Friday; key \(pasted)")
        #expect(denied.status == 200)
        #expect(!denied.text.contains(pasted))
        let final = try await gw.waitFinal(id)
        #expect(final.status == 403)
        #expect(final.json?["error"] as? String == "denied")
        let reason = try #require(final.json?["reason"] as? String)
        #expect(reason.hasPrefix("no deploys on Friday; key [MASKED:aws-access-key-id:"))
        #expect(!reason.contains(pasted))
        let shown = try await gw.api(.GET, "/v1/approvals/\(id)", key: Gateway.aliceKey)
        #expect(shown.status == 200 && shown.text.contains("[MASKED:aws-access-key-id:") && !shown.text.contains(pasted))
        #expect(try await gw.approve(id, key: Gateway.bobKey).status == 409)
        #expect(try await gw.approvalIDs(status: "denied").contains(id))
        let deniedEvent = try await gw.waitAudit("denied", requestID: id)
        #expect(((deniedEvent["details"] as? [String: String])?["reason"] ?? "").contains("[MASKED:aws-access-key-id:"))
        _ = try await gw.waitAudit("approval_decided", requestID: id)
        let auditText = gw.auditEvents().map { "\($0)" }.joined(separator: "\n")
        #expect(!auditText.contains(pasted), "the pasted credential reached the audit trail")
        try await Task.sleep(for: .milliseconds(500))
        #expect(await gw.upstream.requests.isEmpty)
        await gw.stop()
    }

    @Test("expiry: 410 after hold_timeout, never delivered, decisions refused", arguments: GatewayMode.available)
    func expiryPath(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "200ms", holdTimeout: "2s")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let id = try await Self.holdOne(gw)
        let final = try await gw.waitFinal(id, timeout: .seconds(15))
        #expect(final.status == 410)
        #expect(final.json?["error"] as? String == "expired")
        let late = try await gw.approve(id, key: Gateway.aliceKey)
        #expect(late.status == 409)
        #expect(late.json?["error"] as? String == "expired")
        _ = try await gw.waitAudit("expired", requestID: id)
        #expect(try await gw.approvalIDs(status: "expired").contains(id))
        #expect(await gw.upstream.requests.isEmpty)
        await gw.stop()
    }

    @Test("no self-approval (even in the approvers group), non-approvers refused, second decision 409", arguments: GatewayMode.available)
    func whoMayDecide(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "200ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let id = try await Self.holdOne(gw, key: Gateway.carolKey)
        try await gw.waitPending(id)
        let own = try await gw.approve(id, key: Gateway.carolKey)
        #expect(own.status == 403)
        #expect(own.json?["error"] as? String == "self_approval")
        #expect(try await gw.approve(id, key: Gateway.ciKey).status == 403)
        #expect(try await gw.approve(id, key: Gateway.otherKey).status == 403)
        #expect(try await gw.api(.POST, "/v1/approvals/\(id)/approve", key: nil).status == 401)
        #expect(try await gw.api(.GET, "/v1/approvals", key: Gateway.ciKey).status == 403)
        #expect(try await gw.approve("no-such-request", key: Gateway.aliceKey).status == 404)
        #expect(try await gw.approve(id, key: Gateway.aliceKey).status == 200)
        let second = try await gw.approve(id, key: Gateway.bobKey)
        #expect(second.status == 409)
        #expect(try await gw.waitFinal(id, key: Gateway.carolKey).status == 200)
        #expect(await gw.upstream.requests.count == 1)
        await gw.stop()
    }

    @Test("approvals_required 2: one keeps it held, the same approver twice counts once, a second approver releases", arguments: GatewayMode.available)
    func twoApprovers(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "200ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let r = try await gw.call(.DELETE, connection: "held2", path: "/db/1")
        try #require(r.status == 202)
        let id = try #require(r.json?["request_id"] as? String)
        try await gw.waitPending(id)
        let first = try await gw.approve(id, key: Gateway.aliceKey)
        #expect(first.status == 200)
        #expect(first.json?["approvals"] as? Int == 1)
        #expect(first.json?["status"] as? String == "pending")
        let again = try await gw.approve(id, key: Gateway.aliceKey)
        #expect(again.status == 409)
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await gw.poll(id).status == 202)
        #expect(await gw.upstream.requests.isEmpty)
        let second = try await gw.approve(id, key: Gateway.bobKey)
        #expect(second.status == 200)
        #expect(try await gw.waitFinal(id).status == 200)
        #expect(await gw.upstream.requests.count == 1)
        await gw.stop()
    }

    @Test("each hold trigger holds; a request matching none is delivered", arguments: GatewayMode.available)
    func triggers(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "100ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let cases: [(String, HTTPMethod, String, Data, String, String)] = [
            ("finding", .POST, "/x", gw.json(["k": Canaries.make()[0].secret]), Gateway.ciKey, "finding aws-access-key-id"),
            ("method", .DELETE, "/x", Data(), Gateway.ciKey, "method DELETE"),
            ("path glob", .POST, "/admin/users", Data("{}".utf8), Gateway.ciKey, "path /admin/*"),
            ("body pattern", .POST, "/sql", Data("{\"q\":\"DROP   TABLE users\"}".utf8), Gateway.ciKey, "body pattern #0"),
            ("group", .POST, "/x", Data("{}".utf8), Gateway.daveKey, "group contractors"),
        ]
        for (name, method, path, body, key, reason) in cases {
            let r = try await gw.call(method, connection: "held", path: path, headers: Self.json, body: body, key: key)
            #expect(r.status == 202, "\(name) was not held: \(r.status) \(r.text)")
            if let id = r.json?["request_id"] as? String {
                try await gw.waitPending(id)
                let shown = try await gw.api(.GET, "/v1/approvals/\(id)", key: Gateway.aliceKey)
                #expect((shown.json?["reasons"] as? [String])?.contains(reason) == true, "\(name): \(shown.text)")
            }
        }
        let clean = try await gw.call(.POST, connection: "held", path: "/admin/users/1", headers: Self.json, body: Data("{\"q\":\"select 1\"}".utf8))
        #expect(clean.status == 200, "a request matching no clause was held: \(clean.text)")
        #expect(await gw.upstream.requests.count == 1)
        await gw.stop()
    }

    @Test("the webhook receives the announcement, without any secret", arguments: [GatewayMode.embedded])
    func webhook(mode: GatewayMode) async throws {
        let receiver = try await WebhookReceiver.start()
        let gw = try await Gateway(mode: mode, holdWait: "100ms", notifyURL: receiver.url + "/hook")
        defer { Task { await gw.stop(); receiver.stop() } }
        try await gw.start()
        let secret = Canaries.make()[0].secret
        let id = try await Self.holdOne(gw, secret: secret)
        let deadline = ContinuousClock.now + .seconds(10)
        while await receiver.requests.isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let hooks = await receiver.requests
        try #require(hooks.count == 1)
        #expect(hooks[0].method == "POST" && hooks[0].path == "/hook")
        let text = try #require((try JSONSerialization.jsonObject(with: hooks[0].body) as? [String: Any])?["text"] as? String)
        #expect(text.contains(id))
        #expect(text.contains("held"))
        #expect(text.contains("apikey:ci-bot"))
        #expect(text.contains("finding aws-access-key-id"))
        // Issue 13: the link to the request in the console (public_url unset: http://<listen>).
        #expect(text.contains("Review: \(gw.baseURL)/console/requests/\(id) or sluice approvals show \(id)"), "\(text)")
        #expect(!hooks[0].bodyText.contains(secret))
        #expect(!hooks[0].bodyText.contains("deploy"), "the body leaked into the announcement")
        #expect(await gw.upstream.requests.isEmpty)
        await gw.stop()
        receiver.stop()
    }

    @Test("CLI: sluice approvals list, show, approve (table and --json) with SLUICE_TOKEN")
    func cli() async throws {
        let gw = try await Gateway(mode: .embedded, holdWait: "100ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let secret = Canaries.make()[0].secret
        let id = try await Self.holdOne(gw, secret: secret)
        try await gw.waitPending(id)
        let list = try await gw.runCLI(["approvals", "list", "--config", gw.configPath.path], token: Gateway.aliceKey)
        #expect(list.status == 0, "\(list.output)")
        #expect(list.output.contains("ID") && list.output.contains(id) && list.output.contains("finding aws-access-key-id"))
        let json = try await gw.runCLI(["approvals", "list", "--url", gw.baseURL, "--json"], token: Gateway.aliceKey)
        #expect((try? JSONSerialization.jsonObject(with: Data(json.output.utf8))) != nil, "\(json.output)")
        let show = try await gw.runCLI(["approvals", "show", id, "--url", gw.baseURL], token: Gateway.aliceKey)
        #expect(show.status == 0 && show.output.contains("[MASKED:aws-access-key-id:"))
        #expect(!show.output.contains(secret))
        let own = try await gw.runCLI(["approvals", "approve", id, "--url", gw.baseURL], token: Gateway.ciKey)
        #expect(own.status != 0 && own.output.contains("403"), "\(own.output)")
        let ok = try await gw.runCLI(["approvals", "approve", id, "--url", gw.baseURL, "--reason", "ticket OPS-1"], token: Gateway.aliceKey)
        #expect(ok.status == 0 && ok.output.contains("approved \(id)"), "\(ok.output)")
        #expect(try await gw.waitFinal(id).status == 200)
        await gw.stop()
    }

    @Test("embedded: restart `sluice run` while held, approve after the restart, delivered once")
    func embeddedRestart() async throws {
        let gw = try await Gateway(mode: .embedded, holdWait: "100ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let id = try await Self.holdOne(gw)
        try await gw.waitPending(id)
        try await gw.restart()
        try await gw.waitPending(id)
        #expect(try await gw.poll(id).status == 202)
        #expect(try await gw.approve(id, key: Gateway.aliceKey).status == 200)
        #expect(try await gw.waitFinal(id).status == 200)
        try await Task.sleep(for: .milliseconds(500))
        #expect(await gw.upstream.requests.count == 1)
        await gw.stop()
    }
}

/// Kafka only: crash the Forwarder while held; a decision published before the request reaches it.
@Suite("Hold for approval on Kafka", .serialized, .enabled(if: GatewayMode.kafkaBrokers != nil, "set SLUICE_KAFKA_BROKERS (make test does)"))
struct KafkaApprovalTests {
    @Test("kill -9 the Forwarder while held, start it again, approve: delivered exactly once")
    func forwarderCrash() async throws {
        let gw = try await Gateway(mode: .kafka, holdWait: "100ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let id = try await ApprovalTests.holdOne(gw)
        try await gw.waitPending(id)
        gw.process("forwarder")?.kill9()
        try gw.launch("forwarder-2", command: "forwarder")
        try await Task.sleep(for: .seconds(2))
        #expect(try await gw.approve(id, key: Gateway.aliceKey).status == 200)
        #expect(try await gw.waitFinal(id, timeout: .seconds(60)).status == 200)
        try await Task.sleep(for: .seconds(2))
        #expect(await gw.upstream.requests.count == 1)
        await gw.stop()
    }

    @Test("a decision published before the held request reaches the Forwarder is still applied")
    func decisionFirst() async throws {
        let gw = try await Gateway(mode: .kafka, requestTimeout: "60s", holdWait: "30s")
        defer { Task { await gw.stop() } }
        try await gw.start(forwarder: false)
        try await Task.sleep(for: .seconds(4))  // the inspector in its group
        let call = Task {
            try await gw.call(connection: "held", path: "/x", headers: ApprovalTests.json, body: gw.json(["k": Canaries.make()[0].secret]))
        }
        // The request id, from the Ingress's `request_received` audit event (the Forwarder is down).
        var id: String?
        let deadline = ContinuousClock.now + .seconds(30)
        while id == nil, ContinuousClock.now < deadline {
            id = gw.auditEvents().first { $0["kind"] as? String == "request_received" }?["request_id"] as? String
            if id == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let requestID = try #require(id)
        try await gw.publishDecision(requestID: requestID, approve: true, approverID: "apikey:alice", groups: ["secops"])
        try gw.launch("forwarder", command: "forwarder")
        let r = try await call.value
        #expect(r.status == 200, "\(r.text)")
        #expect(r.header("X-Sluice-Request-Id") == requestID)
        #expect(await gw.upstream.requests.count == 1)
        #expect(try await gw.poll(requestID).status == 200)
        let log = gw.process("forwarder")?.output ?? ""
        #expect(log.contains("decision kept until its request is parked") || log.contains("held request decided"))
        await gw.stop()
    }
}
