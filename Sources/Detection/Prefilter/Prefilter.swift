/// A first-pass hit: a keyword occurrence (`kind < keywordCount`, `pos` = end offset)
/// or a structural trigger (`kind >= keywordCount`, `pos` = end offset of the trigger).
struct Event: Comparable {
    var kind: UInt32
    var pos: Int
    @inline(__always)
    static func < (a: Event, b: Event) -> Bool { a.pos != b.pos ? a.pos < b.pos : a.kind < b.kind }
}

/// Structural trigger kinds, offset by the keyword count.
enum Trigger: UInt32, CaseIterable {
    case backslash = 0, percent, base64, numeric, iban
}

/// Structural triggers, shared by both first-pass paths (Hyperscan only matches keywords),
/// so that both propose exactly the same structural anchors:
///
/// - `base64`: one event per maximal run of base64/base64url bytes (`[A-Za-z0-9+/_-]`) at
///   least `minBase64` long, at the run end. Found with a Horspool-style skip: only the byte
///   at `i + minBase64 - 1` is looked at until it belongs to the class, so clean text costs
///   about one table load per `minBase64` bytes.
/// - `backslash` (every `\`), `percent` (`%XX`), `iban` (`[A-Z]{2}[0-9]{2}`, at the second
///   digit), and `numeric`: maximal runs of `[0-9 ()+.-]` holding ≥ 7 digits, one anchor at
///   the last digit (plus one every 128 bytes for runs longer than 256 bytes, so that the
///   ±256-byte region around some anchor covers every number in the run). Only 8-byte words
///   containing a digit, `\` or `%` are looked at byte by byte.
///
/// Allocation-free apart from appending to the caller's event array.
enum StructuralScanner {
    static let fB64: UInt8 = 1, fDigit: UInt8 = 2, fNum: UInt8 = 4, fUpper: UInt8 = 8, fHex: UInt8 = 16, fStop: UInt8 = 32

    /// Byte classes: base64 run, digit, numeric-region byte, upper-case letter, hex digit,
    /// "interesting" (digit, `\`, `%`: the word-skip loop stops on these).
    static let cls: [UInt8] = (0..<256).map { b in
        let u = UInt8(b)
        var f: UInt8 = 0
        if ByteSet.base64any.contains(u) { f |= fB64 }
        if isDigit(u) { f |= fDigit | fStop }
        if PIIMatcher.numericRegionSet.contains(u) { f |= fNum }
        if u >= 65 && u <= 90 { f |= fUpper }
        if ByteSet.hex.contains(u) { f |= fHex }
        if u == 92 || u == 37 { f |= fStop }
        return f
    }

    static func events(_ p: UnsafeBufferPointer<UInt8>, keywordCount K: UInt32, minBase64: Int, into ev: inout [Event]) {
        guard let base = p.baseAddress, p.count > 0 else { return }
        cls.withUnsafeBufferPointer { c in
            let cl = c.baseAddress!
            base64Runs(base, p.count, cl, kind: K &+ Trigger.base64.rawValue, minRun: max(1, minBase64), into: &ev)
            others(base, p.count, cl, K: K, into: &ev)
        }
    }

    typealias V16 = SIMD16<UInt8>

    /// Lane mask (0xFF / 0x00 per byte, as two words) of the base64-class bytes among the 16 at `p`.
    /// Plain SSE2-width vector compares, no per-byte branches. (`any`/`all` on masks are avoided:
    /// they are not inlined and cost a call per block.)
    @inline(__always)
    static func base64Mask16(_ p: UnsafePointer<UInt8>) -> SIMD2<UInt64> {
        let v = UnsafeRawPointer(p).loadUnaligned(as: V16.self)
        let alpha = (v | V16(repeating: 0x20)) &- V16(repeating: 0x61) .< V16(repeating: 26)
        let digit = v &- V16(repeating: 0x30) .< V16(repeating: 10)
        let sym = (v .== V16(repeating: 0x2B)) .| (v .== V16(repeating: 0x2D)) .| (v .== V16(repeating: 0x2F)) .| (v .== V16(repeating: 0x5F))
        return unsafeBitCast(V16(repeating: 0).replacing(with: 0xFF, where: alpha .| digit .| sym), to: SIMD2<UInt64>.self)
    }

    /// True when one of the 16 bytes at `p` is a digit, `\` or `%`.
    @inline(__always)
    static func hasStop16(_ p: UnsafePointer<UInt8>) -> Bool {
        let v = UnsafeRawPointer(p).loadUnaligned(as: V16.self)
        let stop = (v &- V16(repeating: 0x30) .< V16(repeating: 10)) .| (v .== V16(repeating: 0x5C)) .| (v .== V16(repeating: 0x25))
        let w = unsafeBitCast(V16(repeating: 0).replacing(with: 0xFF, where: stop), to: SIMD2<UInt64>.self)
        return w[0] | w[1] != 0
    }

    /// Base64 runs of at least `w` bytes. For `w >= 15` every such run contains a whole aligned
    /// 8-byte block of class bytes, so only blocks are tested (16 bytes per vector compare) and
    /// the run is then extended byte by byte; shorter minimums use the plain byte loop.
    @inline(__always)
    static func base64Runs(_ p: UnsafePointer<UInt8>, _ n: Int, _ cl: UnsafePointer<UInt8>, kind: UInt32, minRun w: Int, into ev: inout [Event]) {
        var done = 0 // bytes before `done` belong to runs already handled
        @inline(__always) func run(at k: Int) {
            var s = k
            while s > done && cl[Int(p[s &- 1])] & fB64 != 0 { s &-= 1 }
            var e = k
            while e < n && cl[Int(p[e])] & fB64 != 0 { e &+= 1 }
            if e &- s >= w { ev.append(Event(kind: kind, pos: e)) }
            done = e
        }
        if w >= 15 {
            var i = 0
            while i &+ 16 <= n {
                if i &+ 8 >= done {
                    let m = base64Mask16(p + i)
                    if m[0] == ~0 && i >= done { run(at: i) }
                    if m[1] == ~0 && i &+ 8 >= done { run(at: i &+ 8) }
                }
                i &+= 16
            }
            if i &+ 8 <= n && i >= done {
                var all = true
                for k in i..<(i &+ 8) where cl[Int(p[k])] & fB64 == 0 { all = false; break }
                if all { run(at: i) }
            }
            if n - done >= w, n >= 1 {
                // A run reaching the end may hold no whole block among the vector-tested ones.
                var s = n
                while s > done && cl[Int(p[s &- 1])] & fB64 != 0 { s &-= 1 }
                if n &- s >= w && s >= done { ev.append(Event(kind: kind, pos: n)); done = n }
            }
            return
        }
        var i = 0, start = -1
        while i < n {
            if cl[Int(p[i])] & fB64 != 0 { if start < 0 { start = i } }
            else { if start >= 0 && i &- start >= w { ev.append(Event(kind: kind, pos: i)) }; start = -1 }
            i &+= 1
        }
        if start >= 0 && n &- start >= w { ev.append(Event(kind: kind, pos: n)) }
    }

    @inline(__always)
    static func others(_ p: UnsafePointer<UInt8>, _ n: Int, _ cl: UnsafePointer<UInt8>, K: UInt32, into ev: inout [Event]) {
        let kBack = K &+ Trigger.backslash.rawValue, kPct = K &+ Trigger.percent.rawValue
        let kNum = K &+ Trigger.numeric.rawValue, kIban = K &+ Trigger.iban.rawValue
        var i = 0
        while i < n {
            // Skip 16 bytes at a time while none of them is a digit, `\` or `%`.
            while i &+ 16 <= n && !hasStop16(p + i) { i &+= 16 }
            let end = min(n, i &+ 16)
            while i < end {
                let b = p[i]
                let f = cl[Int(b)]
                if f & fStop == 0 { i &+= 1; continue }
                if b == 92 { ev.append(Event(kind: kBack, pos: i &+ 1)); i &+= 1; continue }
                if b == 37 {
                    if i &+ 2 < n && cl[Int(p[i &+ 1])] & fHex != 0 && cl[Int(p[i &+ 2])] & fHex != 0 {
                        ev.append(Event(kind: kPct, pos: i &+ 3))
                    }
                    i &+= 1; continue
                }
                // A digit: walk the whole numeric region (no digit precedes i in it).
                // IBAN start: two upper-case letters (never region bytes), then two digits.
                if i >= 2 && i &+ 1 < n && cl[Int(p[i &+ 1])] & fDigit != 0
                    && cl[Int(p[i &- 1])] & fUpper != 0 && cl[Int(p[i &- 2])] & fUpper != 0 {
                    ev.append(Event(kind: kIban, pos: i &+ 2))
                }
                var e = i &+ 1
                var digits = 1, lastDigitEnd = i &+ 1
                while e < n {
                    let g = cl[Int(p[e])]
                    if g & fNum == 0 { break }
                    if g & fDigit != 0 { digits &+= 1; lastDigitEnd = e &+ 1 }
                    e &+= 1
                }
                if digits >= 7 {
                    var s = i
                    while s > 0 && cl[Int(p[s &- 1])] & fNum != 0 { s &-= 1 }
                    if e &- s > 256 {
                        var a = s &+ 128
                        while a < lastDigitEnd &- 1 { ev.append(Event(kind: kNum, pos: a &+ 1)); a &+= 128 }
                    }
                    ev.append(Event(kind: kNum, pos: lastDigitEnd))
                }
                i = e
                break
            }
        }
    }
}

/// The pure-Swift keyword pass: finds every keyword occurrence (case-insensitive) with a
/// 64 Ki-bit bigram filter (lower-cased first two bytes) and flat bucket tables (no nested
/// arrays, no references in the loop); structural triggers come from `StructuralScanner`.
/// Emits the same events as the Hyperscan path, so findings are identical.
struct FallbackPrefilter: Sendable {
    /// Lower-cased keyword bytes, concatenated; keyword `k` is `flat[offsets[k]..<offsets[k + 1]]`.
    let flat: [UInt8]
    let offsets: [Int32]
    let lower: [UInt8]
    /// One bit per lower-cased bigram that starts some keyword.
    let filter: [UInt64]
    /// bigram -> index into `bucketStart` (0: none); buckets list keyword ids in `bucketIds`.
    let bigram: [UInt16]
    let bucketStart: [Int32]
    let bucketIds: [Int32]
    /// byte -> keyword id + 1 for one-byte keywords (e.g. `@`), else 0.
    let single: [Int32]
    let keywordCount: UInt32
    let minBase64: Int

    init(keywords: [[UInt8]], minBase64: Int) {
        self.minBase64 = minBase64
        keywordCount = UInt32(keywords.count)
        let lw: [UInt8] = (0..<256).map { lowerASCII(UInt8($0)) }
        lower = lw
        var fl: [UInt8] = [], off: [Int32] = [0]
        for kw in keywords { fl += kw.map { lw[Int($0)] }; off.append(Int32(fl.count)) }
        flat = fl
        offsets = off
        var bg = [UInt16](repeating: 0, count: 65536)
        var lists: [[Int32]] = []
        var sg = [Int32](repeating: 0, count: 256)
        var filt = [UInt64](repeating: 0, count: 1024)
        func setBit(_ key: Int) { filt[key >> 6] |= 1 << UInt64(key & 63) }
        for (id, kw0) in keywords.enumerated() {
            let kw = kw0.map { lw[Int($0)] }
            if kw.count == 1 {
                sg[Int(kw[0])] = Int32(id + 1)
                if kw[0] >= 97 && kw[0] <= 122 { sg[Int(kw[0] - 32)] = Int32(id + 1) }
                for b in 0..<256 { setBit(Int(kw[0]) << 8 | b) }
                continue
            }
            let key = Int(kw[0]) << 8 | Int(kw[1])
            setBit(key)
            if bg[key] == 0 { lists.append([]); bg[key] = UInt16(lists.count) }
            lists[Int(bg[key]) - 1].append(Int32(id))
        }
        var starts: [Int32] = [0], ids: [Int32] = []
        for l in lists { ids += l; starts.append(Int32(ids.count)) }
        bigram = bg
        bucketStart = starts
        bucketIds = ids
        single = sg
        filter = filt
    }

    func events(_ p: UnsafeBufferPointer<UInt8>, into ev: inout [Event]) {
        keywordEvents(p, into: &ev)
        StructuralScanner.events(p, keywordCount: keywordCount, minBase64: minBase64, into: &ev)
    }

    func keywordEvents(_ p: UnsafeBufferPointer<UInt8>, into ev: inout [Event]) {
        guard let pb = p.baseAddress, p.count > 0 else { return }
        let n = p.count
        lower.withUnsafeBufferPointer { lwb in
        filter.withUnsafeBufferPointer { fb in
        bigram.withUnsafeBufferPointer { bgb in
        bucketStart.withUnsafeBufferPointer { bsb in
        bucketIds.withUnsafeBufferPointer { bib in
        flat.withUnsafeBufferPointer { flb in
        offsets.withUnsafeBufferPointer { ofb in
        single.withUnsafeBufferPointer { sgb in
            let lw = lwb.baseAddress!, filt = fb.baseAddress!, bg = bgb.baseAddress!
            let bs = bsb.baseAddress!, bi = bib.baseAddress!, fl = flb.baseAddress!, of = ofb.baseAddress!, sg = sgb.baseAddress!
            @inline(__always) func hit(_ i: Int, _ key: Int) {
                let c = pb[i]
                let s = sg[Int(c)]
                if s != 0 { ev.append(Event(kind: UInt32(s &- 1), pos: i &+ 1)) }
                let b = Int(bg[key])
                if b == 0 { return }
                var q = Int(bs[b &- 1])
                let qe = Int(bs[b])
                while q < qe {
                    let kw = Int(bi[q])
                    let ks = Int(of[kw]), ke = Int(of[kw &+ 1])
                    let len = ke &- ks
                    if i &+ len <= n {
                        var j = 2
                        while j < len && lw[Int(pb[i &+ j])] == fl[ks &+ j] { j &+= 1 }
                        if j == len { ev.append(Event(kind: UInt32(kw), pos: i &+ len)) }
                    }
                    q &+= 1
                }
            }
            var prev = Int(lw[Int(pb[0])])
            var i = 0
            while i &+ 1 < n {
                let next = Int(lw[Int(pb[i &+ 1])])
                let key = prev << 8 | next
                if filt[key >> 6] & (1 << UInt64(key & 63)) != 0 { hit(i, key) }
                prev = next
                i &+= 1
            }
            // Last byte: only one-byte keywords can start here.
            let s = sg[Int(pb[n &- 1])]
            if s != 0 { ev.append(Event(kind: UInt32(s &- 1), pos: n)) }
        }}}}}}}}
    }
}
