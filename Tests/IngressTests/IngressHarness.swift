import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import Hummingbird
import Pipeline
import Prometheus
import Testing

@testable import Ingress

/// The API keys the test configuration knows.
enum TestKeys {
    static let alice = "sk-test-alice-0123456789"  // groups: payments
    static let bob = "sk-test-bob-0123456789"  // groups: other
    static let carol = "sk-test-carol-0123456789"  // groups: payments

    static func sha256Hex(_ key: String) -> String {
        SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// One IngressService on 127.0.0.1:0 over an EmbeddedBus in a temp directory.
struct IngressHarness: Sendable {
    let bus: EmbeddedBus
    let codec: MessageCodec
    let context: StageContext
    let registry: PrometheusCollectorRegistry
    let options: IngressOptions
    let port: Int
    let adminPort: Int

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var adminURL: String { "http://127.0.0.1:\(adminPort)" }
    var topics: Topics { codec.topics }

    /// The config as JSON, with snake_case keys as in the YAML file.
    /// `limits`: extra top-level members, e.g. `"max_in_flight": 4, "body_read_timeout": "1s"`.
    static func configJSON(maxBodyBytes: Int = 64, requestTimeout: String = "1s", oidc: String? = nil, limits: String = "") -> String {
        """
        {
          "listen": "127.0.0.1:0",
          "admin_listen": "127.0.0.1:0",
          "max_body_bytes": \(maxBodyBytes),
          "request_timeout": "\(requestTimeout)",\(limits.isEmpty ? "" : "\n  \(limits),")
          "sealing": {"keys": [{"id": "k1", "secret": "env:SLUICE_TEST_UNUSED"}], "fingerprint_key": "env:SLUICE_TEST_UNUSED"},
          "identities": {
            "api_keys": [
              {"id": "alice", "sha256": "\(TestKeys.sha256Hex(TestKeys.alice))", "groups": ["payments"]},
              {"id": "bob", "sha256": "\(TestKeys.sha256Hex(TestKeys.bob))", "groups": ["other"]},
              {"id": "carol", "sha256": "\(TestKeys.sha256Hex(TestKeys.carol))", "groups": ["payments"]}
            ]\(oidc.map { ", \"oidc\": \($0)" } ?? "")
          },
          "connections": [
            {"name": "billing", "upstream": "http://127.0.0.1:9/", "allow_groups": ["payments"]},
            {"name": "admin", "upstream": "http://127.0.0.1:9/", "allow_groups": ["admins"]}
          ]
        }
        """
    }

    /// Runs `body` against a fresh Ingress; tears everything down afterwards.
    static func with(
        configJSON: String = configJSON(),
        options: IngressOptions = IngressOptions(instanceID: "ingress-test-1", replyGrace: .milliseconds(200)),
        _ body: (IngressHarness) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ingress-tests-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let bus = try EmbeddedBus(directory: directory, defaultPartitions: 3)
        let topics = Topics()
        try await bus.ensureTopics(topics.specs(partitions: 3))
        let sealer = try PayloadSealer(keys: [PayloadSealer.Key(id: "k1", bytes: (0..<32).map { _ in UInt8.random(in: 0...255) })])
        let codec = MessageCodec(sealer: sealer, topics: topics)
        var logger = Logger(label: "ingress-test")
        logger.logLevel = .warning
        let context = StageContext(bus: bus, codec: codec, logger: logger)
        let config = try JSONDecoder().decode(SluiceConfig.self, from: Data(configJSON.utf8))
        let registry = PrometheusCollectorRegistry()
        let service = try IngressService(config: config, context: context, registry: registry, options: options)

        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let (adminPorts, adminPortContinuation) = AsyncStream<Int>.makeStream()
        let server = Task {
            try await service.run(
                onListening: { port in portContinuation.yield(port) },
                onAdminListening: { port in adminPortContinuation.yield(port) })
        }
        var iterator = ports.makeAsyncIterator()
        var adminIterator = adminPorts.makeAsyncIterator()
        guard let adminPort = await adminIterator.next(), let port = await iterator.next() else {
            server.cancel()
            throw HarnessError("server did not start")
        }
        let harness = IngressHarness(bus: bus, codec: codec, context: context, registry: registry, options: options, port: port, adminPort: adminPort)
        do {
            try await body(harness)
        } catch {
            server.cancel()
            _ = await server.result
            await bus.shutdown()
            throw error
        }
        server.cancel()
        let result = await server.result
        await bus.shutdown()
        try result.get()
    }

    // MARK: - HTTP

    struct Answer: Sendable {
        var status: Int
        var headers: [(String, String)]
        var body: Data

        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Sends a request to the Ingress. `bearer` sets `Authorization: Bearer <bearer>`.
    func call(
        _ method: String = "POST", _ path: String, bearer: String? = nil, headers: [(String, String)] = [],
        body: Data? = nil, streamBody: Bool = false, admin: Bool = false
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: (admin ? adminURL : baseURL) + path)
        request.method = .RAW(value: method)
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        if let body {
            if streamBody {
                let chunks = stride(from: 0, to: body.count, by: 16).map { ByteBuffer(bytes: body[$0..<min($0 + 16, body.count)]) }
                request.body = .stream(chunks.async, length: .unknown)
            } else {
                request.body = .bytes(ByteBuffer(bytes: body))
            }
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: Data(bytes.readableBytesView))
    }

    // MARK: - Bus

    /// Every message on `topic` (from the beginning) that arrives within `window`.
    func messages(on topic: String, window: Duration = .milliseconds(300)) async throws -> [BusMessage] {
        let subscription = try await bus.read(topic: topic, from: .beginning)
        let collector = Task {
            var out: [BusMessage] = []
            for try await m in subscription { out.append(m) }
            return out
        }
        try await Task.sleep(for: window)
        await subscription.close()
        collector.cancel()
        return try await collector.value
    }

    /// Waits until `count` messages are on `topic` (or fails after `timeout`).
    func waitForMessages(on topic: String, count: Int, timeout: Duration = .seconds(5)) async throws -> [BusMessage] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let found = try await messages(on: topic, window: .milliseconds(100))
            if found.count >= count { return found }
        }
        throw HarnessError("fewer than \(count) messages on \(topic)")
    }

    /// Plays the Forwarder: answers every request on `requests` with `respond`,
    /// publishing the reply keyed by `replyKey` (default: the request's `replyTo`).
    func startResponder(
        replyKey: String? = nil,
        _ respond: @escaping @Sendable (InspectionRequest) -> HTTPResponseData
    ) async throws -> Task<Void, any Error> {
        let subscription = try await bus.read(topic: topics.requests, from: .beginning)
        let codec = codec
        let bus = bus
        return Task {
            try await withTaskCancellationHandler {
                for try await message in subscription {
                    let request = try codec.open(InspectionRequest.self, from: message)
                    let reply = Reply(requestID: request.metadata.requestID, sessionID: request.metadata.sessionID, response: respond(request))
                    try await bus.publish(codec.reply(reply, to: replyKey ?? request.metadata.replyTo))
                }
            } onCancel: {
                Task { await subscription.close() }
            }
        }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Array where Element: Sendable {
    /// This array as an async sequence.
    var async: AsyncStream<Element> {
        AsyncStream { continuation in
            for e in self { continuation.yield(e) }
            continuation.finish()
        }
    }
}
