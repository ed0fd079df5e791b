import Detection
import Foundation
import Inspector
import Logging
import Pipeline
import Testing

/// The Inspector on a real embedded bus with the real Detection engine.
@Suite("Inspector service", .serialized)
struct InspectorServiceTests {
    static let sealer = try! PayloadSealer(keys: [PayloadSealer.Key(id: "k1", bytes: Array(repeating: 5, count: 32))])
    static let codec = MessageCodec(sealer: sealer, topics: Topics())

    /// A fake AWS access key id, made at run time.
    static let awsKey = "AKIA" + String((0..<16).map { _ in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")[Int.random(in: 0..<32)] })

    static func config() throws -> SluiceConfig {
        let json = """
            {"sealing": {"keys": [{"id": "k1", "secret": "env:X"}], "fingerprint_key": "env:Y"},
             "connections": [
               {"name": "soft", "upstream": "http://127.0.0.1:1", "allow_groups": ["ci"], "policy": {"on_secret": "mask"}},
               {"name": "hard", "upstream": "http://127.0.0.1:1", "allow_groups": ["ci"], "policy": {"on_secret": "block"}},
               {"name": "people", "upstream": "http://127.0.0.1:1", "allow_groups": ["ci"], "policy": {"on_secret": "mask", "classes": ["credential", "pii"]}}
             ]}
            """
        return try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))
    }

    struct Harness {
        let bus: EmbeddedBus
        let task: Task<Void, any Error>

        init() async throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("inspector-\(UUID().uuidString)")
            bus = try EmbeddedBus(directory: dir, defaultPartitions: 2)
            try await bus.ensureTopics(Topics().specs(partitions: 2))
            let service = try InspectorService(
                config: try InspectorServiceTests.config(),
                context: StageContext(bus: bus, codec: InspectorServiceTests.codec, logger: Logger(label: "test")),
                engine: try DetectionEngine(fingerprintKey: Array(repeating: 9, count: 32)))
            task = Task { try await service.run() }
        }

        /// A request's deadline unless a test sets one: far enough that an Inspector starting on
        /// saturated cores (a parallel test run) is never late; the deadline tests set their own.
        static let generousDeadline: Int64 = 120_000

        func send(connection: String, method: String = "POST", path: String = "/x", query: String = "",
                  headers: [HTTPField] = [HTTPField("Content-Type", "application/json")], body: String,
                  deadline: Int64 = currentMillis() + generousDeadline) async throws -> RequestMetadata {
            try await send(connection: connection, method: method, path: path, query: query, headers: headers,
                           body: Array(body.utf8), deadline: deadline)
        }

        func send(connection: String, method: String = "POST", path: String = "/x", query: String = "",
                  headers: [HTTPField], body: [UInt8],
                  deadline: Int64 = currentMillis() + generousDeadline) async throws -> RequestMetadata {
            let id = UUID().uuidString.lowercased()
            let meta = RequestMetadata(
                requestID: id, sessionID: "s-\(id)", identity: CallerIdentity(id: "ci-bot", groups: ["ci"], method: "api_key"),
                connection: connection, receivedAtMillis: currentMillis(), deadlineMillis: deadline, replyTo: "ingress-1")
            let request = InspectionRequest(
                metadata: meta, request: HTTPRequestData(method: method, path: path, query: query, headers: headers, body: Data(body)))
            try await bus.publish(try InspectorServiceTests.codec.request(request))
            return meta
        }

        /// The first message on `topic` whose request id is `id`, within a few seconds.
        func first(on topic: String, requestID id: String, timeout: Duration = .seconds(30)) async throws -> BusMessage? {
            let reader = try await bus.read(topic: topic, from: .beginning)
            let found = Task { () -> BusMessage? in
                for try await m in reader where m.header(MessageHeader.requestID) == Array(id.utf8) { return m }
                return nil
            }
            let timer = Task {
                try await Task.sleep(for: timeout)
                await reader.close()
            }
            let result = try await found.value
            timer.cancel()
            await reader.close()
            return result
        }

        func stop() async {
            task.cancel()
            _ = try? await task.value
            await bus.shutdown()
        }
    }

    @Test func cleanRequestIsAllowedUnchanged() async throws {
        let h = try await Harness()
        let meta = try await h.send(connection: "soft", body: "{\"a\":1}")
        let m = try #require(try await h.first(on: Topics().inspected, requestID: meta.requestID))
        let inspected = try Self.codec.open(InspectedRequest.self, from: m)
        #expect(inspected.verdict.decision == .allow)
        #expect(inspected.findings.isEmpty)
        #expect(inspected.request.body == Data("{\"a\":1}".utf8))
        await h.stop()
    }

    @Test func secretsAreMaskedInBodyQueryAndHeadersAndNeverPublishedInClear() async throws {
        let h = try await Harness()
        let meta = try await h.send(
            connection: "soft", query: "key=\(Self.awsKey)&page=2",
            headers: [HTTPField("Content-Type", "application/json"), HTTPField("X-Cred", Self.awsKey)],
            body: "{\"env\":{\"AWS_ACCESS_KEY_ID\":\"\(Self.awsKey)\"}}")
        let m = try #require(try await h.first(on: Topics().inspected, requestID: meta.requestID))
        let inspected = try Self.codec.open(InspectedRequest.self, from: m)
        #expect(inspected.verdict.decision == .mask)
        #expect(Set(inspected.findings.map(\.location)) == ["body", "query", "header:x-cred"])
        let body = String(decoding: inspected.request.body, as: UTF8.self)
        #expect(!body.contains(Self.awsKey))
        #expect(body.contains("[MASKED:aws-access-key-id:"))
        #expect((try? JSONSerialization.jsonObject(with: inspected.request.body)) != nil, "masked JSON is invalid")
        #expect(!inspected.request.query.contains(Self.awsKey))
        #expect(inspected.request.query.hasPrefix("key=%5BMASKED%3Aaws-access-key-id%3A"))
        #expect(inspected.request.query.hasSuffix("&page=2"))
        #expect(inspected.request.header("X-Cred")?.contains(Self.awsKey) == false)
        // The audit event names rule, location and fingerprint only.
        let audit = try #require(try await h.first(on: Topics().audit, requestID: meta.requestID))
        #expect(!String(decoding: audit.value, as: UTF8.self).contains(Self.awsKey))
        #expect(String(decoding: audit.value, as: UTF8.self).contains("aws-access-key-id"))
        await h.stop()
    }

    @Test("a body packed with secrets: every one is masked, the messages list the first 256 and count the rest")
    func findingsCarriedAreCapped() async throws {
        let h = try await Harness()
        let keys = (0..<300).map { _ in "AKIA" + String((0..<16).map { _ in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")[Int.random(in: 0..<32)] }) }
        let meta = try await h.send(connection: "soft", body: "{\"keys\":[" + keys.map { "\"\($0)\"" }.joined(separator: ",") + "]}")
        let m = try #require(try await h.first(on: Topics().inspected, requestID: meta.requestID))
        let inspected = try Self.codec.open(InspectedRequest.self, from: m)
        #expect(inspected.verdict.decision == .mask)
        #expect(inspected.findings.count == FindingsCarried.limit)
        #expect(inspected.verdict.reasons.contains { $0.hasPrefix("300 findings: the first 256 are listed, 44 more") })
        let body = String(decoding: inspected.request.body, as: UTF8.self)
        #expect(body.components(separatedBy: "[MASKED:aws-access-key-id:").count - 1 == keys.count)
        #expect(!keys.contains { body.contains($0) })
        let audit = try Self.codec.decodeAudit(try #require(try await h.first(on: Topics().audit, requestID: meta.requestID)))
        #expect(audit.findings?.count == FindingsCarried.limit)
        #expect(audit.details?["findings_total"] == "300")
        #expect(audit.details?["findings_omitted"] == "44")
        await h.stop()
    }

    @Test("a body built to make scanning slow is blocked, even where secrets are only masked, and the caller is told why")
    func bodyTooCostlyToInspectIsBlocked() async throws {
        let h = try await Harness()
        let meta = try await h.send(connection: "soft", body: "{\"a\":\"" + String(repeating: "token=", count: 40_000) + "\"}")
        #expect(try await blockedRule(h, meta) == "inspection-limit-exceeded")
        let reply = try Self.codec.open(Reply.self, from: try #require(try await h.first(on: Topics().replies, requestID: meta.requestID)))
        let json = try JSONSerialization.jsonObject(with: reply.response.body) as? [String: String]
        #expect(json?["message"]?.contains("could not be inspected whole") == true)
        await h.stop()
    }

    @Test func blockPolicyRepliesForbiddenAndPublishesNoVerdict() async throws {
        let h = try await Harness()
        let meta = try await h.send(connection: "hard", body: "{\"k\":\"\(Self.awsKey)\"}")
        let m = try #require(try await h.first(on: Topics().replies, requestID: meta.requestID))
        #expect(m.keyString == "ingress-1")
        let reply = try Self.codec.open(Reply.self, from: m)
        #expect(reply.response.status == 403)
        let json = try JSONSerialization.jsonObject(with: reply.response.body) as? [String: String]
        #expect(json?["error"] == "blocked")
        #expect(json?["rule"] == "aws-access-key-id")
        #expect(json?["request_id"] == meta.requestID)
        #expect(try await h.first(on: Topics().inspected, requestID: meta.requestID, timeout: .milliseconds(500)) == nil)
        await h.stop()
    }

    /// A blocked request: where its secret is, the rule that blocks it, and what the masked copy's body must be.
    struct BlockCase: Sendable, CustomStringConvertible {
        var description: String
        var connection: String
        var path = "/x"
        var query = ""
        var headers = [HTTPField("Content-Type", "application/json")]
        var body: [UInt8]
        var rule: String
        /// The masked copy's body: `nil` when it must hold a mask (and not the secret), else exactly this.
        var maskedBody: String?
    }

    static let blockCases: [BlockCase] = [
        BlockCase(
            description: "secret in body, query and header", connection: "hard", query: "key=\(awsKey)",
            headers: [HTTPField("Content-Type", "application/json"), HTTPField("X-Cred", awsKey)],
            body: Array("{\"k\":\"\(awsKey)\"}".utf8), rule: "aws-access-key-id"),
        BlockCase(
            description: "non-canonical path, clean body", connection: "soft", path: "/x/../%61dmin//users", body: Array("{\"a\":1}".utf8),
            rule: "non-canonical-path", maskedBody: "{\"a\":1}"),
        // Never scanned, so never recorded: the body is left out of the masked copy.
        BlockCase(
            description: "undecodable body", connection: "soft",
            headers: [HTTPField("Content-Type", "application/json"), HTTPField("Content-Encoding", "br")],
            body: Array("not brotli \(awsKey)".utf8), rule: "undecodable-body", maskedBody: ""),
    ]

    @Test("a block reply carries the masked request (for the recording) and its 403 body never holds the request", arguments: blockCases)
    func blockReplyCarriesTheMaskedRequest(_ c: BlockCase) async throws {
        let h = try await Harness()
        let meta = try await h.send(connection: c.connection, path: c.path, query: c.query, headers: c.headers, body: c.body)
        let m = try #require(try await h.first(on: Topics().replies, requestID: meta.requestID))
        let reply = try Self.codec.open(Reply.self, from: m)
        #expect(reply.response.status == 403)
        let json = try JSONSerialization.jsonObject(with: reply.response.body) as? [String: String]
        #expect(json?["rule"] == c.rule)
        let responseText = String(decoding: reply.response.body, as: UTF8.self)
        #expect(!responseText.contains(Self.awsKey) && !responseText.contains("\"k\"") && !responseText.contains("\"a\""))
        let blocked = try #require(reply.blockedRequest)
        #expect(blocked.connection == c.connection && blocked.request.method == "POST")
        let body = String(decoding: blocked.request.body, as: UTF8.self)
        if let maskedBody = c.maskedBody {
            #expect(body == maskedBody)
        } else {
            #expect(body.contains("[MASKED:aws-access-key-id:"))
        }
        // The secret is nowhere in the masked copy, nor in the sealed message's plaintext.
        #expect(!body.contains(Self.awsKey) && !blocked.request.query.contains(Self.awsKey))
        #expect(!blocked.request.headers.contains { $0.value.contains(Self.awsKey) })
        let plain = try Self.sealer.open(m, associatedData: meta.requestID)
        #expect(!String(decoding: plain, as: UTF8.self).contains(Self.awsKey))
        await h.stop()
    }

    /// The 403 reply's `rule` for a request, and that nothing was passed on.
    func blockedRule(_ h: Harness, _ meta: RequestMetadata) async throws -> String? {
        let m = try #require(try await h.first(on: Topics().replies, requestID: meta.requestID))
        let reply = try Self.codec.open(Reply.self, from: m)
        #expect(reply.response.status == 403)
        #expect(try await h.first(on: Topics().inspected, requestID: meta.requestID, timeout: .milliseconds(500)) == nil)
        let json = try JSONSerialization.jsonObject(with: reply.response.body) as? [String: String]
        #expect(json?["error"] == "blocked")
        return json?["rule"]
    }

    @Test func nonCanonicalPathIsBlockedEvenIfTheIngressLetItThrough() async throws {
        let h = try await Harness()
        let meta = try await h.send(connection: "soft", path: "/x/../%61dmin//users", body: "{}")
        #expect(try await blockedRule(h, meta) == "non-canonical-path")
        await h.stop()
    }

    @Test func secretInTheSecondGzipMemberIsBlocked() async throws {
        let h = try await Harness()
        let body = RequestInspectorCodingsTests.encode(.gzip, Array("{\"a\":1,".utf8))
            + RequestInspectorCodingsTests.encode(.gzip, Array("\"k\":\"\(Self.awsKey)\"}".utf8))
        let meta = try await h.send(
            connection: "hard", headers: [HTTPField("Content-Type", "application/json"), HTTPField("Content-Encoding", "gzip")],
            body: body)
        #expect(try await blockedRule(h, meta) == "aws-access-key-id")
        await h.stop()
    }

    @Test func undecodableBodyIsBlocked() async throws {
        let h = try await Harness()
        let meta = try await h.send(
            connection: "soft", headers: [HTTPField("Content-Type", "application/json"), HTTPField("Content-Encoding", "br")],
            body: "not brotli")
        #expect(try await blockedRule(h, meta) == "undecodable-body")
        await h.stop()
    }

    @Test func piiIsMaskedOnlyWhereTheConnectionAsksForIt() async throws {
        let h = try await Harness()
        let body = "{\"contact\":\"maria.keller@acme-corp.io\"}"
        let plain = try await h.send(connection: "soft", body: body)
        let people = try await h.send(connection: "people", body: body)
        let a = try Self.codec.open(InspectedRequest.self, from: try #require(try await h.first(on: Topics().inspected, requestID: plain.requestID)))
        let b = try Self.codec.open(InspectedRequest.self, from: try #require(try await h.first(on: Topics().inspected, requestID: people.requestID)))
        #expect(a.verdict.decision == .allow)
        #expect(b.verdict.decision == .mask)
        #expect(!String(decoding: b.request.body, as: UTF8.self).contains("maria.keller@acme-corp.io"))
        await h.stop()
    }

    @Test func expiredRequestIsRecordedExpiredAndNeverPassedOn() async throws {
        let h = try await Harness()
        let meta = try await h.send(connection: "soft", body: "{}", deadline: currentMillis() - 1)
        // Ended through the outcome ledger, once.
        let outcome = try #require(try await h.first(on: Topics().outcomes, requestID: meta.requestID))
        let event = try Self.codec.decodeAudit(outcome)
        #expect(event.kind == .expired)
        #expect(try await h.first(on: Topics().inspected, requestID: meta.requestID, timeout: .milliseconds(500)) == nil)
        await h.stop()
    }

    @Test func tamperedMessageGoesToDeadletter() async throws {
        let h = try await Harness()
        let meta = RequestMetadata(
            requestID: "r-tampered", sessionID: "s", identity: CallerIdentity(id: "x", groups: [], method: "api_key"),
            connection: "soft", receivedAtMillis: 0, deadlineMillis: currentMillis() + 10_000, replyTo: "i")
        var message = try Self.codec.request(InspectionRequest(
            metadata: meta, request: HTTPRequestData(method: "GET", path: "/", query: "", headers: [], body: Data())))
        message.value[message.value.count / 2] ^= 0x40
        try await h.bus.publish(message)
        let dead = try #require(try await h.first(on: Topics().deadletter, requestID: "r-tampered"))
        #expect(dead.header(MessageHeader.originalTopic) == Array(Topics().requests.utf8))
        #expect(String(decoding: dead.header(MessageHeader.reason) ?? [], as: UTF8.self).contains("authentication"))
        await h.stop()
    }
}
