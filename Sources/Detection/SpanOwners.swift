/// Which kept finding owns each stretch of the input, for `DetectionEngine.resolveCandidates`:
/// a segment tree over the candidates' distinct start and end offsets.
///
/// Guarantees: `firstOwner` and `claim` take O(log n) steps for n distinct offsets, so resolving
/// m candidates costs O(m log m) however many of them overlap (it was O(m × kept): a body of
/// 50,000 findings took seconds). Owners are claimed over stretches no other owner holds (the
/// resolver's kept spans are disjoint, apart from identical spans, which share one owner).
struct SpanOwners {
    /// The distinct offsets, sorted; stretch `i` is `offsets[i]..<offsets[i + 1]`.
    private let offsets: [Int]
    private let stretches: Int
    /// The smallest owner in a node's stretches (`Int.max`: none).
    private var smallest: [Int]
    /// The owner of every stretch under a node, set when one claim covered the node whole.
    private var whole: [Int]

    init(offsets unsorted: [Int]) {
        var o = unsorted.sorted()
        var w = 0
        for x in o where w == 0 || o[w - 1] != x { o[w] = x; w += 1 }
        o.removeLast(o.count - w)
        offsets = o
        stretches = max(1, o.count - 1)
        smallest = Array(repeating: .max, count: 4 * stretches)
        whole = smallest
    }

    /// The stretches of `span`, as indices (`span`'s ends must be among the offsets).
    private func stretchRange(_ span: Range<Int>) -> Range<Int> {
        index(span.lowerBound)..<index(span.upperBound)
    }

    private func index(_ x: Int) -> Int {
        var lo = 0, hi = offsets.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if offsets[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The smallest owner of any stretch inside `span` (nil: none is owned).
    func firstOwner(_ span: Range<Int>) -> Int? {
        let r = stretchRange(span)
        guard !r.isEmpty else { return nil }
        let m = query(1, 0, stretches, r.lowerBound, r.upperBound)
        return m == .max ? nil : m
    }

    /// Gives every stretch inside `span` to `owner`.
    mutating func claim(_ span: Range<Int>, owner: Int) {
        let r = stretchRange(span)
        guard !r.isEmpty else { return }
        assign(1, 0, stretches, r.lowerBound, r.upperBound, owner)
    }

    private func query(_ node: Int, _ nl: Int, _ nr: Int, _ l: Int, _ r: Int) -> Int {
        if r <= nl || nr <= l { return .max }
        if l <= nl && nr <= r { return smallest[node] }
        if whole[node] != .max { return whole[node] }
        let mid = (nl + nr) / 2
        return min(query(2 * node, nl, mid, l, r), query(2 * node + 1, mid, nr, l, r))
    }

    private mutating func assign(_ node: Int, _ nl: Int, _ nr: Int, _ l: Int, _ r: Int, _ owner: Int) {
        if r <= nl || nr <= l { return }
        // Owned whole already: only the same owner can claim here again (kept spans are disjoint).
        if whole[node] != .max { return }
        if l <= nl && nr <= r {
            whole[node] = owner
            smallest[node] = min(smallest[node], owner)
            return
        }
        let mid = (nl + nr) / 2
        assign(2 * node, nl, mid, l, r, owner)
        assign(2 * node + 1, mid, nr, l, r, owner)
        smallest[node] = min(smallest[2 * node], smallest[2 * node + 1])
    }
}
