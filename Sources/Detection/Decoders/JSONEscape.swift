/// JSON string unescaping (`\" \\ \/ \b \f \n \r \t \uXXXX`, surrogate pairs) with an offset map.
enum JSONEscapeDecoder {
    /// The longest region `delimit` returns by default; strings at least this long are not
    /// delimited by the structural pass (their regions depend on the backslash).
    static let maxStringLength = 1 << 20

    /// Finds the JSON string around position `at` (a backslash): from the nearest unescaped
    /// quote on the left to the nearest unescaped quote on the right, bounded by newlines
    /// and `maxLen`. The result is the same for every position inside the string.
    static func region(_ p: UnsafeBufferPointer<UInt8>, around at: Int, maxLen: Int = maxStringLength) -> Range<Int> {
        delimit(p, around: at, maxLen: maxLen).region
    }

    /// `region(around:)`, plus whether both ends are real delimiters (an unescaped quote, a
    /// newline or a buffer end) rather than the `maxLen` cap, and the region is at most `maxLen` long.
    ///
    /// Guarantees: when `exact`, `region` holds no unescaped quote, CR or LF, so
    /// `region(around: j)` is the same range for every `j` in it; callers may reuse it.
    static func delimit(_ p: UnsafeBufferPointer<UInt8>, around at: Int, maxLen: Int = maxStringLength) -> (region: Range<Int>, exact: Bool) {
        var s = at
        let lo = max(0, at - maxLen)
        while s > lo {
            let c = p[s - 1]
            if c == 10 || c == 13 { break }
            if c == 34 && !Scan.isEscapedQuote(p, s - 1) { break }
            s -= 1
        }
        var e = at
        let hi = min(p.count, at + maxLen)
        while e < hi {
            let c = p[e]
            if c == 10 || c == 13 { break }
            if c == 34 && !Scan.isEscapedQuote(p, e) { break }
            e += 1
        }
        let exact = (s > lo || lo == 0) && (e < hi || hi == p.count) && e - s <= maxLen
        return (s..<e, exact)
    }

    /// How much consecutive windows of a long string overlap: a secret (or a nested string it
    /// sits in) up to this long lies whole in one window.
    static let windowOverlap = 64 << 10

    /// The indices of the windows of the long string `s` that hold position `at`: window `k`
    /// starts `k × (maxLen − windowOverlap)` bytes into `s` and is `maxLen` long (less at the end).
    ///
    /// Guarantees: a span of `s` at most `windowOverlap` long that holds `at` lies whole in one of
    /// the returned windows; indices come in increasing order, and never decrease as `at` grows.
    static func windowIndices(of s: Range<Int>, holding at: Int, maxLen: Int = maxStringLength) -> ClosedRange<Int> {
        let step = maxLen - windowOverlap
        let k = (at - s.lowerBound) / step
        let intoWindow = at - s.lowerBound - k * step
        return (k > 0 && intoWindow < windowOverlap ? k - 1 : k)...k
    }

    /// Window `k` of the long string `s` (see `windowIndices`), its start moved back to the start
    /// of a run of backslashes it would otherwise split (so escapes decode as in the whole
    /// string), unless that run is longer than the overlap.
    static func window(_ k: Int, of s: Range<Int>, in p: UnsafeBufferPointer<UInt8>, maxLen: Int = maxStringLength) -> Range<Int> {
        let nominal = s.lowerBound + k * (maxLen - windowOverlap)
        var start = nominal
        while start > s.lowerBound && p[start - 1] == 92 && nominal - start < windowOverlap { start -= 1 }
        if start > s.lowerBound && p[start - 1] == 92 { start = nominal }
        return start..<min(s.upperBound, nominal + maxLen)
    }

    /// True when the region contains an escape that can hide or split a secret
    /// (anything but `\n`, `\r`, `\t`, which the raw pass already treats as boundaries).
    static func worthDecoding(_ p: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Bool {
        var i = r.lowerBound
        while i < r.upperBound - 1 {
            if p[i] == 92 {
                let n = p[i + 1]
                if n != UInt8(ascii: "n") && n != UInt8(ascii: "r") && n != UInt8(ascii: "t") { return true }
                i += 2
            } else { i += 1 }
        }
        return false
    }

    /// True when every escape in `p[r]` is one of `\" \n \r \t \b \f` (no `\\`, `\/`, `\u` or
    /// invalid escape): each decodes to a byte that is not a letter, digit, `/`, `%` or `\`, and
    /// the decoded bytes between escapes are the raw bytes, unchanged and in order.
    ///
    /// Guarantees (what `DetectionEngine.escapesInert` relies on): then every base64 run,
    /// `%XX`, digit run, IBAN start or keyword without those six bytes in the decoded string
    /// is also, byte for byte, in `p[r]`, and the decoded string holds no backslash.
    static func onlyInertEscapes(_ p: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Bool {
        var i = r.lowerBound
        while i < r.upperBound {
            if p[i] == 92 {
                guard i + 1 < r.upperBound else { return false }
                switch p[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"), UInt8(ascii: "b"), UInt8(ascii: "f"): i += 2
                default: return false
                }
            } else { i += 1 }
        }
        return true
    }

    /// The value of the four hex digits at `p[at..<at + 4]` (the `XXXX` of `\uXXXX`), or nil
    /// when they are not all hex digits or run past `end`.
    @inline(__always)
    static func hex4(_ p: UnsafeBufferPointer<UInt8>, _ at: Int, end: Int) -> Int? {
        guard at + 4 <= end else { return nil }
        var v = 0
        for k in 0..<4 {
            let h = PercentDecoder.hexVal(p[at + k])
            if h < 0 { return nil }
            v = v * 16 + h
        }
        return v
    }

    /// Unescapes `p[r]`, mapping every decoded byte to the escape (or byte) it came from.
    ///
    /// Guarantees: never reads outside `r`; the output is never longer than `r` (every escape
    /// decodes to at most as many bytes as it spans), so it is written in place into buffers
    /// of `r.count` elements with no per-byte growth check; a malformed `\u` escape yields the
    /// backslash itself, a lone surrogate U+FFFD.
    static func decode(_ p: UnsafeBufferPointer<UInt8>, region r: Range<Int>) -> Decoded? {
        let cap = r.count
        var n = 0
        var ss: [Int32] = [], se: [Int32] = []
        let out = [UInt8](unsafeUninitializedCapacity: cap) { o, outCount in
            ss = [Int32](unsafeUninitializedCapacity: cap) { a, aCount in
                se = [Int32](unsafeUninitializedCapacity: cap) { b, bCount in
                    n = decodeLoop(p, r, o, a, b)
                    bCount = n
                }
                aCount = n
            }
            outCount = n
        }
        return Decoded(via: "json-escape", bytes: out, srcStart: ss, srcEnd: se, region: r)
    }

    /// `decode`, written into `buf` (grown to `r.count` first) instead of three new arrays;
    /// returns the decoded length (the same bytes and map as `decode`).
    static func decode(_ p: UnsafeBufferPointer<UInt8>, region r: Range<Int>, into buf: DecodeBuffer) -> Int {
        buf.reserve(r.count)
        return decodeLoop(p, r, buf.bytes, buf.srcStart, buf.srcEnd)
    }

    /// The loop of `decode` (no captured state: the per-byte writes go straight to the three
    /// buffers, each at least `r.count` long). Returns the decoded length.
    @inline(__always)
    static func decodeLoop(_ p: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, _ o: UnsafeMutableBufferPointer<UInt8>,
                           _ a: UnsafeMutableBufferPointer<Int32>, _ b: UnsafeMutableBufferPointer<Int32>) -> Int {
        let end = r.upperBound
        var n = 0
        @inline(__always) func emit(_ v: UInt8, _ s: Int, _ e: Int) {
            o[n] = v; a[n] = Int32(s); b[n] = Int32(e); n &+= 1
        }
        var i = r.lowerBound
        while i < end {
            let c = p[i]
            guard c == 92, i + 1 < end else { emit(c, i, i + 1); i += 1; continue }
            switch p[i + 1] {
            case UInt8(ascii: "\""), 92, UInt8(ascii: "/"): emit(p[i + 1], i, i + 2); i += 2
            case UInt8(ascii: "n"): emit(10, i, i + 2); i += 2
            case UInt8(ascii: "r"): emit(13, i, i + 2); i += 2
            case UInt8(ascii: "t"): emit(9, i, i + 2); i += 2
            case UInt8(ascii: "b"): emit(8, i, i + 2); i += 2
            case UInt8(ascii: "f"): emit(12, i, i + 2); i += 2
            case UInt8(ascii: "u"):
                guard var cp = hex4(p, i + 2, end: end) else { emit(c, i, i + 1); i += 1; continue }
                var e = i + 6
                if cp >= 0xD800 && cp < 0xDC00, e + 1 < end, p[e] == 92, p[e + 1] == UInt8(ascii: "u"),
                   let lo = hex4(p, e + 2, end: end), lo >= 0xDC00 && lo < 0xE000 {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    e += 6
                }
                if cp >= 0xD800 && cp < 0xE000 { cp = 0xFFFD }
                switch cp {
                case 0..<0x80: emit(UInt8(cp), i, e)
                case 0x80..<0x800: emit(UInt8(0xC0 | (cp >> 6)), i, e); emit(UInt8(0x80 | (cp & 0x3F)), i, e)
                case 0x800..<0x10000:
                    emit(UInt8(0xE0 | (cp >> 12)), i, e); emit(UInt8(0x80 | ((cp >> 6) & 0x3F)), i, e)
                    emit(UInt8(0x80 | (cp & 0x3F)), i, e)
                default:
                    emit(UInt8(0xF0 | (cp >> 18)), i, e); emit(UInt8(0x80 | ((cp >> 12) & 0x3F)), i, e)
                    emit(UInt8(0x80 | ((cp >> 6) & 0x3F)), i, e); emit(UInt8(0x80 | (cp & 0x3F)), i, e)
                }
                i = e
            default:
                emit(c, i, i + 1); i += 1
            }
        }
        return n
    }
}

extension Scan {
    /// True when the quote at `i` is preceded by an odd number of backslashes.
    static func isEscapedQuote(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
        var k = i - 1
        var count = 0
        while k >= 0 && p[k] == 92 { count += 1; k -= 1 }
        return count % 2 == 1
    }
}
