import Testing
@testable import Detection

/// Differential tests of the first-pass scanners against naive byte-by-byte definitions.
/// The fast scanners skip (vector blocks, word skips, bigram filters), so their edge cases
/// (runs straddling blocks, buffer ends, back-to-back runs) are checked on random inputs.
@Suite struct PrefilterTests {
    struct Rng {
        var s: UInt64
        mutating func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// Reference structural events (same definitions as `StructuralScanner`, without skipping).
    static func reference(_ b: [UInt8], K: UInt32, minBase64: Int) -> [Event] {
        var ev: [Event] = []
        let n = b.count
        var i = 0
        while i < n {
            if ByteSet.base64any.contains(b[i]) {
                var e = i
                while e < n && ByteSet.base64any.contains(b[e]) { e += 1 }
                if e - i >= minBase64 && !(i..<e).allSatisfy({ ByteSet.hex.contains(b[$0]) || b[$0] == 45 }) { ev.append(Event(kind: K + Trigger.base64.rawValue, pos: e)) }
                i = e
            } else { i += 1 }
        }
        i = 0
        while i < n {
            let c = b[i]
            if c == 92 { ev.append(Event(kind: K + Trigger.backslash.rawValue, pos: i + 1)) }
            if c == 37 && i + 2 < n && ByteSet.hex.contains(b[i + 1]) && ByteSet.hex.contains(b[i + 2]) {
                ev.append(Event(kind: K + Trigger.percent.rawValue, pos: i + 3))
            }
            if i >= 3 && isDigit(c) && isDigit(b[i - 1]) && ByteSet.upper.contains(b[i - 2]) && ByteSet.upper.contains(b[i - 3]) {
                ev.append(Event(kind: K + Trigger.iban.rawValue, pos: i + 1))
            }
            i += 1
        }
        i = 0
        while i < n {
            guard PIIMatcher.numericRegionSet.contains(b[i]) else { i += 1; continue }
            var e = i, digits = 0, last = 0
            while e < n && PIIMatcher.numericRegionSet.contains(b[e]) { if isDigit(b[e]) { digits += 1; last = e + 1 }; e += 1 }
            if digits >= 7 {
                if e - i > 256 {
                    var a = i + 128
                    while a < last - 1 { ev.append(Event(kind: K + Trigger.numeric.rawValue, pos: a + 1)); a += 128 }
                }
                ev.append(Event(kind: K + Trigger.numeric.rawValue, pos: last))
            }
            i = e
        }
        return ev.sorted()
    }

    static func randomBuffer(_ r: inout Rng, length: Int) -> [UInt8] {
        let pieces: [[UInt8]] = [Array("abcdefXYZ".utf8), Array("0123456789".utf8), Array(" \"{}:,.".utf8), Array("+/_-=".utf8),
                                 Array("\\%".utf8), Array("DE".utf8), Array("()".utf8), [0xC3, 0xA9, 0x00, 0xFF]]
        var b: [UInt8] = []
        while b.count < length {
            let p = pieces[r.int(pieces.count)]
            // Runs of one piece class of random length, so long base64 and digit runs occur.
            for _ in 0..<(1 + r.int(r.int(4) == 0 ? 40 : 6)) { b.append(p[r.int(p.count)]) }
        }
        return Array(b.prefix(length))
    }

    @Test func structuralScannerMatchesReference() {
        var r = Rng(s: 0xC0FFEE)
        for round in 0..<3000 {
            var b = Self.randomBuffer(&r, length: round < 200 ? round : 1 + r.int(700))
            if round % 10 == 0 {
                // A long numeric region (> 256 bytes) somewhere in the buffer.
                let long = (0..<(60 + r.int(200))).flatMap { _ in Array("\(r.int(100)) ".utf8) }
                b.insert(contentsOf: long, at: r.int(b.count + 1))
            }
            for minB64 in [16, 20, 8, 1] {
                var got: [Event] = []
                b.withUnsafeBufferPointer { StructuralScanner.events($0, keywordCount: 7, minBase64: minB64, into: &got) }
                let want = Self.reference(b, K: 7, minBase64: minB64)
                #expect(got.sorted() == want, "round \(round) minBase64 \(minB64): \(String(decoding: b, as: UTF8.self))")
                if got.sorted() != want { return }
            }
        }
    }

    @Test func fallbackKeywordsMatchNaiveSearch() throws {
        let e = try DetectionEngine(fingerprintKey: [1], options: EngineOptions(useHyperscan: false))
        var r = Rng(s: 42)
        let kws = e.keywords
        for round in 0..<150 {
            var b = Self.randomBuffer(&r, length: 200 + r.int(300))
            // Plant keywords in random case.
            for _ in 0..<(1 + r.int(6)) {
                let kw = kws[r.int(kws.count)].map { r.int(2) == 0 ? $0 : (($0 >= 97 && $0 <= 122) ? $0 - 32 : $0) }
                let at = r.int(b.count)
                b.insert(contentsOf: kw, at: at)
            }
            var got: [Event] = []
            b.withUnsafeBufferPointer { e.fallback.keywordEvents($0, into: &got) }
            var want: [Event] = []
            for (k, kw) in kws.enumerated() where kw.count <= b.count {
                for i in 0...(b.count - kw.count) where (0..<kw.count).allSatisfy({ lowerASCII(b[i + $0]) == kw[$0] }) {
                    want.append(Event(kind: UInt32(k), pos: i + kw.count))
                }
            }
            #expect(got.sorted() == want.sorted(), "round \(round)")
            if got.sorted() != want.sorted() { return }
        }
    }
}
