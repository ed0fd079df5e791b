import Foundation

/// Output formats of `sluice scan`.
public enum ReportFormat: String, Sendable, CaseIterable {
    case text, json, jsonl, sarif
}

/// A finding located in a file (or `-` for standard input). Carries no secret bytes.
public struct FileFinding: Sendable, Hashable {
    public var path: String
    public var finding: Finding
    /// 1-based line and column (in bytes) of `finding.start`.
    public var line: Int
    public var column: Int
    public var endLine: Int
    public var endColumn: Int
    /// Why it was reported or silenced (`sluice scan --explain`, and every silenced finding).
    public var explanation: Explanation? = nil

    /// Silenced by a `sluice:allow` comment on its line (`sluice scan`).
    public var inlineAllowed = false

    /// The allow-list entry that silenced it; nil when it is reported (or silenced inline).
    public var allowedBy: Int? { explanation?.allowedBy }

    /// Whether it is silenced: by an allow-list entry or a `sluice:allow` comment.
    public var isSilenced: Bool { allowedBy != nil || inlineAllowed }
}

/// What a SARIF log needs beyond the findings.
public struct SARIFOptions: Sendable, Hashable {
    /// `tool.driver.version`.
    public var toolVersion: String
    /// The absolute directory `SRCROOT` stands for (the scan's working directory): paths under it
    /// are written relative to it with `uriBaseId: SRCROOT`, others as absolute `file:` URIs.
    /// `nil`: paths as given (percent-encoded), no base.
    public var sourceRoot: String?

    public init(toolVersion: String = "unknown", sourceRoot: String? = nil) {
        self.toolVersion = toolVersion
        self.sourceRoot = sourceRoot
    }
}

/// File walking, scanning and report rendering for `sluice scan`. Pure apart from reading files.
public enum ScanReport {
    /// Files larger than this are skipped (reported as skipped, not scanned).
    public static let maxFileSize = 64 << 20
    /// Directory names never descended into.
    public static let skippedDirectories: Set<String> = [".git", ".hg", ".svn", ".build", "node_modules", ".venv", "__pycache__"]

    /// Expands paths: files are kept, directories are walked recursively (sorted, symlinks not followed).
    /// Throws when a path does not exist.
    public static func collectFiles(_ paths: [String]) throws(DetectionError) -> [String] {
        var out: [String] = []
        let fm = FileManager.default
        for path in paths {
            if path == "-" { out.append("-"); continue }
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
                throw DetectionError.unreadablePath(path: path, reason: "no such file or directory")
            }
            if !isDir.boolValue { out.append(path); continue }
            out += walk(path)
        }
        return out
    }

    static func walk(_ dir: String) -> [String] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: dir) else { return [] }
        var out: [String] = []
        for name in names.sorted() {
            let p = dir.hasSuffix("/") ? dir + name : dir + "/" + name
            guard let attrs = try? fm.attributesOfItem(atPath: p), let type = attrs[.type] as? FileAttributeType else { continue }
            if type == .typeDirectory {
                if !skippedDirectories.contains(name) { out += walk(p) }
            } else if type == .typeRegular {
                out.append(p)
            }
        }
        return out
    }

    /// True when the bytes look binary (a NUL in the first 8 KiB, or mostly non-text).
    public static func isBinary(_ bytes: [UInt8]) -> Bool {
        let head = bytes.prefix(8192)
        if head.contains(0) { return true }
        var bad = 0
        for b in head where b < 9 || (b > 13 && b < 32) || b == 127 { bad += 1 }
        return bad * 10 > head.count
    }

    /// Scans one buffer and locates its findings (line/column).
    public static func locate(_ bytes: [UInt8], path: String, findings: [Finding]) -> [FileFinding] {
        var lineStarts: [Int] = [0]
        for (i, b) in bytes.enumerated() where b == 10 { lineStarts.append(i + 1) }
        func pos(_ off: Int) -> (Int, Int) {
            var lo = 0, hi = lineStarts.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if lineStarts[mid] <= off { lo = mid } else { hi = mid - 1 }
            }
            return (lo + 1, off - lineStarts[lo] + 1)
        }
        return findings.map { f in
            let (l, c) = pos(f.start)
            let (el, ec) = pos(max(f.start, f.end - 1))
            return FileFinding(path: path, finding: f, line: l, column: c, endLine: el, endColumn: ec + 1)
        }
    }

    /// Reads and scans files. Binary and oversized files are skipped and listed in `skipped`.
    public static func scanFiles(_ files: [String], engine: DetectionEngine, context: ScanContext = ScanContext(),
                                 readStdin: () -> [UInt8] = { Array(FileHandle.standardInput.readDataToEndOfFile()) })
        throws(DetectionError) -> (findings: [FileFinding], skipped: [String]) {
        var all: [FileFinding] = []
        var skipped: [String] = []
        for path in files {
            let bytes: [UInt8]
            if path == "-" { bytes = readStdin() } else {
                guard let attrs = try? FileManager.default.attributesOfItem(atPath: path) else {
                    throw DetectionError.unreadablePath(path: path, reason: "cannot read file")
                }
                if let size = attrs[.size] as? NSNumber, size.intValue > maxFileSize { skipped.append(path); continue }
                guard let d = FileManager.default.contents(atPath: path) else {
                    throw DetectionError.unreadablePath(path: path, reason: "cannot read file")
                }
                bytes = Array(d)
            }
            if isBinary(bytes) { skipped.append(path); continue }
            all += locate(bytes, path: path, findings: engine.scan(bytes, context: context))
        }
        return (all, skipped)
    }

    // MARK: rendering

    /// Renders findings. Never includes secret bytes: only positions, rule ids and fingerprints.
    ///
    /// `allowed`: findings the allow-list silenced (each with its `explanation`). They are listed
    /// apart and never counted as findings: text prints them only with `explain` (else standard
    /// error says how many, see the CLI); json has `allowed`, jsonl lines with `allowedBy`, SARIF
    /// results with an external `suppressions` entry. With `explain`, every finding carries its
    /// explanation (text: indented lines; json/jsonl/SARIF: an `explanation` object / property).
    public static func render(_ results: [FileFinding], allowed: [FileFinding] = [], format: ReportFormat,
                              rules: [RuleInfo] = [], explain: Bool = false, sarif options: SARIFOptions = SARIFOptions()) -> String {
        switch format {
        case .text:
            var s = ""
            for r in results {
                s += textLine(r, tag: r.finding.severity.rawValue)
                if explain, let e = r.explanation {
                    s += textExplanation(e)
                    // An entry silences one rule: another rule finding the same value is still reported.
                    if let other = allowed.first(where: { $0.finding.fingerprint == r.finding.fingerprint && $0.finding.rule != r.finding.rule }) {
                        s += "    note:      the same value is silenced for \(other.finding.rule) by detection.allow[\(other.allowedBy ?? -1)];"
                            + " an entry with rule \"*\" silences it for every rule\n"
                    }
                }
            }
            if explain {
                for r in allowed {
                    let why = r.explanation?.allowReason.map { " (\($0))" } ?? ""
                    let by = r.inlineAllowed ? "a sluice:allow comment" : "detection.allow[\(r.allowedBy ?? -1)]\(why)"
                    s += textLine(r, tag: "allowed by \(by):")
                    if let e = r.explanation { s += textExplanation(e) }
                }
            }
            s += results.isEmpty ? "no findings\n" : "\(results.count) finding\(results.count == 1 ? "" : "s")\n"
            return s
        case .jsonl:
            return (results + allowed).map { jsonObject($0, explain: explain) + "\n" }.joined()
        case .json:
            return "{\"findings\":[" + results.map { jsonObject($0, explain: explain) }.joined(separator: ",") + "],\"count\":\(results.count)"
                + ",\"allowed\":[" + allowed.map { jsonObject($0, explain: explain) }.joined(separator: ",") + "]}\n"
        case .sarif:
            return sarif(results, allowed: allowed, rules: rules, explain: explain, options: options)
        }
    }

    static func textLine(_ r: FileFinding, tag: String) -> String {
        let f = r.finding
        let via = f.decodedVia.isEmpty ? "" : " via \(f.decodedVia.joined(separator: ">"))"
        return "\(r.path):\(r.line):\(r.column): \(tag) \(f.rule) [\(f.ruleClass.rawValue)] bytes \(f.start)-\(f.end) fp=\(f.fingerprint)\(via)\n"
    }

    /// The indented lines `--explain` prints under a finding.
    static func textExplanation(_ e: Explanation) -> String {
        var s = "    rule:      \(e.finding.rule): \(e.title)\n"
        s += "    matched:   \(e.method)" + (e.keyword.map { " (keyword \"\($0)\")" } ?? "") + "\n"
        s += "    view:      \(e.view)\n"
        let floor = e.minEntropy > 0 ? String(format: " (rule minimum %.1f)", e.minEntropy) : " (no entropy gate)"
        s += "    value:     \(e.length) bytes, entropy " + String(format: "%.2f", e.entropy) + " bits/byte\(floor)\n"
        if let c = e.checksum { s += "    checksum:  \(c)\n" }
        for c in e.checks { s += "    passed:    \(c)\n" }
        s += "    kept:      confidence " + String(format: "%.2f", e.finding.confidence)
            + (e.outranked.isEmpty ? "" : "; outranked \(e.outranked.joined(separator: ", "))") + "\n"
        return s
    }

    static func jsonObject(_ r: FileFinding, explain: Bool = false) -> String {
        let f = r.finding
        var s = "{\"path\":\(q(r.path)),\"start\":\(f.start),\"end\":\(f.end),\"line\":\(r.line),\"column\":\(r.column),"
            + "\"rule\":\(q(f.rule)),\"class\":\(q(f.ruleClass.rawValue)),\"severity\":\(q(f.severity.rawValue)),"
            + "\"confidence\":\(Double(Int(f.confidence * 100)) / 100),\"fingerprint\":\(q(f.fingerprint)),"
            + "\"decodedVia\":[\(f.decodedVia.map(q).joined(separator: ","))]"
        if let a = r.allowedBy { s += ",\"allowedBy\":\(a)" }
        if r.inlineAllowed { s += ",\"inlineAllow\":true" }
        if explain, let e = r.explanation { s += ",\"explanation\":" + explanationJSON(e) }
        return s + "}"
    }

    static func explanationJSON(_ e: Explanation) -> String {
        "{\"title\":\(q(e.title)),\"method\":\(q(e.method)),\"keyword\":\(e.keyword.map(q) ?? "null"),\"view\":\(q(e.view)),"
            + "\"length\":\(e.length),\"entropy\":\(Double(Int(e.entropy * 100)) / 100),\"minEntropy\":\(e.minEntropy),"
            + "\"checksum\":\(e.checksum.map(q) ?? "null"),\"checks\":[\(e.checks.map(q).joined(separator: ","))],"
            + "\"outranked\":[\(e.outranked.map(q).joined(separator: ","))]}"
    }

    static func sarif(_ results: [FileFinding], allowed: [FileFinding] = [], rules: [RuleInfo], explain: Bool = false,
                      options: SARIFOptions = SARIFOptions()) -> String {
        let used = Set((results + allowed).map(\.finding.rule))
        var ruleList = rules.filter { used.contains($0.id) }
        for id in used.sorted() where !ruleList.contains(where: { $0.id == id }) {
            ruleList.append(RuleInfo(id: id, title: id, ruleClass: .credential, severity: .high, keywords: []))
        }
        // GitHub code scanning ranks security results by `security-severity` (a CVSS-like score).
        let rulesJSON = ruleList.map { r in
            "{\"id\":\(q(r.id)),\"name\":\(q(r.id)),\"shortDescription\":{\"text\":\(q(r.title))},"
                + "\"defaultConfiguration\":{\"level\":\(q(level(r.severity)))},"
                + "\"properties\":{\"class\":\(q(r.ruleClass.rawValue)),\"security-severity\":\(q(securitySeverity(r.severity))),"
                + "\"tags\":[\"security\",\(q(r.ruleClass.rawValue))]}}"
        }.joined(separator: ",")
        let resultsJSON = (results + allowed).map { r -> String in
            let f = r.finding
            var s = "{\"ruleId\":\(q(f.rule)),\"level\":\(q(level(f.severity))),"
                + "\"message\":{\"text\":\(q("\(f.ruleClass.rawValue) detected by rule \(f.rule) (fingerprint \(f.fingerprint))"))},"
                + "\"locations\":[{\"physicalLocation\":{\"artifactLocation\":\(artifactLocation(r.path, root: options.sourceRoot)),"
                + "\"region\":{\"startLine\":\(r.line),\"startColumn\":\(r.column),\"endLine\":\(r.endLine),\"endColumn\":\(r.endColumn),"
                + "\"byteOffset\":\(f.start),\"byteLength\":\(f.end - f.start)}}}],"
                + "\"partialFingerprints\":{\"sluiceFingerprint/v1\":\(q(f.fingerprint))}"
            if r.inlineAllowed {
                s += ",\"suppressions\":[{\"kind\":\"inSource\",\"justification\":\"sluice:allow comment on the line\"}]"
            } else if let a = r.allowedBy {
                let why = r.explanation?.allowReason.map { ": \($0)" } ?? ""
                s += ",\"suppressions\":[{\"kind\":\"external\",\"justification\":\(q("silenced by detection.allow[\(a)]\(why)"))}]"
            }
            if explain, let e = r.explanation { s += ",\"properties\":{\"explanation\":" + explanationJSON(e) + "}" }
            return s + "}"
        }.joined(separator: ",")
        let bases = options.sourceRoot.map { root in
            ",\"originalUriBaseIds\":{\"SRCROOT\":{\"uri\":\(q(fileURI(root.hasSuffix("/") ? root : root + "/")))}}"
        } ?? ""
        return "{\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"version\":\"2.1.0\",\"runs\":[{\"tool\":{\"driver\":{"
            + "\"name\":\"sluice\",\"version\":\(q(options.toolVersion)),\"rules\":[\(rulesJSON)]}}\(bases),"
            + "\"results\":[\(resultsJSON)]}]}\n"
    }

    /// A SARIF `artifactLocation` object for `path` (`-` is standard input): relative to `root`
    /// with `uriBaseId: SRCROOT` when under it, else an absolute `file:` URI; percent-encoded
    /// either way (any byte but unreserved characters and `/`), so every file name gives a valid
    /// URI reference.
    public static func artifactLocation(_ path: String, root: String?) -> String {
        if path == "-" { return "{\"uri\":\"stdin\"}" }
        guard let root else { return "{\"uri\":\(q(percentEncoded(path)))}" }
        let absolute = URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: root, isDirectory: true)).standardizedFileURL.path
        let base = URL(fileURLWithPath: root, isDirectory: true).standardizedFileURL.path
        let prefix = base.hasSuffix("/") ? base : base + "/"
        if absolute.hasPrefix(prefix) {
            return "{\"uri\":\(q(percentEncoded(String(absolute.dropFirst(prefix.count))))),\"uriBaseId\":\"SRCROOT\"}"
        }
        return "{\"uri\":\(q(fileURI(absolute)))}"
    }

    /// `file://` + the percent-encoded absolute path.
    static func fileURI(_ absolute: String) -> String { "file://" + percentEncoded(absolute) }

    /// Every byte of the UTF-8 path but `A-Z a-z 0-9 - . _ ~ /` as `%XX`.
    static func percentEncoded(_ path: String) -> String {
        var out = ""
        for b in path.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// GitHub's `security-severity` score per severity (critical ≥ 9, high ≥ 7, medium ≥ 4, low).
    static func securitySeverity(_ s: Severity) -> String {
        switch s {
        case .critical: return "9.5"
        case .high: return "8.0"
        case .medium: return "5.5"
        case .low: return "3.0"
        }
    }

    static func level(_ s: Severity) -> String {
        switch s {
        case .critical, .high: return "error"
        case .medium: return "warning"
        case .low: return "note"
        }
    }

    /// JSON string literal with escaping.
    public static func q(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// Parses custom rules from JSON text: either a list of rules or `{"rules": [...]}`.
    /// (The CLI decodes YAML itself with Yams and hands `RuleSpec`s to the engine.)
    public static func parseRulesJSON(_ data: [UInt8]) throws(DetectionError) -> [RuleSpec] {
        struct Wrapper: Decodable { let rules: [RuleSpec] }
        let d = Data(data)
        if let list = try? JSONDecoder().decode([RuleSpec].self, from: d) { return list }
        do { return try JSONDecoder().decode(Wrapper.self, from: d).rules } catch {
            throw DetectionError.invalidRule(rule: "<rules file>", reason: "cannot parse rules: \(error)")
        }
    }
}
