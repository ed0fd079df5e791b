import BusContract
import Foundation
import GatewayHarness
import Testing

/// `sluice` refuses a bad configuration at start, naming the key path, and exits non-zero.
@Suite("Start-up errors")
struct StartupTests {
    func run(_ yaml: String, env: [String: String] = [:]) async throws -> (Int32, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-start-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = dir.appendingPathComponent("c.yaml")
        try yaml.write(to: config, atomically: true, encoding: .utf8)
        let p = try SluiceProcess(name: "start", arguments: ["run", "--config", config.path], environment: env, logDirectory: dir)
        let running = !(await eventually(timeout: .seconds(20)) { !p.isRunning })
        await p.stop()
        #expect(!running, "sluice kept running with a bad config")
        return (p.process.terminationStatus, p.output)
    }

    static let base = """
        data_dir: DATA
        sealing:
          keys: [ { id: k1, secret: "env:SLUICE_T_SEAL" } ]
          fingerprint_key: "env:SLUICE_T_FP"
        connections:
          - { name: a, upstream: "http://127.0.0.1:9", allow_groups: [x] }

        """

    @Test func unknownKeyIsNamed() async throws {
        let (status, out) = try await run(Self.base + "listen_addr: 127.0.0.1:1\n")
        #expect(status != 0)
        #expect(out.contains("listen_addr"))
    }

    @Test func missingEnvironmentReferenceIsNamed() async throws {
        let (status, out) = try await run(Self.base.replacingOccurrences(of: "DATA", with: NSTemporaryDirectory() + UUID().uuidString))
        #expect(status != 0)
        #expect(out.contains("sealing.keys[0].secret"))
        #expect(out.contains("SLUICE_T_SEAL"))
    }

    @Test func aBadAllowListEntryIsNamed() async throws {
        let env = ["SLUICE_T_SEAL": Data((0..<32).map { UInt8($0) }).base64EncodedString(), "SLUICE_T_FP": "fingerprint-key-of-32-bytes-long"]
        let yaml = Self.base.replacingOccurrences(of: "DATA", with: NSTemporaryDirectory() + UUID().uuidString)
            .replacingOccurrences(of: ", allow_groups: [x]", with: "")
            + "detection:\n  allow:\n    - { rule: generic-token, fingerprint: \"0123456789ab\" }\n    - { rule: no-such-rule, path: \"/a/**\" }\n"
        let (status, out) = try await run(yaml, env: env)
        #expect(status != 0)
        #expect(out.contains("detection.allow[1]") && out.contains("unknown rule 'no-such-rule'"), "\(out)")
    }
}
