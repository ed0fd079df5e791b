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

    /// Pending records per identity and connection, kept with every change: the Ingress checks
    /// `max_held_per_identity` on every call, without walking all records.
    private var pending: [String: [String: Int]] = [:]

    /// Counts the changes applied: a reader that saw `version` knows nothing changed while it is
    /// the same (the console's live inbox).
    private(set) var version = 0

    /// Scoped approvals, by grant id (merged forward-only, as the Forwarder does).
    private var grants: [String: ApprovalGrant] = [:]

    func apply(_ change: HoldsChange) {
        let id: String
        let new: HoldRecord?
        switch change {
        case .record(let r): (id, new) = (r.requestID, r.withBodyCutToPreview())
        case .removed(let removed): (id, new) = (removed, nil)
        case .grant(let g):
            if let current = grants[g.grantID], !g.isAhead(of: current) { return }
            grants[g.grantID] = g
            version &+= 1
            return
        case .grantRemoved(let grantID):
            grants[grantID] = nil
            version &+= 1
            return
        }
        if let old = records[id] { countPending(old, by: -1) }
        records[id] = new
        if let new { countPending(new, by: 1) }
        version &+= 1
    }

    private func countPending(_ r: HoldRecord, by delta: Int) {
        guard r.status == .pending, let meta = r.request?.metadata else { return }
        let n = pending[meta.identity.id, default: [:]][meta.connection, default: 0] + delta
        pending[meta.identity.id, default: [:]][meta.connection] = n > 0 ? n : nil
        if pending[meta.identity.id]?.isEmpty == true { pending[meta.identity.id] = nil }
    }

    /// How many requests of `identity` wait for approval, per connection.
    func pendingByConnection(identity: String) -> [String: Int] { pending[identity] ?? [:] }

    /// How many requests of `identity` on `connections` wait for approval (what `list` with
    /// status `pending` would count).
    func pendingCount(identity: String, connections: Set<String>) -> Int {
        pendingByConnection(identity: identity).reduce(0) { $0 + (connections.contains($1.key) ? $1.value : 0) }
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

    /// The grant `id`, if known.
    func grant(_ id: String) -> ApprovalGrant? { grants[id] }

    /// Grants of `connections`, newest first; only active ones unless `all`.
    func grants(connections: Set<String>, all: Bool, now: Int64 = currentMillis()) -> [ApprovalGrant] {
        grants.values
            .filter { connections.contains($0.scope.connection) && (all || $0.state(now: now) == .active) }
            .sorted { ($0.createdAtMillis, $0.grantID) > ($1.createdAtMillis, $1.grantID) }
    }

    /// Waits (polling) up to `timeout` until `condition` holds for grant `id`; returns it as it then is.
    func waitUntilGrant(_ id: String, timeout: Duration, _ condition: @Sendable (ApprovalGrant) -> Bool) async -> ApprovalGrant? {
        await poll(timeout: timeout) { $0.grants[id].flatMap { condition($0) ? $0 : nil } } ?? grants[id]
    }

    /// Forgets final records past the retention.
    func prune(now: Int64 = currentMillis()) {
        let cutoff = now - retentionMillis
        records = records.filter { !($0.value.status.isFinal && $0.value.updatedAtMillis < cutoff) }
    }

    /// Waits (polling) up to `timeout` until `condition` holds for the record of `id`; returns
    /// the record as it then is.
    func waitUntil(_ id: String, timeout: Duration, _ condition: @Sendable (HoldRecord) -> Bool) async -> HoldRecord? {
        await poll(timeout: timeout) { $0.records[id].flatMap { condition($0) ? $0 : nil } } ?? records[id]
    }

    /// `found` every 10 ms until it returns a value or `timeout` passes (the changelog's echo of
    /// a decision or revocation this Ingress published).
    private func poll<T>(timeout: Duration, _ found: (isolated HoldsView) -> T?) async -> T? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = found(self) { return value }
            do { try await Task.sleep(for: .milliseconds(10)) } catch { break }
        }
        return nil
    }
}
