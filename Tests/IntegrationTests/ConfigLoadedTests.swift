import BusContract
import Foundation
import GatewayHarness
import Testing

/// Every start is an audit event (`config_loaded`): one per started process, with the SHA-256 of
/// the configuration file's bytes and never a value from it.
@Suite("config_loaded audit events", .serialized)
struct ConfigLoadedTests {
    /// The `config_loaded` events in the gateway's file sink.
    static func configLoaded(_ gw: Gateway) -> [(line: String, object: [String: Any])] {
        let text = String(decoding: FileManager.default.contents(atPath: gw.dataDir.appendingPathComponent("audit.jsonl").path) ?? Data(), as: UTF8.self)
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                object["kind"] as? String == "config_loaded"
            else { return nil }
            return (String(line), object)
        }
    }

    @Test("a started gateway puts exactly one config_loaded per process on audit: the config's sha256, path, stages, version, instance; no config value", arguments: GatewayMode.available)
    func oneConfigLoadedPerProcess(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        try await gw.start()
        // Process name (its command) → the stages it runs.
        let expected: [String: String] = switch mode {
        case .embedded: ["run": "recorder,forwarder,inspector,ingress"]
        case .kafka: ["recorder": "recorder", "forwarder": "forwarder", "inspector": "inspector", "ingress": "ingress"]
        }
        #expect(await eventually(timeout: .seconds(30)) { Self.configLoaded(gw).count >= expected.count }, "\(Self.configLoaded(gw).map(\.line))")
        // A call's outcome recorded after the starts: no later or second config_loaded meanwhile.
        let call = try await gw.call(connection: "billing", path: "/ping", headers: [("Content-Type", "application/json")], body: gw.json(["a": 1]))
        #expect(call.status == 200, "\(call.text)")
        let id = try #require(call.header("X-Sluice-Request-Id"))
        let sink = gw.dataDir.appendingPathComponent("audit.jsonl").path
        #expect(await eventually(timeout: .seconds(30)) {
            String(decoding: FileManager.default.contents(atPath: sink) ?? Data(), as: UTF8.self)
                .split(separator: "\n").contains { $0.contains(#""kind":"delivered""#) && $0.contains(id) }
        })

        let events = Self.configLoaded(gw)
        #expect(events.count == expected.count, "\(events.map(\.line))")
        let configBytes = try Data(contentsOf: gw.configPath)
        let sha256 = sha256Hex(String(decoding: configBytes, as: UTF8.self))
        var stages: [String: String] = [:]
        for (line, event) in events {
            let stage = try #require(event["stage"] as? String)
            let details = try #require(event["details"] as? [String: String])
            #expect(Set(details.keys) == ["config_sha256", "config_path", "stages", "version", "instance"], "\(line)")
            #expect(details["config_sha256"] == sha256)
            #expect(details["config_path"] == gw.configPath.path)
            #expect(details["version"]?.isEmpty == false)
            // The harness gives each process SLUICE_INSTANCE_ID `<name>-<root>` (the one inspector is `inspector-0`).
            let name = mode == .kafka && stage == "inspector" ? "inspector-0" : stage
            #expect(details["instance"] == "\(name)-\(gw.root.lastPathComponent)", "\(line)")
            stages[stage] = details["stages"]
            // Sessionless: its ids are its own.
            #expect(event["request_id"] as? String == event["event_id"] as? String && event["session_id"] as? String == event["event_id"] as? String)
            // No configuration value: no upstream, listen address, key reference or API key hash.
            for value in [gw.upstream.url, "127.0.0.1:\(gw.port)", "env:", sha256Hex(Gateway.ciKey), "billing", "secops"] {
                #expect(!line.contains(value), "\(value) in \(line)")
            }
        }
        #expect(stages == expected)
        await gw.stop()
    }
}
