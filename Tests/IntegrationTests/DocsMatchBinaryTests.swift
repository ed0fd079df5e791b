import Foundation
import GatewayHarness
import Pipeline
import Testing

/// Issue 17: what the documentation says about the binary is what the binary does. Every
/// `sluice …` command line in the docs names a real (sub)command and only flags its `--help`
/// lists; every consumer group the docs name is one the stages join.
@Suite("the docs match the binary")
struct DocsMatchBinaryTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// README.md, docs/*.md and deploy/**/*.md, by path relative to the root.
    static func documents() throws -> [(String, String)] {
        var paths = ["README.md"]
        let fm = FileManager.default
        for dir in ["docs", "deploy"] {
            guard let walker = fm.enumerator(atPath: root.appendingPathComponent(dir).path) else { continue }
            while let item = walker.nextObject() as? String {
                if item.hasSuffix(".md") { paths.append("\(dir)/\(item)") }
            }
        }
        return try paths.sorted().map { ($0, try String(contentsOf: root.appendingPathComponent($0), encoding: .utf8)) }
    }

    /// The command lines in a document: code-block lines and code spans that start with `sluice `.
    static func commandLines(_ text: String) -> [String] {
        var out: [String] = []
        var inBlock = false
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("```") { inBlock.toggle(); continue }
            if inBlock {
                // Shell prompts and env assignments before the command.
                var words = line.split(separator: " ").map(String.init)
                while let first = words.first, first == "$" || first.contains("=") && !first.hasPrefix("-") { words.removeFirst() }
                if words.first == "sluice" || words.first == ".build/release/sluice" { out.append(words.dropFirst().joined(separator: " ")) }
                continue
            }
            var rest = Substring(raw)
            while let open = rest.firstIndex(of: "`") {
                let after = rest[rest.index(after: open)...]
                guard let close = after.firstIndex(of: "`") else { break }
                let span = after[..<close]
                if span.hasPrefix("sluice ") { out.append(String(span.dropFirst("sluice ".count))) }
                rest = after[after.index(after: close)...]
            }
        }
        return out
    }

    /// `--help` of each subcommand path, cached; `nil` when it is not a subcommand.
    final class HelpCache {
        var help: [String: String?] = [:]
        func of(_ path: [String]) throws -> String? {
            let key = path.joined(separator: " ")
            if let cached = help[key] { return cached }
            let r = try runToCompletion(SluiceProcess.binary, path + ["--help"])
            let text: String? = r.status == 0 && !r.stdout.isEmpty ? r.stdout : nil
            help[key] = text
            return text
        }
    }

    @Test("every documented sluice command line names a real command and only flags it has")
    func commandLinesMatch() throws {
        let cache = HelpCache()
        var problems: [String] = []
        var checked = 0
        for (path, text) in try Self.documents() {
            for line in Self.commandLines(text) {
                // `ingress|inspector|…`: the first alternative stands for all; a placeholder
                // (`<stage>`) or a message (`sluice scan: cannot read …`) is not a command line.
                var words = line.split(separator: " ").map(String.init)
                if let first = words.first, first.contains("|") { words[0] = String(first.prefix { $0 != "|" }) }
                if let first = words.first, first.hasPrefix("<") || first.hasSuffix(":") { continue }
                // The command path: leading lowercase words, as long as `--help` accepts them.
                var command: [String] = []
                for word in words {
                    guard word.range(of: "^[a-z][a-z-]*$", options: .regularExpression) != nil, try cache.of(command + [word]) != nil else { break }
                    command.append(word)
                }
                guard let help = try cache.of(command), !command.isEmpty || words.first?.hasPrefix("-") == true else {
                    problems.append("\(path): `sluice \(line)`: no such command")
                    continue
                }
                checked += 1
                for word in words where word.hasPrefix("--") {
                    let flag = String(word.prefix { $0 != "=" && $0 != "," && $0 != ")" && $0 != "`" && $0 != "." })
                    // Flags the argument parser adds to every command without listing them.
                    guard flag.count > 2, !["--help", "--version", "--generate-completion-script", "--experimental-dump-help"].contains(flag) else { continue }
                    if !help.contains(flag) { problems.append("\(path): `sluice \(line)`: \(command.joined(separator: " ")) has no \(flag)") }
                }
            }
        }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        #expect(checked > 30, "only \(checked) command lines found: the extraction is broken")
    }

    @Test("every documented consumer group is one a stage joins (default topic prefix)")
    func consumerGroupsMatch() throws {
        let topics = Topics(prefix: "sluice.")
        let real = Set(["inspector", "forwarder", "recorder"].map(topics.consumerGroup)).union([topics.consumerGroup("recorder-sink-<id>")])
        var problems: [String] = []
        var seen = Set<String>()
        let pattern = try NSRegularExpression(pattern: "group[s]?[^`.]{0,40}`(sluice[.-](?:inspector|forwarder|recorder)[a-z<>-]*)`")
        for (path, text) in try Self.documents() {
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                guard let range = Range(match.range(at: 1), in: text) else { continue }
                let name = String(text[range])
                seen.insert(name)
                if !real.contains(name) { problems.append("\(path): consumer group `\(name)` (the stages join \(real.sorted()))") }
            }
        }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        #expect(seen.isSuperset(of: [topics.consumerGroup("forwarder"), topics.consumerGroup("recorder")]), "\(seen)")
    }
}
