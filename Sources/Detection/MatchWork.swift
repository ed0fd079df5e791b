/// Keeps what the matchers read linear in the input, whatever the input holds.
///
/// Matchers read around each keyword hit: a value after a key (up to `valueLimit` bytes), a
/// custom rule's window, a Kubernetes manifest. Hits packed closer than what they read
/// (`token=token=token=…`, `kind: Secret` on every line) made the work grow with hits × reach:
/// a 300 KB body took seconds. Two things now bound it:
///
/// - **A work budget.** `scanLevel` charges each keyword hit that a value-reading rule (generic,
///   contextual) looks at the key and the run of value bytes after it (`ValueReach`, itself
///   amortised: every byte is measured about twice), and each custom window its length. Token
///   rules read a bounded token and are not charged (a run of `A`s, base64 of zeros, hits a
///   keyword at every byte). A scan that spends `factor` × input + `floor` bytes stops and
///   fails closed: `DetectionError.inspectionLimitExceeded`, a finding
///   `inspection-limit-exceeded` from `scan`. Real payloads spend a small part of it (values
///   end at a quote, a space or a separator; see docs/detection.md for the measured ratios).
/// - **Kubernetes documents end at their neighbours.** A manifest has one `kind`; the document
///   of a `kind: Secret` hit is bounded by the previous and the next such hit (as well as by
///   `---` lines and the matcher's window), so the documents of one body add up to its length.
enum MatchWork {
    /// Bytes of matcher reading allowed per input byte, over `floor`.
    static let factor = 4
    /// Bytes of matcher reading every scan may spend, whatever its size.
    static let floor = 1 << 20
    /// The longest value a matcher reads after a key (`Assignment.parseValue`'s limit).
    static let valueLimit = 2048
    /// Bytes between a key and its value: quotes, blanks, `:`, `=`, `>`, backslashes.
    static let lead = ByteSet("\"'` \t:=>\\\\")

    /// The budget of a scan of `count` bytes.
    static func budget(_ count: Int) -> Int { count.multipliedReportingOverflow(by: factor).partialValue + floor }

    /// The length of the value run after a keyword: up to the first `Assignment.bareStop` byte,
    /// at most `valueLimit`. Hits come in position order; a run measured for one hit serves the
    /// following hits inside it, so each byte is measured about twice however dense the hits.
    struct ValueReach {
        private var from = 0
        private var end = -1
        /// The run ended at a stop byte or the buffer end (not at `valueLimit`).
        private var stopped = true
        private let lead = MatchWork.lead
        private let stop = Assignment.bareStop

        init() {}

        mutating func bytes(_ p: UnsafeBufferPointer<UInt8>, after ke: Int) -> Int {
            let n = p.count
            var vs = ke
            var k = 0
            while vs < n && k < 16 && lead.contains(p[vs]) { vs += 1; k += 1 }
            if !(vs >= from && vs <= end && (stopped || end - vs >= valueLimit / 2)) {
                from = vs
                let limit = min(n, vs + valueLimit)
                var e = vs
                while e < limit && !stop.contains(p[e]) { e += 1 }
                end = e
                stopped = e < vs + valueLimit
            }
            return end - vs
        }
    }

    /// The hits (`ks..<ke`) of keyword `kind` in the sorted `events` that read `kind: Secret`.
    static func kindSecretHits(_ p: UnsafeBufferPointer<UInt8>, _ events: [Event], kind: UInt32, length: Int) -> [Range<Int>] {
        var hits: [Range<Int>] = []
        for ev in events where ev.kind == kind {
            let ks = ev.pos - length
            guard ks >= 0, hits.last?.upperBound != ev.pos, KubernetesSecretMatcher.isKindSecret(p, ks: ks, ke: ev.pos) else { continue }
            hits.append(ks..<ev.pos)
        }
        return hits
    }

    /// From the end of the `kind: Secret` hit before `ks..<ke` to the start of the one after
    /// (the buffer's ends when there is none).
    static func neighbourBounds(_ hits: [Range<Int>], ks: Int, ke: Int, count: Int) -> Range<Int> {
        var lo = 0, hi = hits.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if hits[mid].lowerBound < ks { lo = mid + 1 } else { hi = mid }
        }
        let lower = lo > 0 ? hits[lo - 1].upperBound : 0
        let next = lo < hits.count && hits[lo].lowerBound == ks ? lo + 1 : lo
        let upper = next < hits.count ? hits[next].lowerBound : count
        return min(lower, ks)..<max(upper, ke)
    }
}
