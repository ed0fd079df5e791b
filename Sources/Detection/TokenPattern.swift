/// A compiled pattern in a small, linear-time-friendly regex subset used by the
/// hand-written confirm step: a sequence of elements, each a byte class with a
/// repeat range. Supported syntax: literal bytes, `\` escapes (`\d`, `\w`, `\s`,
/// `\.` …), classes `[...]` / `[^...]` with ranges, `.`, and quantifiers `?`,
/// `*`, `+`, `{m}`, `{m,}`, `{m,n}`. Groups and alternation are not supported
/// (custom rules that need them run on NSRegularExpression instead).
///
/// Matching is anchored, greedy, with bounded backtracking (at most
/// ``maxSteps`` steps), so a match costs O(window) in practice.
public struct TokenPattern: Sendable, Hashable {
    struct Element: Sendable, Hashable {
        var set: ByteSet
        var min: Int
        var max: Int
    }

    var elements: [Element] {
        didSet {
            literalPrefix = Self.computeLiteralPrefix(elements)
            longestOnly = Self.computeLongestOnly(elements)
        }
    }
    /// Total minimum length.
    let minLength: Int
    /// The literal prefix (elements with a single byte, repeated exactly once), if any.
    /// Computed once: the confirm step reads it for every token-rule keyword hit.
    private(set) var literalPrefix: [UInt8] = []
    /// Per element: the next element needs at least one byte and shares no byte with this one,
    /// so after the longest run of this element every shorter one fails at the next element's
    /// first byte (`matchFrom` skips those tries and only counts their steps).
    private(set) var longestOnly: [Bool] = []
    static let unbounded = 4096
    static let maxSteps = 20_000

    /// Parse errors carry the offending position; they never include scanned data.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public init(_ source: String) throws(ParseError) {
        let s = Array(source.utf8)
        var els: [Element] = []
        var i = 0
        func escapeClass(_ c: UInt8) -> ByteSet {
            switch c {
            case UInt8(ascii: "d"): return ByteSet("0-9")
            case UInt8(ascii: "w"): return ByteSet("A-Za-z0-9_")
            case UInt8(ascii: "s"): return ByteSet(" \t\r\n")
            case UInt8(ascii: "n"): var b = ByteSet(); b.insert(10); return b
            case UInt8(ascii: "t"): var b = ByteSet(); b.insert(9); return b
            case UInt8(ascii: "r"): var b = ByteSet(); b.insert(13); return b
            default: var b = ByteSet(); b.insert(c); return b
            }
        }
        while i < s.count {
            var set = ByteSet()
            let c = s[i]
            switch c {
            case UInt8(ascii: "["):
                i += 1
                var negate = false
                if i < s.count && s[i] == UInt8(ascii: "^") { negate = true; i += 1 }
                var first = true
                var closed = false
                while i < s.count {
                    var ch = s[i]
                    if ch == UInt8(ascii: "]") && !first { closed = true; i += 1; break }
                    first = false
                    if ch == 92 {
                        guard i + 1 < s.count else { throw ParseError(message: "dangling escape at \(i)") }
                        let e = s[i + 1]
                        if [UInt8(ascii: "d"), UInt8(ascii: "w"), UInt8(ascii: "s")].contains(e) {
                            set = set.union(escapeClass(e)); i += 2; continue
                        }
                        ch = escapeClass(e) == ByteSet() ? e : e
                        if e == UInt8(ascii: "n") { ch = 10 } else if e == UInt8(ascii: "t") { ch = 9 } else if e == UInt8(ascii: "r") { ch = 13 }
                        i += 2
                    } else {
                        i += 1
                    }
                    if i + 1 < s.count && s[i] == UInt8(ascii: "-") && s[i + 1] != UInt8(ascii: "]") {
                        var hi = s[i + 1]
                        i += 2
                        if hi == 92 {
                            guard i < s.count else { throw ParseError(message: "dangling escape in class") }
                            hi = s[i]; i += 1
                        }
                        guard hi >= ch else { throw ParseError(message: "bad range in class at \(i)") }
                        for x in ch...hi { set.insert(x) }
                    } else {
                        set.insert(ch)
                    }
                }
                guard closed else { throw ParseError(message: "unterminated character class") }
                if negate { set = set.inverted }
            case 92:
                guard i + 1 < s.count else { throw ParseError(message: "dangling escape at end") }
                set = escapeClass(s[i + 1])
                i += 2
            case UInt8(ascii: "."):
                set = ByteSet().inverted
                i += 1
            case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "|"), UInt8(ascii: "^"), UInt8(ascii: "$"):
                throw ParseError(message: "unsupported construct '\(Character(UnicodeScalar(c)))' at \(i)")
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"):
                throw ParseError(message: "quantifier without operand at \(i)")
            default:
                set.insert(c)
                i += 1
            }
            var lo = 1, hi = 1
            if i < s.count {
                switch s[i] {
                case UInt8(ascii: "?"): lo = 0; hi = 1; i += 1
                case UInt8(ascii: "*"): lo = 0; hi = Self.unbounded; i += 1
                case UInt8(ascii: "+"): lo = 1; hi = Self.unbounded; i += 1
                case UInt8(ascii: "{"):
                    var j = i + 1
                    var a = 0, b = -1, sawComma = false, digits = 0
                    while j < s.count && s[j] != UInt8(ascii: "}") {
                        let d = s[j]
                        if d == UInt8(ascii: ",") { guard !sawComma else { throw ParseError(message: "bad quantifier") }; sawComma = true; b = 0; digits = 0 }
                        else if isDigit(d) {
                            digits += 1
                            guard digits < 6 else { throw ParseError(message: "quantifier too large") }
                            if sawComma { b = b * 10 + Int(d - 48) } else { a = a * 10 + Int(d - 48) }
                        } else { throw ParseError(message: "bad quantifier at \(j)") }
                        j += 1
                    }
                    guard j < s.count else { throw ParseError(message: "unterminated quantifier") }
                    lo = a
                    if !sawComma { hi = a } else if digits == 0 { hi = Self.unbounded } else { hi = b }
                    guard hi >= lo, hi <= Self.unbounded else { throw ParseError(message: "bad quantifier range {\(lo),\(hi)}") }
                    i = j + 1
                default: break
                }
            }
            els.append(Element(set: set, min: lo, max: hi))
        }
        guard !els.isEmpty else { throw ParseError(message: "empty pattern") }
        elements = els
        minLength = els.reduce(0) { $0 + $1.min }
        literalPrefix = Self.computeLiteralPrefix(els)
        longestOnly = Self.computeLongestOnly(els)
    }

    /// Matches anchored at `pos`, not reading at or beyond `limit`. Returns the end offset
    /// of the longest-first (greedy) match, or nil.
    func match(_ p: UnsafeBufferPointer<UInt8>, at pos: Int, limit: Int) -> Int? {
        guard pos >= 0, limit - pos >= minLength else { return nil }
        var steps = 0
        return matchFrom(p, 0, pos, limit, &steps)
    }

    private func matchFrom(_ p: UnsafeBufferPointer<UInt8>, _ ei: Int, _ pos: Int, _ limit: Int, _ steps: inout Int) -> Int? {
        if ei == elements.count { return pos }
        steps += 1
        if steps > Self.maxSteps { return nil }
        let e = elements[ei]
        var k = 0
        let cap = Swift.min(e.max, limit - pos)
        while k < cap && e.set.contains(p[pos + k]) { k += 1 }
        if k < e.min { return nil }
        if ei == elements.count - 1 { return pos + k }
        if longestOnly[ei] {
            // Each shorter try would be one step that fails at once: p[pos + n] (n < k) is in
            // `e.set`, so not in the next element's set, which needs at least one byte. The steps
            // are still counted, so the `maxSteps` cut-off falls exactly where it did.
            if let r = matchFrom(p, ei + 1, pos + k, limit, &steps) { return r }
            steps += k - e.min
            return nil
        }
        var n = k
        while n >= e.min {
            if let r = matchFrom(p, ei + 1, pos + n, limit, &steps) { return r }
            n -= 1
        }
        return nil
    }

    static func computeLongestOnly(_ elements: [Element]) -> [Bool] {
        elements.indices.map { i in
            i + 1 < elements.count && elements[i + 1].min >= 1 && elements[i].set.isDisjoint(with: elements[i + 1].set)
        }
    }

    static func computeLiteralPrefix(_ elements: [Element]) -> [UInt8] {
        var out: [UInt8] = []
        for e in elements {
            guard e.min == 1 && e.max == 1 else { break }
            var only: UInt8? = nil
            var count = 0
            for b in 0...255 where e.set.contains(UInt8(b)) { count += 1; only = UInt8(b); if count > 1 { break } }
            guard count == 1, let o = only else { break }
            out.append(o)
        }
        return out
    }
}

extension TokenPattern {
    /// A pattern that never matches (an empty class), used as a safe stand-in.
    static var never: TokenPattern { TokenPattern(elements: [Element(set: ByteSet(), min: 1, max: 1)]) }

    init(elements: [Element]) {
        self.elements = elements
        self.minLength = elements.reduce(0) { $0 + $1.min }
        self.literalPrefix = Self.computeLiteralPrefix(elements)
        self.longestOnly = Self.computeLongestOnly(elements)
    }
}
