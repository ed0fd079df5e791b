import Foundation
import GatewayHarness
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `sluice scan` run as the built binary: files of any size are scanned whole (streamed in
/// overlapping chunks), a finding across a chunk edge is reported once with file-absolute
/// positions, and what cannot be read is named in every format and makes the exit status 2.
@Suite("sluice scan never skips silently", .serialized)
struct ScanCommandTests {
    /// A fake AWS access key id, made at run time.
    static func awsKey() -> String {
        "AKIA" + String((0..<16).map { _ in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")[Int.random(in: 0..<32)] })
    }

    static let chunk = 8 << 20

    typealias Run = CommandResult

    /// Runs `sluice scan ARGS` to completion, output captured through files in `dir`.
    static func scan(_ args: [String], in dir: URL) throws -> Run {
        try runToCompletion(SluiceProcess.binary, ["scan"] + args, environment: ["SLUICE_FP_KEY": "scan-test-key-0123456789"], in: dir)
    }

    static func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-scan-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Writes a text file of `size` bytes of harmless prose (lines of 64 bytes) with `secret`
    /// written over it at byte `offset`; returns the 1-based line of the byte after `offset`.
    static func writeFile(_ url: URL, size: Int, secret: String, at offset: Int) throws -> Int {
        let line = Array("the quick brown fox jumps over the lazy dog, again and again...\n".utf8)
        precondition(line.count == 64)
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        var block: [UInt8] = []
        block.reserveCapacity(1 << 20)
        var written = 0
        let secretBytes = Array(secret.utf8)
        while written < size {
            block.removeAll(keepingCapacity: true)
            while block.count < (1 << 20) && written + block.count < size {
                let lineStart = written + block.count
                block += line.prefix(size - lineStart)
            }
            // Overwrite the secret's bytes where they fall in this block.
            let blockRange = written..<(written + block.count)
            for (i, b) in secretBytes.enumerated() where blockRange.contains(offset + i) { block[offset + i - written] = b }
            try handle.write(contentsOf: block)
            written += block.count
        }
        try handle.close()
        return (offset + 1) / 64 + 1
    }

    struct Finding: Decodable {
        var path: String
        var start: Int
        var end: Int
        var line: Int
        var column: Int
        var rule: String
    }

    static func jsonlFindings(_ text: String) throws -> [Finding] {
        try text.split(separator: "\n").filter { $0.contains("\"rule\"") }.map {
            try JSONDecoder().decode(Finding.self, from: Data($0.utf8))
        }
    }

    struct BigCase: Sendable, CustomTestStringConvertible {
        var name: String
        var size: Int
        /// Where the secret starts, from the end of the file when negative.
        var offset: Int
        var testDescription: String { name }
    }

    static let bigCases: [BigCase] = [
        // Sizes: just enough chunks for the edge each case is about (a whole MiB past it).
        BigCase(name: "file of four chunks (26 MiB), secret at its end", size: 3 * chunk + (2 << 20), offset: -30),
        BigCase(name: "secret straddling the first chunk edge", size: chunk + (1 << 20), offset: chunk - 10),
        BigCase(name: "secret straddling the second chunk edge", size: 2 * chunk + (1 << 20), offset: 2 * chunk - 7),
        BigCase(name: "secret just after a chunk edge, in the overlap", size: chunk + (1 << 20), offset: chunk + 3),
        BigCase(name: "secret just before the overlap of the next window", size: chunk + (1 << 20), offset: chunk - (64 << 10) - 5),
    ]

    @Test(arguments: bigCases)
    func largeFilesAreScannedWhole(_ c: BigCase) throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("big.txt")
        let key = Self.awsKey()
        let offset = c.offset < 0 ? c.size + c.offset : c.offset
        precondition(offset % 64 != 0, "the space before the key must not replace a newline")
        // Spaces around the key so that it stands alone whatever prose it lands in.
        let line = try Self.writeFile(file, size: c.size, secret: " \(key) ", at: offset - 1)

        let run = try Self.scan(["--format", "jsonl", file.path], in: dir)
        #expect(run.status == 1, "stderr: \(run.stderr)")
        let findings = try Self.jsonlFindings(run.stdout)
        #expect(findings.count == 1, "found once: \(run.stdout)")
        let f = try #require(findings.first)
        #expect(f.rule == "aws-access-key-id")
        #expect(f.path == file.path)
        #expect(f.start == offset && f.end == offset + key.utf8.count, "file-absolute offsets")
        #expect(f.line == line && f.column == offset % 64 + 1, "file-absolute line and column")
        #expect(!run.stdout.contains(key) && !run.stderr.contains(key))
    }

    enum Unreadable: String, Sendable, CaseIterable, CustomTestStringConvertible {
        case danglingSymlink, fifo, missing, fileAsDirectory
        var testDescription: String { rawValue }
    }

    /// Makes an input that even root cannot read as a file; returns its path.
    static func make(_ kind: Unreadable, in dir: URL) throws -> String {
        let path = dir.appendingPathComponent("bad-\(kind.rawValue)").path
        switch kind {
        case .danglingSymlink: try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: dir.path + "/nowhere")
        case .fifo: #expect(mkfifo(path, 0o600) == 0)
        case .missing: break
        case .fileAsDirectory:
            FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
            return path + "/child.txt"
        }
        return path
    }

    static let formats = ["text", "json", "jsonl", "sarif"]

    @Test(arguments: Unreadable.allCases, formats)
    func unreadableInputsAreNamedAndExitTwo(_ kind: Unreadable, _ format: String) throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.env")
        let key = Self.awsKey()
        try Data("AWS_ACCESS_KEY_ID=\(key)\n".utf8).write(to: good)
        let bad = try Self.make(kind, in: dir)

        // The unreadable input comes first: the readable one after it is still scanned and reported.
        let run = try Self.scan(["--format", format, bad, good.path], in: dir)
        #expect(run.status == 2, "stdout: \(run.stdout) stderr: \(run.stderr)")
        #expect(!run.stdout.contains(key) && !run.stderr.contains(key))
        switch format {
        case "text":
            #expect(run.stdout.contains("\(good.path):1:"))
            #expect(run.stderr.contains("cannot read \(bad):"))
        case "jsonl":
            let lines = run.stdout.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(lines.allSatisfy { $0 != nil }, "every line is a JSON object")
            #expect(lines.contains { $0?["path"] as? String == good.path && $0?["rule"] as? String == "aws-access-key-id" })
            let skipped = lines.compactMap { $0 }.filter { $0["skipped"] as? String == bad }
            #expect(skipped.count == 1)
            #expect((skipped.first?["reason"] as? String)?.isEmpty == false)
        case "json":
            let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            let findings = try #require(object["findings"] as? [[String: Any]])
            #expect(findings.contains { $0["path"] as? String == good.path })
            let skipped = try #require(object["skipped"] as? [[String: Any]])
            #expect(skipped.contains { $0["path"] as? String == bad && $0["unreadable"] as? Bool == true })
        default:
            let log = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            let runObject = try #require((log["runs"] as? [[String: Any]])?.first)
            #expect((runObject["results"] as? [Any])?.count == 1)
            let invocation = try #require((runObject["invocations"] as? [[String: Any]])?.first)
            #expect(invocation["executionSuccessful"] as? Bool == false)
            let notes = try #require(invocation["toolExecutionNotifications"] as? [[String: Any]])
            let uris = notes.compactMap {
                ((($0["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])?["artifactLocation"]
                    as? [String: Any])?["uri"] as? String
            }
            // Relative to the working directory (the scan ran in `dir`), percent-encoded.
            let relative = String(bad.dropFirst(dir.path.count + 1))
            #expect(uris.count == 1 && uris.first.map { $0 == relative || $0.hasSuffix("/" + relative) } == true, "\(uris)")
            #expect(notes.first?["level"] as? String == "error")
        }
    }

    @Test("a one-line file of 20,000 findings is reported whole, and one sluice:allow on the line silences them all")
    func manyFindingsOnOneLine() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let keys = (0..<20_000).map { _ in Self.awsKey() }
        try Data(keys.joined(separator: " ").utf8).write(to: dir.appendingPathComponent("keys.txt"))
        try Data((keys.joined(separator: " ") + " # sluice:allow fixture").utf8).write(to: dir.appendingPathComponent("allowed.txt"))
        try Data(keys.joined(separator: "\n").utf8).write(to: dir.appendingPathComponent("lines.txt"))
        let reported = try Self.scan(["--format", "jsonl", dir.appendingPathComponent("keys.txt").path], in: dir)
        #expect(reported.status == 1, "\(reported.stderr)")
        let found = try Self.jsonlFindings(reported.stdout)
        // The same as with one key per line (a random key can look like a placeholder).
        let perLine = try Self.jsonlFindings(try Self.scan(["--format", "jsonl", dir.appendingPathComponent("lines.txt").path], in: dir).stdout)
        #expect(found.count == perLine.count)
        #expect(found.count > keys.count * 99 / 100)
        #expect(Set(found.map(\.line)) == [1])
        let silenced = try Self.scan(["--format", "jsonl", dir.appendingPathComponent("allowed.txt").path], in: dir)
        #expect(silenced.status == 0, "\(silenced.stdout.prefix(300)) \(silenced.stderr)")
        #expect(silenced.stdout.components(separatedBy: "\"inlineAllow\":true").count - 1 == found.count)
    }

    @Test("a clean scan says so in every format and exits 0; SARIF reports a successful execution")
    func cleanScan() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("nothing to see here\n".utf8).write(to: dir.appendingPathComponent("a.txt"))
        for format in Self.formats {
            let run = try Self.scan(["--format", format, dir.path], in: dir)
            #expect(run.status == 0, "\(format): \(run.stdout) \(run.stderr)")
            if format == "sarif" {
                #expect(run.stdout.contains("\"executionSuccessful\":true"))
            }
        }
    }

    @Test("binary files and links inside a walked directory are listed, not silently dropped, and do not fail the scan")
    func notScannedByDesignIsListed() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data([0, 1, 2, 3, 0, 0]).write(to: dir.appendingPathComponent("blob.bin"))
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("link").path, withDestinationPath: "/etc/hostname")
        let run = try Self.scan(["--format", "jsonl", dir.path], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let skipped = Set(lines.compactMap { $0["skipped"] as? String })
        #expect(skipped == [dir.appendingPathComponent("blob.bin").path, dir.appendingPathComponent("link").path])
        #expect(lines.allSatisfy { $0["unreadable"] as? Bool == false })
    }
}
