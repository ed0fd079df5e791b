import ArgumentParser
import Detection
import Foundation
import Yams

extension ReportFormat: ExpressibleByArgument {}

/// `sluice scan`: scans files, directories or standard input for credentials and PII.
/// Thin wrapper: walking, scanning and rendering live in `Detection.ScanReport`.
struct ScanCommand: AsyncParsableCommand {
    /// Documented default fingerprint key, used when SLUICE_FP_KEY is not set.
    static let defaultFingerprintKey = "sluice-scan-default-fingerprint-key-v1"

    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Scan files, directories or stdin for credentials and personal data.",
        discussion: """
        Directories are walked recursively (.git, node_modules, .build and similar are skipped); binary \
        files are skipped. Output never contains the secrets themselves: only the path, byte offsets \
        (end exclusive), line, rule id, class and a fingerprint.

        Fingerprints are the first 12 hex chars of HMAC-SHA256(key, secret). The key comes from the \
        environment variable SLUICE_FP_KEY; when it is unset a fixed, documented default key is used, \
        so fingerprints then only correlate between scans that use the same key (e.g. within one \
        machine's scans) and must not be treated as confidential.

        Exit status: 0 no findings, 1 findings, 2 error (bad arguments, unreadable path, invalid rules file).
        """
    )

    @Option(name: .long, help: "Output format: text, json, jsonl or sarif (SARIF 2.1.0).")
    var format: ReportFormat = .text

    @Option(name: .long, help: "Custom rules file (YAML or JSON): a list of rules or {rules: [...]} with id, pattern, keywords, min_entropy, class, severity.")
    var rules: String?

    @Flag(name: .long, help: "Do not report personal data (email, cards, IBAN, SSN, phone).")
    var noPii = false

    @Argument(help: "Files or directories to scan; '-' reads standard input.")
    var paths: [String] = []

    func run() async throws {
        let code: Int32
        do {
            code = try scan()
        } catch {
            FileHandle.standardError.write(Data("sluice scan: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if code != 0 { throw ExitCode(code) }
    }

    /// Returns the exit code (0 clean, 1 findings); throws on errors (exit 2).
    func scan() throws -> Int32 {
        guard !paths.isEmpty else { throw ValidationError("give at least one PATH or '-'") }
        var specs: [RuleSpec] = []
        if let rules {
            guard let data = FileManager.default.contents(atPath: rules) else {
                throw ValidationError("cannot read rules file \(rules)")
            }
            specs = try Self.parseRules(data, source: rules)
        }
        let key = ProcessInfo.processInfo.environment["SLUICE_FP_KEY"] ?? Self.defaultFingerprintKey
        let engine = try DetectionEngine(fingerprintKey: Array(key.utf8), customRules: specs)
        let files = try ScanReport.collectFiles(paths)
        let ctx = ScanContext(credentials: true, pii: !noPii, hint: .text)
        let (found, skipped) = try ScanReport.scanFiles(files, engine: engine, context: ctx)
        if !skipped.isEmpty && format == .text {
            FileHandle.standardError.write(Data("skipped \(skipped.count) binary or oversized file(s)\n".utf8))
        }
        FileHandle.standardOutput.write(Data(ScanReport.render(found, format: format, rules: engine.ruleInfos).utf8))
        return found.isEmpty ? 0 : 1
    }

    /// Parses a YAML or JSON rules file (YAML is a superset of JSON).
    static func parseRules(_ data: Data, source: String) throws -> [RuleSpec] {
        struct Wrapper: Decodable { let rules: [RuleSpec] }
        let text = String(decoding: data, as: UTF8.self)
        let decoder = YAMLDecoder()
        if let list = try? decoder.decode([RuleSpec].self, from: text) { return list }
        do { return try decoder.decode(Wrapper.self, from: text).rules } catch {
            throw ValidationError("invalid rules file \(source): \(error)")
        }
    }
}
