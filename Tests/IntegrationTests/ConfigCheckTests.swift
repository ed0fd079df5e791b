import Foundation
import GatewayHarness
import Testing

/// `sluice config check` run as the built binary: a valid file prints its effective
/// configuration with every secret redacted (the values resolved but never shown); a bad key or
/// an unresolvable secret exits 1 naming the key.
@Suite("sluice config check")
struct ConfigCheckTests {
    static func check(_ yaml: String, environment: [String: String] = [:]) throws -> CommandResult {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-cfg-\(UUID().uuidString.prefix(8)).yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        return try runToCompletion(SluiceProcess.binary, ["config", "check", "--config", file.path], environment: environment)
    }

    /// Secret values of this test: distinctive, so any leak into the output is seen.
    static let secrets = [
        "CFG_T_SEAL": Data((0..<32).map { UInt8(255 - $0) }).base64EncodedString(),
        "CFG_T_FP": "fingerprint-key-\(UUID().uuidString)",
        "CFG_T_TOKEN": "upstream-token-\(UUID().uuidString)",
        "CFG_T_HEC": "hec-token-\(UUID().uuidString)",
        "CFG_T_KAFKA": "kafka-password-\(UUID().uuidString)",
    ]

    static let valid = """
        listen: 127.0.0.1:18080
        admin_listen: 127.0.0.1:19090
        data_dir: \(NSTemporaryDirectory())sluice-cfg-data-never-created
        bus:
          kind: kafka
          brokers: "127.0.0.1:9092"
          librdkafka: { sasl.password: "env:CFG_T_KAFKA", linger.ms: "1" }
        sealing:
          keys: [ { id: k1, secret: "env:CFG_T_SEAL" } ]
          fingerprint_key: "env:CFG_T_FP"
        connections:
          - name: echo
            upstream: "http://127.0.0.1:9000"
            allow_groups: [agents]
            credentials: { header: Authorization, value: "Bearer env:CFG_T_TOKEN" }
        recorder:
          sinks:
            - { kind: hec, url: "http://127.0.0.1:8088", token: "env:CFG_T_HEC" }

        """

    @Test func aValidConfigPrintsTheEffectiveConfigurationWithSecretsRedacted() throws {
        let result = try Self.check(Self.valid, environment: Self.secrets)
        #expect(result.status == 0, "\(result.stderr)")
        for (name, value) in Self.secrets {
            #expect(!result.stdout.contains(value) && !result.stderr.contains(value), "the value of \(name) was printed")
        }
        #expect(result.stdout.contains("\"<redacted: env:CFG_T_SEAL>\""))
        #expect(result.stdout.contains("fingerprint_key: \"<redacted: env:CFG_T_FP>\""))
        #expect(result.stdout.contains("value: \"Bearer <redacted: env:CFG_T_TOKEN>\""))
        #expect(result.stdout.contains("token: \"<redacted: env:CFG_T_HEC>\""))
        #expect(result.stdout.contains("sasl.password: \"<redacted: env:CFG_T_KAFKA>\""))
        #expect(result.stdout.contains("linger.ms: \"1\""))
        // Defaults are filled in: the effective configuration, not the file.
        #expect(result.stdout.contains("request_timeout: \"30s\""))
        #expect(result.stdout.contains("max_in_flight_per_identity: 256"))
        #expect(result.stdout.contains("on_secret: \"mask\""))
        #expect(result.stderr.contains("valid (5 secret references resolved)"), "\(result.stderr)")
        // Nothing is created: the data directory is only checked.
        #expect(!FileManager.default.fileExists(atPath: NSTemporaryDirectory() + "sluice-cfg-data-never-created"))
    }

    @Test func anUnknownKeyExits1NamingIt() throws {
        let result = try Self.check(Self.valid + "listen_addr: 127.0.0.1:1\n", environment: Self.secrets)
        #expect(result.status == 1)
        // Located: the file, line and column of the key (the last line of the file).
        let line = Self.valid.split(separator: "\n", omittingEmptySubsequences: false).count
        #expect(result.stderr.contains(".yaml:\(line):14: listen_addr: unknown key (allowed: "), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func anUnresolvableSecretExits1NamingTheKeyNotAValue() throws {
        var env = Self.secrets
        env["CFG_T_TOKEN"] = nil
        let result = try Self.check(Self.valid, environment: env)
        #expect(result.status == 1)
        #expect(result.stderr.contains("config connections[0].credentials.value:") && result.stderr.contains("CFG_T_TOKEN"), "\(result.stderr)")
        for (_, value) in env { #expect(!result.stderr.contains(value)) }
        #expect(result.stdout.isEmpty)
    }

    @Test func aBadListenAddressAndABadDetectionRuleAreNamed() throws {
        let badListen = try Self.check(Self.valid.replacingOccurrences(of: "listen: 127.0.0.1:18080", with: "listen: 127.0.0.1:99999"), environment: Self.secrets)
        #expect(badListen.status == 1)
        #expect(badListen.stderr.contains("config listen:"), "\(badListen.stderr)")
        let badAllow = try Self.check(
            Self.valid + "detection:\n  allow:\n    - { rule: no-such-rule, path: \"/a/**\" }\n", environment: Self.secrets)
        #expect(badAllow.status == 1)
        #expect(badAllow.stderr.contains("detection.allow[0]"), "\(badAllow.stderr)")
    }

    @Test("every problem of the checks after parsing in one run: secrets, listen address, allow-list, in the order checked")
    func everyLaterProblemInOneRun() throws {
        var env = Self.secrets
        env["CFG_T_TOKEN"] = nil
        env["CFG_T_FP"] = nil
        let yaml = Self.valid.replacingOccurrences(of: "listen: 127.0.0.1:18080", with: "listen: 127.0.0.1:99999")
            + "detection:\n  allow:\n    - { rule: no-such-rule, path: \"/a/**\" }\n"
        let result = try Self.check(yaml, environment: env)
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        let listen = lines.firstIndex { $0.contains("listen:") && $0.contains("99999") }
        let fingerprint = lines.firstIndex { $0.contains("sealing.fingerprint_key") && $0.contains("CFG_T_FP") }
        let credentials = lines.firstIndex { $0.contains("connections[0].credentials.value") && $0.contains("CFG_T_TOKEN") }
        #expect(listen != nil && fingerprint != nil && credentials != nil, "\(result.stderr)")
        if let listen, let fingerprint, let credentials { #expect(listen < fingerprint && fingerprint < credentials) }
        // The allow-list is compiled with the fingerprint key: without one it is not checked, and
        // the missing key is the problem reported.
        #expect(!result.stderr.contains("detection.allow[0]"), "\(result.stderr)")
        for (_, value) in env { #expect(!result.stderr.contains(value)) }
        #expect(result.stdout.isEmpty)
    }
}
