import Detection
import Foundation
import Testing

/// Recall and precision of the credential rules on a held-out corpus (issue 15, round 3) that no
/// rule was tuned on: positives generated from the providers' public descriptions of their token
/// formats (with valid checksums where the format has one), carriers and hard negatives written
/// without reading the rules. Secrets only, as `sluice scan --no-pii`.
///
/// Scoring is the same as `DetectionQualityTests`: a finding that overlaps a labelled secret finds
/// it; a finding that overlaps no secret or identifier label is a false positive. Prints recall per
/// format and per carrier and false positives per rule and per hard-negative shape.
/// `SLUICE_HOLDOUT_REPORT=FILE` writes every miss and false positive as JSON lines.
///
/// The assertions are the issue's goals, not a measured floor.
///
/// History: measured once held out (2026-11-29, before any rule saw it): recall 0.975, precision
/// 0.900 (282 false positives, 168 of them from three documents repeated 56 times: a CI log, an
/// API-docs page, a Firebase web config). The rules were then changed for the shapes it exposed
/// (prose values across line breaks, Firebase web configs, documented example keys, Mapbox public
/// tokens, secret-manager references, Kubernetes `List` items and block scalars): recall 0.975,
/// precision 0.996. From then on it is a regression corpus like `DetectionQualityTests`, no longer
/// held out; the next independent measurement needs a new corpus written without reading either.
@Suite("Detection held-out corpus")
struct DetectionHoldoutTests {
    struct Score {
        var secrets = 0
        var found = 0
        var findings = 0
        var falsePositives = 0
        var recall: Double { secrets == 0 ? 1 : Double(found) / Double(secrets) }
        var precision: Double { findings == 0 ? 1 : Double(findings - falsePositives) / Double(findings) }
    }

    static let goal = (recall: 0.90, precision: 0.97)
    static let seed: UInt64 = 20_261_129

    @Test("the corpus is deterministic and well formed")
    func corpusShape() {
        let a = HoldoutCorpus.generate(seed: Self.seed)
        let b = HoldoutCorpus.generate(seed: Self.seed)
        #expect(a.count == b.count)
        #expect(zip(a, b).allSatisfy { $0.bytes == $1.bytes })
        let positives = a.filter { $0.labels.contains { $0.kind == .secret } }
        let negatives = a.filter { !$0.labels.contains { $0.kind == .secret } }
        #expect(negatives.count >= positives.count, "at least as many negative payloads as positive ones")
        #expect(Set(a.flatMap { $0.labels.filter { $0.kind == .secret }.map(\.format) }).count >= 60)
        for p in a {
            for l in p.labels {
                #expect(l.span.lowerBound >= 0 && l.span.upperBound <= p.bytes.count && !l.span.isEmpty, "label out of range in \(p.id)")
            }
        }
        // JSON carriers stay valid JSON.
        for p in a where p.carrier.hasPrefix("toolcall") || p.carrier == "mcp-tools-call" || p.carrier == "k8s-secret-json"
            || p.carrier == "jupyter-notebook" || p.carrier == "docker-config-json" {
            #expect((try? JSONSerialization.jsonObject(with: Data(p.bytes))) != nil, "\(p.id) (\(p.carrier)) is not valid JSON")
        }
    }

    @Test("recall and precision on the held-out corpus")
    func holdout() throws {
        let engine = try DetectionEngine(fingerprintKey: Array("holdout".utf8))
        let corpus = HoldoutCorpus.generate(seed: Self.seed)
        let context = ScanContext(credentials: true, pii: false)
        var overall = Score()
        var byFormat: [String: Score] = [:]
        var byCarrier: [String: Score] = [:]
        var falseByRule: [String: Int] = [:]
        var falseByShape: [String: Int] = [:]
        var findingsByRule: [String: Int] = [:]
        var report: [String] = []
        var bytes = 0
        var positivePayloads = 0
        var neutralFindings = 0
        let started = ContinuousClock.now
        for payload in corpus {
            bytes += payload.bytes.count
            if payload.labels.contains(where: { $0.kind == .secret }) { positivePayloads += 1 }
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
                    let text = String(decoding: payload.bytes[label.span], as: UTF8.self)
                    report.append(Self.line(["miss": payload.id, "format": label.format, "carrier": payload.carrier,
                                             "value": label.value, "text": String(text.prefix(200))]))
                }
            }
            for finding in findings {
                let explained = payload.labels.contains {
                    $0.kind != .negative && finding.start < $0.span.upperBound && $0.span.lowerBound < finding.end
                }
                overall.findings += 1
                if explained && !payload.labels.contains(where: {
                    $0.kind == .secret && finding.start < $0.span.upperBound && $0.span.lowerBound < finding.end
                }) { neutralFindings += 1 }
                byCarrier[payload.carrier, default: Score()].findings += 1
                findingsByRule[finding.rule, default: 0] += 1
                if !explained {
                    overall.falsePositives += 1
                    byCarrier[payload.carrier, default: Score()].falsePositives += 1
                    falseByRule[finding.rule, default: 0] += 1
                    let shape = payload.labels.first {
                        $0.kind == .negative && finding.start < $0.span.upperBound && $0.span.lowerBound < finding.end
                    }?.format ?? (payload.carrier.hasPrefix("doc:") ? payload.carrier : "carrier text")
                    falseByShape[shape, default: 0] += 1
                    let lo = max(0, min(payload.bytes.count, finding.start))
                    let hi = max(lo, min(payload.bytes.count, finding.end))
                    let text = String(decoding: payload.bytes[lo..<hi], as: UTF8.self)
                    report.append(Self.line([
                        "false_positive": payload.id, "rule": finding.rule, "carrier": payload.carrier, "shape": shape,
                        "negatives": payload.negatives.joined(separator: ","), "text": String(text.prefix(160)),
                    ]))
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        print(Self.table(overall: overall, byFormat: byFormat, byCarrier: byCarrier, falseByRule: falseByRule, falseByShape: falseByShape,
                         findingsByRule: findingsByRule, payloads: corpus.count, positives: positivePayloads, bytes: bytes, elapsed: elapsed))
        print("holdout: \(neutralFindings) findings fell only on identifier spans (account ids, non-secret values declared in a Kubernetes Secret): counted neither way")
        if let path = ProcessInfo.processInfo.environment["SLUICE_HOLDOUT_REPORT"], !path.isEmpty {
            try Data((report.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
            print("holdout: \(report.count) misses and false positives written to \(path)")
        }
        #expect(overall.recall >= Self.goal.recall, "recall below the goal of issue 15")
        #expect(overall.precision >= Self.goal.precision, "precision below the goal of issue 15")
    }

    static func line(_ fields: [String: String]) -> String {
        (try? String(decoding: JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self)) ?? ""
    }

    static func table(
        overall: Score, byFormat: [String: Score], byCarrier: [String: Score], falseByRule: [String: Int], falseByShape: [String: Int],
        findingsByRule: [String: Int], payloads: Int, positives: Int, bytes: Int, elapsed: Duration
    ) -> String {
        func f(_ x: Double) -> String { String(format: "%.3f", x) }
        var out = "holdout: \(payloads) payloads (\(positives) with secrets), \(bytes) bytes, \(overall.secrets) secrets, \(overall.findings) findings, scanned in \(elapsed)\n"
        out += "holdout: overall recall \(f(overall.recall)) precision \(f(overall.precision)) (goal \(goal.recall) / \(goal.precision))\n"
        out += "holdout: recall by format (worst first)\n"
        for (format, s) in byFormat.sorted(by: { ($0.value.recall, $0.key) < ($1.value.recall, $1.key) }) {
            out += "  \(format.padding(toLength: 36, withPad: " ", startingAt: 0)) \(f(s.recall))  \(s.found)/\(s.secrets)\n"
        }
        out += "holdout: by carrier (worst recall first)\n"
        for (carrier, s) in byCarrier.sorted(by: { ($0.value.recall, $0.key) < ($1.value.recall, $1.key) }) {
            out += "  \(carrier.padding(toLength: 30, withPad: " ", startingAt: 0)) recall \(f(s.recall)) (\(s.found)/\(s.secrets))  precision \(f(s.precision)) (\(s.falsePositives) false of \(s.findings))\n"
        }
        out += "holdout: false positives by rule\n"
        for (rule, n) in falseByRule.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
            out += "  \(rule.padding(toLength: 36, withPad: " ", startingAt: 0)) \(n) of \(findingsByRule[rule] ?? 0)\n"
        }
        out += "holdout: false positives by hard-negative shape\n"
        for (shape, n) in falseByShape.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
            out += "  \(shape.padding(toLength: 36, withPad: " ", startingAt: 0)) \(n)\n"
        }
        return out
    }
}
