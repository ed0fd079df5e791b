import ArgumentParser
import Detection
import Foundation
import Pipeline
import Yams
#if canImport(Glibc)
import Glibc
#endif

extension ReportFormat: ExpressibleByArgument {}

/// `sluice scan`: scans files, directories or standard input for credentials and PII.
/// Thin wrapper: finding, reading and skipping files live in `ScanInputs` and `StreamingScan`,
/// detection and rendering of findings in `Detection.ScanReport`.
///
/// Guarantees: nothing is skipped silently. Every input is scanned whole (streamed in
/// overlapping chunks, whatever its size) or listed in the output of every format with the
/// reason (`skipped`); an input that cannot be read makes the exit status 2, after every
/// readable input has been scanned and reported.
struct ScanCommand: AsyncParsableCommand {
    /// Documented default fingerprint key, used when SLUICE_FP_KEY is not set.
    static let defaultFingerprintKey = "sluice-scan-default-fingerprint-key-v1"

    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Scan files, directories or stdin for credentials and personal data.",
        discussion: """
        Directories are walked recursively (.git, node_modules, .build and similar are not descended \
        into; symbolic links inside them are not followed). Files of any size are streamed in 8 MiB \
        chunks that overlap by 64 KiB, so a finding across a chunk edge is reported once, with offsets \
        and lines counted from the start of the file. Output never contains the secrets themselves: \
        only the path, byte offsets (end exclusive), line, rule id, class and a fingerprint.

        Nothing is skipped silently: binary files, symbolic links and other non-regular files met \
        while walking, and files --exclude leaves out, are listed as skipped (text: on standard error; json: "skipped"; jsonl: a \
        {"skipped": path, "reason": ...} line; SARIF: invocations[].toolExecutionNotifications). \
        Inputs that cannot be read (missing, dangling link, permission denied, a FIFO or socket named \
        on the command line, a read error) are listed the same way with "unreadable": true. A file \
        named on the command line is always scanned, binary or not.

        Credentials are reported by default, as the gateway's connections do; --pii adds personal \
        data (email, cards, IBAN, SSN, phone).

        Fingerprints are the first 12 hex chars of HMAC-SHA256(key, secret). The key comes from the \
        environment variable SLUICE_FP_KEY, read as the gateway reads sealing.fingerprint_key (base64 \
        of at least 16 bytes, else the text itself, at least 16 bytes): the same key gives the same \
        fingerprints as the gateway's audit. When it is unset a fixed, documented default key is \
        used, so fingerprints then only correlate between scans that use the same key and must not \
        be treated as confidential.

        --allow FILE silences known false positives without disabling a rule: entries of rule (an id, \
        or "*") with a fingerprint (as printed), a pattern the whole value must match, and/or a path \
        glob the file's path must match. Silenced findings do not count for the exit status; they are \
        listed in json ("allowed"), jsonl ("allowedBy") and SARIF (suppressions), and in text a line on \
        standard error says how many. --explain prints, per finding, why it was reported: the rule, how \
        it matched and on which keyword, the decoded view (e.g. json-escape > base64), the value's \
        length and entropy, the checksum and other checks it passed, the rules it outranked; and the \
        silenced findings with the entry that silenced them.

        --baseline FILE silences the findings of an earlier `--format json` (or jsonl) report, by rule \
        and fingerprint: only new secrets fail the scan. A line holding the comment `sluice:allow` \
        silences the findings that start on it (listed like the allow-list's, as in-source \
        suppressions in SARIF). --exclude GLOB (repeatable; `*` within a path segment, `**` across) \
        leaves out the files whose path, as given or found, matches.

        SARIF: file URIs relative to the working directory carry uriBaseId SRCROOT (percent-encoded, \
        as GitHub code scanning expects); others are absolute file: URIs.

        Exit status: 0 no findings, 1 findings, 2 error (bad arguments, an invalid rules, allow-list or \
        baseline file, an unusable SLUICE_FP_KEY, or an input that could not be read; reported after \
        scanning everything readable).
        """
    )

    @Option(name: .long, help: "Output format: text, json, jsonl or sarif (SARIF 2.1.0).")
    var format: ReportFormat = .text

    @Option(name: .long, help: "Custom rules file (YAML or JSON): a list of rules or {rules: [...]} with id, pattern, keywords, min_entropy, class, severity.")
    var rules: String?

    @Flag(name: .long, help: "Also report personal data (email, cards, IBAN, SSN, phone); by default only credentials, as the gateway.")
    var pii = false

    /// Accepted for scripts written when personal data was reported by default; it is now off unless --pii.
    @Flag(name: .long, help: .hidden)
    var noPii = false

    @Option(name: .long, help: "A previous report (--format json or jsonl): its findings (rule and fingerprint) are silenced, so only new ones count.")
    var baseline: String?

    @Option(name: .long, help: "Leave out files whose path matches this glob (repeatable; * within a segment, ** across segments).")
    var exclude: [String] = []

    @Option(name: .long, help: "Allow-list file (YAML or JSON): a list of entries or {allow: [...]}, each with rule (an id or \"*\") and at least one of fingerprint, pattern (whole value), path (glob); the same entries as detection.allow in the gateway's config.")
    var allow: String?

    @Flag(name: .long, help: "Say per finding why it was reported: rule, matcher, keyword, decoded view, length, entropy, checksum, checks passed, rules outranked; and list the findings the allow-list silenced.")
    var explain = false

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

    /// Returns the exit code (0 clean, 1 findings, 2 something could not be read); throws on
    /// errors that stop the scan before it starts (exit 2).
    func scan() throws -> Int32 {
        guard !paths.isEmpty else { throw ValidationError("give at least one PATH or '-'") }
        var specs: [RuleSpec] = []
        if let rules {
            guard let data = FileManager.default.contents(atPath: rules) else {
                throw ValidationError("cannot read rules file \(rules)")
            }
            specs = try Self.parseRules(data, source: rules)
        }
        var allowSpecs: [AllowSpec] = []
        if let allow {
            guard let data = FileManager.default.contents(atPath: allow) else {
                throw ValidationError("cannot read allow-list file \(allow)")
            }
            allowSpecs = try Self.parseAllow(data, source: allow)
        }
        if let baseline {
            guard let data = FileManager.default.contents(atPath: baseline) else {
                throw ValidationError("cannot read baseline file \(baseline)")
            }
            allowSpecs += try Self.parseBaseline(data, source: baseline)
        }
        let excludes = try exclude.map { glob in
            do { return (glob, try Regex(PathGlob.regex(glob))) } catch {
                throw ValidationError("invalid --exclude glob \(glob): \(error)")
            }
        }
        let key = try Self.fingerprintKey(environment: ProcessInfo.processInfo.environment)
        let engine: DetectionEngine
        do { engine = try DetectionEngine(fingerprintKey: key, customRules: specs, allow: allowSpecs) } catch {
            if case .invalidAllow(let index, let reason) = error {
                throw ValidationError("invalid allow-list \(allow ?? ""): entry \(index): \(reason)")
            }
            throw error
        }
        var scanner = StreamingScan(engine: engine, context: ScanContext(credentials: true, pii: pii && !noPii, hint: .text))
        scanner.explain = explain

        var (inputs, skipped) = ScanInputs.collect(paths)
        if !excludes.isEmpty {
            var kept: [ScanInput] = []
            for input in inputs {
                let path = StreamingScan.allowPaths(input).first ?? ""
                if let (glob, _) = excludes.first(where: { (try? $0.1.wholeMatch(in: path)) != nil }) {
                    skipped.append(SkippedInput(path: input.path, reason: "excluded by --exclude \(glob)", unreadable: false, order: input.order, excluded: true))
                } else {
                    kept.append(input)
                }
            }
            inputs = kept
        }
        var found: [FileFinding] = []
        var allowed: [FileFinding] = []
        for input in inputs {
            let outcome = scanner.scan(input)
            found += outcome.findings
            allowed += outcome.allowed
            if let skip = outcome.skipped { skipped.append(skip) }
        }
        skipped.sort { $0.order < $1.order }

        let report = try SkipReport.render(
            found: found, allowed: allowed, skipped: skipped, format: format, rules: engine.ruleInfos, explain: explain,
            sarif: SARIFOptions(toolVersion: SluiceVersion.current, sourceRoot: FileManager.default.currentDirectoryPath))
        FileHandle.standardOutput.write(Data(report.stdout.utf8))
        var notes = report.stderr
        if format == .text && !explain && !allowed.isEmpty {
            // Never silent: say that the allow-list hid something, and how to see it.
            notes += "sluice scan: \(allowed.count) finding\(allowed.count == 1 ? "" : "s") silenced by --allow, --baseline or sluice:allow comments (--explain lists them)\n"
        }
        if !notes.isEmpty { FileHandle.standardError.write(Data(notes.utf8)) }
        if skipped.contains(where: \.unreadable) { return 2 }
        return found.isEmpty ? 0 : 1
    }

    /// The fingerprint key: `SLUICE_FP_KEY` read as the gateway reads `sealing.fingerprint_key`
    /// (`SealingConfig.fingerprintKeyBytes(text:source:path:)`), else the documented default.
    static func fingerprintKey(environment: [String: String]) throws -> [UInt8] {
        guard let text = environment["SLUICE_FP_KEY"] else { return Array(defaultFingerprintKey.utf8) }
        do {
            return try SealingConfig.fingerprintKeyBytes(text: text, source: "SLUICE_FP_KEY", path: "SLUICE_FP_KEY")
        } catch {
            throw ValidationError("SLUICE_FP_KEY must hold at least 16 bytes (base64, or the text itself), as sealing.fingerprint_key does")
        }
    }

    /// Allow-list entries silencing every finding of an earlier report: `--format json` (its
    /// `findings`) or jsonl (each finding line), matched by rule and fingerprint.
    static func parseBaseline(_ data: Data, source: String) throws -> [AllowSpec] {
        struct Entry: Decodable, Hashable { let rule: String; let fingerprint: String }
        struct Report: Decodable { let findings: [Entry] }
        let reason = "in baseline \(source)"
        var entries: [Entry] = []
        if let report = try? JSONDecoder().decode(Report.self, from: data) {
            entries = report.findings
        } else {
            for (i, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() where !line.allSatisfy({ $0 == 32 || $0 == 13 }) {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw ValidationError("invalid baseline file \(source): line \(i + 1) is not JSON (give a --format json or jsonl report)")
                }
                if object["skipped"] != nil { continue }
                guard let rule = object["rule"] as? String, let fingerprint = object["fingerprint"] as? String else {
                    throw ValidationError("invalid baseline file \(source): line \(i + 1) has no rule and fingerprint")
                }
                entries.append(Entry(rule: rule, fingerprint: fingerprint))
            }
        }
        var seen: Set<Entry> = []
        return entries.filter { seen.insert($0).inserted }.map { AllowSpec(rule: $0.rule, fingerprint: $0.fingerprint, reason: reason) }
    }

    /// Parses a YAML or JSON allow-list file: a list of entries, or `{allow: [...]}` (a whole
    /// sluice config's `detection.allow` is not read: pass the entries).
    static func parseAllow(_ data: Data, source: String) throws -> [AllowSpec] {
        struct Wrapper: Decodable { let allow: [AllowSpec] }
        let text = String(decoding: data, as: UTF8.self)
        let decoder = YAMLDecoder()
        do {
            // The top level decides which shape's error to report.
            if (try? Yams.load(yaml: text)) is [Any] { return try decoder.decode([AllowSpec].self, from: text) }
            return try decoder.decode(Wrapper.self, from: text).allow
        } catch {
            throw ValidationError("invalid allow-list file \(source): \(Self.describe(error))")
        }
    }

    /// A decoding error in one line: where, and what (its debug description).
    static func describe(_ error: any Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        let (path, what): ([any CodingKey], String)
        switch e {
        case .dataCorrupted(let c): (path, what) = (c.codingPath, c.debugDescription)
        case .keyNotFound(let key, let c): (path, what) = (c.codingPath + [key], "missing")
        case .typeMismatch(_, let c): (path, what) = (c.codingPath, c.debugDescription)
        case .valueNotFound(_, let c): (path, what) = (c.codingPath, c.debugDescription)
        @unknown default: return "\(error)"
        }
        let at = path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return (at.isEmpty ? "" : "at \(at.hasPrefix(".") ? String(at.dropFirst()) : at): ") + what
    }

    /// Parses a YAML or JSON rules file (YAML is a superset of JSON); every problem is reported,
    /// one line each, `FILE:LINE:COL: <key path>: <message>` (see `RulesFile`).
    static func parseRules(_ data: Data, source: String) throws -> [RuleSpec] {
        do { return try RulesFile.parse(String(decoding: data, as: UTF8.self), source: source) } catch {
            throw ValidationError("invalid rules file \(source):\n\(error)")
        }
    }
}

/// An input that was not scanned (or not scanned to its end), and why.
struct SkippedInput: Sendable, Equatable {
    var path: String
    /// One sentence, never file content.
    var reason: String
    /// True when the input could not be read (exit status 2); false when it was left out by
    /// design (binary file, symbolic link or special file met while walking a directory).
    var unreadable: Bool
    /// Position among the inputs, to report in command-line order.
    var order: Int
    /// Left out by `--exclude` (text output sums these up in one line).
    var excluded = false
}

/// One input to scan: a path (or `-`) and its position among the inputs.
struct ScanInput: Sendable, Equatable {
    var path: String
    var order: Int
    /// Named on the command line (scanned even when binary), not found by walking a directory.
    var named = false
}

/// Expands the command-line paths into inputs, listing what cannot or will not be scanned.
///
/// Guarantees: every path on the command line and every entry met while walking a directory
/// ends up either in `inputs` or in `skipped`; nothing is dropped. Paths named on the command
/// line are followed if they are symbolic links; links inside walked directories are not.
enum ScanInputs {
    /// Directory names never descended into (listed neither as inputs nor as skipped).
    static let skippedDirectories = ScanReport.skippedDirectories

    static func collect(_ paths: [String]) -> (inputs: [ScanInput], skipped: [SkippedInput]) {
        var inputs: [ScanInput] = []
        var skipped: [SkippedInput] = []
        func add(_ path: String, named: Bool = false) {
            inputs.append(ScanInput(path: path, order: inputs.count + skipped.count, named: named))
        }
        func skip(_ path: String, _ reason: String, unreadable: Bool) {
            skipped.append(SkippedInput(path: path, reason: reason, unreadable: unreadable, order: inputs.count + skipped.count))
        }
        func walk(_ dir: String) {
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
                skip(dir, "cannot list directory: \(Self.describe(errnoOf: error))", unreadable: true)
                return
            }
            for name in names.sorted() {
                let p = dir.hasSuffix("/") ? dir + name : dir + "/" + name
                var st = stat()
                guard lstat(p, &st) == 0 else {
                    skip(p, "cannot stat: \(Self.errnoText())", unreadable: true)
                    continue
                }
                switch st.st_mode & S_IFMT {
                case S_IFDIR: if !skippedDirectories.contains(name) { walk(p) }
                case S_IFREG: add(p)
                case S_IFLNK: skip(p, "symbolic link, not followed inside a directory", unreadable: false)
                default: skip(p, "not a regular file (\(Self.kind(st.st_mode)))", unreadable: false)
                }
            }
        }
        for path in paths {
            if path == "-" { add(path, named: true); continue }
            var st = stat()
            if stat(path, &st) != 0 {
                let reason = Self.errnoText()
                var lst = stat()
                if lstat(path, &lst) == 0, lst.st_mode & S_IFMT == S_IFLNK {
                    skip(path, "dangling symbolic link (\(reason))", unreadable: true)
                } else {
                    skip(path, reason, unreadable: true)
                }
                continue
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: walk(path)
            case S_IFREG: add(path, named: true)
            default:
                skip(path, "not a regular file (\(Self.kind(st.st_mode))); pipe it to standard input with '-' instead",
                     unreadable: true)
            }
        }
        return (inputs, skipped)
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFDIR: return "a directory"
        case S_IFLNK: return "a symbolic link"
        default: return "unknown type"
        }
    }

    /// `strerror(errno)`, lower-cased first letter.
    static func errnoText(_ code: Int32 = errno) -> String {
        let text = String(cString: strerror(code))
        return text.prefix(1).lowercased() + text.dropFirst()
    }

    static func describe(errnoOf error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return errnoText(Int32(underlying.code))
        }
        if ns.domain == NSPOSIXErrorDomain { return errnoText(Int32(ns.code)) }
        return ns.localizedDescription
    }
}

/// Scans one input (a file or standard input) of any size in overlapping windows.
///
/// The input is read in chunks of `chunkSize` bytes; each chunk is scanned together with
/// `overlap` bytes before and after it, and a finding is reported by the window whose chunk
/// holds its first byte. So a finding up to `overlap` bytes long (and its surrounding context,
/// e.g. a keyword before a value) is seen whole whatever the chunk edges, and reported once.
///
/// Guarantees: memory stays at most `chunkSize + 2 * overlap` bytes of input; offsets, lines
/// and columns are counted from the start of the input; a read error after some findings keeps
/// those findings and reports the input as unreadable.
struct StreamingScan {
    static let defaultChunkSize = 8 << 20
    static let defaultOverlap = 64 << 10

    let engine: DetectionEngine
    let context: ScanContext
    var chunkSize = StreamingScan.defaultChunkSize
    var overlap = StreamingScan.defaultOverlap
    /// Attach an `Explanation` to every finding (`--explain`). Silenced findings always carry one.
    var explain = false

    struct Outcome {
        var findings: [FileFinding] = []
        /// Findings the allow-list silenced (each with its explanation).
        var allowed: [FileFinding] = []
        var skipped: SkippedInput?
    }

    /// What an allow-list `path` glob is matched against for `input`: its path as given, without a
    /// leading `./` (nothing for standard input).
    static func allowPaths(_ input: ScanInput) -> [String] {
        guard input.path != "-" else { return [] }
        var p = Substring(input.path)
        while p.hasPrefix("./") { p = p.dropFirst(2) }
        return [String(p)]
    }

    func scan(_ input: ScanInput) -> Outcome {
        if input.path == "-" { return scan(fd: 0, input: input) }
        let fd = open(input.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return Outcome(skipped: unreadable(input, ScanInputs.errnoText())) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return Outcome(skipped: unreadable(input, ScanInputs.errnoText())) }
        // Replaced by something else since it was listed: never block on a FIFO.
        guard st.st_mode & S_IFMT == S_IFREG else {
            return Outcome(skipped: unreadable(input, "not a regular file (\(ScanInputs.kind(st.st_mode)))"))
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return scan(fd: fd, input: input)
    }

    static let inlineAllowMarker = Array("sluice:allow".utf8)

    private func unreadable(_ input: ScanInput, _ reason: String) -> SkippedInput {
        SkippedInput(path: input.path, reason: reason, unreadable: true, order: input.order)
    }

    /// Reads `fd` to its end, scanning window by window.
    func scan(fd: Int32, input: ScanInput) -> Outcome {
        var outcome = Outcome()
        var buffer: [UInt8] = []  // input bytes [bufferStart, bufferStart + buffer.count)
        var bufferStart = 0
        var linesBeforeBuffer = 0  // newlines in [0, bufferStart)
        var lineStartBeforeBuffer = 0  // offset of the line that bufferStart is on
        var ownedStart = 0  // the current window reports findings starting in [ownedStart, ownedEnd)
        var eof = false
        var reported: [Finding] = []  // the previous window's reports, to never repeat one
        var readChunk = [UInt8](repeating: 0, count: 1 << 20)

        while true {
            // Fill the window: [ownedStart - overlap, ownedStart + chunkSize + overlap).
            let want = ownedStart + chunkSize + overlap
            while !eof && bufferStart + buffer.count < want {
                let n = readChunk.withUnsafeMutableBytes { raw in
                    read(fd, raw.baseAddress, min(raw.count, want - bufferStart - buffer.count))
                }
                if n > 0 {
                    buffer += readChunk[0..<n]
                } else if n == 0 {
                    eof = true
                } else if errno != EINTR {
                    let reason = "read failed after \(bufferStart + buffer.count) bytes: \(ScanInputs.errnoText())"
                    outcome.skipped = unreadable(input, reason)
                    eof = true
                }
            }
            // Binary files met while walking are listed as skipped; a file named on the command
            // line is scanned whatever it holds (the user asked for it).
            if ownedStart == 0, !input.named, ScanReport.isBinary(buffer) {
                outcome.skipped = outcome.skipped
                    ?? SkippedInput(path: input.path, reason: "binary file (a NUL byte or mostly control bytes in the first 8 KiB)",
                                    unreadable: false, order: input.order)
                outcome.findings = []
                return outcome
            }
            let bufferEnd = bufferStart + buffer.count
            let ownedEnd = eof ? bufferEnd : ownedStart + chunkSize

            var inputContext = context
            inputContext.paths = Self.allowPaths(input)
            // Explanations whenever one may be needed: silenced findings are listed with theirs.
            let scanned: [(Finding, Explanation?)] = explain || engine.hasAllowList
                ? engine.explain(buffer, context: inputContext).map { ($0.finding, $0) }
                : engine.scan(buffer, context: inputContext).map { ($0, nil) }
            var window: [Finding] = []
            var windowExplanations: [Explanation?] = []
            // Only the previous window's findings that reach into this one can be repeats (a
            // handful): checking each finding against all of them was quadratic in findings.
            let overlapping = reported.filter { $0.end > ownedStart }
            for (found, explanation) in scanned {
                var f = found
                // A decoder limit hit in this window is reported over the whole window: keep it, in the
                // part this window owns, so that it is neither dropped nor repeated.
                if f.start == 0, f.end == buffer.count, f.decodedVia.isEmpty,
                   DetectionError.failClosedRules.contains(f.rule) {
                    f.start = ownedStart - bufferStart
                    f.end = ownedEnd - bufferStart
                }
                let start = bufferStart + f.start
                guard start >= ownedStart, start < ownedEnd else { continue }
                var absolute = f
                absolute.start = start
                absolute.end = bufferStart + f.end
                if overlapping.contains(where: { $0.rule == absolute.rule && $0.fingerprint == absolute.fingerprint
                    && $0.start < absolute.end && absolute.start < $0.end }) { continue }
                window.append(f)
                windowExplanations.append(explanation)
            }
            var thisWindow: [Finding] = []
            var allowLines = InlineAllowLines()
            for (i, located) in ScanReport.locate(buffer, path: input.path, findings: window).enumerated() {
                var r = located
                r.inlineAllowed = allowLines.allows(buffer, at: r.finding.start)
                r.finding.start += bufferStart
                r.finding.end += bufferStart
                if r.line == 1 { r.column += bufferStart - lineStartBeforeBuffer }
                if r.endLine == 1 { r.endColumn += bufferStart - lineStartBeforeBuffer }
                r.line += linesBeforeBuffer
                r.endLine += linesBeforeBuffer
                if var e = windowExplanations[i] {
                    e.finding = r.finding
                    r.explanation = e
                }
                thisWindow.append(r.finding)
                if r.isSilenced { outcome.allowed.append(r) } else { outcome.findings.append(r) }
            }
            reported = thisWindow
            if eof { return outcome }

            // Slide: keep `overlap` bytes before the next chunk.
            ownedStart = ownedEnd
            let drop = ownedStart - overlap - bufferStart
            if drop > 0 {
                for i in 0..<drop where buffer[i] == 10 {
                    linesBeforeBuffer += 1
                    lineStartBeforeBuffer = bufferStart + i + 1
                }
                buffer.removeFirst(drop)
                bufferStart += drop
            }
        }
    }
}

/// Renders findings (through `ScanReport.render`) together with the skipped inputs, in every
/// format: text on standard error, `skipped` in json, one `{"skipped": path, "reason": ...}`
/// line each in jsonl, `invocations[].toolExecutionNotifications` in SARIF (with
/// `executionSuccessful: false` when an input could not be read).
enum SkipReport {
    struct RenderError: Error, CustomStringConvertible {
        var description: String
    }

    static func render(found: [FileFinding], allowed: [FileFinding] = [], skipped: [SkippedInput], format: ReportFormat,
                       rules: [RuleInfo], explain: Bool = false, sarif: SARIFOptions = SARIFOptions()) throws -> (stdout: String, stderr: String) {
        let findings = ScanReport.render(found, allowed: allowed, format: format, rules: rules, explain: explain, sarif: sarif)
        switch format {
        case .text:
            var lines = skipped.filter { !$0.excluded }.map { s in
                (s.unreadable ? "sluice scan: cannot read " : "sluice scan: skipped ") + "\(s.path): \(s.reason)\n"
            }
            // Files --exclude left out: one line, not one per file (json, jsonl and SARIF list each).
            let excluded = skipped.filter(\.excluded).count
            if excluded > 0 { lines.append("sluice scan: \(excluded) file\(excluded == 1 ? "" : "s") excluded by --exclude\n") }
            return (findings, lines.joined())
        case .jsonl:
            let lines = skipped.map { s in
                "{\"skipped\":\(q(s.path)),\"reason\":\(q(s.reason)),\"unreadable\":\(s.unreadable)}\n"
            }
            return (findings + lines.joined(), "")
        case .json:
            guard findings.hasSuffix("}\n") else { throw RenderError(description: "unexpected json report shape") }
            let list = skipped.map { s in
                "{\"path\":\(q(s.path)),\"reason\":\(q(s.reason)),\"unreadable\":\(s.unreadable)}"
            }
            return (String(findings.dropLast(2)) + ",\"skipped\":[" + list.joined(separator: ",") + "]}\n", "")
        case .sarif:
            // The report ends with the last run's closing brace, the runs array and the log object.
            guard findings.hasSuffix("}]}\n") else { throw RenderError(description: "unexpected SARIF report shape") }
            let notifications = skipped.map { s in
                "{\"level\":\(q(s.unreadable ? "error" : "note")),"
                    + "\"message\":{\"text\":\(q((s.unreadable ? "cannot read: " : "skipped: ") + s.reason))},"
                    + "\"locations\":[{\"physicalLocation\":{\"artifactLocation\":\(ScanReport.artifactLocation(s.path, root: sarif.sourceRoot))}}],"
                    + "\"properties\":{\"unreadable\":\(s.unreadable)}}"
            }
            let ok = !skipped.contains(where: \.unreadable)
            let invocations = ",\"invocations\":[{\"executionSuccessful\":\(ok),"
                + "\"toolExecutionNotifications\":[\(notifications.joined(separator: ","))]}]"
            return (String(findings.dropLast(4)) + invocations + "}]}\n", "")
        }
    }

    /// A JSON string literal (the report's one escaper).
    static func q(_ s: String) -> String { ScanReport.q(s) }
}

/// The `sluice:allow` check of `StreamingScan`, remembering the last line it read.
///
/// Guarantees: each line is searched once however many findings it holds (findings come in
/// offset order), so a one-line file with many findings costs its length, not length × findings.
struct InlineAllowLines {
    private var line = 0..<0
    private var allowed = false

    /// Whether the line of `buffer` holding `offset` carries `StreamingScan.inlineAllowMarker`.
    mutating func allows(_ buffer: [UInt8], at offset: Int) -> Bool {
        guard offset >= 0, offset < buffer.count else { return false }
        if line.contains(offset) { return allowed }
        var start = offset
        while start > 0, buffer[start - 1] != 10 { start -= 1 }
        var end = offset
        while end < buffer.count, buffer[end] != 10 { end += 1 }
        line = start..<max(end, offset + 1)
        allowed = Self.contains(buffer, start..<end, StreamingScan.inlineAllowMarker)
        return allowed
    }

    private static func contains(_ buffer: [UInt8], _ r: Range<Int>, _ marker: [UInt8]) -> Bool {
        guard r.count >= marker.count else { return false }
        var i = r.lowerBound
        while i + marker.count <= r.upperBound {
            if buffer[i] == marker[0], buffer[i..<(i + marker.count)].elementsEqual(marker) { return true }
            i += 1
        }
        return false
    }
}
