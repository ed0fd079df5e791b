import Testing
@testable import Detection

/// The decoders and the JSON-string shortcuts of `scanLevel`: each fast path is checked
/// against a table of edge cases and against a plain reference definition on random inputs.
@Suite struct DecoderTests {
    typealias Rng = PrefilterTests.Rng

    static func random(_ r: inout Rng, _ alphabet: [UInt8], _ n: Int) -> [UInt8] { (0..<n).map { _ in alphabet[r.int(alphabet.count)] } }

    // MARK: JSON escapes

    struct EscapeRow: Sendable, CustomTestStringConvertible {
        var raw: String
        var decoded: [UInt8]
        var testDescription: String { raw }
    }

    static let escapeRows: [EscapeRow] = [
        EscapeRow(raw: #"plain text"#, decoded: Array("plain text".utf8)),
        EscapeRow(raw: #"say \"hi\""#, decoded: Array(#"say "hi""#.utf8)),
        EscapeRow(raw: #"a\\b\/c"#, decoded: Array(#"a\b/c"#.utf8)),
        EscapeRow(raw: #"\n\r\t\b\f"#, decoded: [10, 13, 9, 8, 12]),
        EscapeRow(raw: #"\u0041\u00e9\u20ac"#, decoded: [0x41, 0xC3, 0xA9, 0xE2, 0x82, 0xAC]),
        EscapeRow(raw: #"\ud83d\ude00"#, decoded: [0xF0, 0x9F, 0x98, 0x80]),
        EscapeRow(raw: #"\ud83dx"#, decoded: [0xEF, 0xBF, 0xBD, 0x78]),               // lone high surrogate
        EscapeRow(raw: #"\ude00"#, decoded: [0xEF, 0xBF, 0xBD]),                     // lone low surrogate
        EscapeRow(raw: #"\ud83d\u0041"#, decoded: [0xEF, 0xBF, 0xBD, 0x41]),         // high surrogate, then no low one
        EscapeRow(raw: #"\u12"#, decoded: Array(#"\u12"#.utf8)),                     // truncated \u: the backslash stays
        EscapeRow(raw: #"\uZZZZ"#, decoded: Array(#"\uZZZZ"#.utf8)),                 // not hex
        EscapeRow(raw: #"\x41"#, decoded: Array(#"\x41"#.utf8)),                     // unknown escape
        EscapeRow(raw: #"end\"#, decoded: Array(#"end\"#.utf8)),                     // lone trailing backslash
        EscapeRow(raw: #"{\"k\": \"{\\\"n\\\": 1}\"}"#, decoded: Array(#"{"k": "{\"n\": 1}"}"#.utf8)), // JSON in a JSON string
    ]

    @Test(arguments: escapeRows) func jsonEscapeDecodes(_ row: EscapeRow) throws {
        let raw = Array(row.raw.utf8)
        let d = try #require(raw.withUnsafeBufferPointer { JSONEscapeDecoder.decode($0, region: 0..<raw.count) })
        #expect(d.bytes == row.decoded)
        #expect(d.srcStart.count == d.bytes.count && d.srcEnd.count == d.bytes.count)
        let ref = raw.withUnsafeBufferPointer { Self.referenceUnescape($0, 0..<raw.count) }
        #expect(d.bytes == ref.bytes && d.srcStart == ref.ss && d.srcEnd == ref.se)
    }

    /// The decoder's definition, one append at a time (the implementation writes in place).
    static func referenceUnescape(_ p: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> (bytes: [UInt8], ss: [Int32], se: [Int32]) {
        var out: [UInt8] = [], ss: [Int32] = [], se: [Int32] = []
        func emit(_ b: UInt8, _ s: Int, _ e: Int) { out.append(b); ss.append(Int32(s)); se.append(Int32(e)) }
        func hex4(_ at: Int) -> Int? { JSONEscapeDecoder.hex4(p, at, end: r.upperBound) }
        func utf8(_ cp: Int) -> [UInt8] {
            guard let u = Unicode.Scalar(UInt32(cp)) else { return [0xEF, 0xBF, 0xBD] }
            return Array(String(Character(u)).utf8)
        }
        var i = r.lowerBound
        while i < r.upperBound {
            let c = p[i]
            guard c == 92, i + 1 < r.upperBound else { emit(c, i, i + 1); i += 1; continue }
            let n = p[i + 1]
            let simple: [UInt8: UInt8] = [34: 34, 92: 92, 47: 47, 110: 10, 114: 13, 116: 9, 98: 8, 102: 12]
            if let b = simple[n] { emit(b, i, i + 2); i += 2; continue }
            guard n == UInt8(ascii: "u"), var cp = hex4(i + 2) else { emit(c, i, i + 1); i += 1; continue }
            var end = i + 6
            if cp >= 0xD800 && cp < 0xDC00, end + 1 < r.upperBound, p[end] == 92, p[end + 1] == UInt8(ascii: "u"),
               let lo = hex4(end + 2), lo >= 0xDC00 && lo < 0xE000 {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                end += 6
            }
            if cp >= 0xD800 && cp < 0xE000 { cp = 0xFFFD }
            for b in utf8(cp) { emit(b, i, end) }
            i = end
        }
        return (out, ss, se)
    }

    @Test func jsonEscapeMatchesReferenceOnRandomInput() {
        var r = Rng(s: 0xD1CE)
        let alphabet = Array(#"\\\\\"nrtbfu/0123456789abcdefABCDEFxyz d83de00"#.utf8)
        for _ in 0..<3000 {
            let length = r.int(40)
            let raw = Self.random(&r, alphabet, length)
            let s = raw.isEmpty ? 0 : r.int(raw.count), e = s + (raw.isEmpty ? 0 : r.int(raw.count - s + 1))
            raw.withUnsafeBufferPointer { p in
                let d = JSONEscapeDecoder.decode(p, region: s..<e)
                let ref = Self.referenceUnescape(p, s..<e)
                #expect(d?.bytes == ref.bytes && d?.srcStart == ref.ss && d?.srcEnd == ref.se, "\(String(decoding: raw, as: UTF8.self)) [\(s)..<\(e)]")
            }
        }
    }

    /// The scan writes decoded strings into one `DecodeBuffer` per depth, reused from string to
    /// string (longer and shorter ones, with old bytes left in it): the same bytes and map as
    /// `decode`'s fresh arrays, for both decoders.
    @Test func decodingIntoAReusedBufferMatchesDecode() {
        var r = Rng(s: 0xB0FF)
        let alphabet = Array(#"\\"nrtbfu/%+0123456789abcdefABCDEFxyz d83de00"#.utf8)
        let json = DecodeBuffer(), percent = DecodeBuffer()
        for _ in 0..<3000 {
            let raw = Self.random(&r, alphabet, r.int(r.int(8) == 0 ? 600 : 40))
            raw.withUnsafeBufferPointer { p in
                let region = 0..<raw.count
                let d = JSONEscapeDecoder.decode(p, region: region)
                let n = JSONEscapeDecoder.decode(p, region: region, into: json)
                let v = DecodedView(via: "json-escape", json, count: n, region: region)
                #expect(d.map { Array($0.bytes) } == Array(v.bytes) && d?.srcStart == Array(v.srcStart) && d?.srcEnd == Array(v.srcEnd))
                for plus in [true, false] {
                    let pd = PercentDecoder.decode(p, region: region, plusIsSpace: plus)
                    let pn = PercentDecoder.decode(p, region: region, plusIsSpace: plus, into: percent)
                    #expect((pd == nil) == (pn == nil))
                    if let pd, let pn {
                        let pv = DecodedView(via: "percent", percent, count: pn, region: region)
                        #expect(pd.bytes == Array(pv.bytes) && pd.srcStart == Array(pv.srcStart) && pd.srcEnd == Array(pv.srcEnd))
                        #expect(pv.mapSpan(0, pn) == pd.mapSpan(0, pn))
                    }
                }
            }
        }
    }

    struct DelimitRow: Sendable, CustomTestStringConvertible {
        var text: String
        /// Offset of the backslash to delimit around.
        var at: Int
        var region: Range<Int>
        var exact: Bool
        var maxLen = 1 << 20
        var testDescription: String { "\(text) @\(at)" }
    }

    static let delimitRows: [DelimitRow] = [
        DelimitRow(text: #"{"a": "x\"y", "b": 1}"#, at: 8, region: 7..<11, exact: true),
        DelimitRow(text: #""x\\" z"#, at: 2, region: 1..<4, exact: true),                    // escaped backslash, then a real quote
        DelimitRow(text: #""a\\\"b" c"#, at: 2, region: 1..<7, exact: true),                // `\\\"`: backslash pair, escaped quote
        DelimitRow(text: "line1\nab\\ncd\nline3", at: 8, region: 6..<12, exact: true),        // newlines delimit
        DelimitRow(text: #"ab\"cd"#, at: 2, region: 0..<6, exact: true),                    // buffer ends delimit
        DelimitRow(text: #""abcdefgh\"ijklmnop""#, at: 9, region: 5..<13, exact: false, maxLen: 4), // the cap, not a quote
        DelimitRow(text: #""ab\"c""#, at: 3, region: 1..<6, exact: false, maxLen: 4),      // delimited, but longer than the cap
    ]

    @Test(arguments: delimitRows) func jsonStringDelimits(_ row: DelimitRow) {
        let b = Array(row.text.utf8)
        #expect(b[row.at] == 92)
        b.withUnsafeBufferPointer { p in
            let (r, exact) = JSONEscapeDecoder.delimit(p, around: row.at, maxLen: row.maxLen)
            #expect(r == row.region)
            #expect(exact == row.exact)
            #expect(JSONEscapeDecoder.region(p, around: row.at, maxLen: row.maxLen) == r)
        }
    }

    /// The property `scanLevel` relies on: an exact region is the region of every position in it.
    @Test func exactRegionIsTheSameAroundEveryPosition() {
        var r = Rng(s: 0x5171)
        let alphabet = Array(#"ab"\\\\\"n: "#.utf8) + [10]
        var exactSeen = 0
        for _ in 0..<2000 {
            let length = 1 + r.int(60)
            let b = Self.random(&r, alphabet, length)
            let maxLen = [3, 8, 1 << 20][r.int(3)]
            b.withUnsafeBufferPointer { p in
                let at = r.int(b.count)
                let (region, exact) = JSONEscapeDecoder.delimit(p, around: at, maxLen: maxLen)
                guard exact else { return }
                exactSeen += 1
                for j in region {
                    #expect(JSONEscapeDecoder.region(p, around: j, maxLen: maxLen) == region, "\(String(decoding: b, as: UTF8.self)) @\(at), \(j)")
                }
            }
        }
        #expect(exactSeen > 500)
    }

    struct InertRow: Sendable, CustomTestStringConvertible {
        var text: String
        var inert: Bool
        var testDescription: String { text }
    }

    static let inertRows: [InertRow] = [
        InertRow(text: "no escapes at all", inert: true),
        InertRow(text: #"\"k\": \"v\"\n\r\t\b\f"#, inert: true),
        InertRow(text: #"a\\b"#, inert: false),          // decodes to a backslash: a trigger
        InertRow(text: #"a\/b"#, inert: false),          // `/` joins base64 runs and is in keywords
        InertRow(text: #"\u0041"#, inert: false),        // any byte
        InertRow(text: #"\x"#, inert: false),            // unknown escape: the backslash stays
        InertRow(text: #"ends with \"#, inert: false),   // truncated escape
        InertRow(text: #"\\\""#, inert: false),
    ]

    @Test(arguments: inertRows) func inertEscapes(_ row: InertRow) {
        let b = Array(row.text.utf8)
        b.withUnsafeBufferPointer { p in #expect(JSONEscapeDecoder.onlyInertEscapes(p, 0..<b.count) == row.inert) }
    }

    /// Skipping inert JSON strings changes no finding: the engine with the shortcut against one
    /// where it is off (a whole-input custom rule, which never matches, turns it off).
    @Test func skippingInertStringsChangesNoFinding() throws {
        let key = Array("corpus-key".utf8)
        let never = RuleSpec(id: "never-matches", pattern: "(?:q\\x{1}){3}z")
        for useHS in [true, false] {
            let fast = try DetectionEngine(fingerprintKey: key, options: EngineOptions(useHyperscan: useHS))
            let full = try DetectionEngine(fingerprintKey: key, customRules: [never], options: EngineOptions(useHyperscan: useHS))
            #expect(fast.escapesInert)
            #expect(!full.escapesInert)
            var samples = PrecisionRecallTests.corpus().map(\.text)
            var f = Fakes(seed: 77)
            for _ in 0..<60 {
                // Inert strings around real secrets, keywords, digits and base64 runs.
                let inner = "{\"note\": \"see \\\"\(f.github())\\\" and \(f.s(Fakes.digits, 9))\", \"b\": \"\(f.s(Fakes.b64, 24))\"}"
                samples.append(Array("{\"arguments\": \(CorpusGenerator.jsonString(inner)), \"plain\": \"a\\\"b\\nc\"}".utf8))
            }
            for s in samples {
                for ctx in [ScanContext(), ScanContext(credentials: true, pii: false, hint: .json)] {
                    let a = fast.scan(s, context: ctx), b = full.scan(s, context: ctx).filter { $0.rule != "never-matches" }
                    #expect(a == b, "\(String(decoding: s.prefix(120), as: UTF8.self))")
                }
            }
        }
    }

    // MARK: base64

    /// `StructuralScanner.base64RunStart` (C, 64 bytes per step) against the byte walk it replaces in `scanLevel`.
    @Test func base64RunStartMatchesByteWalk() {
        var r = Rng(s: 0x2B64)
        let inClass = Array("ABCxyz0189+/_-".utf8), outside = Array(" \"=.\\%".utf8) + [0, 0x80, 0xFF]
        for _ in 0..<400 {
            var b: [UInt8] = []
            while b.count < 1 + r.int(400) {
                let run = r.int(4) == 0 ? r.int(200) : r.int(12)
                b += Self.random(&r, inClass, run)
                let gap = 1 + r.int(2)
                b += Self.random(&r, outside, gap)
            }
            b.withUnsafeBufferPointer { p in
                for end in 0...b.count {
                    var s = end
                    while s > 0 && ByteSet.base64any.contains(p[s - 1]) { s -= 1 }
                    #expect(StructuralScanner.base64RunStart(p, end) == s)
                }
            }
        }
    }

    /// The definition `Base64.decode` implements, one symbol at a time.
    static func referenceBase64(_ s: [UInt8], limit: Int = Int.max) -> [UInt8]? {
        let alpha = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var out: [UInt8] = []
        var acc: UInt32 = 0, bits = 0
        var sawStd = false, sawURL = false, sawPad = false
        for c in s {
            if c == 61 { sawPad = true; continue }
            if sawPad { return nil }
            let v: Int
            if let i = alpha.firstIndex(of: c) { v = i } else if c == 43 || c == 45 { v = 62 } else if c == 47 || c == 95 { v = 63 } else { return nil }
            if c == 43 || c == 47 { sawStd = true }
            if c == 45 || c == 95 { sawURL = true }
            acc = (acc << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((acc >> UInt32(bits)) & 0xff))
                if out.count >= limit { return out }
            }
        }
        if sawStd && sawURL { return nil }
        if bits >= 6 { return nil }
        return out
    }

    struct Base64Row: Sendable, CustomTestStringConvertible {
        var text: String
        var decoded: String?
        var testDescription: String { text }
    }

    static let base64Rows: [Base64Row] = [
        Base64Row(text: "aGVsbG8gd29ybGQ=", decoded: "hello world"),
        Base64Row(text: "aGVsbG8gd29ybGQ", decoded: "hello world"),       // padding optional
        Base64Row(text: "aGk/Pz8-", decoded: nil),                        // `/` with `-`: mixed alphabets
        Base64Row(text: "aGk_Pz8-", decoded: "hi???>"),
        Base64Row(text: "aGk=aGk=", decoded: nil),                        // data after padding
        Base64Row(text: "aGVsbG8x", decoded: "hello1"),
        Base64Row(text: "aGVsbG8xA", decoded: nil),                       // a lone trailing symbol
        Base64Row(text: "aGV sbG8=", decoded: nil),                       // not an alphabet byte
        Base64Row(text: "", decoded: ""),
    ]

    @Test(arguments: base64Rows) func base64Decodes(_ row: Base64Row) {
        let b = Array(row.text.utf8)
        let d = Base64.decode(b)
        #expect(d == row.decoded.map { Array($0.utf8) })
        #expect(d == Self.referenceBase64(b))
        #expect(Base64.decode(b[...]) == d)   // the non-contiguous-collection path agrees
    }

    @Test func base64ProbeSeesGzipAndText() {
        let rows: [(String, (gzip: Bool, text: Bool)?)] = [
            ("H4sIAAAAAAAA", (true, false)),                  // gzip magic 1f 8b 08
            ("dG9rZW49YWJjZGVmZ2hpams=", (false, true)),     // token=abcdefghijk
            ("AAECAwQFBgcICQoLDA0ODxAR", (false, false)),     // binary
            ("dG9r!W49", nil),
        ]
        for (text, want) in rows {
            let got = Array(text.utf8).withUnsafeBufferPointer { Base64.probe($0) }
            #expect(got?.gzip == want?.gzip && got?.text == want?.text, "\(text)")
        }
    }

    @Test func base64MatchesReferenceOnRandomInput() {
        var r = Rng(s: 0xB64)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=".utf8) + [32, 0, 0xFF]
        for _ in 0..<5000 {
            let length = r.int(100)
            let b = Self.random(&r, alphabet, length)
            let limit = [Int.max, 1, 5, 0][r.int(4)]
            #expect(Base64.decode(b, limit: limit) == Self.referenceBase64(b, limit: limit), "\(String(decoding: b, as: UTF8.self)) limit \(limit)")
            b.withUnsafeBufferPointer { p in
                #expect(Base64.decode(p[...]) == Self.referenceBase64(b))
                // The allocation-free probe of `base64Region`: the first 64 symbols.
                let head = Self.referenceBase64(Array(b.prefix(64)))
                let probe = Base64.probe(p)
                #expect(probe?.gzip == head.map { $0.count >= 2 && $0[0] == 0x1f && $0[1] == 0x8b })
                #expect(probe?.text == head.map { Base64.looksLikeText($0) })
                #expect(Base64.probeWorth(p) == Self.worth(probe))
            }
        }
    }
    /// `probe` runs in C (`chs_b64_probe`): compared with its Swift definition on base64 of
    /// text-like and binary bytes (gzip magic, NUL, UTF-8 lead bytes), both alphabets, padded or
    /// not, with a symbol sometimes replaced by `=`, `+`, `_` or an invalid byte.
    /// What `base64Region` decides from a probe: gzip first, then text, else skip.
    static func worth(_ probe: (gzip: Bool, text: Bool)?) -> Base64.ProbeKind? {
        guard let probe else { return nil }
        return probe.gzip ? .gzip : probe.text ? .text : nil
    }

    @Test func probeMatchesReferenceOnEncodedBytes() {
        var r = Rng(s: 0x9B0E)
        let alphabet: [UInt8] = Array("abc XYZ 019{}\"".utf8) + [9, 10, 13, 0, 1, 0x1f, 0x8b, 0x7f, 0xC1, 0xC2, 0x80, 0xFF]
        for _ in 0..<4000 {
            let raw = Self.random(&r, alphabet, r.int(70))
            var enc = Base64.encode(raw, urlSafe: r.int(2) == 0, pad: r.int(2) == 0)
            if r.int(4) == 0, !enc.isEmpty { enc[r.int(enc.count)] = [61, 43, 95, 33][r.int(4)] }
            enc.withUnsafeBufferPointer { p in
                let got = Base64.probe(p), want = Base64.probeReference(p)
                #expect(got?.gzip == want?.gzip && got?.text == want?.text, "\(String(decoding: enc, as: UTF8.self))")
                #expect(Base64.probeWorth(p) == Self.worth(want), "\(String(decoding: enc, as: UTF8.self))")
            }
        }
        // Edge rows: empty, gzip magic, a NUL, exactly 90 % printable, more than 64 symbols.
        let rows: [[UInt8]] = [[], [0x1f, 0x8b, 8, 0], [65, 0, 66], Array(repeating: 65, count: 9) + [1],
                               Array(repeating: 65, count: 8) + [1, 2], Array(repeating: 66, count: 60)]
        for raw in rows {
            let enc = Base64.encode(raw)
            enc.withUnsafeBufferPointer { p in
                let got = Base64.probe(p), want = Base64.probeReference(p)
                #expect(got?.gzip == want?.gzip && got?.text == want?.text, "\(raw)")
                #expect(Base64.probeWorth(p) == Self.worth(want), "\(raw)")
            }
        }
    }
}
