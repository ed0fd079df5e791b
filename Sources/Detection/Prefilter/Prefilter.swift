/// A first-pass hit: a keyword occurrence (`kind < keywordCount`, `pos` = end offset)
/// or a structural trigger (`kind >= keywordCount`, `pos` = end offset of the trigger).
struct Event: Comparable {
    var kind: UInt32
    var pos: Int
    static func < (a: Event, b: Event) -> Bool { a.pos != b.pos ? a.pos < b.pos : a.kind < b.kind }
}

/// Structural trigger kinds, offset by the keyword count.
enum Trigger: UInt32, CaseIterable {
    case backslash = 0, percent, base64, numeric, iban
}

/// The pure-Swift first pass: finds every keyword occurrence (case-insensitive) with a
/// bigram table, and the structural triggers (JSON escapes, `%XX`, base64 runs, digit
/// regions, IBAN starts) with a byte-class table. Emits a superset of the triggers the
/// region processors need, so findings are identical to the Hyperscan path.
struct FallbackPrefilter: Sendable {
    static let fDigit: UInt8 = 1, fUpper: UInt8 = 2, fB64: UInt8 = 4, fSpecial: UInt8 = 8, fNum: UInt8 = 16

    let keywords: [[UInt8]]
    let lower: [UInt8]
    let bigram: [UInt16]
    let buckets: [[Int32]]
    let single: [Int32]
    let cls: [UInt8]
    let keywordCount: UInt32
    let minBase64: Int

    init(keywords: [[UInt8]], minBase64: Int) {
        self.keywords = keywords
        self.minBase64 = minBase64
        keywordCount = UInt32(keywords.count)
        lower = (0..<256).map { lowerASCII(UInt8($0)) }
        var bg = [UInt16](repeating: 0, count: 65536)
        var bk: [[Int32]] = []
        var sg = [Int32](repeating: 0, count: 256)
        for (id, kw) in keywords.enumerated() {
            if kw.count == 1 {
                sg[Int(kw[0])] = Int32(id + 1)
                if kw[0] >= 97 && kw[0] <= 122 { sg[Int(kw[0] - 32)] = Int32(id + 1) }
                continue
            }
            let key = Int(kw[0]) << 8 | Int(kw[1])
            if bg[key] == 0 { bk.append([]); bg[key] = UInt16(bk.count) }
            bk[Int(bg[key]) - 1].append(Int32(id))
        }
        bigram = bg
        buckets = bk
        single = sg
        var c = [UInt8](repeating: 0, count: 256)
        for b in 0..<256 {
            let u = UInt8(b)
            var f: UInt8 = 0
            if isDigit(u) { f |= Self.fDigit }
            if u >= 65 && u <= 90 { f |= Self.fUpper }
            if ByteSet.base64any.contains(u) { f |= Self.fB64 }
            if u == 92 || u == 37 { f |= Self.fSpecial }
            if PIIMatcher.numericRegionSet.contains(u) { f |= Self.fNum }
            c[b] = f
        }
        cls = c
    }

    func events(_ p: UnsafeBufferPointer<UInt8>, into ev: inout [Event]) {
        let n = p.count
        guard n > 0 else { return }
        let K = keywordCount
        var b64Start = -1
        var numStart = -1
        var numDigits = 0
        var lastDigitEnd = 0
        lower.withUnsafeBufferPointer { lw in
        bigram.withUnsafeBufferPointer { bg in
        cls.withUnsafeBufferPointer { cl in
        single.withUnsafeBufferPointer { sg in
            var i = 0
            while i < n {
                let c = p[i]
                if i + 1 < n {
                    let key = Int(lw[Int(c)]) << 8 | Int(lw[Int(p[i + 1])])
                    let bi = bg[key]
                    if bi != 0 {
                        for kw in buckets[Int(bi) - 1] {
                            let k = keywords[Int(kw)]
                            if i + k.count <= n {
                                var j = 2
                                while j < k.count && lw[Int(p[i + j])] == k[j] { j += 1 }
                                if j == k.count { ev.append(Event(kind: UInt32(kw), pos: i + k.count)) }
                            }
                        }
                    }
                }
                let s = sg[Int(c)]
                if s != 0 { ev.append(Event(kind: UInt32(s - 1), pos: i + 1)) }
                let f = cl[Int(c)]
                if f & Self.fB64 != 0 {
                    if b64Start < 0 { b64Start = i }
                } else if b64Start >= 0 {
                    if i - b64Start >= minBase64 { ev.append(Event(kind: K + Trigger.base64.rawValue, pos: i)) }
                    b64Start = -1
                }
                if f & Self.fNum != 0 {
                    if numStart < 0 { numStart = i; numDigits = 0 }
                    if f & Self.fDigit != 0 { numDigits += 1; lastDigitEnd = i + 1 }
                } else if numStart >= 0 {
                    if numDigits >= 7 { ev.append(Event(kind: K + Trigger.numeric.rawValue, pos: lastDigitEnd)) }
                    numStart = -1
                }
                if f & Self.fSpecial != 0 {
                    if c == 92 { ev.append(Event(kind: K + Trigger.backslash.rawValue, pos: i + 1)) }
                    else if i + 2 < n && ByteSet.hex.contains(p[i + 1]) && ByteSet.hex.contains(p[i + 2]) {
                        ev.append(Event(kind: K + Trigger.percent.rawValue, pos: i + 3))
                    }
                }
                if f & Self.fDigit != 0 && i >= 3 && isDigit(p[i - 1]) && cl[Int(p[i - 2])] & Self.fUpper != 0 && cl[Int(p[i - 3])] & Self.fUpper != 0 {
                    ev.append(Event(kind: K + Trigger.iban.rawValue, pos: i + 1))
                }
                i += 1
            }
        }}}}
        if b64Start >= 0 && n - b64Start >= minBase64 { ev.append(Event(kind: K + Trigger.base64.rawValue, pos: n)) }
        if numStart >= 0 && numDigits >= 7 { ev.append(Event(kind: K + Trigger.numeric.rawValue, pos: lastDigitEnd)) }
    }
}
