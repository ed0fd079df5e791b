import Testing
@testable import Detection

/// `resolveCandidates` keeps, of overlapping candidates, the best-ranked one, in O(m log m)
/// (`SpanOwners`). These tests hold it to the plain quadratic resolution it replaced, on
/// random candidates dense enough that nearly every one overlaps others.
@Suite struct ResolveCandidatesTests {
    static func makeEngine() throws -> DetectionEngine {
        try DetectionEngine(fingerprintKey: Array("resolve-candidates-test-key".utf8))
    }

    /// The resolution as it was written before (every candidate against every kept one).
    static func reference(_ engine: DetectionEngine, _ cands: [Candidate]) -> [Candidate] {
        let rules = engine.rules
        let sorted = engine.ranked(cands.filter { $0.end > $0.start })
        var kept: [Candidate] = []
        outer: for c in sorted {
            for (ki, k) in kept.enumerated() where c.start < k.end && k.start < c.end {
                if k.start == c.start && k.end == c.end && !c.via.isEmpty && k.fingerprint != c.fingerprint
                    && !kept.contains(where: { $0.start == c.start && $0.end == c.end && $0.fingerprint == c.fingerprint }) {
                    continue
                }
                if kept[ki].evidence != nil, c.rule != k.rule, !kept[ki].evidence!.outranked.contains(c.rule) {
                    kept[ki].evidence!.outranked.append(c.rule)
                }
                continue outer
            }
            kept.append(c)
        }
        kept.sort { a, b in a.start != b.start ? a.start < b.start : (a.end != b.end ? a.end < b.end : rules[a.rule].id < rules[b.rule].id) }
        return kept
    }

    static func describe(_ c: [Candidate]) -> [String] {
        c.map { "\($0.rule) \($0.start)..<\($0.end) \($0.fingerprint) \($0.via) \($0.evidence?.outranked ?? [])" }
    }

    /// A small deterministic generator (the same cases on every run).
    struct SplitMix { var s: UInt64; mutating func next(_ n: Int) -> Int { s &+= 0x9E37_79B9_7F4A_7C15; var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9; z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB; return Int((z ^ (z >> 31)) % UInt64(n)) } }

    static func randomCandidates(_ g: inout SplitMix, count: Int, width: Int, explain: Bool) -> [Candidate] {
        (0..<count).map { _ in
            let s = g.next(width), len = g.next(12)
            var c = Candidate(rule: g.next(6) * 7, start: s, end: s + len, fingerprint: "fp\(g.next(3))",
                              confidence: [0.5, 0.8, 0.9][g.next(3)], via: [[], ["base64"], ["json-escape"], ["json-escape", "base64"]][g.next(4)])
            if explain { c.evidence = Evidence(keyword: nil, length: len, entropy: 0) }
            return c
        }
    }

    @Test(arguments: [(40, 30), (200, 60), (500, 400), (60, 8)])
    func sameAsTheQuadraticResolution(count: Int, width: Int) throws {
        let engine = try Self.makeEngine()
        var g = SplitMix(s: UInt64(count * 1000 + width))
        for round in 0..<50 {
            let cands = Self.randomCandidates(&g, count: count, width: width, explain: round % 2 == 0)
            let got = engine.resolveCandidates(cands)
            let want = Self.reference(engine, cands)
            #expect(Self.describe(got) == Self.describe(want), "round \(round)")
        }
    }

    /// Identical spans with different secrets seen through decodings are all kept; a repeat of a
    /// kept secret, or a raw (undecoded) candidate ranked below them on the same span, is not.
    @Test func identicalSpansKeepDistinctDecodedSecrets() throws {
        let engine = try Self.makeEngine()
        let c = { (fp: String, via: [String], confidence: Double) in
            Candidate(rule: 0, start: 10, end: 20, fingerprint: fp, confidence: confidence, via: via)
        }
        let got = engine.resolveCandidates([c("a", ["base64"], 0.9), c("b", ["base64"], 0.9), c("a", ["json-escape"], 0.9), c("c", [], 0.5)])
        #expect(got.map(\.fingerprint).sorted() == ["a", "b"])
    }

    /// Many overlapping findings resolve to the same result as the reference, however many there
    /// are (the reference is quadratic: this size is where the old code took seconds per scan).
    @Test func manyFindingsOfOneLine() throws {
        let engine = try Self.makeEngine()
        let cands = (0..<4000).map { i in
            Candidate(rule: (i % 3) * 5, start: i * 7, end: i * 7 + 20, fingerprint: "f\(i)", confidence: 0.9, via: [])
        }
        let got = engine.resolveCandidates(cands)
        #expect(Self.describe(got) == Self.describe(Self.reference(engine, cands)))
        #expect(got.count > 1000)
    }
}
