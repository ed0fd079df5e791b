import AsyncHTTPClient
import BusContract
import Foundation
import GatewayHarness
import NIOCore
import NIOHTTP1
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What docker-compose.yml says is what runs: its services, resolved by `docker-compose config`,
/// run as local processes with the same commands, configuration and environment against the test
/// broker (Tansu stands in for the kafka service, a private rsyslogd for the rsyslog one), and the
/// README's calls work: a masked call, a held DELETE approved over HTTP, audit in the SIEM.
///
/// Only what exists inside compose's network is mapped, each mapping checked to apply: the broker
/// and the echo and rsyslog host names, the listen ports (free loopback ports), the data
/// directory (one per process, as each container has its own volume) and the topic prefix (the
/// broker is shared with other tests).
@Suite("docker-compose.yml runs", .serialized, .enabled(if: GatewayMode.kafkaBrokers != nil, "set SLUICE_KAFKA_BROKERS (make test does)"))
struct ComposeRunTests {
    @Test func theComposeServicesAnswerTheReadmeCalls() async throws {
        let services = try ComposeFileTests.resolvedServices()
        let brokers = try #require(GatewayMode.kafkaBrokers)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-compose-run-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let rsyslog = try RsyslogServer()
        defer { rsyslog.shutdown() }
        let port = try freePort(), adminPort = try freePort(), echoPort = try freePort()

        // The echo service: its command, with its mounted script and a loopback port.
        let echoService = try #require(services["echo"])
        var echoCommand = try #require(echoService["command"] as? [String])
        let echoMounts = Self.mounts(echoService)
        echoCommand = echoCommand.map { echoMounts[$0] ?? $0 }
        try #require(echoCommand.count == 5 && echoCommand[3] == "9000" && echoCommand[4] == "0.0.0.0", "\(echoCommand)")
        echoCommand[3] = "\(echoPort)"
        echoCommand[4] = "127.0.0.1"
        let echoLog = root.appendingPathComponent("echo.log")
        _ = FileManager.default.createFile(atPath: echoLog.path, contents: nil)
        let echo = Process()
        echo.executableURL = try ComposeFileTests.tool(echoCommand[0])
        echo.arguments = Array(echoCommand.dropFirst())
        let echoHandle = try FileHandle(forWritingTo: echoLog)
        echo.standardOutput = echoHandle
        echo.standardError = echoHandle
        try echo.run()
        defer {
            // SIGKILL: children inherit the test process's blocked SIGTERM.
            kill(echo.processIdentifier, SIGKILL)
            echo.waitUntilExit()
            try? echoHandle.close()
        }

        let sourceConfig = try String(contentsOf: ComposeFileTests.root.appendingPathComponent("config/sluice.compose.yaml"), encoding: .utf8)
        var config = sourceConfig
        for (from, to) in [
            ("brokers: \"kafka:9092\"", "brokers: \"\(brokers)\""),
            ("upstream: http://echo:9000", "upstream: http://127.0.0.1:\(echoPort)"),
            ("address: \"rsyslog:514\"", "address: \"127.0.0.1:\(rsyslog.port(.tcp))\""),
            ("listen: 0.0.0.0:8080", "listen: 127.0.0.1:\(port)"),
            ("topic_prefix: \"sluice.\"", "topic_prefix: \"compose-\(UUID().uuidString.prefix(8)).\""),
        ] {
            try #require(config.contains(from), "config/sluice.compose.yaml no longer has \(from): update this test")
            config = config.replacingOccurrences(of: from, with: to)
        }
        try #require(config.contains("/var/lib/sluice"))
        // Every process serves admin_listen (each container has its own network namespace; here
        // each process gets its own port).
        let adminLine = "admin_listen: 0.0.0.0:9090"
        try #require(config.contains(adminLine), "config/sluice.compose.yaml no longer has \(adminLine): update this test")
        var stageAdminPorts: [String: Int] = [:]

        // The sluice services, each replica a process with its own data directory.
        var processes: [SluiceProcess] = []
        defer { for p in processes { p.kill9() } }
        let order = ["recorder", "forwarder", "inspector", "ingress"]
        for name in order {
            let service = try #require(services[name])
            let replicas = (service["deploy"] as? [String: Any])?["replicas"] as? Int ?? 1
            let command = try #require(service["command"] as? [String])
            let containerConfig = try #require(command.firstIndex(of: "--config").map { command[command.index(after: $0)] })
            let environment = (service["environment"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
                .merging(ComposeFileTests.envValues.mapValues { _ in "" }) { given, _ in given }
            for replica in 0..<replicas {
                let dataDir = root.appendingPathComponent("\(name)-\(replica)")
                let file = root.appendingPathComponent("\(name)-\(replica).yaml")
                let admin = name == "ingress" ? adminPort : try freePort()
                if name != "ingress" { stageAdminPorts["\(name)-\(replica)"] = admin }
                try config.replacingOccurrences(of: "/var/lib/sluice", with: dataDir.path)
                    .replacingOccurrences(of: adminLine, with: "admin_listen: 127.0.0.1:\(admin)")
                    .write(to: file, atomically: true, encoding: .utf8)
                processes.append(try SluiceProcess(
                    name: "\(name)-\(replica)", arguments: command.map { $0 == containerConfig ? file.path : $0 },
                    environment: environment, logDirectory: root))
            }
        }
        #expect(processes.count == 7, "1 ingress, 3 inspectors, 2 forwarders, 1 recorder")
        let logs = { processes.map { "\($0.name): \($0.output.suffix(1500))" }.joined(separator: "\n") }

        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            func call(_ method: HTTPMethod, _ path: String, key: String? = nil, body: String? = nil, headers: [(String, String)] = []) async throws
                -> (status: Int, text: String)
            {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(path.hasPrefix("/readyz") ? adminPort : port)\(path)")
                request.method = method
                if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
                for (k, v) in headers { request.headers.add(name: k, value: v) }
                if let body { request.body = .bytes(ByteBuffer(string: body)) }
                let response = try await http.execute(request, timeout: .seconds(60))
                let bytes = try await response.body.collect(upTo: 1 << 20)
                return (Int(response.status.code), String(buffer: bytes))
            }
            /// `eventually` (BusContract), failing at once when a service process has exited.
            func whileRunning(_ timeout: Duration, _ condition: () async -> Bool) async throws -> Bool {
                try await eventually(timeout: timeout) {
                    for p in processes where !p.isRunning { throw GatewayError("\(p.name) exited:\n\(p.output.suffix(3000))") }
                    return await condition()
                }
            }

            let ready = try await whileRunning(.seconds(120)) { ((try? await call(.GET, "/readyz"))?.status ?? 0) == 200 }
            try #require(ready, "the ingress did not become ready:\n\(logs())")
            // And every other stage process, as the manifests' probes ask it (issue 12, item 4).
            for (name, admin) in stageAdminPorts.sorted(by: { $0.key < $1.key }) {
                let stageReady = try await whileRunning(.seconds(120)) {
                    let response = try? await http.execute(HTTPClientRequest(url: "http://127.0.0.1:\(admin)/readyz"), timeout: .seconds(10))
                    return response?.status == .ok
                }
                #expect(stageReady, "\(name) (admin port \(admin)) did not become ready:\n\(logs())")
            }

            // README: the masked call.
            let awsKey = "AKIA" + String((0..<16).map { _ in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")[Int.random(in: 0..<32)] })
            let masked = try await call(
                .POST, "/fn/echo/v1/deploy?dry_run=1", key: "sluice-demo-key",
                body: "{\"task\":\"deploy\",\"env\":{\"AWS_ACCESS_KEY_ID\":\"\(awsKey)\"}}",
                headers: [("Content-Type", "application/json"), ("X-Sluice-Session", "demo-1")])
            #expect(masked.status == 200, "\(masked.text)\n\(logs())")
            let echoed = (try? String(contentsOf: echoLog, encoding: .utf8)) ?? ""
            #expect(echoed.contains("--- POST /v1/deploy?dry_run=1"), "\(echoed)")
            #expect(echoed.contains("[MASKED:aws-access-key-id:") && !echoed.contains(awsKey), "\(echoed)")
            #expect(echoed.contains("Authorization: Bearer \(ComposeFileTests.envValues["ECHO_TOKEN"] ?? "-")"), "the forwarder injects ECHO_TOKEN")
            #expect(!echoed.contains("sluice-demo-key"))

            // README: a DELETE is held, a reviewer approves it over HTTP, the caller collects the answer.
            let held = try await call(.DELETE, "/fn/echo/v1/builds/42", key: "sluice-demo-key")
            #expect(held.status == 202, "\(held.text)")
            let heldJSON = try JSONSerialization.jsonObject(with: Data(held.text.utf8)) as? [String: Any]
            let id = try #require(heldJSON?["request_id"] as? String, "\(held.text)")
            let approved = try await call(
                .POST, "/v1/approvals/\(id)/approve", key: "sluice-reviewer-key", body: "{\"reason\":\"cleanup, ticket OPS-12\"}")
            #expect(approved.status == 200, "\(approved.text)")
            let delivered = try await whileRunning(.seconds(30)) {
                ((try? await call(.GET, "/v1/requests/\(id)", key: "sluice-demo-key"))?.status ?? 0) == 200
            }
            #expect(delivered, "GET /v1/requests/\(id) never answered 200:\n\(logs())")
            #expect(((try? String(contentsOf: echoLog, encoding: .utf8)) ?? "").contains("--- DELETE /v1/builds/42"))

            // The audit reaches the rsyslog service and the recorder's file sink.
            let inSIEM = try await whileRunning(.seconds(30)) {
                rsyslog.received(.tcp).contains { $0.contains("delivered") && $0.contains(id) }
            }
            #expect(inSIEM, "no delivered event for \(id) at the syslog receiver:\n\(logs())")
            let auditFile = root.appendingPathComponent("recorder-0/audit.jsonl")
            let inFile = try await whileRunning(.seconds(30)) {
                ((try? String(contentsOf: auditFile, encoding: .utf8)) ?? "").contains(id)
            }
            #expect(inFile, "the recorder's audit.jsonl has no event of \(id)")
            #expect(!(rsyslog.received(.tcp).joined().contains(awsKey)))
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
        for p in processes.reversed() { await p.stop() }
        try? FileManager.default.removeItem(at: root)
    }

    /// A service's bind mounts, container path → host path.
    static func mounts(_ service: [String: Any]) -> [String: String] {
        var out: [String: String] = [:]
        for volume in (service["volumes"] as? [Any] ?? []).compactMap({ $0 as? String }) {
            let parts = volume.split(separator: ":").map(String.init)
            if parts.count >= 2 { out[parts[1]] = parts[0] }
        }
        return out
    }
}
