import ArgumentParser
import Foundation
import Pipeline
import Recorder

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Work with the audit lines the Recorder sends to its sinks.",
        subcommands: [AuditVerifyCommand.self])
}

struct AuditVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the hash chain of audit sink files: no line edited, missing or moved.",
        discussion: """
            Reads the files in the order given, as one stream: give a file sink's rotated files \
            oldest first, then the current file (`audit.jsonl.2* audit.jsonl`: rotated names sort \
            in rotation order). A file missing from between them fails at the first line after the \
            gap, naming the last good line before it. With `keep`, the oldest files are gone: use \
            --partial. \
            Prints `verified N events (C chains, D duplicates, S segment starts)` and exits 0, or \
            the first bad line and why (edited, missing line before, reordered, bad chain, \
            checkpoint count, not JSON, not a chained line) and exits 1. The chain key is resolved \
            from the configuration as the Recorder does (recorder.chain_key, else derived from \
            sealing.fingerprint_key). Lines cut from the end cannot be seen: compare the last \
            checkpoint's time (printed per chain) with the time the file should reach.
            """)

    @Option(name: .shortAndLong, help: "The configuration file (for the chain key).")
    var config: String

    @Flag(help: "Accept chains whose first line is not their chain_start (older lines rotated away).")
    var partial = false

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    @Argument(help: "Audit sink files (JSON lines), oldest first.")
    var paths: [String]

    func run() throws {
        guard !paths.isEmpty else { throw ValidationError("give at least one file") }
        let loaded = try ConfigLoader.load(path: config)
        let key = try AuditChain.key(config: loaded).key
        var sources: [[UInt8]] = []
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("cannot read \(path)")
            }
            sources.append(Array(data))
        }
        let report = AuditChainVerifier.verify(sources: sources, key: key, partial: partial)
        func place(_ location: AuditChainVerifier.Location) -> String {
            paths.count == 1 ? "line \(location.line)" : "\(paths[location.source]) line \(location.line)"
        }
        if json {
            var object: [String: Any] = [
                "verified": report.verified, "events": report.events, "chains": report.chains, "duplicates": report.duplicates,
                "lines_checked": report.linesChecked,
                "segment_starts": report.segmentStarts.map { s -> [String: Any] in
                    var o: [String: Any] = ["file": paths[s.location.source], "line": s.location.line, "chain_id": s.chainID]
                    if let after = s.afterOffset { o["after_offset"] = after }
                    return o
                },
                "tails": report.tails.map { t -> [String: Any] in
                    var o: [String: Any] = ["chain_id": t.chainID, "events_after_checkpoint": t.eventsAfterCheckpoint]
                    if let time = t.lastCheckpointTimeMillis { o["last_checkpoint_time_ms"] = time }
                    return o
                },
            ]
            if let failure = report.failure {
                var o: [String: Any] = [
                    "file": paths[failure.location.source], "line": failure.location.line, "reason": failure.reason.description,
                    "chain_id": failure.chainID ?? "",
                ]
                if let good = failure.lastGood { o["last_good"] = ["file": paths[good.source], "line": good.line] as [String: Any] }
                object["failure"] = o
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for s in report.segmentStarts {
                let after = s.afterOffset.map { "after offset \($0)" } ?? "mid-segment (--partial)"
                print("\(place(s.location)): chain \(s.chainID) segment starts \(after)")
            }
            if let failure = report.failure {
                let chain = failure.chainID.map { " (chain \($0))" } ?? ""
                print("\(place(failure.location)): \(failure.reason)\(chain)")
                if failure.reason == .missingLineBefore, let good = failure.lastGood {
                    if good.source != failure.location.source {
                        print("gap: the chain's last good line is \(paths[good.source]) line \(good.line); a file between \(paths[good.source]) and \(paths[failure.location.source]) is missing, or its end was cut")
                    } else {
                        print("gap: lines missing after line \(good.line)")
                    }
                }
                print("checked \(report.linesChecked) lines")
            } else {
                for t in report.tails {
                    let time = t.lastCheckpointTimeMillis.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double($0) / 1000)) } ?? "none"
                    print("chain \(t.chainID): last checkpoint \(time), \(t.eventsAfterCheckpoint) events after it")
                }
                print(
                    "verified \(report.events) events (\(report.chains) chains, \(report.duplicates) duplicates, \(report.segmentStarts.count) segment starts)"
                )
            }
        }
        if !report.verified { throw ExitCode(1) }
    }
}
