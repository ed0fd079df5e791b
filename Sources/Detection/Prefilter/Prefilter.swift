import CHyperscan

/// A first-pass hit: a keyword occurrence (`kind < keywordCount`, `pos` = end offset)
/// or a structural trigger (`kind >= keywordCount`, `pos` = end offset of the trigger).
struct Event: Comparable {
    var kind: UInt32
    /// For a backslash event: 1 + the index of its string in the level's `[JSONString]`; 0 when
    /// the string is unknown (`scanLevel` then delimits it itself). 0 for every other event.
    var aux: UInt32 = 0
    var pos: Int
    @inline(__always)
    static func < (a: Event, b: Event) -> Bool { a.pos != b.pos ? a.pos < b.pos : a.kind < b.kind }
}

/// A JSON string holding a backslash, found by the structural pass (`chs_json_strings`):
/// `range` is `JSONEscapeDecoder.delimit(around:)` of each of its backslashes (exact),
/// `worthDecoding` and `onlyInertEscapes` are those functions' answers for it.
struct JSONString {
    var range: Range<Int>
    var worthDecoding: Bool
    var onlyInertEscapes: Bool
}

/// Structural trigger kinds, offset by the keyword count.
enum Trigger: UInt32, CaseIterable {
    case backslash = 0, percent, base64, numeric, iban
}

/// Structural triggers, shared by both first-pass paths (Hyperscan only matches keywords),
/// so that both propose exactly the same structural anchors:
///
/// - `base64`: one event per maximal run of base64/base64url bytes (`[A-Za-z0-9+/_-]`) at
///   least `minBase64` long, at the run end, unless the run holds only hex digits and `-`
///   (digests, UUIDs, numbers: `scanLevel` never decodes those).
/// - `backslash`: one event per JSON string holding a backslash, at its first backslash, with
///   the string in `strings` (`chs_json_strings`); every backslash of a string at least
///   `JSONEscapeDecoder.maxStringLength` long (`scanLevel` delimits such a string once and
///   decodes it in overlapping windows, `JSONEscapeDecoder.windowIndices`).
/// - `percent` (`%XX`), `iban` (`[A-Z]{2}[0-9]{2}`, at the second
///   digit), and `numeric`: maximal runs of `[0-9 ()+.-]` holding ≥ 7 digits, one anchor at
///   the last digit (plus one every 128 bytes for runs longer than 256 bytes, so that the
///   ±256-byte region around some anchor covers every number in the run).
///
/// `pii: false` (credential-only scans) skips numeric regions and IBAN starts, which only
/// PII rules use, so digits in hex digests, UUIDs and timestamps cost nothing extra.
///
/// The scan itself is `chs_structural` (Sources/CHyperscan/structural.c), shared by both
/// first-pass paths: 64-byte blocks are classified into bit masks (SSE2 compares +
/// movemask), runs are found with shifts and ANDs (a run of ≥ w class bytes has a bit
/// where w shifted copies of the mask overlap), so neither digits nor hex text leave the
/// block loop. `PrefilterTests` checks it against the byte-by-byte definitions above.
enum StructuralScanner {
    /// `singles`: one-byte keywords found here instead of by the keyword pass (byte, nonzero, and
    /// keyword id; the Hyperscan path moves `@` here so its databases hold no one-byte literal).
    /// Backslash events refer to `strings` (appended to) by `aux`.
    /// `maxStringLength`: `chs_json_strings`' `max_len` (tests lower it to reach long strings).
    static func events(_ p: UnsafeBufferPointer<UInt8>, keywordCount K: UInt32, minBase64: Int, pii: Bool = true,
                       singles: SingleBytes = SingleBytes(), maxStringLength: Int = JSONEscapeDecoder.maxStringLength,
                       into ev: inout [Event], strings: inout [JSONString]) {
        guard let base = p.baseAddress, p.count > 0 else { return }
        withUnsafeTemporaryAllocation(of: chs_event.self, capacity: 64) { tmp in
            var buf = chs_event_buf(ev: tmp.baseAddress, count: 0, cap: 64, owned: 0, overflow: 0, str: nil, str_count: 0, str_cap: 0)
            defer { chs_event_buf_free(&buf) }
            // A failed allocation (-12) would drop triggers; only possible when malloc fails, in which
            // case the caller's own appends trap anyway.
            withUnsafeBytes(of: singles.bytes) { sb in
                withUnsafeBytes(of: singles.kinds) { sk in
                    _ = chs_structural_ex(base, p.count, K, max(1, minBase64), pii ? 1 : 0,
                                          sb.bindMemory(to: UInt8.self).baseAddress, sk.bindMemory(to: UInt32.self).baseAddress,
                                          singles.count, max(1, maxStringLength), &buf)
                }
            }
            let first = UInt32(strings.count)
            if buf.str_count > 0, let s = buf.str {
                strings.reserveCapacity(strings.count + buf.str_count)
                for i in 0..<buf.str_count {
                    strings.append(JSONString(range: Int(s[i].start)..<Int(s[i].end), worthDecoding: s[i].flags & 1 != 0,
                                              onlyInertEscapes: s[i].flags & 2 != 0))
                }
            }
            let n = buf.count
            guard n > 0, let e = buf.ev else { return }
            ev.reserveCapacity(ev.count + n)
            for i in 0..<n { ev.append(Event(kind: e[i].kind, aux: e[i].aux == 0 ? 0 : e[i].aux + first, pos: Int(e[i].pos))) }
        }
    }
}

extension StructuralScanner {
    /// Start of the run of `ByteSet.base64any` bytes ending at `end` (`end` itself when
    /// `p[end - 1]` is outside the class); `chs_b64_run_start`, 64 bytes per step.
    static func base64RunStart(_ p: UnsafeBufferPointer<UInt8>, _ end: Int) -> Int {
        guard let base = p.baseAddress, end > 0, end <= p.count else { return end }
        return Int(chs_b64_run_start(base, end))
    }
}

/// Up to four one-byte keywords for `chs_structural_ex` (inline storage: no allocation per scan).
struct SingleBytes: Sendable {
    var bytes: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
    var kinds: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    var count = 0
    static let capacity = 4

    init() {}
    /// nil when there are more than `capacity` entries or a byte is 0.
    init?(_ entries: [(UInt8, UInt32)]) {
        guard entries.count <= Self.capacity, !entries.contains(where: { $0.0 == 0 }) else { return nil }
        withUnsafeMutableBytes(of: &bytes) { b in for (i, e) in entries.enumerated() { b[i] = e.0 } }
        withUnsafeMutableBytes(of: &kinds) { b in
            let k = b.bindMemory(to: UInt32.self)
            for (i, e) in entries.enumerated() { k[i] = e.1 }
        }
        count = entries.count
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

    func events(_ p: UnsafeBufferPointer<UInt8>, pii: Bool, into ev: inout [Event], strings: inout [JSONString]) {
        keywordEvents(p, into: &ev)
        StructuralScanner.events(p, keywordCount: keywordCount, minBase64: minBase64, pii: pii, into: &ev, strings: &strings)
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
