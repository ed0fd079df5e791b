import Testing
@testable import Detection

@Suite struct PrecisionRecallTests {
    static let engine = try! DetectionEngine(fingerprintKey: Array("corpus-key".utf8))
    static let fallbackEngine = try! DetectionEngine(fingerprintKey: Array("corpus-key".utf8), options: EngineOptions(useHyperscan: false))

    static func corpus() -> [Sample] {
        var g = CorpusGenerator(seed: 42)
        var out: [Sample] = []
        for i in 0..<(46 * 5 * 3) {
            let (_, natural) = g.secret(i)
            out.append(g.embed(natural, encoding: i / 46, family: i))
        }
        for k in 0..<600 { out.append(g.negative(k)) }
        return out
    }

    @Test func precisionAndRecall() {
        var tp = 0, fn = 0, fp = 0
        var missed: [String: Int] = [:]
        var falseRules: [String: Int] = [:]
        var g = CorpusGenerator(seed: 42)
        let samples = Self.corpus()
        for (idx, s) in samples.enumerated() {
            let found = Self.engine.scan(s.text, context: ScanContext())
            for secret in s.secrets {
                if found.contains(where: { $0.start < secret.upperBound && secret.lowerBound < $0.end }) { tp += 1 } else {
                    fn += 1
                    let kind = idx < 46 * 15 ? g.secret(idx).0 : "?"
                    missed["\(kind)/enc\(idx / 46 % 5)", default: 0] += 1
                }
            }
            for f in found where !s.secrets.contains(where: { f.start < $0.upperBound && $0.lowerBound < f.end }) {
                fp += 1
                falseRules["\(f.rule)@\(s.label)", default: 0] += 1
            }
        }
        let recall = Double(tp) / Double(max(1, tp + fn))
        let precision = Double(tp) / Double(max(1, tp + fp))
        print("precision/recall corpus: samples=\(samples.count) tp=\(tp) fn=\(fn) fp=\(fp) recall=\(recall) precision=\(precision)")
        if !missed.isEmpty { print("missed:", missed.sorted { $0.key < $1.key }) }
        if !falseRules.isEmpty { print("false positives:", falseRules.sorted { $0.key < $1.key }) }
        #expect(recall >= 0.95)
        #expect(precision >= 0.98)
    }

    @Test func hyperscanAndFallbackAgree() {
        guard Self.engine.usesHyperscan else { print("Hyperscan unavailable: comparing fallback with itself"); return }
        #expect(!Self.fallbackEngine.usesHyperscan)
        var compared = 0
        for s in Self.corpus() {
            for ctx in [ScanContext(), ScanContext(hint: .json), ScanContext(credentials: true, pii: false, hint: .query)] {
                let a = Self.engine.scan(s.text, context: ctx)
                let b = Self.fallbackEngine.scan(s.text, context: ctx)
                #expect(a == b, "paths disagree on \(s.label)")
                compared += 1
            }
        }
        print("hyperscan/fallback compared \(compared) scans")
    }
}
