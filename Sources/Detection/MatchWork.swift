/// Keeps what the matchers read linear in the input, whatever the input holds.
///
/// Matchers read around each keyword hit: a value after a key (up to 2 KiB,
/// `Assignment.parseValue`'s limit), a custom rule's window, a Kubernetes manifest. Hits packed
/// closer than what they read (`token=token=token=…`, `kind: Secret` on every line) made the
/// work grow with hits × reach: a 300 KB body took seconds. Two things now bound it:
///
/// - **A work budget.** `scanLevel` charges each keyword hit whose value a rule parsed (the
///   generic rules' shared classification, each contextual rule) the key and the value's
///   length, and each custom window its length. Token rules read a bounded token and are not
///   charged (a run of `A`s, base64 of zeros, hits a keyword at every byte). A scan that
///   spends `factor` × input + `floor` bytes stops and fails closed:
///   `DetectionError.inspectionLimitExceeded`, a finding `inspection-limit-exceeded` from
///   `scan`. Real payloads spend a small part of it (values end at a quote, a space or a
///   separator; docs/detection.md has the measured ratios).
/// - **Kubernetes documents end at their neighbours.** A manifest has one `kind`; the document
///   of a `kind: Secret` hit is bounded by the previous and the next such hit (as well as by
///   `---` lines and the matcher's window), so the documents of one body add up to its length.
enum MatchWork {
    /// Bytes of matcher reading allowed per input byte, over `floor`.
    static let factor = 4
    /// Bytes of matcher reading every scan may spend, whatever its size.
    static let floor = 1 << 20

    /// The budget of a scan of `count` bytes.
    static func budget(_ count: Int) -> Int { count.multipliedReportingOverflow(by: factor).partialValue + floor }

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
