/// JSON string unescaping (`\" \\ \/ \b \f \n \r \t \uXXXX`, surrogate pairs) with an offset map.
enum JSONEscapeDecoder {
    /// Finds the JSON string around position `at` (a backslash): from the nearest unescaped
    /// quote on the left to the nearest unescaped quote on the right, bounded by newlines
    /// and `maxLen`. The result is the same for every position inside the string.
    static func region(_ p: UnsafeBufferPointer<UInt8>, around at: Int, maxLen: Int = 1 << 20) -> Range<Int> {
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
        return s..<e
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

    static func decode(_ p: UnsafeBufferPointer<UInt8>, region r: Range<Int>) -> Decoded? {
        var out: [UInt8] = []
        var ss: [Int32] = [], se: [Int32] = []
        out.reserveCapacity(r.count)
        ss.reserveCapacity(r.count); se.reserveCapacity(r.count)
        var i = r.lowerBound
        func emit(_ b: UInt8, _ s: Int, _ e: Int) { out.append(b); ss.append(Int32(s)); se.append(Int32(e)) }
        func hex4(_ at: Int) -> Int? {
            guard at + 4 <= r.upperBound else { return nil }
            var v = 0
            for k in 0..<4 {
                let h = PercentDecoder.hexVal(p[at + k])
                if h < 0 { return nil }
                v = v * 16 + h
            }
            return v
        }
        while i < r.upperBound {
            let c = p[i]
            guard c == 92, i + 1 < r.upperBound else { emit(c, i, i + 1); i += 1; continue }
            let n = p[i + 1]
            switch n {
            case UInt8(ascii: "\""), 92, UInt8(ascii: "/"): emit(n, i, i + 2); i += 2
            case UInt8(ascii: "n"): emit(10, i, i + 2); i += 2
            case UInt8(ascii: "r"): emit(13, i, i + 2); i += 2
            case UInt8(ascii: "t"): emit(9, i, i + 2); i += 2
            case UInt8(ascii: "b"): emit(8, i, i + 2); i += 2
            case UInt8(ascii: "f"): emit(12, i, i + 2); i += 2
            case UInt8(ascii: "u"):
                guard var cp = hex4(i + 2) else { emit(c, i, i + 1); i += 1; continue }
                var end = i + 6
                if cp >= 0xD800 && cp < 0xDC00, end + 1 < r.upperBound, p[end] == 92, p[end + 1] == UInt8(ascii: "u"),
                   let lo = hex4(end + 2), lo >= 0xDC00 && lo < 0xE000 {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    end += 6
                }
                if cp >= 0xD800 && cp < 0xE000 { cp = 0xFFFD }
                for b in utf8(cp) { emit(b, i, end) }
                i = end
            default:
                emit(c, i, i + 1); i += 1
            }
        }
        return Decoded(via: "json-escape", bytes: out, srcStart: ss, srcEnd: se, region: r)
    }

    static func utf8(_ cp: Int) -> [UInt8] {
        switch cp {
        case 0..<0x80: return [UInt8(cp)]
        case 0x80..<0x800: return [UInt8(0xC0 | (cp >> 6)), UInt8(0x80 | (cp & 0x3F))]
        case 0x800..<0x10000: return [UInt8(0xE0 | (cp >> 12)), UInt8(0x80 | ((cp >> 6) & 0x3F)), UInt8(0x80 | (cp & 0x3F))]
        default: return [UInt8(0xF0 | (cp >> 18)), UInt8(0x80 | ((cp >> 12) & 0x3F)), UInt8(0x80 | ((cp >> 6) & 0x3F)), UInt8(0x80 | (cp & 0x3F))]
        }
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
