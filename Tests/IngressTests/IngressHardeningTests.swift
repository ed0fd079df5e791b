import Foundation
import Pipeline
import Testing

@testable import Ingress

/// Issue 8 at the edge: one canonical path, content codings checked before publishing, fair
/// limits (per-identity in-flight share, body and header read timeouts, held requests), and
/// errors people can act on. Raw sockets send targets exactly as written.
@Suite("Ingress: hardening", .serialized)
struct IngressHardeningTests {
    /// A request as bytes; `declaredLength` overrides `Content-Length` (a body that never fully arrives).
    static func raw(
        _ method: String, _ target: String, key: String = TestKeys.alice, headers: [String] = [], body: Data = Data(),
        declaredLength: Int? = nil, close: Bool = true
    ) -> Data {
        var head = ["\(method) \(target) HTTP/1.1", "Host: sluice", "Authorization: Bearer \(key)"] + (close ? ["Connection: close"] : []) + headers
        head.append("Content-Length: \(declaredLength ?? body.count)")
        var data = Data((head.joined(separator: "\r\n") + "\r\n\r\n").utf8)
        data.append(body)
        return data
    }

    static func exchange(_ h: IngressHarness, _ request: Data, timeout: Duration = .seconds(10)) async throws -> RawSockets.Outcome {
        try await RawSockets.flood(port: h.port, count: 1, payload: request, timeout: timeout)[0]
    }

    /// Every spelling of `/admin/users` reaches the pipeline as that one string.
    static let sameResource = [
        "/fn/billing/admin/users", "/fn/billing/%61dmin/users", "/fn/billing//admin/users", "/fn/billing/./admin/users",
        "/fn/billing/x/../admin/users", "/fn/billing/%2e/admin/users", "/fn/billing/admin/x/%2E%2E/users",
        "/fn/bil%6Cing/admin/users", "/fn/billing/%61%64%6d%69%6e/users",
    ]

    @Test("every spelling of one path is published as the one canonical path")
    func canonicalPaths() async throws {
        try await IngressHarness.with(configJSON: IngressHarness.configJSON(requestTimeout: "5s")) { h in
            let responder = try await h.startResponder { request in
                HTTPResponseData(status: 200, headers: [], body: Data("\(request.request.path)?\(request.request.query)".utf8))
            }
            defer { responder.cancel() }
            for target in Self.sameResource {
                let answer = try await Self.exchange(h, Self.raw("DELETE", target + "?q=%61"))
                #expect(answer.status == 200, "\(target): \(answer.text)")
                #expect(answer.text.hasSuffix("/admin/users?q=a"), "\(target): \(answer.text)")
            }
        }
    }

    /// Targets that cannot be made unambiguous: 400 bad_path, nothing published.
    static let refusedTargets = [
        "/fn/billing/admin%2Fusers", "/fn/billing/admin%2fusers", "/fn/billing/%2e%2e", "/fn/billing/%2E%2E/admin",
        "/fn/billing/..", "/fn/billing/a/../../b", "/fn/billing/admin%5Cusers", "/fn/billing/admin%00", "/fn/billing/admin%0a",
        "/fn/billing/..;/admin", "/fn/billing/%EF%BD%81dmin/users", "/fn/billing/%zz", "/fn/billing/%c3%28",
        "/fn/billing/x?q=%00", "/fn/billing/x?q=%0d%0a", "/fn/billing/x?q=%g0", "/fn/%2e%2e/admin", "/fn/bill%2Fing/x",
        "/fn/bill%00ing/x", "/fn/%EF%BD%82illing/x",
    ]

    @Test("paths that cannot be made unambiguous get 400 bad_path and publish nothing")
    func refusedPaths() async throws {
        try await IngressHarness.with { h in
            for target in Self.refusedTargets {
                let answer = try await Self.exchange(h, Self.raw("DELETE", target))
                #expect(answer.status == 400, "\(target): \(answer.text)")
                #expect(answer.json["error"] as? String == "bad_path", "\(target)")
                let message = answer.json["message"] as? String ?? ""
                #expect(message.hasSuffix("."), "\(target): \(message)")
                #expect(answer.json["request_id"] as? String == answer.header("X-Sluice-Request-Id"))
            }
            // Unauthenticated callers learn nothing about paths: 401 first.
            let anonymous = try await Self.exchange(h, Self.raw("GET", "/fn/billing/admin%2Fusers", key: "nope"))
            #expect(anonymous.status == 401)
            #expect(try await h.messages(on: h.topics.requests).isEmpty)
            // Each refusal of an authenticated caller is audited once, as request_rejected, without the
            // path; the anonymous one too (401, no identity), also without the path.
            let audit = try await h.waitForMessages(on: h.topics.audit, count: Self.refusedTargets.count + 1)
            #expect(audit.count == Self.refusedTargets.count + 1)
            var refusedCredentials = 0
            for message in audit {
                let event = try h.codec.decodeAudit(message)
                #expect(event.kind == .requestRejected)
                if event.status == 401 {
                    refusedCredentials += 1
                    #expect(event.identity == nil && event.details?["reason"] == "unknown API key" && event.connection == "billing")
                } else {
                    #expect(event.status == 400 && event.details?["error"] == "bad_path")
                    #expect(event.identity == "apikey:alice")
                }
                #expect(event.path == nil)
                let text = String(decoding: message.value, as: UTF8.self)
                #expect(!text.contains("admin") && !text.contains("%2"), "an audit event carries the path: \(text)")
            }
            #expect(refusedCredentials == 1)
        }
    }

    static func gzip(_ data: Data) throws -> Data {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ingress-gzip-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in")
        try data.write(to: input)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-n", input.path]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw HarnessError("gzip failed (is it installed?)") }
        return try Data(contentsOf: dir.appendingPathComponent("in.gz"))
    }

    @Test("content codings: 415 unknown, 400 undecodable, 413 once decoded; the original bytes are published")
    func contentCodings() async throws {
        let config = IngressHarness.configJSON(maxBodyBytes: 65536, requestTimeout: "5s")
        try await IngressHarness.with(configJSON: config) { h in
            let responder = try await h.startResponder { request in
                HTTPResponseData(status: 200, headers: [], body: Data("\(request.request.header("Content-Encoding") ?? "-"):\(request.request.body.count)".utf8))
            }
            defer { responder.cancel() }
            let text = Data("{\"q\":\"hello\"}".utf8)
            let gz = try Self.gzip(text)
            let bomb = try Self.gzip(Data(count: 4 << 20))  // 4 MiB of zeros: a few KiB compressed
            #expect(bomb.count < 65536)

            let cases: [(encoding: String, body: Data, status: Int, error: String?)] = [
                ("x-custom", text, 415, "unsupported_encoding"),
                ("gzip, compress", gz, 415, "unsupported_encoding"),
                ("br", text, 400, "undecodable_body"),
                ("gzip", text, 400, "undecodable_body"),
                ("gzip, gzip", gz, 400, "undecodable_body"),
                ("gzip", gz + Data("trailing".utf8), 400, "undecodable_body"),
                ("gzip", bomb, 413, "body_too_large"),
                ("gzip", gz, 200, nil),
                ("X-GZIP", gz, 200, nil),
                ("identity", text, 200, nil),
            ]
            var published = 0
            for c in cases {
                let answer = try await h.call("POST", "/fn/billing/x", bearer: TestKeys.alice, headers: [("Content-Encoding", c.encoding)], body: c.body)
                #expect(answer.status == c.status, "\(c.encoding): \(answer.text)")
                if let error = c.error {
                    #expect(answer.json["error"] as? String == error, "\(c.encoding)")
                    #expect((answer.json["message"] as? String)?.isEmpty == false)
                } else {
                    published += 1
                    // The body exactly as sent, with its Content-Encoding: the Inspector decodes again.
                    #expect(answer.text == "\(c.encoding):\(c.body.count)")
                }
            }
            // A transfer coding other than chunked would hide the body from inspection: refused.
            let chunk = gz.count
            var framed = Data("\(String(chunk, radix: 16))\r\n".utf8)
            framed.append(gz)
            framed.append(Data("\r\n0\r\n\r\n".utf8))
            let head = "POST /fn/billing/x HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer \(TestKeys.alice)\r\nConnection: close\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            let te = try await Self.exchange(h, Data(head.utf8) + framed)
            #expect(te.status == 415, "\(te.text)")
            #expect(te.json["error"] as? String == "unsupported_encoding")
            #expect(try await h.messages(on: h.topics.requests).count == published)
        }
    }

    @Test("stalled bodies get 408 and are closed; the flooding identity gets 429 with Retry-After; others are served")
    func stalledBodies() async throws {
        let limits = """
            "max_in_flight": 200, "max_in_flight_per_identity": 50, "body_read_timeout": "3s", "header_read_timeout": "20s"
            """
        let config = IngressHarness.configJSON(maxBodyBytes: 200_000, requestTimeout: "10s", limits: limits)
        try await IngressHarness.with(configJSON: config) { h in
            let responder = try await h.startResponder { request in
                HTTPResponseData(status: 200, headers: [], body: Data("served \(request.metadata.identity.id)".utf8))
            }
            defer { responder.cancel() }
            // 300 connections from one key, each announcing a 100 KB body and sending 1 byte of it.
            let head = Self.raw("POST", "/fn/billing/upload", body: Data("x".utf8), declaredLength: 100_000, close: false)
            let (sent, sentSignal) = AsyncStream.makeStream(of: Void.self)
            let flood = Task {
                try await RawSockets.flood(port: h.port, count: 300, payload: head, timeout: .seconds(15), onSent: { sentSignal.yield(); sentSignal.finish() })
            }
            for await _ in sent {}
            // Another identity is served while the flood's bodies are stalled.
            let started = ContinuousClock.now
            let other = try await h.call("POST", "/fn/billing/x", bearer: TestKeys.carol, body: Data("{}".utf8))
            let otherTook = ContinuousClock.now - started
            #expect(other.status == 200)
            #expect(other.text == "served apikey:carol")
            #expect(otherTook < .seconds(3), "served only after \(otherTook), not while the flood's bodies were stalled")

            let outcomes = try await flood.value
            let statuses = Dictionary(grouping: outcomes, by: { $0.status ?? 0 })
            #expect(statuses[408]?.count == 50, "\(statuses.mapValues(\.count))")
            #expect(statuses[429]?.count == 250, "\(statuses.mapValues(\.count))")
            for o in statuses[408] ?? [] {
                #expect(o.json["error"] as? String == "body_timeout")
                #expect(o.closed, "a stalled connection was left open")
                let after = o.firstByteAfter ?? .zero
                #expect(after >= .milliseconds(2900) && after < .seconds(8), "408 after \(after)")
            }
            for o in statuses[429] ?? [] {
                #expect(o.json["error"] as? String == "overloaded")
                #expect(o.header("Retry-After") != nil)
                #expect(o.closed, "a refused connection with an unread body was left open")
                #expect((o.json["message"] as? String)?.contains("max_in_flight_per_identity") == true)
            }
            // Nothing of the flood was published: only carol's call.
            #expect(try await h.messages(on: h.topics.requests).count == 1)
        }
    }

    @Test("a connection that dribbles its request head is closed after header_read_timeout")
    func dribbledHead() async throws {
        let config = IngressHarness.configJSON(limits: "\"header_read_timeout\": \"1s\", \"body_read_timeout\": \"5s\"")
        try await IngressHarness.with(configJSON: config) { h in
            let head = Data("GET /fn/billing/x HTTP/1.1\r\nHost: sluice\r\nX-Padding: \(String(repeating: "a", count: 200))\r\n\r\n".utf8)
            let outcome = try await RawSockets.dribble(port: h.port, payload: head, interval: .milliseconds(50), timeout: .seconds(8))
            #expect(outcome.closed, "the dribbling connection was not closed")
            let after = try #require(outcome.closedAfter)
            #expect(after >= .milliseconds(900) && after < .seconds(4), "closed after \(after)")
            #expect(outcome.status == nil, "a response came for an incomplete head: \(outcome.text)")

            // A connection that sends nothing at all is closed too; one that sends a full head is served.
            let idle = try await RawSockets.flood(port: h.port, count: 1, payload: Data(), timeout: .seconds(5))[0]
            #expect(idle.closed)
            #expect((idle.closedAfter ?? .zero) >= .milliseconds(900))
            let served = try await Self.exchange(h, Self.raw("GET", "/fn/billing/x", key: "nope"))
            #expect(served.status == 401)
        }
    }

    @Test("keep-alive still works: two pipelined requests are answered, then the idle connection is closed")
    func keepAlive() async throws {
        let config = IngressHarness.configJSON(requestTimeout: "5s", limits: "\"header_read_timeout\": \"1s\"")
        try await IngressHarness.with(configJSON: config) { h in
            let responder = try await h.startResponder { request in
                HTTPResponseData(status: 200, headers: [], body: Data("ok \(request.request.path)".utf8))
            }
            defer { responder.cancel() }
            let two = Self.raw("GET", "/fn/billing/one", close: false) + Self.raw("GET", "/fn/billing/two", close: false)
            let outcome = try await RawSockets.flood(port: h.port, count: 1, payload: two, timeout: .seconds(8))[0]
            #expect(outcome.text.components(separatedBy: "HTTP/1.1 200").count == 3, "\(outcome.text)")
            #expect(outcome.text.contains("ok /one") && outcome.text.contains("ok /two"))
            #expect(outcome.closed, "the idle keep-alive connection was not closed")
            #expect((outcome.closedAfter ?? .zero) >= .milliseconds(900))
        }
    }

    @Test("an identity with max_held_per_identity requests held gets 429 with Retry-After; others are not affected")
    func heldCap() async throws {
        let config = IngressHarness.configJSON(requestTimeout: "5s", limits: "\"max_held_per_identity\": 2")
        try await IngressHarness.with(configJSON: config) { h in
            let responder = try await h.startResponder { _ in HTTPResponseData(status: 200, headers: [], body: Data()) }
            defer { responder.cancel() }
            #expect(try await h.call("POST", "/fn/billing/x", bearer: TestKeys.alice).status == 200)
            let alice = CallerIdentity(id: "apikey:alice", groups: ["payments"], method: "api_key", person: "alice")
            let now = currentMillis()
            for i in 0..<2 {
                let id = "held-\(i)-\(UUID().uuidString.prefix(6))"
                let inspected = InspectedRequest(
                    metadata: RequestMetadata(
                        requestID: id, sessionID: id, identity: alice, connection: "billing",
                        receivedAtMillis: now, deadlineMillis: now + 5000, replyTo: "x"),
                    verdict: Verdict(decision: .hold), findings: [],
                    request: HTTPRequestData(method: "DELETE", path: "/x", query: "", headers: [], body: Data()))
                try await h.bus.publish(h.codec.hold(HoldRecord(
                    requestID: id, request: inspected, approvalsRequired: 1, createdAtMillis: now, expiresAtMillis: now + 3_600_000)))
            }
            var refused: IngressHarness.Answer? = nil
            let deadline = ContinuousClock.now + .seconds(5)
            while refused == nil, ContinuousClock.now < deadline {
                let answer = try await h.call("POST", "/fn/billing/x", bearer: TestKeys.alice)
                if answer.status == 429 { refused = answer } else { try await Task.sleep(for: .milliseconds(50)) }
            }
            let answer = try #require(refused, "alice was never refused")
            #expect(answer.json["error"] as? String == "overloaded")
            #expect(answer.header("Retry-After") == "30")
            #expect((answer.json["message"] as? String)?.contains("max_held_per_identity") == true)
            #expect(try await h.call("POST", "/fn/billing/x", bearer: TestKeys.carol).status == 200)
        }
    }

    @Test("every error code has a status and a one-sentence message")
    func errorCodes() {
        for code in ErrorCode.allCases {
            #expect((400...599).contains(code.status))
            #expect(code.message.hasSuffix(".") && code.message != "The request failed.", "\(code.rawValue)")
        }
        let body = HTTPResponseData.jsonError(status: 503, error: "unavailable", extra: ["request_id": "r", "error": "x", "message": ""])
        let json = try? JSONSerialization.jsonObject(with: body.body) as? [String: String]
        #expect(json?["error"] == "unavailable")
        #expect(json?["message"] == ErrorMessages.standard(for: "unavailable"))
        #expect(json?["request_id"] == "r")
        #expect(body.headers.first { $0.name == "Retry-After" }?.value == "1")
    }
}

@Suite("Ingress: fair limiter")
struct InFlightLimiterTests {
    @Test func perIdentityShareAndTotal() {
        let l = InFlightLimiter(limit: 3, perIdentity: 2)
        #expect(l.tryAcquire(identity: "a") == nil)
        #expect(l.tryAcquire(identity: "a") == nil)
        #expect(l.tryAcquire(identity: "a") == .identity)
        #expect(l.tryAcquire(identity: "b") == nil)
        #expect(l.tryAcquire(identity: "c") == .total)
        #expect(l.current == 3)
        l.release(identity: "a")
        #expect(l.current(identity: "a") == 1)
        #expect(l.tryAcquire(identity: "c") == nil)
        #expect(l.tryAcquire(identity: "a") == .total)
    }
}
