import Foundation
import Pipeline

/// The Ingress's read-only view of held requests, fed by the `holds` changelog (which only the
/// Forwarder writes). It answers `GET /v1/requests/<id>` and the reviewer API without asking the
/// Forwarder.
///
/// Guarantees: the view holds the latest record per request as read from the changelog, with
/// the held request's body cut to the reviewers' preview (never the whole body in memory);
/// records without a request (early decisions) are not visible; final records unchanged for
/// longer than the retention are forgotten (`prune`), as are tombstoned ones.
actor HoldsView {
    private var records: [String: HoldRecord] = [:]
    private let retentionMillis: Int64

    init(retention: Duration) {
        let (s, atto) = retention.components
        retentionMillis = s * 1000 + atto / 1_000_000_000_000_000
    }

    func apply(_ change: HoldsChange) {
        switch change {
        case .record(let r): records[r.requestID] = r.withBodyCutToPreview()
        case .removed(let id): records[id] = nil
        }
    }


    /// The visible record of `id`, if any and not past the retention.
    func record(_ id: String, now: Int64 = currentMillis()) -> HoldRecord? {
        guard let r = records[id], r.request != nil else { return nil }
        if r.status.isFinal, r.updatedAtMillis + retentionMillis < now { return nil }
        return r
    }

    /// Visible records of `connections` whose status is in `statuses`, oldest first.
    func list(connections: Set<String>, statuses: Set<HoldStatus>, now: Int64 = currentMillis()) -> [HoldRecord] {
        prune(now: now)
        return records.values
            .filter { r in
                guard let req = r.request else { return false }
                return connections.contains(req.metadata.connection) && statuses.contains(r.status)
            }
            .sorted { ($0.createdAtMillis, $0.requestID) < ($1.createdAtMillis, $1.requestID) }
    }

    /// Forgets final records past the retention.
    func prune(now: Int64 = currentMillis()) {
        let cutoff = now - retentionMillis
        records = records.filter { !($0.value.status.isFinal && $0.value.updatedAtMillis < cutoff) }
    }

    /// Waits (polling) up to `timeout` until `condition` holds for the record of `id`; returns
    /// the record as it then is.
    func waitUntil(_ id: String, timeout: Duration, _ condition: @Sendable (HoldRecord) -> Bool) async -> HoldRecord? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let r = records[id], condition(r) { return r }
            do { try await Task.sleep(for: .milliseconds(10)) } catch { break }
        }
        return records[id]
    }
}
