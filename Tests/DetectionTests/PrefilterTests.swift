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
                var strings: [JSONString] = []
                _ = b.withUnsafeBufferPointer { StructuralScanner.events($0, keywordCount: 7, minBase64: minB64, into: &got, strings: &strings) }
                // Backslash events are checked by `jsonStringsMatchDelimit`; here the others.
                let backslash = 7 + Trigger.backslash.rawValue
                let want = Self.reference(b, K: 7, minBase64: minB64).filter { $0.kind != backslash }
                let others = got.filter { $0.kind != backslash }.sorted()
                #expect(others == want, "round \(round) minBase64 \(minB64): \(String(decoding: b, as: UTF8.self))")
                if others != want { return }
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
    // MARK: JSON strings (chs_json_strings)

    /// The backslash events and strings the structural pass must report for `b`, from the
    /// definitions: `JSONEscapeDecoder.delimit`, `worthDecoding` and `onlyInertEscapes` (byte by
    /// byte). A string shorter than `maxLen` gets one event at its first backslash; in a longer
    /// one every backslash gets its own event without a string.
    static func referenceStrings(_ b: [UInt8], maxLen: Int) -> [(pos: Int, string: JSONString?)] {
        b.withUnsafeBufferPointer { p in
            var out: [(pos: Int, string: JSONString?)] = []
            var covered = 0..<0
            for a in b.indices where b[a] == 92 {
                if covered.contains(a) { continue }
                // The true string: from the last delimiter before `a` to the first after it.
                let (r, _) = JSONEscapeDecoder.delimit(p, around: a, maxLen: Int.max / 4)
                if r.count < maxLen {
                    let (dr, exact) = JSONEscapeDecoder.delimit(p, around: a, maxLen: maxLen)
                    #expect(exact && dr == r, "a string shorter than maxLen is delimited exactly")
                    out.append((a + 1, JSONString(range: r, worthDecoding: JSONEscapeDecoder.worthDecoding(p, r),
                                                  onlyInertEscapes: JSONEscapeDecoder.onlyInertEscapes(p, r))))
                    covered = r
                } else {
                    out.append((a + 1, nil))
                }
            }
            return out
        }
    }

    static func structuralStrings(_ b: [UInt8], maxLen: Int) -> [(pos: Int, string: JSONString?)] {
        var ev: [Event] = []
        var strings: [JSONString] = []
        _ = b.withUnsafeBufferPointer {
            StructuralScanner.events($0, keywordCount: 7, minBase64: 16, maxStringLength: maxLen, into: &ev, strings: &strings)
        }
        return ev.filter { $0.kind == 7 + Trigger.backslash.rawValue }.sorted()
            .map { ($0.pos, $0.aux == 0 ? nil : strings[Int($0.aux) - 1]) }
    }

    static func same(_ x: [(pos: Int, string: JSONString?)], _ y: [(pos: Int, string: JSONString?)]) -> Bool {
        x.count == y.count && zip(x, y).allSatisfy { a, b in
            a.pos == b.pos && a.string?.range == b.string?.range && a.string?.worthDecoding == b.string?.worthDecoding
                && a.string?.onlyInertEscapes == b.string?.onlyInertEscapes
        }
    }

    struct StringRow: Sendable, CustomTestStringConvertible {
        var raw: String
        /// Per string holding a backslash: start, end, worth decoding, only inert escapes.
        var strings: [(Int, Int, Bool, Bool)]
        var testDescription: String { raw }
    }

    static let stringRows: [StringRow] = [
        StringRow(raw: #""a\"b""#, strings: [(1, 5, true, true)]),             // escaped quote inside
        StringRow(raw: #""a\\"b""#, strings: [(1, 4, true, false)]),            // `\\` then a real quote
        StringRow(raw: #""a\\\"b""#, strings: [(1, 7, true, false)]),          // three backslashes: the quote is escaped
        StringRow(raw: #""ab\"#, strings: [(1, 4, false, false)]),               // backslash at the buffer end
        StringRow(raw: #"\"#, strings: [(0, 1, false, false)]),                  // a lone backslash
        StringRow(raw: #""\u0041KIA""#, strings: [(1, 10, true, false)]),        // unicode escape
        StringRow(raw: #""\uD83D\uDE00""#, strings: [(1, 13, true, false)]),    // surrogate pair
        StringRow(raw: #""\x41""#, strings: [(1, 5, true, false)]),              // invalid escape
        StringRow(raw: #""a\nb\tc\r""#, strings: [(1, 10, false, true)]),      // only \n \t \r
        StringRow(raw: #""\b\f\"""#, strings: [(1, 7, true, true)]),           // \b \f \" are inert, worth decoding
        StringRow(raw: #""\/\/x""#, strings: [(1, 6, true, false)]),            // \/ is neither
        StringRow(raw: "\"a\\\nb\\nc\"", strings: [(1, 3, false, false), (4, 8, false, true)]), // backslash before LF
        StringRow(raw: "x\\\r\\ty", strings: [(0, 2, false, false), (3, 6, false, true)]),       // backslash before CR
        StringRow(raw: #""\n""\t""#, strings: [(1, 3, false, true), (5, 7, false, true)]),          // back to back
        StringRow(raw: #"\"abc"#, strings: [(0, 5, true, true)]),                // escaped quote at the start
        StringRow(raw: #"{"k":"v","s":"a\"b","t":"c"}"#, strings: [(14, 18, true, true)]),
        StringRow(raw: #""""\""#, strings: [(3, 5, true, true)]),              // an escaped quote at the buffer end
    ]

    @Test(arguments: stringRows) func jsonStringEdgeCases(_ row: StringRow) {
        let b = Array(row.raw.utf8)
        let got = Self.structuralStrings(b, maxLen: 1 << 20)
        let want = row.strings.map { s, e, w, i in
            (pos: b[s..<e].firstIndex(of: 92)! + 1, string: Optional(JSONString(range: s..<e, worthDecoding: w, onlyInertEscapes: i)))
        }
        #expect(Self.same(got, want), "\(got)")
        #expect(Self.same(Self.referenceStrings(b, maxLen: 1 << 20), want), "the definitions agree with the row")
    }

    /// Strings straddling 64-byte blocks, backslash runs across a block edge, long strings.
    @Test func jsonStringsAcrossBlocks() {
        for run in 1...6 {
            for at in [0, 1, 55, 60, 62, 63, 64, 65, 127, 128, 190] {
                var b = [UInt8](repeating: UInt8(ascii: "a"), count: 260)
                b[0] = 34
                for k in 0..<run { b[1 + at + k] = 92 }
                b[1 + at + run] = 34 // escaped when `run` is odd
                b[259] = 34
                for maxLen in [1 << 20, 64, 200] {
                    let got = Self.structuralStrings(b, maxLen: maxLen), want = Self.referenceStrings(b, maxLen: maxLen)
                    #expect(Self.same(got, want), "run \(run) at \(at) maxLen \(maxLen): \(got) vs \(want)")
                }
            }
        }
    }

    @Test func jsonStringsMatchDelimit() {
        var r = Rng(s: 0x75_0E)
        let pieces: [[UInt8]] = [[92], [92, 92], [34], Array("nrtbfu/x\"".utf8), Array("0123456789abcdefABCDEF".utf8),
                                 [10], [13], Array("hello world:{},".utf8), [0, 0xC3, 0xA9]]
        for round in 0..<4000 {
            var b: [UInt8] = []
            let length = round < 300 ? round : 1 + r.int(round % 7 == 0 ? 2000 : 400)
            while b.count < length {
                let piece = pieces[r.int(pieces.count)]
                for _ in 0..<(1 + r.int(r.int(5) == 0 ? 70 : 4)) { b.append(piece[r.int(piece.count)]) }
            }
            b = Array(b.prefix(length))
            for maxLen in [1 << 20, 8, 100] {
                let got = Self.structuralStrings(b, maxLen: maxLen), want = Self.referenceStrings(b, maxLen: maxLen)
                #expect(Self.same(got, want), "round \(round) maxLen \(maxLen): \(Array(b))")
                if !Self.same(got, want) { return }
            }
        }
    }
    // MARK: both first passes

    /// The Hyperscan path (keywords in libhs, one-byte keywords and JSON strings in the
    /// structural pass) and the fallback give the same events on buffers of many 64-byte blocks,
    /// with keywords, strings, base64 runs and numbers planted throughout.
    @Test func hyperscanPassMatchesFallback() throws {
        let hs = try DetectionEngine(fingerprintKey: [1], options: EngineOptions(useHyperscan: true))
        guard let prefilter = hs.hyperscan else { return } // libhs missing: nothing to compare
        guard let slot = prefilter.makeSlot() else { Issue.record("no Hyperscan scratch"); return }
        var r = Rng(s: 0xC4_0C)
        let chunk = 4096
        let kws = hs.keywords
        for round in 0..<6 {
            var b = Self.randomBuffer(&r, length: 8 * chunk + r.int(chunk))
            for edge in stride(from: chunk, to: b.count, by: chunk) {
                for _ in 0..<4 {
                    let kw = kws[r.int(kws.count)]
                    let at = max(0, edge - r.int(kw.count + 1))
                    if at + kw.count <= b.count { b.replaceSubrange(at..<(at + kw.count), with: kw) }
                }
                let filler: [UInt8] = round % 2 == 0 ? Array("\"a\\\"b\\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldY 1234567".utf8) : Array("%41%42 4111 1111 1111 1111".utf8)
                let at = max(0, edge - r.int(filler.count))
                if at + filler.count <= b.count { b.replaceSubrange(at..<(at + filler.count), with: filler) }
            }
            for pii in [true, false] {
                var got: [Event] = [], want: [Event] = []
                var gs: [JSONString] = [], ws: [JSONString] = []
                let ok = b.withUnsafeBufferPointer { prefilter.events($0, pii: pii, slot: slot, into: &got, strings: &gs) }
                b.withUnsafeBufferPointer { hs.fallback.events($0, pii: pii, into: &want, strings: &ws) }
                #expect(ok)
                // Credential-only Hyperscan scans may leave out keywords only PII rules use.
                let credential = Set(kws.indices.filter { k in hs.keywordRules[k].contains { hs.rules[Int($0)].ruleClass == .credential } })
                if !pii { want = want.filter { $0.kind >= UInt32(kws.count) || credential.contains(Int($0.kind)) } }
                func key(_ e: Event, _ s: [JSONString]) -> [Int] {
                    let js = e.aux == 0 ? nil : s[Int(e.aux) - 1]
                    return [Int(e.kind), e.pos, js?.range.lowerBound ?? -1, js?.range.upperBound ?? -1]
                }
                let g = got.sorted().map { key($0, gs) }, w = want.sorted().map { key($0, ws) }
                #expect(g == w, "round \(round) pii \(pii): \(g.count) events vs \(w.count)")
            }
        }
    }
}
