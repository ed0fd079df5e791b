import Detection
import Foundation
import Testing

/// Recall and precision of the credential rules on a labelled corpus written independently of
/// them (`Corpus/`: token formats from the providers' documentation, realistic carriers, hard
/// negatives, written by someone who had not read the rules; see `QualityCorpus`). Secrets only, as `sluice scan --no-pii`.
///
/// A finding that overlaps a labelled span finds it; a finding that overlaps no label (secret or
/// identifier) is a false positive. Prints recall per format and per carrier and the false
/// positives per rule, so a change to the rules shows what it gains and costs.
///
/// `make test` guards against regressions: overall recall and precision must not fall below
/// what this corpus last measured (`floor`). The issue's goals (recall
/// ≥ 0.90, precision ≥ 0.97) are checked by `make quality` (`SLUICE_QUALITY_GOAL=1`), which
/// fails until they are met. `SLUICE_QUALITY_REPORT=FILE` writes every miss and false positive
/// as JSON lines.
@Suite("Detection quality")
struct DetectionQualityTests {
    struct Score {
        var secrets = 0
        var found = 0
        var findings = 0
        var falsePositives = 0
        var recall: Double { secrets == 0 ? 1 : Double(found) / Double(secrets) }
        var precision: Double { findings == 0 ? 1 : Double(findings - falsePositives) / Double(findings) }
    }

    /// Overall figures measured on this corpus (seed 1): recall 0.934, precision 0.974 when the
    /// suite was written; recall 1.000, precision 1.000 (1,838 secrets, 1,989 findings) after the
    /// structured parsers, prose rule and non-secret dictionary of issue 15 round 2 (2026-11-29).
    /// The floor sits just under the latter: about nine misses or ten false positives fail it.
    static let floor = (recall: 0.995, precision: 0.995)
    static let goal = (recall: 0.90, precision: 0.97)

    @Test("recall and precision on the independent corpus")
    func quality() throws {
        let engine = try DetectionEngine(fingerprintKey: Array("quality".utf8))
        let corpus = QualityCorpus.generate(seed: 1)
        #expect(corpus.count > 500, "the corpus is unexpectedly small")
        let context = ScanContext(credentials: true, pii: false)
        var overall = Score()
        var byFormat: [String: Score] = [:]
        var byCarrier: [String: Score] = [:]
        var falseByRule: [String: Int] = [:]
        var findingsByRule: [String: Int] = [:]
        var report: [String] = []
        var bytes = 0
        let started = ContinuousClock.now
        for payload in corpus {
            bytes += payload.bytes.count
            let findings = engine.scan(payload.bytes, context: context)
            for label in payload.labels where label.kind == .secret {
                let hit = findings.contains { $0.start < label.span.upperBound && label.span.lowerBound < $0.end }
                overall.secrets += 1
                byFormat[label.format, default: Score()].secrets += 1
                byCarrier[payload.carrier, default: Score()].secrets += 1
                if hit {
                    overall.found += 1
                    byFormat[label.format, default: Score()].found += 1
                    byCarrier[payload.carrier, default: Score()].found += 1
                } else {
                    report.append(Self.line(["miss": payload.id, "format": label.format, "carrier": payload.carrier, "value": label.value]))
                }
            }
            for finding in findings {
                let explained = payload.labels.contains { finding.start < $0.span.upperBound && $0.span.lowerBound < finding.end }
                overall.findings += 1
                byCarrier[payload.carrier, default: Score()].findings += 1
                findingsByRule[finding.rule, default: 0] += 1
                if !explained {
                    overall.falsePositives += 1
                    byCarrier[payload.carrier, default: Score()].falsePositives += 1
                    falseByRule[finding.rule, default: 0] += 1
                    let text = String(decoding: payload.bytes[max(0, finding.start)..<min(payload.bytes.count, finding.end)], as: UTF8.self)
                    report.append(Self.line([
                        "false_positive": payload.id, "rule": finding.rule, "carrier": payload.carrier,
                        "negatives": payload.negatives.joined(separator: ","), "text": String(text.prefix(120)),
                    ]))
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        print(Self.table(overall: overall, byFormat: byFormat, byCarrier: byCarrier, falseByRule: falseByRule, findingsByRule: findingsByRule,
                         payloads: corpus.count, bytes: bytes, elapsed: elapsed))
        if let path = ProcessInfo.processInfo.environment["SLUICE_QUALITY_REPORT"], !path.isEmpty {
            try Data((report.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
            print("quality: \(report.count) misses and false positives written to \(path)")
        }
        #expect(overall.recall >= Self.floor.recall, "recall fell below this corpus's recorded floor")
        #expect(overall.precision >= Self.floor.precision, "precision fell below this corpus's recorded floor")
        if ProcessInfo.processInfo.environment["SLUICE_QUALITY_GOAL"] == "1" {
            #expect(overall.recall >= Self.goal.recall, "recall below the goal of issue 15")
            #expect(overall.precision >= Self.goal.precision, "precision below the goal of issue 15")
        }
    }

    static func line(_ fields: [String: String]) -> String {
        (try? String(decoding: JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self)) ?? ""
    }

    static func table(
        overall: Score, byFormat: [String: Score], byCarrier: [String: Score], falseByRule: [String: Int], findingsByRule: [String: Int],
        payloads: Int, bytes: Int, elapsed: Duration
    ) -> String {
        func f(_ x: Double) -> String { String(format: "%.3f", x) }
        var out = "quality: \(payloads) payloads, \(bytes) bytes, \(overall.secrets) secrets, \(overall.findings) findings, scanned in \(elapsed)\n"
        out += "quality: overall recall \(f(overall.recall)) precision \(f(overall.precision)) (goal \(goal.recall) / \(goal.precision))\n"
        out += "quality: recall by format (worst first)\n"
        for (format, s) in byFormat.sorted(by: { ($0.value.recall, $0.key) < ($1.value.recall, $1.key) }) {
            out += "  \(format.padding(toLength: 36, withPad: " ", startingAt: 0)) \(f(s.recall))  \(s.found)/\(s.secrets)\n"
        }
        out += "quality: by carrier\n"
        for (carrier, s) in byCarrier.sorted(by: { $0.key < $1.key }) {
            out += "  \(carrier.padding(toLength: 24, withPad: " ", startingAt: 0)) recall \(f(s.recall)) (\(s.found)/\(s.secrets))  precision \(f(s.precision)) (\(s.falsePositives) false of \(s.findings))\n"
        }
        out += "quality: false positives by rule\n"
        for (rule, n) in falseByRule.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
            out += "  \(rule.padding(toLength: 36, withPad: " ", startingAt: 0)) \(n) of \(findingsByRule[rule] ?? 0)\n"
        }
        return out
    }
}
