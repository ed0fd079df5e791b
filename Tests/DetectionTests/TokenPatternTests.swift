import Testing
@testable import Detection

/// `TokenPattern.match` skips the shorter runs of an element when the next element needs a byte
/// outside it (`longestOnly`); checked against the plain greedy backtracking definition, step
/// limit included, on random patterns and inputs.
@Suite struct TokenPatternTests {
    typealias Rng = PrefilterTests.Rng

    /// The matcher without the shortcut: greedy, every shorter run tried, `maxSteps` steps.
    static func reference(_ t: TokenPattern, _ p: [UInt8], at pos: Int, limit: Int, maxSteps: Int = TokenPattern.maxSteps) -> Int? {
        guard pos >= 0, limit - pos >= t.minLength else { return nil }
        var steps = 0
        func from(_ ei: Int, _ pos: Int) -> Int? {
            if ei == t.elements.count { return pos }
            steps += 1
            if steps > maxSteps { return nil }
            let e = t.elements[ei]
            var k = 0
            while k < min(e.max, limit - pos) && e.set.contains(p[pos + k]) { k += 1 }
            if k < e.min { return nil }
            if ei == t.elements.count - 1 { return pos + k }
            var n = k
            while n >= e.min {
                if let r = from(ei + 1, pos + n) { return r }
                n -= 1
            }
            return nil
        }
        return from(0, pos)
    }

    static let rows: [String] = [
        "eyJ[A-Za-z0-9_-]+\\.eyJ[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+", // disjoint neighbours
        "[a-z]+[0-9]{2,4}[a-z]?x",                                 // disjoint, then optional, then literal
        "[A-Za-z0-9]{8,40}[0-9]{2}",                               // overlapping: backtracking needed
        "sk-[A-Za-z0-9]{4}T3[A-Za-z0-9]*",                          // overlapping literal inside a run
        "[ab]*[bc]+[cd]{0,3}d",                                     // chains of overlaps
        "x?[0-9]+\\.[0-9]+",
    ]

    @Test(arguments: rows) func matchesReference(_ source: String) throws {
        let t = try TokenPattern(source)
        var r = Rng(s: UInt64(source.utf8.count) &* 0x9E37)
        let alphabet = Array("abcdxyzT3eyJ0123456789._-ABC".utf8)
        for _ in 0..<3000 {
            let p = (0..<(1 + r.int(70))).map { _ in alphabet[r.int(alphabet.count)] }
            let pos = r.int(p.count), limit = pos + r.int(p.count - pos + 1)
            let got = p.withUnsafeBufferPointer { t.match($0, at: pos, limit: limit) }
            #expect(got == Self.reference(t, p, at: pos, limit: limit), "\(String(decoding: p, as: UTF8.self)) at \(pos) limit \(limit)")
        }
    }

    /// Near the step limit: a pattern with many backtracking elements on a long run gives the
    /// same answer (the skipped tries still count their steps).
    @Test func stepLimitFallsWhereItDid() throws {
        let t = try TokenPattern("[a-z]*[a-z]*[a-z]*[0-9]+[a-z]*!")
        for n in [10, 40, 80, 200] {
            let p = Array(String(repeating: "a", count: n).utf8) + Array("123bb?".utf8)
            let got = p.withUnsafeBufferPointer { t.match($0, at: 0, limit: p.count) }
            #expect(got == Self.reference(t, p, at: 0, limit: p.count), "n \(n)")
        }
    }
}
