import BusContract
import AsyncHTTPClient
import Detection
import Foundation
import Logging
import Pipeline
@testable import Forwarder

/// An embedded bus in a temporary directory, a codec over a fixed test key, a shared
/// HTTP client, and helpers to publish inspected requests and read what came back.
struct ForwarderTestEnv {
    static let token = "tok-UPSTREAM-credential-42"

    /// One client for every test, never shut down: a failed `#require` cannot leak it into a
    /// deinit trap, and it mirrors production (one shared client).
    static let sharedHTTP = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: ForwarderService.recommendedHTTPClientConfiguration(connectTimeout: .milliseconds(500)))

    let root: URL
    let bus: EmbeddedBus
    let context: StageContext
    let http: HTTPClient

    init(partitions: Int = 3) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-forwarder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        bus = try EmbeddedBus(directory: root.appendingPathComponent("bus"), defaultPartitions: partitions)
        let sealer = try PayloadSealer(keys: [PayloadSealer.Key(id: "test", bytes: Array(repeating: 7, count: 32))])
        var logger = Logger(label: "forwarder-test")
        logger.logLevel = .debug
        context = StageContext(bus: bus, codec: MessageCodec(sealer: sealer, topics: Topics()), logger: logger)
        http = Self.sharedHTTP
    }

    /// A config with one connection `billing` to `upstream`, injecting `Authorization: Bearer <token>`.
    func config(upstream: String, scanResponses: Bool = true, timeout: String? = nil) throws -> SluiceConfig {
        let json = """
        {"data_dir": "\(root.path)/data",
         "sealing": {"keys": [{"id": "test", "secret": "env:UNUSED"}], "fingerprint_key": "env:UNUSED"},
         "connections": [{"name": "billing", "upstream": "\(upstream)", "allow_groups": ["ci"],
                          "credentials": {"header": "Authorization", "value": "Bearer env:BILLING_TOKEN"},
                          \(timeout.map { "\"timeout\": \"\($0)\"," } ?? "")
                          "policy": {"scan_responses": \(scanResponses)}}]}
        """
        return try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))
    }

    func service(upstream: String, scanResponses: Bool = true, timeout: String? = nil) throws -> ForwarderService {
        try ForwarderService(
            config: config(upstream: upstream, scanResponses: scanResponses, timeout: timeout), context: context,
            engine: try Self.engine(), httpClient: http,
            options: ForwarderOptions(initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200), environment: ["BILLING_TOKEN": Self.token]))
    }

    static func engine() throws -> DetectionEngine {
        try DetectionEngine(fingerprintKey: Array(repeating: 3, count: 32))
    }

    func inspected(
        id: String = "r-\(UUID().uuidString.prefix(8))", decision: Decision = .allow, method: String = "POST",
        path: String = "/v1/charges", query: String = "", headers: [HTTPField] = [HTTPField("Content-Type", "application/json")],
        body: String = "{\"amount\":10}", deadlineIn: Int64 = 5_000
    ) -> InspectedRequest {
        let now = currentMillis()
        return InspectedRequest(
            metadata: RequestMetadata(
                requestID: id, sessionID: "s-\(id)", identity: CallerIdentity(id: "apikey:ci-bot", groups: ["ci"], method: "api_key", person: "ci-bot"),
                connection: "billing", receivedAtMillis: now, deadlineMillis: now + deadlineIn, replyTo: "ingress-1"),
            verdict: Verdict(decision: decision), findings: [],
            request: HTTPRequestData(method: method, path: path, query: query, headers: headers, body: Data(body.utf8)))
    }

    func publish(_ request: InspectedRequest) async throws {
        try await bus.publish(try context.codec.inspected(request))
    }

    /// Every reply published so far, opened.
    func replies() async throws -> [Reply] {
        try await drain(context.topics.replies).map { try context.codec.open(Reply.self, from: $0) }
    }

    /// Every audit event published so far, then every outcome recorded in the ledger (markers left out).
    func auditEvents() async throws -> [AuditEvent] {
        try await drain(context.topics.audit).map { try context.codec.decodeAudit($0) }
            + drain(context.topics.outcomes).filter { !TopicFollower.isMarker($0) }.map { try context.codec.decodeAudit($0) }
    }

    func deadletters() async throws -> [BusMessage] { try await drain(context.topics.deadletter) }

    /// Reads every message currently in `topic` (stops after a short quiet period).
    func drain(_ topic: String) async throws -> [BusMessage] {
        let subscription = try await bus.read(topic: topic, from: .beginning)
        let collector = Task { () -> [BusMessage] in
            var out: [BusMessage] = []
            for try await m in subscription { out.append(m) }
            return out
        }
        try await Task.sleep(for: .milliseconds(50))
        await subscription.close()
        return try await collector.value
    }

    func cleanUp() async {
        await bus.shutdown()
        try? FileManager.default.removeItem(at: root)
    }
}

