import BusContract
import Crypto
import Foundation
import Logging
import Pipeline

/// A temporary data directory with an embedded bus and a codec over a fixed test key.
struct RecorderTestEnv {
    let root: URL
    let bus: EmbeddedBus
    let context: StageContext

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-recorder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        bus = try EmbeddedBus(directory: root.appendingPathComponent("bus"), defaultPartitions: 3)
        let sealer = try PayloadSealer(keys: [PayloadSealer.Key(id: "test", bytes: Array(repeating: 7, count: 32))])
        context = StageContext(bus: bus, codec: MessageCodec(sealer: sealer, topics: Topics()), logger: Logger(label: "recorder-test"))
        try Data(Self.chainKeyText.utf8).write(to: URL(fileURLWithPath: chainKeyPath))
    }

    /// The audit chain key of `config()` (`recorder.chain_key: file:<root>/chain.key`).
    static let chainKeyText = "test-chain-key-0123456789"
    var chainKey: SymmetricKey { SymmetricKey(data: Array(Self.chainKeyText.utf8)) }
    var chainKeyPath: String { root.appendingPathComponent("chain.key").path }

    var dataDir: String { root.appendingPathComponent("data").path }
    var sinkPath: String { root.appendingPathComponent("audit.jsonl").path }

    /// A config with the given `recorder.sinks` JSON array and the test chain key; `recorder`:
    /// more members of `recorder` (e.g. `"checkpoint_every": 3`).
    func config(sinks: String? = nil, recorder: String = "") throws -> SluiceConfig {
        let sinksJSON = sinks ?? "[{\"kind\":\"file\",\"path\":\"\(sinkPath)\"}]"
        let json = """
        {"data_dir": "\(dataDir)",
         "sealing": {"keys": [{"id": "test", "secret": "env:UNUSED"}], "fingerprint_key": "env:UNUSED"},
         "recorder": {"sinks": \(sinksJSON), "chain_key": "file:\(chainKeyPath)"\(recorder.isEmpty ? "" : ", " + recorder)}}
        """
        return try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))
    }

    func publish(_ event: AuditEvent) async throws {
        try await bus.publish(try context.codec.audit(event))
    }

    func cleanUp() async {
        await bus.shutdown()
        try? FileManager.default.removeItem(at: root)
    }
}


/// The non-empty lines of a file (empty when it does not exist).
func lines(of path: String) -> [String] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
}

/// The lines of a sink file that are events: not the chain's own `chain_start` (`{"after_offset":…`)
/// and `checkpoint` (`{"count":…`) lines.
func eventLines(of path: String) -> [String] {
    lines(of: path).filter { !$0.hasPrefix(#"{"after_offset":"#) && !$0.hasPrefix(#"{"count":"#) }
}

func event(
    _ kind: AuditEvent.Kind, session: String = "s-1", request: String = "r-1", stage: String = "ingress", time: Int64,
    id: String = UUID().uuidString.lowercased(), status: Int? = nil, findings: [FindingSummary]? = nil, decision: Decision? = nil
) -> AuditEvent {
    AuditEvent(
        kind: kind, stage: stage, requestID: request, sessionID: session, connection: "billing", identity: "ci-bot",
        method: "POST", path: "/v1/charges", decision: decision, rules: findings.map { $0.map(\.rule) }, findings: findings,
        status: status, timeMillis: time, eventID: id)
}
