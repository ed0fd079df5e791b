import Foundation
import Testing

/// `sluice scan --allow FILE` and `--explain`, run as the built binary: silenced findings do not
/// count for the exit status but are listed in every format (never silently dropped); a bad
/// allow-list is refused with exit 2 naming the entry; `--explain` says why each finding was kept.
@Suite("sluice scan --allow and --explain", .serialized)
struct ScanAllowExplainTests {
    /// Two credentials: an AWS access key id in a fixtures file, a password assignment elsewhere.
    static func tree() throws -> (dir: URL, key: String) {
        let dir = try ScanCommandTests.tempDir()
        let key = ScanCommandTests.awsKey()
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("fixtures"), withIntermediateDirectories: true)
        try Data("aws_access_key_id = \(key)\n".utf8).write(to: dir.appendingPathComponent("fixtures/aws.ini"))
        try Data("DB_PASSWORD=\"Zq7-vLm2!pXw9#rT4s\"\n".utf8).write(to: dir.appendingPathComponent("app.env"))
        return (dir, key)
    }

    static func write(_ text: String, _ name: String, in dir: URL) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test("a path entry silences the fixtures; the rest is still reported; every format lists what was silenced")
    func pathEntry() throws {
        let (dir, key) = try Self.tree()
        defer { try? FileManager.default.removeItem(at: dir) }
        let allow = try Self.write("allow:\n  - rule: \"*\"\n    path: \"**/fixtures/**\"\n    reason: test fixtures\n", "allow.yaml", in: dir)
        let scanned = [dir.appendingPathComponent("fixtures").path, dir.appendingPathComponent("app.env").path]

        let text = try ScanCommandTests.scan(["--allow", allow] + scanned, in: dir)
        #expect(text.status == 1)
        #expect(text.stdout.contains("generic-password") && !text.stdout.contains("aws-access-key-id"))
        #expect(text.stderr.contains("1 finding silenced by --allow, --baseline or sluice:allow comments (--explain lists them)"), "\(text.stderr)")
        #expect(!text.stdout.contains(key) && !text.stderr.contains(key))

        let json = try Self.json(try ScanCommandTests.scan(["--format", "json", "--allow", allow] + scanned, in: dir).stdout)
        let allowed = try #require(json["allowed"] as? [[String: Any]])
        #expect(allowed.count == 1)
        #expect((allowed.first?["rule"] as? String)?.hasPrefix("aws") == true)
        #expect(allowed.first?["allowedBy"] as? Int == 0)
        #expect((json["findings"] as? [[String: Any]])?.count == 1)

        let jsonl = try ScanCommandTests.scan(["--format", "jsonl", "--allow", allow] + scanned, in: dir).stdout
        #expect(jsonl.split(separator: "\n").filter { $0.contains("\"allowedBy\":0") }.count == 1)

        let sarif = try Self.json(try ScanCommandTests.scan(["--format", "sarif", "--allow", allow] + scanned, in: dir).stdout)
        let results = try #require(((sarif["runs"] as? [[String: Any]])?.first?["results"]) as? [[String: Any]])
        #expect(results.count == 2)
        #expect(results.filter { $0["suppressions"] != nil }.count == 1)

        // Only the fixtures: everything silenced, exit 0.
        let clean = try ScanCommandTests.scan(["--allow", allow, dir.appendingPathComponent("fixtures").path], in: dir)
        #expect(clean.status == 0, "\(clean.stdout)")
    }

    @Test("--explain prints the rule, the match, the view, the value's length and entropy, and the silenced findings with their entry")
    func explain() throws {
        let (dir, key) = try Self.tree()
        defer { try? FileManager.default.removeItem(at: dir) }
        let allow = try Self.write("- rule: \"*\"\n  path: \"**/fixtures/**\"\n  reason: test fixtures\n", "allow.yaml", in: dir)
        let run = try ScanCommandTests.scan(["--explain", "--allow", allow, dir.path], in: dir)
        #expect(run.status == 1)
        for label in ["rule:", "matched:", "view:      raw bytes", "value:", "bits/byte", "kept:"] {
            #expect(run.stdout.contains(label), "\(label) missing from \(run.stdout)")
        }
        #expect(run.stdout.contains("allowed by detection.allow[0] (test fixtures):"))
        #expect(!run.stdout.contains(key))

        let json = try Self.json(try ScanCommandTests.scan(["--format", "json", "--explain", dir.path], in: dir).stdout)
        let findings = try #require(json["findings"] as? [[String: Any]])
        #expect(findings.count == 2)
        for f in findings {
            let e = try #require(f["explanation"] as? [String: Any])
            #expect(e["method"] is String && e["length"] is Int && e["entropy"] is Double)
        }
    }

    @Test("a bad allow-list is refused before scanning: exit 2, naming the file and the entry", arguments: [
        ("- rule: no-such-rule\n  fingerprint: 0123456789ab\n", "entry 0: unknown rule 'no-such-rule'"),
        ("- rule: \"*\"\n  fingerprint: 0123456789ab\n- rule: generic-password\n", "entry 1: give at least one of"),
        ("- rule: \"*\"\n  paht: \"**\"\n  fingerprint: 0123456789ab\n", "unknown key 'paht'"),
        ("- rule: \"*\"\n  pattern: \"(\"\n", "pattern does not compile"),
    ])
    func badAllowList(_ text: String, _ message: String) throws {
        let (dir, _) = try Self.tree()
        defer { try? FileManager.default.removeItem(at: dir) }
        let allow = try Self.write(text, "allow.yaml", in: dir)
        let run = try ScanCommandTests.scan(["--allow", allow, dir.path], in: dir)
        #expect(run.status == 2)
        #expect(run.stderr.contains(message) && run.stderr.contains("allow.yaml"), "\(run.stderr)")
        #expect(run.stdout.isEmpty)
    }
}
