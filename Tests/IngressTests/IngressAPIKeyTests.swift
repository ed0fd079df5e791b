import Detection
import Foundation
import Pipeline
import Testing

@testable import Ingress

@Suite("Ingress: authentication, routing and limits")
struct IngressRejectionTests {
    @Test("401 without or with a wrong key, and nothing is published")
    func unauthorized() async throws {
        try await IngressHarness.with { h in
            let none = try await h.call("POST", "/fn/billing/x", body: Data("{}".utf8))
            #expect(none.status == 401)
            #expect(none.json["error"] as? String == "unauthorized")
            #expect(none.header("X-Sluice-Request-Id")?.isEmpty == false)
            #expect(none.json["request_id"] as? String == none.header("X-Sluice-Request-Id"))

            let wrong = try await h.call("POST", "/fn/billing/x", bearer: "sk-not-a-key", body: Data("{}".utf8))
            #expect(wrong.status == 401)
            #expect(wrong.json["error"] as? String == "unauthorized")

            let basic = try await h.call("GET", "/fn/billing/x", headers: [("Authorization", "Basic \(TestKeys.alice)")])
            #expect(basic.status == 401)

            let jwtShaped = try await h.call("GET", "/fn/billing/x", bearer: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
            #expect(jwtShaped.status == 401)  // OIDC not configured

            #expect(try await h.messages(on: h.topics.requests).isEmpty)
            // Each refused credential is audited without an identity, and without the credential.
            let audit = try await h.waitForMessages(on: h.topics.audit, count: 4)
            let events = try audit.map { try h.context.codec.decodeAudit($0) }
            #expect(events.count == 4)
            #expect(events.allSatisfy { $0.kind == .requestRejected && $0.status == 401 && $0.identity == nil })
            #expect(events.allSatisfy { $0.sessionID == $0.requestID && $0.connection == "billing" && $0.details?["api"] == "fn" })
            // The audit topic has several partitions: match the events to the calls by request id.
            let byID = Dictionary(events.map { ($0.requestID, $0) }, uniquingKeysWith: { a, _ in a })
            let expected: [(IngressHarness.Answer, String, String, String)] = [
                (none, "POST", "none", "no bearer credential"), (wrong, "POST", "api_key", "unknown API key"),
                (basic, "GET", "none", "no bearer credential"), (jwtShaped, "GET", "jwt", "JWT presented but OIDC is not configured"),
            ]
            for (answer, method, kind, reason) in expected {
                let event = try #require(byID[answer.header("X-Sluice-Request-Id") ?? ""])
                #expect(event.method == method)
                #expect(event.details?["credential"] == kind)
                #expect(event.details?["reason"] == reason)
            }
            for message in audit {
                let raw = String(decoding: message.value, as: UTF8.self)
                #expect(!raw.contains("sk-not-a-key") && !raw.contains("eyJhbGciOiJFUzI1NiJ9") && !raw.contains(TestKeys.alice))
            }
        }
    }

    @Test("a flood of refused credentials is audited up to the bound each second, the rest counted into the next event")
    func authFailureAuditBound() {
        let audit = AuthFailureAudit(perSecond: 3)
        // Second 10: three admitted, two left out.
        let first = (0..<5).map { i in audit.admit(now: 10_000 + Int64(i)) }
        #expect(first == [0, 0, 0, nil, nil])
        // Second 11: the first admitted one carries the two left out, then counting starts again.
        #expect(audit.admit(now: 11_000) == 2)
        #expect(audit.admit(now: 11_500) == 0)
        #expect(audit.admit(now: 11_900) == 0)
        #expect(audit.admit(now: 11_999) == nil)
        #expect(audit.admit(now: 12_000) == 1)
    }

    @Test("a credential's kind is read from its shape only", arguments: [
        (String?.none, "none"), ("", "none"), ("sk-live-123", "api_key"),
        ("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "jwt"),
    ])
    func credentialKind(credential: String?, kind: String) {
        #expect(AuthFailureAudit.kind(of: credential) == kind)
    }

    @Test("404 for an unknown connection, 403 when the identity's groups are not allowed")
    func routing() async throws {
        try await IngressHarness.with { h in
            let unknown = try await h.call("GET", "/fn/nope/x", bearer: TestKeys.alice)
            #expect(unknown.status == 404)
            #expect(unknown.json["error"] as? String == "unknown_connection")

            let forbidden = try await h.call("GET", "/fn/admin/x", bearer: TestKeys.alice)
            #expect(forbidden.status == 403)
            #expect(forbidden.json["error"] as? String == "forbidden")
            let message = try #require(forbidden.json["message"] as? String)
            #expect(message.contains("apikey:alice") && message.contains("connection admin"), "\(message)")

            let bob = try await h.call("GET", "/fn/billing/x", bearer: TestKeys.bob)
            #expect(bob.status == 403)

            let bare = try await h.call("GET", "/fn/", bearer: TestKeys.alice)
            #expect(bare.status == 404)

            #expect(try await h.messages(on: h.topics.requests).isEmpty)
        }
    }

    @Test("413 for a body over max_body_bytes, declared or streamed")
    func tooLarge() async throws {
        try await IngressHarness.with { h in
            let big = Data(repeating: UInt8(ascii: "a"), count: 65)
            let declared = try await h.call("POST", "/fn/billing/x", bearer: TestKeys.alice, body: big)
            #expect(declared.status == 413)
            #expect(declared.json["error"] as? String == "body_too_large")

            let streamed = try await h.call("POST", "/fn/billing/x", bearer: TestKeys.alice, body: big, streamBody: true)
            #expect(streamed.status == 413)

            #expect(try await h.messages(on: h.topics.requests).isEmpty)
        }
    }

    @Test("429 with Retry-After when max_in_flight is exceeded; the rejected request publishes nothing")
    func overloaded() async throws {
        let options = IngressOptions(instanceID: "ingress-test-429", replyGrace: .milliseconds(100))
        let config = IngressHarness.configJSON(requestTimeout: "2s", limits: "\"max_in_flight\": 1")
        try await IngressHarness.with(configJSON: config, options: options) { h in
            let first = Task { try await h.call("POST", "/fn/billing/slow", bearer: TestKeys.alice, body: Data("1".utf8)) }
            _ = try await h.waitForMessages(on: h.topics.requests, count: 1)
            let second = try await h.call("POST", "/fn/billing/fast", bearer: TestKeys.alice, body: Data("2".utf8))
            #expect(second.status == 429)
            #expect(second.json["error"] as? String == "overloaded")
            #expect(second.header("Retry-After") == "1")
            #expect((second.json["message"] as? String)?.isEmpty == false)
            #expect(try await first.value.status == 504)
            #expect(try await h.messages(on: h.topics.requests).count == 1)
        }
    }

    @Test("504 with the request id when nobody replies before the deadline")
    func timeout() async throws {
        try await IngressHarness.with { h in
            let started = ContinuousClock.now
            let answer = try await h.call("POST", "/fn/billing/x", bearer: TestKeys.alice, body: Data("{}".utf8))
            let elapsed = ContinuousClock.now - started
            #expect(answer.status == 504)
            #expect(answer.json["error"] as? String == "timeout")
            #expect(answer.json["request_id"] as? String == answer.header("X-Sluice-Request-Id"))
            #expect(elapsed >= .seconds(1))
            #expect(elapsed < .seconds(5))
        }
    }

    @Test("health, readiness and metrics on admin_listen only; metrics carry no key, path or identity")
    func operational() async throws {
        try await IngressHarness.with { h in
            #expect(h.adminPort != h.port)
            for admin in [false, true] {
                let health = try await h.call("GET", "/healthz", admin: admin)
                #expect(health.status == 200)
                #expect(health.json["status"] as? String == "ok")
                #expect(health.header("X-Sluice-Request-Id") != nil)
            }
            #expect(try await h.call("GET", "/readyz", admin: true).status == 200)
            for path in ["/metrics", "/readyz", "/nowhere"] {
                let missing = try await h.call("GET", path)
                #expect(missing.status == 404, "\(path) on the caller port")
                #expect(missing.json["error"] as? String == "not_found")
            }
            #expect(try await h.call("GET", "/fn/billing/x", bearer: TestKeys.alice, admin: true).status == 404)

            _ = try await h.call("GET", "/fn/billing/secret-path-token?q=hunter2", bearer: TestKeys.bob)
            _ = try await h.call("GET", "/fn/made-up-conn/x", bearer: TestKeys.alice)
            let metrics = try await h.call("GET", "/metrics", admin: true)
            #expect(metrics.status == 200)
            #expect(metrics.text.contains("sluice_ingress_requests_total{connection=\"billing\",code=\"403\"} 1"))
            #expect(metrics.text.contains("sluice_ingress_requests_total{connection=\"-\",code=\"404\"} 1"))
            #expect(metrics.text.contains("sluice_ingress_request_duration_seconds"))
            for leak in ["secret-path-token", "hunter2", "made-up-conn", "bob", TestKeys.bob, TestKeys.alice] {
                #expect(!metrics.text.contains(leak), "metrics contain \(leak)")
            }
        }
    }
}

@Suite("Approvers' reasons are masked")
struct ReasonMaskerTests {

    @Test("secrets and PII in a reason are masked; clean text and an empty reason pass unchanged", arguments: [
        ("ok, the key AKIAZ3MSJ5Q7TRXXL2PB is rotated", ["aws-access-key-id"]),
        ("token ghp_9aYt7bV2kLm3Qx8RzWc4Pn6Jd1Hs5Fg0EuTi was in the log", ["github-pat-classic"]),
        ("looks fine, ship it", []),
        ("", []),
    ])
    func masks(text: String, rules: [String]) throws {
        let masker = ReasonMasker(engine: try DetectionEngine(fingerprintKey: Array("reason-test".utf8)))
        let masked = try masker.mask(text).get()
        #expect(masked.rules == rules)
        if rules.isEmpty {
            #expect(masked.text == text)
        } else {
            #expect(masked.text.contains("[MASKED:\(rules[0]):"))
            #expect(!masked.text.contains("AKIAZ3MSJ5Q7TRXXL2PB") && !masked.text.contains("ghp_9aYt7bV2kLm3Qx8RzWc4Pn6Jd1Hs5Fg0EuTi"))
        }
    }
}
