/// What the `OutcomeLedger` still knows of outcomes older than its exact window: a 61-bit
/// fingerprint of each aged request id with its outcome kind in the low 3 bits, in sorted runs.
///
/// Guarantees:
/// - No false negatives: an outcome inserted and not yet dropped by ``drop(olderThan:)`` is
///   always found, with the kind it was inserted with.
/// - False positives only by a fingerprint collision: a query for a request never inserted
///   answers "ended" with probability n / 2⁶¹ (n facts held: about 10⁻¹¹ with a day of 600
///   outcomes a second).
/// - Memory: 8 bytes an aged outcome, bounded by the outcomes aged out within the retention,
///   independent of the exact window's size.
/// - Lookups are binary searches in O(log n) runs (runs merge like a binary counter).
/// - Fingerprints are seeded per process (Swift's `Hasher`): they are never persisted or
///   shared.
struct AgedOutcomes: Sendable {
    private struct Run: Sendable {
        var fingerprints: [UInt64]
        var newestMillis: Int64
    }

    /// Oldest first.
    private var runs: [Run] = []
    private let seed = UInt64.random(in: .min ... .max)

    init() {}

    /// Aged outcomes held.
    var count: Int { runs.reduce(0) { $0 + $1.fingerprints.count } }
    var runCount: Int { runs.count }

    /// Adds a batch of aged outcomes (`newestMillis`: the newest outcome time among them).
    mutating func insert(_ batch: [(key: LedgerKey, kind: AuditEvent.Kind)], newestMillis: Int64) {
        guard !batch.isEmpty else { return }
        var fingerprints = batch.map { fingerprint($0.key) << 3 | Self.kindTag($0.kind) }
        fingerprints.sort()
        runs.append(Run(fingerprints: fingerprints, newestMillis: newestMillis))
        // Binary-counter merging: a run never sits on a smaller one, so there are O(log n).
        while runs.count >= 2, runs[runs.count - 2].fingerprints.count <= runs[runs.count - 1].fingerprints.count {
            let newer = runs.removeLast()
            let older = runs.removeLast()
            runs.append(Run(fingerprints: Self.merge(older.fingerprints, newer.fingerprints), newestMillis: max(older.newestMillis, newer.newestMillis)))
        }
    }

    /// The kind request `key` ended with, or `nil` when it has no aged outcome.
    func kind(of key: LedgerKey) -> AuditEvent.Kind? {
        guard !runs.isEmpty else { return nil }
        let low = fingerprint(key) << 3
        for run in runs.reversed() {
            let fps = run.fingerprints
            var lo = 0
            var hi = fps.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if fps[mid] < low { lo = mid + 1 } else { hi = mid }
            }
            if lo < fps.count, fps[lo] >> 3 == low >> 3 { return Self.kind(fromTag: fps[lo] & 7) }
        }
        return nil
    }

    /// Drops the runs whose newest outcome is older than `cutoffMillis`.
    mutating func drop(olderThan cutoffMillis: Int64) {
        runs.removeAll { $0.newestMillis < cutoffMillis }
    }

    private func fingerprint(_ key: LedgerKey) -> UInt64 {
        var hasher = Hasher()
        hasher.combine(seed)
        hasher.combine(key)
        return UInt64(bitPattern: Int64(hasher.finalize())) >> 3
    }

    private static func merge(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0
        var j = 0
        while i < a.count && j < b.count {
            if a[i] <= b[j] { out.append(a[i]); i += 1 } else { out.append(b[j]); j += 1 }
        }
        out.append(contentsOf: a[i...])
        out.append(contentsOf: b[j...])
        return out
    }

    private static let tags: [AuditEvent.Kind] = [.delivered, .blocked, .expired, .failed, .denied]

    private static func kindTag(_ kind: AuditEvent.Kind) -> UInt64 {
        UInt64(tags.firstIndex(of: kind) ?? 3)
    }

    private static func kind(fromTag tag: UInt64) -> AuditEvent.Kind {
        Int(tag) < tags.count ? tags[Int(tag)] : .failed
    }
}

/// A request id as the ledger stores it: a UUID-shaped id (what the Ingress issues) in 16
/// bytes, anything else as its string.
enum LedgerKey: Hashable, Sendable {
    case uuid(UInt64, UInt64)
    case other(String)

    init(_ id: String) {
        self = Self.parseUUID(id) ?? .other(id)
    }

    /// Parses a lowercase canonical UUID (`8-4-4-4-12` hex digits); an uppercase one is not
    /// the same key (ids are compared as strings elsewhere), so it stays `.other`.
    private static func parseUUID(_ id: String) -> LedgerKey? {
        var id = id
        id.makeContiguousUTF8()
        return id.utf8.withContiguousStorageIfAvailable { bytes -> LedgerKey? in
            guard bytes.count == 36 else { return nil }
            var hi: UInt64 = 0
            var lo: UInt64 = 0
            var digits = 0
            for (i, byte) in bytes.enumerated() {
                if i == 8 || i == 13 || i == 18 || i == 23 {
                    guard byte == UInt8(ascii: "-") else { return nil }
                    continue
                }
                let value: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte - UInt8(ascii: "a") + 10
                default: return nil
                }
                if digits < 16 { hi = hi << 4 | UInt64(value) } else { lo = lo << 4 | UInt64(value) }
                digits += 1
            }
            return .uuid(hi, lo)
        } ?? nil
    }
}
