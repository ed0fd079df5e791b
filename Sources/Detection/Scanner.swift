import Foundation
import Codings

/// A finding before resolution, in the coordinates of the buffer being scanned.
struct Candidate {
    var rule: Int
    var start: Int
    var end: Int
    var fingerprint: String
    var confidence: Double
    var via: [String]
    /// The provider's checksum failed: reported one severity step lower.
    var checksumFailed = false
    /// The allow-list entry that silences it (nil: reported).
    var allowedBy: Int? = nil
    /// Why it matched, kept only when explaining (`ScanState.explain`).
    var evidence: Evidence? = nil
}

/// Mutable per-call state (never shared between calls; passed `inout`).
struct ScanState {
    let ctx: ScanContext
    var budget: Int
    var limitExceeded = false
    /// What the matchers may still read, in bytes (`MatchWork`); below zero the scan stops
    /// and fails closed (`DetectionError.inspectionLimitExceeded`).
    var work: Int
    var workExceeded = false
    /// Keep `Evidence` on every candidate (for `explain`; off on the data path).
    let explain: Bool
    /// `ScanContext.paths`, kept here and cleared in `ctx`: `ctx` is copied per decoded level, and
    /// an array in it would cost a retain and a release on each copy.
    let paths: [String]
    /// Buffers reused by the levels of this scan (taken from the engine's `ScratchPool`).
    var scratch: ScanScratch

    init(ctx: ScanContext, budget: Int, work: Int = .max, explain: Bool = false, scratch: ScanScratch = ScanScratch()) {
        paths = ctx.paths
        if ctx.paths.isEmpty {
            self.ctx = ctx
        } else {
            var c = ctx
            c.paths = []
            self.ctx = c
        }
        self.budget = budget
        self.work = work
        self.explain = explain
        self.scratch = scratch
    }

    /// Moves the scratch out (for the pool), leaving an empty one.
    mutating func takeScratch() -> ScanScratch {
        var s = ScanScratch()
        swap(&s, &scratch)
        return s
    }
}

/// What the levels of a scan reuse instead of allocating per decoded string: the Hyperscan
/// scratch (`slot`), the event and JSON-string arrays of each depth, and the decoder output of
/// each depth.
///
/// Guarantees: a level at depth `d` reads its own input and writes only the arrays of depth `d`
/// and the decoder output of depth `d + 1`; depths strictly increase down the call stack, so no
/// buffer a running level reads is written before that level returns. Owned by one scan at a
/// time (`ScratchPool` hands each out once).
struct ScanScratch {
    /// The Hyperscan scratch (nil: the fallback first pass runs).
    var slot: HyperscanPrefilter.Slot? = nil
    private var eventArrays: [[Event]] = []
    private var stringArrays: [[JSONString]] = []
    private var decodeBuffers: [DecodeBuffer] = []
    /// Some buffer grew past what a pooled scratch keeps (`trim` then drops the large ones).
    private var large = false

    init(slot: HyperscanPrefilter.Slot? = nil) { self.slot = slot }

    /// The (empty) event and string arrays of `depth`, moved out until `giveBack`.
    mutating func takeArrays(_ depth: Int) -> ([Event], [JSONString]) {
        guard depth < eventArrays.count else { return ([], []) }
        var e: [Event] = [], s: [JSONString] = []
        swap(&e, &eventArrays[depth])
        swap(&s, &stringArrays[depth])
        return (e, s)
    }

    /// Keeps `events` and `strings` (emptied, with their capacity) for the next level of `depth`.
    mutating func giveBack(_ depth: Int, _ events: inout [Event], _ strings: inout [JSONString]) {
        while eventArrays.count <= depth { eventArrays.append([]); stringArrays.append([]) }
        if events.capacity > Self.maxEvents || strings.capacity > Self.maxStrings { large = true }
        events.removeAll(keepingCapacity: true)
        strings.removeAll(keepingCapacity: true)
        swap(&events, &eventArrays[depth])
        swap(&strings, &stringArrays[depth])
    }

    /// The decoder output buffer of `depth` (created on first use), about to receive up to `count` bytes.
    mutating func decodeBuffer(_ depth: Int, for count: Int) -> DecodeBuffer {
        while decodeBuffers.count <= depth { decodeBuffers.append(DecodeBuffer()) }
        if count > Self.maxDecoded { large = true }
        return decodeBuffers[depth]
    }

    /// Larger buffers are not kept by a pooled scratch (one big scan does not pin its memory).
    static let maxEvents = 1 << 16, maxStrings = 1 << 14, maxDecoded = 1 << 20

    /// Drops the buffers that grew past the limits above.
    mutating func trim() {
        slot?.trim()
        guard large else { return }
        large = false
        for d in eventArrays.indices where eventArrays[d].capacity > Self.maxEvents { eventArrays[d] = [] }
        for d in stringArrays.indices where stringArrays[d].capacity > Self.maxStrings { stringArrays[d] = [] }
        for d in decodeBuffers.indices where decodeBuffers[d].bytes.count > Self.maxDecoded { decodeBuffers[d] = DecodeBuffer() }
    }
}

/// The engine's spare `ScanScratch`es: a scan takes one and gives it back, so the buffers and
/// the Hyperscan scratch are set up once, not per scan (most scans are small request bodies).
///
/// `@unchecked Sendable`, safe because `spares` is only read or written with `lock` held, and a
/// scratch taken out belongs to the one scan that took it until it is put back (its buffers and
/// Hyperscan scratch are never reachable from two scans at once). Not `Mutex` as elsewhere: a
/// `ScanScratch` holds non-`Sendable` buffers, which region isolation does not let move into or
/// out of `Mutex.withLock` (tried: "'inout sending' parameter cannot be task-isolated").
final class ScratchPool: @unchecked Sendable {
    private let lock = NSLock()
    private var spares: [ScanScratch] = []
    /// At most this many spares are kept (more are freed).
    static let capacity = 64

    func take() -> ScanScratch? {
        lock.lock()
        defer { lock.unlock() }
        return spares.popLast()
    }

    func put(_ s: consuming ScanScratch) {
        s.trim()
        lock.lock()
        defer { lock.unlock() }
        if spares.count < Self.capacity { spares.append(s) }
    }
}

/// Region de-duplication for one `scanLevel` call. Every structural region kind maps an
/// anchor to a region monotonically (both ends are non-decreasing in the anchor: maximal
/// runs, clamped windows, quote-delimited spans), and anchors arrive in position order, so
/// an equal region can only repeat the last one of its kind: one slot per kind replaces a
/// hash set. Custom-rule windows depend on the keyword length, so they keep a set.
struct RegionDedup {
    var last: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) = (-1, -1, -1, -1, -1, -1, -1, -1, -1, -1)
    /// Custom-rule windows seen (a set: a body dense with one rule's keyword has thousands).
    var custom: Set<RegionKey> = []

    /// True (and remembered) when `s..<e` differs from the last region of `kind` (0...4).
    @inline(__always)
    mutating func insert(_ kind: Int, _ s: Int, _ e: Int) -> Bool {
        withUnsafeMutableBytes(of: &last) { raw in
            let l = raw.bindMemory(to: Int.self)
            if l[2 * kind] == s && l[2 * kind + 1] == e { return false }
            l[2 * kind] = s
            l[2 * kind + 1] = e
            return true
        }
    }

    mutating func insertCustom(_ k: RegionKey) -> Bool {
        custom.insert(k).inserted
    }
}

/// Candidate de-duplication: a linear scan while short (the usual case: a handful of
/// matches per buffer), a hash set beyond that.
struct SeenSet {
    var list: [SeenKey] = []
    var set: Set<SeenKey>? = nil

    @inline(__always)
    mutating func insert(_ k: SeenKey) -> Bool {
        if set != nil { return set!.insert(k).inserted }
        if list.contains(k) { return false }
        list.append(k)
        if list.count > 32 { set = Set(list); list = [] }
        return true
    }
}

extension DetectionEngine {
    /// Scans one buffer (the input or a decoded region) and returns unresolved candidates.
    func scanLevel(_ p: UnsafeBufferPointer<UInt8>, depth: Int, state: inout ScanState) -> [Candidate] {
        /// `strings`: JSON strings holding a backslash, referred to by backslash events (`Event.aux`).
        var (events, strings) = state.scratch.takeArrays(depth)
        defer { state.scratch.giveBack(depth, &events, &strings) }
        let pii = state.ctx.pii
        if let hs = hyperscan, let slot = state.scratch.slot, hs.events(p, pii: pii, slot: slot, into: &events, strings: &strings) {
            // Hyperscan reports in end-offset order already.
        } else {
            events.removeAll(keepingCapacity: true)
            strings.removeAll(keepingCapacity: true)
            fallback.events(p, pii: pii, into: &events, strings: &strings)
        }
        var out: [Candidate] = []
        if events.isEmpty && wholeInputRules.isEmpty { return out }
        events.sort()
        let K = UInt32(keywords.count)
        let noKeyword = UInt32.max
        let ctx = state.ctx
        var seen = SeenSet()
        var regions = RegionDedup()
        /// The last JSON string delimited by quotes, newlines or the buffer ends (not by the length cap).
        var jsonString = 0..<0
        /// The last JSON string longer than `JSONEscapeDecoder.maxStringLength`, and the highest
        /// index of its windows decoded so far.
        var longString = 0..<0
        var windowsDone = -1
        /// The last percent-encoded region (a maximal run of `PercentDecoder.regionSet` bytes).
        var percentRun = 0..<0
        /// End offsets of the events that are not backslash triggers (built on first use).
        var otherEvents: [Int]? = nil
        /// Where the keyword hits that read `kind: Secret` are (built on first use).
        var kindSecretHits: [Range<Int>]? = nil
        let explain = state.explain
        let paths = state.paths
        // Statics read once per level, not once per byte (each read of a `static let` is a `swift_once` check).
        let urlSet = PercentDecoder.regionSet, b64Set = ByteSet.base64any
        do {
            /// `event`: the kind of the event that anchored the match (a keyword index below `K`;
            /// `noKeyword` for structural triggers), for `Evidence` only.
            func add(_ ri: Int, _ m: Match, _ event: UInt32) {
                let key = SeenKey(rule: ri, start: m.start, end: m.end)
                guard seen.insert(key) else { return }
                let fingerprint = hmac.fingerprint(m.secret)
                var c = Candidate(rule: ri, start: m.start, end: m.end, fingerprint: fingerprint,
                                  confidence: m.confidence, via: [], checksumFailed: m.checksumFailed)
                if !allow.isEmpty {
                    c.allowedBy = allow.match(rule: rules[ri].id, fingerprint: fingerprint, secret: m.secret, paths: paths)
                }
                if explain {
                    c.evidence = Evidence(keyword: event < K ? keywords[Int(event)] : nil, length: m.secret.count, entropy: Entropy.shannon(m.secret))
                }
                out.append(c)
            }
            for ri in wholeInputRules where ctx.enables(rules[ri].ruleClass) {
                if case .regex(let box) = rules[ri].matcher {
                    CustomMatcher.run(rules[ri], box, p: p, window: 0..<p.count) { add(ri, $0, noKeyword) }
                }
            }
            var lastEvent = Event(kind: UInt32.max, pos: -1)
            for ev in events {
                if ev == lastEvent { continue }
                lastEvent = ev
                if state.workExceeded { break }
                if ev.kind < K {
                    // The keyword's length only: holding the array across the rules below costs a
                    // retain and a release per hit.
                    let kwLength = keywords[Int(ev.kind)].count
                    let ke = ev.pos, ks = ev.pos - kwLength
                    guard ks >= 0 else { continue }
                    var generic: (Assignment, GenericKind)?? = nil
                    for r32 in keywordRules[Int(ev.kind)] {
                        let ri = Int(r32)
                        // Rules that share the busiest keywords (`token`, `key`, `secret`, `auth`) reject
                        // most hits on a byte or two: checked before the rule is read at all.
                        switch gates[ri] {
                        case .prose: guard ProseMatcher.plausible(p, ks: ks, ke: ke) else { continue }
                        case .exactKey: guard DockerConfigMatcher.keyIsExactly(p, ks: ks, ke: ke) else { continue }
                        case .kindSecret: guard p[ks] == UInt8(ascii: "S") else { continue }
                        case .alnumBoundary: guard Scan.leftOK(p, ks, .alnum) else { continue }
                        case .email: guard PIIMatcher.emailPlausible(p, at: ks) else { continue }
                        case .none: break
                        }
                        guard ctx.enables(ruleClasses[ri]) else { continue }
                        // Generic rules share one key classification; most hits (`max_tokens`,
                        // `keyboard`) fail it, and then no rule needs to be looked at.
                        if let g = genericKinds[ri] {
                            if generic == nil {
                                generic = .some(GenericMatcher.classify(p: p, ks: ks, ke: ke))
                                // The value was parsed (once for the four generic rules): its length is charged.
                                if let (a, _) = generic ?? nil {
                                    guard chargeWork(kwLength + a.valueEnd - a.valueStart, &state) else { break }
                                }
                            }
                            guard let c = generic ?? nil, c.1 == g else { continue }
                            if let m = GenericMatcher.run(rules[ri], kind: g, p: p, classified: c) { add(ri, m, ev.kind) }
                            continue
                        }
                        let rule = rules[ri]
                        switch rule.matcher {
                        case .token(let pat, let lead):
                            if let m = TokenMatcher.run(rule, pat, lead: lead, p: p, ks: ks, ke: ke) { add(ri, m, ev.kind) }
                        case .assignment(let pat):
                            var read = 0
                            if let m = ContextMatcher.run(rule, pat, p: p, ks: ks, ke: ke, read: &read) { add(ri, m, ev.kind) }
                            guard chargeWork(kwLength + read, &state) else { break }
                        case .regex(let box):
                            let w = max(0, ks - CustomMatcher.before)..<min(p.count, ke + CustomMatcher.after)
                            guard regions.insertCustom(RegionKey(kind: 1000 + ri, start: w.lowerBound, end: w.upperBound)),
                                  chargeWork(w.count, &state) else { continue }
                            CustomMatcher.run(rule, box, p: p, window: w) { add(ri, $0, ev.kind) }
                        case .special(let kind):
                            var m: Match? = nil
                            switch kind {
                            case .pemPrivateKey(let labels): m = PEMMatcher.run(rule, labels: labels, p: p, ks: ks, ke: ke)
                            case .uriPassword(let schemes): m = URIMatcher.run(rule, schemes: schemes, p: p, ks: ks, ke: ke)
                            case .authHeader(let scheme): m = AuthHeaderMatcher.run(rule, scheme: scheme, p: p, ks: ks, ke: ke)
                            case .generic: m = nil // handled above
                            case .email: m = PIIMatcher.email(rule, p: p, at: ks)
                            case .azureSAS: m = SASMatcher.run(rule, p: p, ks: ks, ke: ke)
                            case .dockerAuth: m = DockerConfigMatcher.auth(rule, p: p, ks: ks, ke: ke)
                            case .dockerToken: m = DockerConfigMatcher.token(rule, p: p, ks: ks, ke: ke)
                            case .bundlerCredential: m = BundlerCredentialMatcher.run(rule, p: p, ks: ks, ke: ke)
                            case .prose: m = ProseMatcher.run(rule, p: p, ks: ks, ke: ke)
                            case .curlUser: m = CurlUserMatcher.run(rule, p: p, ks: ks, ke: ke)
                            case .kubernetesSecret:
                                // Each manifest's document ends at its neighbours' `kind: Secret`, so
                                // that the documents of one body add up to its length (see `MatchWork`).
                                if kindSecretHits == nil { kindSecretHits = MatchWork.kindSecretHits(p, events, kind: ev.kind, length: kwLength) }
                                let bounds = MatchWork.neighbourBounds(kindSecretHits!, ks: ks, ke: ke, count: p.count)
                                KubernetesSecretMatcher.run(rule, p: p, ks: ks, ke: ke, within: bounds) { add(ri, $0, ev.kind) }
                            case .paymentCard, .iban, .ssn, .phone, .atlassianDataCenterPAT: m = nil
                            }
                            if let m { add(ri, m, ev.kind) }
                        }
                    }
                    continue
                }
                guard let trig = Trigger(rawValue: ev.kind - K), ev.pos >= 1 else { continue }
                let anchor = ev.pos - 1
                switch trig {
                case .numeric:
                    guard ctx.pii else { continue }
                    let r = PIIMatcher.numericRegion(p, anchor: anchor)
                    guard regions.insert(3, r.lowerBound, r.upperBound) else { continue }
                    PIIMatcher.numeric(numericRules, p: p, region: r) { which, m in
                        switch which {
                        case 0: if let ri = cardRule { add(ri, m, noKeyword) }
                        case 1: if let ri = ssnRule { add(ri, m, noKeyword) }
                        default: if let ri = phoneRule { add(ri, m, noKeyword) }
                        }
                    }
                case .iban:
                    guard ctx.pii, let ri = ibanRule else { continue }
                    let r = PIIMatcher.ibanRegion(p, anchor: anchor)
                    guard regions.insert(4, r.lowerBound, r.upperBound) else { continue }
                    PIIMatcher.iban(rules[ri], p: p, region: r) { add(ri, $0, noKeyword) }
                case .backslash:
                    guard depth < options.maxDecodeDepth else { continue }
                    // Every backslash of one JSON string has the same region: the string is
                    // delimited once, not once per escape (a tool-call argument holds hundreds).
                    if jsonString.contains(anchor) { continue }
                    // What to decode: the string the structural pass delimited (`aux`, with its
                    // escapes read), or one delimited here (strings it leaves: too long for one
                    // region), or, for a string over `maxStringLength`, the one or two of its
                    // overlapping windows holding this backslash not decoded yet (anchors come in order).
                    var known: JSONString? = nil
                    var first = 0..<0, second = 0..<0
                    if ev.aux != 0 {
                        known = strings[Int(ev.aux) - 1]
                        first = known!.range
                        jsonString = first
                    } else {
                        if !longString.contains(anchor) {
                            let whole = JSONEscapeDecoder.delimit(p, around: anchor, maxLen: p.count).region
                            if whole.count <= JSONEscapeDecoder.maxStringLength {
                                jsonString = whole
                                first = whole
                            } else {
                                longString = whole
                                windowsDone = -1
                            }
                        }
                        if first.isEmpty {
                            for k in JSONEscapeDecoder.windowIndices(of: longString, holding: anchor) where k > windowsDone {
                                windowsDone = k
                                let w = JSONEscapeDecoder.window(k, of: longString, in: p)
                                if first.isEmpty { first = w } else { second = w }
                            }
                        }
                    }
                    for i in 0..<2 {
                        let r = i == 0 ? first : second
                        if r.isEmpty { continue }
                        guard regions.insert(0, r.lowerBound, r.upperBound) else { continue }
                        guard known?.worthDecoding ?? JSONEscapeDecoder.worthDecoding(p, r), charge(r.count, &state) else { continue }
                        // Skipped when the decoded string cannot hold an event (see `escapesInert`):
                        // the nested scan would find nothing, and the budget is charged as before.
                        if escapesInert && (known?.onlyInertEscapes ?? JSONEscapeDecoder.onlyInertEscapes(p, r)) {
                            let others = otherEvents ?? Self.positionsOfNonBackslashEvents(events, K)
                            otherEvents = others
                            if !Self.anyPosition(others, in: r) { continue }
                        }
                        let db = state.scratch.decodeBuffer(depth + 1, for: r.count)
                        let n = JSONEscapeDecoder.decode(p, region: r, into: db)
                        out += nested(DecodedView(via: "json-escape", db, count: n, region: r), depth: depth, state: &state)
                    }
                case .percent:
                    guard depth < options.maxDecodeDepth else { continue }
                    // The region is the maximal URL-character run around the anchor: every `%XX`
                    // of one form body has the same one, so it is walked once, not once per escape.
                    if percentRun.contains(anchor) { continue }
                    var s = anchor, e = anchor
                    while s > 0 && urlSet.contains(p[s - 1]) { s -= 1 }
                    while e < p.count && urlSet.contains(p[e]) { e += 1 }
                    percentRun = s..<e
                    guard regions.insert(1, s, e), charge(e - s, &state) else { continue }
                    let plus: Bool
                    switch ctx.hint { case .query, .form: plus = true; default: plus = false }
                    let db = state.scratch.decodeBuffer(depth + 1, for: e - s)
                    if let n = PercentDecoder.decode(p, region: s..<e, plusIsSpace: plus, into: db) {
                        out += nested(DecodedView(via: "percent", db, count: n, region: s..<e), depth: depth, state: &state)
                    }
                case .base64:
                    // The run start, 64 bytes per step in C (the same class as `ByteSet.base64any`).
                    let s = StructuralScanner.base64RunStart(p, anchor)
                    var e = anchor
                    while e < p.count && b64Set.contains(p[e]) { e += 1 }
                    let coreEnd = e
                    var pad = 0
                    while e < p.count && pad < 2 && p[e] == UInt8(ascii: "=") { e += 1; pad += 1 }
                    // A prefix-less Atlassian Data Center PAT is a base64 run of its own exact shape.
                    if pad == 0, coreEnd - s == AtlassianDataCenterPAT.length, let ri = atlassianDCRule, ctx.enables(.credential),
                       AtlassianDataCenterPAT.matches(p, s, coreEnd) {
                        add(ri, Match(start: s, end: coreEnd, secret: Scan.bytes(p, s, coreEnd), confidence: rules[ri].confidence), noKeyword)
                        continue
                    }
                    guard depth < options.maxDecodeDepth else { continue }
                    guard coreEnd - s >= options.minBase64Length else { continue }
                    // Hex digests, UUIDs and long numbers are not base64 worth decoding: base64 of
                    // text always contains letters outside [A-Fa-f] (and decoding them is costly).
                    guard !Self.hexOnly(p, s, coreEnd) else { continue }
                    guard regions.insert(2, s, e) else { continue }
                    out += base64Region(p, s..<e, depth: depth, state: &state)
                }
            }
        }
        return out
    }

    /// End offsets, in order, of the (sorted) events that are not backslash triggers.
    static func positionsOfNonBackslashEvents(_ events: [Event], _ K: UInt32) -> [Int] {
        let backslash = K + Trigger.backslash.rawValue
        return events.compactMap { $0.kind == backslash ? nil : $0.pos }
    }

    /// True when some position in the sorted `positions` lies in `r.lowerBound + 1 ... r.upperBound`
    /// (the end offset of a keyword or trigger inside `p[r]`).
    static func anyPosition(_ positions: [Int], in r: Range<Int>) -> Bool {
        var lo = 0, hi = positions.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if positions[mid] <= r.lowerBound { lo = mid + 1 } else { hi = mid }
        }
        return lo < positions.count && positions[lo] <= r.upperBound
    }

    /// True when every byte of `p[s..<e]` is a hex digit or `-`.
    @inline(__always)
    static func hexOnly(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> Bool {
        let hex = ByteSet.hex
        var i = s
        while i < e {
            let c = p[i]
            if !(hex.contains(c) || c == 45) { return false }
            i &+= 1
        }
        return true
    }

    /// Consumes decode budget; false (and the limit flag) when exhausted.
    func charge(_ n: Int, _ state: inout ScanState) -> Bool {
        if n > state.budget { state.limitExceeded = true; return false }
        state.budget -= n
        return true
    }

    /// Charges `n` bytes of matcher reading to the scan; false (and the scan stops) once the
    /// work budget is spent.
    @inline(__always)
    func chargeWork(_ n: Int, _ state: inout ScanState) -> Bool {
        state.work -= n
        if state.work < 0 { state.workExceeded = true; return false }
        return true
    }

    func nested(_ d: DecodedView, depth: Int, state: inout ScanState) -> [Candidate] {
        var inner = scanLevel(d.bytes, depth: depth + 1, state: &state)
        for i in inner.indices {
            let (s, e) = d.mapSpan(inner[i].start, inner[i].end)
            inner[i].start = s
            inner[i].end = e
            inner[i].via.insert(d.via, at: 0)
        }
        return inner
    }

    func base64Region(_ p: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, depth: Int, state: inout ScanState) -> [Candidate] {
        let slice = UnsafeBufferPointer(rebasing: p[r])
        // Cheap probe first: the first 48 decoded bytes must be text or a gzip header.
        guard let probe = Base64.probeWorth(slice) else { return [] }
        let gz = probe == .gzip
        guard charge(slice.count, &state), let full = Base64.decode(slice) else { return [] }
        var bytes = full
        var via = ["base64"]
        if gz {
            guard depth + 1 < options.maxDecodeDepth else { return [] }
            do {
                bytes = try ContentCodings.decode(full, codings: [.gzip], maxOutput: max(0, min(state.budget, options.maxDecompressedBytes)))
            } catch {
                if case .tooLarge = error { state.limitExceeded = true }
                return []
            }
            guard charge(bytes.count, &state) else { return [] }
            via.append("gzip")
        }
        guard Base64.looksLikeText(bytes.prefix(4096)) else { return [] }
        var inner = bytes.withUnsafeBufferPointer { scanLevel($0, depth: depth + via.count, state: &state) }
        for i in inner.indices {
            inner[i].start = r.lowerBound
            inner[i].end = r.upperBound
            inner[i].via.insert(contentsOf: via, at: 0)
        }
        return inner
    }

    /// Picks non-overlapping findings: higher priority, then confidence, then longer span,
    /// then fewer decoders, then position and rule id (fully deterministic). Several findings
    /// with the identical span are kept when they are distinct secrets inside one encoded blob.
    func resolve(_ cands: [Candidate]) -> [Finding] {
        if cands.isEmpty { return [] }
        return resolveCandidates(cands).map(finding)
    }

    /// The finding a resolved candidate is reported as.
    func finding(_ c: Candidate) -> Finding {
        let r = rules[c.rule]
        return Finding(rule: r.id, ruleClass: r.ruleClass, severity: c.checksumFailed ? r.severity.lowered : r.severity, start: c.start, end: c.end,
                       confidence: c.confidence, fingerprint: c.fingerprint, decodedVia: c.via)
    }

    /// As ``resolve(_:)``, returning the kept candidates (with, when explaining, the rules each outranked).
    func resolveCandidates(_ cands: [Candidate]) -> [Candidate] {
        // Most scans have no candidate or one: nothing to resolve, nothing to allocate.
        if cands.count <= 1 { return cands.filter { $0.end > $0.start } }
        let sorted = ranked(cands)
        // Kept spans are disjoint except identical ones, which form one group (the same span
        // seen through different decodings with different secrets). A candidate is dropped when
        // it overlaps a group, unless it has that group's exact span, came through a decoding and
        // holds a secret no member holds; then it joins the group.
        var kept: [Candidate] = []
        /// Per group: its span, the index in `kept` of its first member, its members' fingerprints.
        var groups: [(span: Range<Int>, first: Int, fingerprints: [String])] = []
        var owners = SpanOwners(offsets: sorted.flatMap { [$0.start, $0.end] })
        for c in sorted where c.end > c.start {
            let span = c.start..<c.end
            guard let g = owners.firstOwner(span) else {
                owners.claim(span, owner: groups.count)
                groups.append((span, kept.count, [c.fingerprint]))
                kept.append(c)
                continue
            }
            if groups[g].span == span, !c.via.isEmpty, !groups[g].fingerprints.contains(c.fingerprint) {
                groups[g].fingerprints.append(c.fingerprint)
                kept.append(c)
                continue
            }
            let first = groups[g].first
            if kept[first].evidence != nil, c.rule != kept[first].rule, !kept[first].evidence!.outranked.contains(c.rule) {
                kept[first].evidence!.outranked.append(c.rule)
            }
        }
        kept.sort { a, b in a.start != b.start ? a.start < b.start : (a.end != b.end ? a.end < b.end : rules[a.rule].id < rules[b.rule].id) }
        return kept
    }

    /// `cands` best first: rule priority, confidence, span length, fewer decoders, position, then
    /// rule id, fingerprint and decoders (a total order: the result never depends on input order).
    func ranked(_ cands: [Candidate]) -> [Candidate] {
        cands.sorted { a, b in
            let ra = rules[a.rule], rb = rules[b.rule]
            if ra.priority != rb.priority { return ra.priority > rb.priority }
            if a.confidence != b.confidence { return a.confidence > b.confidence }
            if a.end - a.start != b.end - b.start { return a.end - a.start > b.end - b.start }
            if a.via.count != b.via.count { return a.via.count < b.via.count }
            if a.start != b.start { return a.start < b.start }
            if ra.id != rb.id { return ra.id < rb.id }
            if a.fingerprint != b.fingerprint { return a.fingerprint < b.fingerprint }
            return a.via.lexicographicallyPrecedes(b.via)
        }
    }
}

struct SeenKey: Hashable { let rule: Int; let start: Int; let end: Int }
struct RegionKey: Hashable { let kind: Int; let start: Int; let end: Int }
