import Foundation
import GatewayHarness
import Testing

/// docker-compose.yml is checked without a Docker engine: Debian's `docker-compose` validates it
/// (`config -q`; installed by `scripts/provision.sh test`), and every `sluice` service's command
/// names a subcommand and flags the built binary has, with a configuration that passes
/// `sluice config check` under the environment the compose file gives that service.
@Suite("docker-compose.yml")
struct ComposeFileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let composeFile = root.appendingPathComponent("docker-compose.yml")
    /// Stand-ins for the variables deploy/compose/make-env.sh writes to .env.
    static let envValues = [
        "SLUICE_SEAL_KEY": Data((0..<32).map { UInt8($0 * 7 % 256) }).base64EncodedString(),
        "SLUICE_FP_KEY": Data((0..<32).map { UInt8($0 * 3 % 256) }).base64EncodedString(),
        "ECHO_TOKEN": "upstream-compose-test-token",
    ]

    /// `docker-compose` on PATH; a missing tool fails the test (provision.sh test installs it).
    static func tool(_ name: String) throws -> URL {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw GatewayError("\(name) is not on PATH: `scripts/provision.sh test` (make test) installs it (Debian package docker-compose)")
    }

    /// `docker-compose ARGS` on docker-compose.yml with `environment` and an empty env file, so a
    /// developer's own .env does not take part.
    static func compose(_ args: [String], environment: [String: String]) throws -> CommandResult {
        let envFile = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-compose-\(UUID().uuidString.prefix(8)).env")
        _ = FileManager.default.createFile(atPath: envFile.path, contents: Data())
        defer { try? FileManager.default.removeItem(at: envFile) }
        return try runToCompletion(
            try tool("docker-compose"), ["-f", composeFile.path, "--env-file", envFile.path] + args, environment: environment)
    }

    @Test func dockerComposeValidatesTheFile() throws {
        let ok = try Self.compose(["config", "-q"], environment: Self.envValues)
        #expect(ok.status == 0, "docker-compose config -q: \(ok.stderr)")
        // Without the secrets of .env the file refuses to start and says how to make them.
        let missing = try Self.compose(["config", "-q"], environment: ["SLUICE_SEAL_KEY": "", "SLUICE_FP_KEY": "", "ECHO_TOKEN": ""])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("make-env.sh"), "\(missing.stderr)")
    }

    /// The resolved services (anchors and merges applied) as docker-compose prints them, as JSON.
    static func resolvedServices() throws -> [String: [String: Any]] {
        let config = try compose(["config"], environment: envValues)
        try #require(config.status == 0, "docker-compose config: \(config.stderr)")
        let yamlFile = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-compose-\(UUID().uuidString.prefix(8)).yaml")
        try config.stdout.write(to: yamlFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: yamlFile) }
        // PyYAML comes with docker-compose.
        let json = try runToCompletion(
            try tool("python3"), ["-c", "import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)", yamlFile.path])
        try #require(json.status == 0, "\(json.stderr)")
        let top = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        return try #require(top["services"] as? [String: [String: Any]])
    }

    @Test func everySluiceServiceRunsAnExistingCommandWithAValidConfiguration() throws {
        let services = try Self.resolvedServices()
        let sluiceServices = services.filter { ($0.value["image"] as? String) == "sluice:dev" }
        #expect(Set(sluiceServices.keys) == ["ingress", "inspector", "forwarder", "recorder"])
        #expect(services["kafka"]?["image"] as? String == "apache/kafka:4.1.0")
        for (name, service) in sluiceServices.sorted(by: { $0.key < $1.key }) {
            let command = try #require(service["command"] as? [String], "\(name): command is not a list")
            let subcommand = try #require(command.first)
            let help = try runToCompletion(SluiceProcess.binary, [subcommand, "--help"])
            #expect(help.status == 0, "\(name): `sluice \(subcommand)` is not a subcommand: \(help.stderr)")
            for flag in command.dropFirst() where flag.hasPrefix("-") {
                #expect(help.stdout.contains(flag), "\(name): `sluice \(subcommand)` has no flag \(flag)")
            }
            // The configuration the command names, found through the service's volumes.
            let containerPath = try #require(command.firstIndex(of: "--config").map { command[command.index(after: $0)] })
            let volumes = (service["volumes"] as? [Any] ?? []).compactMap { $0 as? String }
            let mount = try #require(
                volumes.map { $0.split(separator: ":").map(String.init) }.first { $0.count >= 2 && $0[1] == containerPath },
                "\(name): nothing is mounted at \(containerPath)")
            #expect(mount[0] == Self.root.appendingPathComponent("config/sluice.compose.yaml").path)
            // Checked for this stage with the environment compose gives this service (and only that).
            let environment = (service["environment"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
                .merging(Self.envValues.mapValues { _ in "" }) { given, _ in given }
            let check = try runToCompletion(
                SluiceProcess.binary, ["config", "check", "--config", mount[0], "--stage", subcommand], environment: environment)
            #expect(check.status == 0, "\(name): \(check.stderr)")
            // The health check: `sluice probe` (the image has no curl) on the admin port the config gives.
            let health = try #require(service["healthcheck"] as? [String: Any], "\(name): no healthcheck")
            let test = try #require(health["test"] as? [String], "\(name): healthcheck.test is not a list")
            #expect(Array(test.prefix(3)) == ["CMD", "sluice", "probe"], "\(name): \(test)")
            let adminPort = try #require(check.stdout.range(of: "admin_listen: [^\\n]*:(\\d+)", options: .regularExpression).map {
                String((check.stdout[$0].split(separator: ":").last ?? "").filter(\.isNumber))
            }, "\(name): admin_listen not in the effective configuration")
            #expect(test.count == 4 && test[3] == "http://127.0.0.1:\(adminPort)/readyz", "\(name): \(test)")
            #expect(try runToCompletion(SluiceProcess.binary, ["probe", "--help"]).status == 0)
            // The upstream credential reaches the forwarders only.
            #expect((environment["ECHO_TOKEN"] ?? "").isEmpty == (subcommand != "forwarder"), "\(name): ECHO_TOKEN")
            for value in Self.envValues.values { #expect(!check.stdout.contains(value)) }
        }
    }
}
