import Foundation
import Pipeline
import Testing

@testable import Ingress

@Suite("Ingress: publishing and replies")
struct IngressRoundTripTests {
    @Test("the envelope carries method, path, query, headers and body exactly, sealed, without Authorization")
    func envelope() async throws {
        try await IngressHarness.with { h in
            let body = Data("{\"note\":\"clear-text-marker-7731\"}".utf8)
            let answer = try await h.call(
                "PUT", "/fn/billing/v1/a%3ab/c%20d?x=1&y=%20z&x=%32", bearer: TestKeys.alice,
                headers: [("X-Custom", "yes"), ("X-Sluice-Session", "sess-42:a.b_c"), ("Connection", "X-Drop-Me"), ("X-Drop-Me", "1"), ("Proxy-Authorization", "p")],
                body: body)
            #expect(answer.status == 504)  // nobody replies in this test
            #expect(answer.header("X-Sluice-Session") == "sess-42:a.b_c")

            let raw = try await h.waitForMessages(on: h.topics.requests, count: 1)
            #expect(raw.count == 1)
            let message = try #require(raw.first)
            #expect(message.keyString == "sess-42:a.b_c")
            let bytes = message.value + message.headers.flatMap(\.value)
            #expect(bytes.firstRange(of: Array("clear-text-marker-7731".utf8)) == nil)
            #expect(bytes.firstRange(of: Array(TestKeys.alice.utf8)) == nil)

            let request = try h.codec.open(InspectionRequest.self, from: message)
            #expect(request.request.method == "PUT")
            // The canonical path and query: escapes upper-cased, unreserved decoded, dot segments removed.
            #expect(request.request.path == "/v1/a%3Ab/c%20d")
            #expect(request.request.query == "x=1&y=%20z&x=2")
            #expect(request.request.body == body)
            #expect(request.request.header("X-Custom") == "yes")
            #expect(request.request.header("Authorization") == nil)
            for hop in ["Host", "Content-Length", "Connection", "X-Drop-Me", "Proxy-Authorization", "Transfer-Encoding"] {
                #expect(request.request.header(hop) == nil, "\(hop) crossed the Ingress")
            }
            let m = request.metadata
            #expect(m.requestID == answer.header("X-Sluice-Request-Id"))
            #expect(m.requestID == m.requestID.lowercased() && UUID(uuidString: m.requestID) != nil)
            #expect(m.sessionID == "sess-42:a.b_c")
            #expect(m.identity == CallerIdentity(id: "apikey:alice", groups: ["payments"], method: "api_key", person: "alice"))
            #expect(m.connection == "billing")
            #expect(m.replyTo == "ingress-test-1")
            #expect(m.deadlineMillis - m.receivedAtMillis == 1000)

            let audit = try await h.waitForMessages(on: h.topics.audit, count: 1)
            let event = try h.codec.decodeAudit(try #require(audit.first))
            #expect(event.kind == .requestReceived)
            #expect(event.requestID == m.requestID)
            #expect(event.sessionID == m.sessionID)
            #expect(event.path == nil)
            let auditText = String(decoding: audit[0].value, as: UTF8.self)
            for leak in ["a%3Ab", "a%3ab", "x=1", "clear-text-marker", "yes", TestKeys.alice] {
                #expect(!auditText.contains(leak), "audit event contains \(leak)")
            }
        }
    }

    @Test("a malformed X-Sluice-Session is refused with 400 bad_session stating the form; a call without one is recorded and answered under its request id")
    func malformedSession() async throws {
        try await IngressHarness.with { h in
            let refused = try await h.call("GET", "/fn/billing/x", bearer: TestKeys.alice, headers: [("X-Sluice-Session", "bad session/../x")])
            #expect(refused.status == 400)
            let json = try JSONSerialization.jsonObject(with: refused.body) as? [String: String]
            #expect(json?["error"] == "bad_session")
            #expect(json?["message"]?.contains("1-128 characters of A-Z, a-z, 0-9") == true)
            #expect(refused.header("X-Sluice-Session") == nil)
            #expect(refused.header("X-Sluice-Request-Id") != nil)

            let answer = try await h.call("GET", "/fn/billing/x", bearer: TestKeys.alice)
            #expect(answer.status == 504)  // nobody replies in this test
            let requestID = try #require(answer.header("X-Sluice-Request-Id"))
            #expect(answer.header("X-Sluice-Session") == requestID)
            // Only the second call was published: the refused one published nothing but its audit.
            let messages = try await h.waitForMessages(on: h.topics.requests, count: 1)
            #expect(messages.count == 1)
            let request = try h.codec.open(InspectionRequest.self, from: try #require(messages.first))
            #expect(request.metadata.sessionID == requestID)
        }
    }

    @Test("a reply keyed for this instance reaches the caller with status, headers and body")
    func reply() async throws {
        try await IngressHarness.with { h in
            let responder = try await h.startResponder { request in
                HTTPResponseData(
                    status: 201,
                    headers: [HTTPField("X-Upstream", "1"), HTTPField("Connection", "close"), HTTPField("Transfer-Encoding", "chunked"),
                              HTTPField("Content-Type", "text/plain"), HTTPField("X-Sluice-Request-Id", "forged")],
                    body: Data("echo:\(request.request.method) \(request.request.path)?\(request.request.query)".utf8))
            }
            defer { responder.cancel() }
            let answer = try await h.call("POST", "/fn/billing/items?id=7", bearer: TestKeys.alice, body: Data("{}".utf8))
            #expect(answer.status == 201)
            #expect(answer.text == "echo:POST /items?id=7")
            #expect(answer.header("X-Upstream") == "1")
            #expect(answer.header("Content-Type") == "text/plain")
            #expect(answer.header("Transfer-Encoding") == nil)
            let requestID = try #require(answer.header("X-Sluice-Request-Id"))
            #expect(requestID != "forged")
            #expect(answer.headers.filter { $0.0.lowercased() == "x-sluice-request-id" }.count == 1)
        }
    }

    @Test("a reply keyed for another instance is ignored")
    func otherInstance() async throws {
        try await IngressHarness.with { h in
            let responder = try await h.startResponder(replyKey: "ingress-someone-else") { _ in
                HTTPResponseData(status: 200, headers: [], body: Data("not for you".utf8))
            }
            defer { responder.cancel() }
            let answer = try await h.call("GET", "/fn/billing/x", bearer: TestKeys.alice)
            #expect(answer.status == 504)
            #expect(try await h.messages(on: h.topics.deadletter).isEmpty)
        }
    }

    @Test("a tampered reply goes to deadletter and the caller times out")
    func tampered() async throws {
        try await IngressHarness.with { h in
            let task = Task { try await h.call("GET", "/fn/billing/x", bearer: TestKeys.alice) }
            let message = try #require(try await h.waitForMessages(on: h.topics.requests, count: 1).first)
            let request = try h.codec.open(InspectionRequest.self, from: message)
            var reply = try h.codec.reply(
                Reply(requestID: request.metadata.requestID, sessionID: request.metadata.sessionID,
                      response: HTTPResponseData(status: 200, headers: [], body: Data("x".utf8))),
                to: request.metadata.replyTo)
            reply.value[reply.value.count - 1] ^= 0x01
            try await h.bus.publish(reply)
            #expect(try await task.value.status == 504)
            let dead = try await h.waitForMessages(on: h.topics.deadletter, count: 1)
            #expect(dead.first?.header(MessageHeader.reason).map { String(decoding: $0, as: UTF8.self) }?.contains("authentication") == true)
        }
    }

    @Test("many concurrent callers each get their own reply")
    func concurrent() async throws {
        let options = IngressOptions(instanceID: "ingress-test-many", replyGrace: .milliseconds(200))
        try await IngressHarness.with(configJSON: IngressHarness.configJSON(requestTimeout: "10s"), options: options) { h in
            let responder = try await h.startResponder { request in
                HTTPResponseData(status: 200, headers: [], body: request.request.body)
            }
            defer { responder.cancel() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        let answer = try await h.call("POST", "/fn/billing/n", bearer: TestKeys.alice, body: Data("n=\(i)".utf8))
                        #expect(answer.status == 200)
                        #expect(answer.text == "n=\(i)")
                    }
                }
                try await group.waitForAll()
            }
        }
    }
}

@Suite("Ingress: units")
struct IngressUnitTests {
    @Test("request targets keep the rest and query exactly")
    func targets() throws {
        let t = FunctionTarget(requestTarget: "/fn/my%2Dconn/a%2Fb//c?x=%41&&y")
        #expect(t == FunctionTarget(connection: "my%2Dconn", rest: "/a%2Fb//c", query: "x=%41&&y"))
        #expect(throws: CanonicalPath.Refusal.self) { try t?.canonical() }  // %2F in the path
        let ok = FunctionTarget(requestTarget: "/fn/my%2Dconn/a%3a//c/../d?x=%41&&y")
        #expect(try ok?.canonical() == FunctionTarget.Canonical(connection: "my-conn", path: "/a%3A/d", query: "x=A&&y"))
        #expect(FunctionTarget(requestTarget: "/fn/conn") == FunctionTarget(connection: "conn", rest: "/", query: ""))
        #expect(FunctionTarget(requestTarget: "/fn/conn?q") == FunctionTarget(connection: "conn", rest: "/", query: "q"))
        #expect(FunctionTarget(requestTarget: "/fn//x") == nil)
        #expect(FunctionTarget(requestTarget: "/healthz") == nil)
    }

    @Test("session ids: the caller's when well formed, the request id when absent, refused otherwise", arguments: [
        // (header value, session used; nil = 400 bad_session)
        (String?.none, String?.some("req-1")),
        ("abc-1.2_3:4", "abc-1.2_3:4"),
        (String(repeating: "a", count: 128), String(repeating: "a", count: 128)),
        ("a..b", "a..b"),
        (".hidden", ".hidden"),
        ("", nil),
        (String(repeating: "a", count: 129), nil),
        ("a/b", nil),
        ("bad session/../x", nil),
        (".", nil),
        ("..", nil),
        ("...", nil),
        ("a b", nil),
        ("a\tb", nil),
        ("a\u{7F}b", nil),
        ("a\u{0}b", nil),
        ("ä", nil),
        ("s1, s2", nil),  // two X-Sluice-Session fields, as HTTPFields joins them
    ])
    func sessions(value: String?, used: String?) {
        #expect(IngressHeaders.sessionID(value, default: "req-1") == used)
    }

    @Test("JWT shape detection")
    func shapes() {
        #expect(JWTShape.parse("eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJ9.c2ln") == JWTShape(alg: "ES256", kid: "k1"))
        #expect(JWTShape.parse("sk-test.abc.def") == nil)  // header is not JSON
        #expect(JWTShape.parse("a.b") == nil)
        #expect(JWTShape.parse("eyJhbGciOiJFUzI1NiJ9..c2ln") == nil)
        #expect(bearerCredential(fromAuthorization: "bearer  tok ") == "tok")
        #expect(bearerCredential(fromAuthorization: "Basic tok") == nil)
        #expect(bearerCredential(fromAuthorization: "Bearer ") == nil)
    }

    @Test("the reply registry hands over early replies and refuses late ones")
    func registry() async {
        let registry = ReplyRegistry()
        let reply = Reply(requestID: "r1", sessionID: "s", response: HTTPResponseData(status: 200, headers: [], body: Data()))
        await registry.register("r1")
        #expect(await registry.deliver(reply))
        #expect(await registry.wait(for: "r1", timeout: .seconds(1)) == reply)
        #expect(await registry.deliver(reply) == false)
        await registry.register("r2")
        #expect(await registry.wait(for: "r2", timeout: .milliseconds(50)) == nil)
        #expect(await registry.deliver(Reply(requestID: "r2", sessionID: "s", response: reply.response)) == false)
        #expect(await registry.count == 0)
    }

    @Test("API keys are checked against every digest")
    func apiKeys() async throws {
        let auth = try APIKeyAuthenticator(keys: [
            .init(id: "a", sha256: TestKeys.sha256Hex("k-a"), groups: ["g1"]),
            .init(id: "b", sha256: TestKeys.sha256Hex("k-b"), groups: []),
        ])
        #expect(try await auth.authenticate(bearer: "k-b").id == "apikey:b")
        #expect(try await auth.authenticate(bearer: "k-a").groups == ["g1"])
        await #expect(throws: AuthenticationError.self) { try await auth.authenticate(bearer: "k-c") }
    }
}
