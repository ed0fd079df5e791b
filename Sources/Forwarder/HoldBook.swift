import Foundation
import Pipeline

/// The approval rules of one connection, as the Forwarder enforces them.
struct HoldPolicy: Sendable, Hashable {
    /// Groups whose members may decide.
    var approvers: [String]
    /// Distinct approvals needed to release.
    var approvalsRequired: Int
    /// How long a held request may wait before it expires.
    var holdTimeoutMillis: Int64

    init(approvers: [String], approvalsRequired: Int, holdTimeoutMillis: Int64) {
        self.approvers = approvers
        self.approvalsRequired = max(1, approvalsRequired)
        self.holdTimeoutMillis = holdTimeoutMillis
    }

    init(_ policy: PolicyConfig) {
        self.init(
            approvers: policy.approvers, approvalsRequired: policy.approvalsRequired,
            holdTimeoutMillis: Int64(policy.holdTimeout.milliseconds))
    }
}

/// Every held request the Forwarder knows and the rules that move it: park, decide, expire,
/// finish, prune. Pure and synchronous; the caller persists each returned record to `holds`
/// before acting on it.
///
/// Guarantees:
/// - A request moves only forward: pending → approved → delivered | failed, or
///   pending → denied | expired. A final request never changes again.
/// - A decision counts only when its approver is in one of the connection's `approvers`
///   groups and is not the requester's person under any identity (invariant 5); approvals
///   count once per distinct person (two identities of one person count once); one deny
///   denies.
/// - A decision for a request not parked yet is kept (a record without `request`) and
///   applied, under the same rules, when the request is parked.
/// - Only pending and approved records keep the held request's whole body (they may still be
///   delivered); a final record keeps the reviewers' preview only, in memory and in the
///   changelog record returned for persisting.
/// - Records read from `holds` (any Forwarder's) are merged forward-only (``merge(_:)``,
///   ``isAhead(_:of:)``): the book never moves a request back to an earlier state.
/// - `expire` and `prune` touch only the requests the caller owns (`HoldOwnership`).
struct HoldBook: Sendable {
    private(set) var records: [String: HoldRecord] = [:]

    /// What parking a held request did.
    enum ParkOutcome: Sendable, Equatable {
        /// Already parked (a redelivery): the current record, unchanged.
        case known(HoldRecord)
        /// Newly parked and pending.
        case parked(HoldRecord)
        /// Newly parked and already decided by decisions that arrived first (approved or denied).
        case decided(HoldRecord)
    }

    /// Why a decision was refused.
    enum Refusal: String, Sendable, Equatable {
        /// The approver is the requester's person (under this or another identity).
        case selfApproval = "self_approval"
        /// The approver is in none of the connection's `approvers` groups.
        case forbidden
    }

    /// What a decision did.
    enum DecisionOutcome: Sendable, Equatable {
        /// Refused: not an approver of the connection, or the requester's person.
        case rejected(Refusal, reason: String, HoldRecord)
        /// No effect: already final or approved, or this approver already approved.
        case ignored(reason: String, HoldRecord)
        /// Kept until the request is parked.
        case early(HoldRecord)
        /// Counted; still pending.
        case recorded(HoldRecord)
        /// Counted; enough approvals: deliver now.
        case approved(HoldRecord)
        /// Denied: never delivered.
        case denied(HoldRecord)
    }

    /// What merging one changelog change did to the book.
    enum MergeOutcome: Sendable, Equatable {
        /// The change was ahead of the book's record (or the book had none): it is the record now.
        case applied
        /// A tombstone removed the record.
        case removed
        /// The book's record is as far along or further (an echo of this Forwarder's own
        /// write, an older write of another Forwarder, a conflicting final state): unchanged.
        case kept
    }

    /// Merges a change read from the `holds` changelog (the catch-up at start, and every change
    /// any Forwarder writes afterwards, this one's own echoes included). Forward-only: see
    /// ``isAhead(_:of:)``; a tombstone removes the record.
    @discardableResult
    mutating func merge(_ change: HoldsChange) -> MergeOutcome {
        switch change {
        case .removed(let id):
            guard records.removeValue(forKey: id) != nil else { return .kept }
            return .removed
        case .record(let incoming):
            if let current = records[incoming.requestID], !Self.isAhead(incoming, of: current) { return .kept }
            records[incoming.requestID] = incoming.status.isFinal ? incoming.withBodyCutToPreview() : incoming
            return .applied
        case .grant, .grantRemoved:
            // Grants are the GrantBook's (HoldStore merges them there).
            return .kept
        }
    }

    /// How far along a status is: pending 0, approved 1, final (denied, expired, delivered,
    /// failed) 2.
    static func stage(_ status: HoldStatus) -> Int {
        switch status {
        case .pending: 0
        case .approved: 1
        case .denied, .expired, .delivered, .failed: 2
        }
    }

    /// The merge rule: whether `incoming` moves a request further than `current`. A final
    /// `current` is never replaced. Otherwise compared in order: the status's ``stage(_:)``,
    /// then parked (a record with its request) over a record of early decisions only, then the
    /// number of decisions recorded. Strictly greater wins; a tie keeps `current` (an echo of
    /// the same write, or two writers' incomparable records of equal standing). Every transition one writer makes raises this key, so replaying one
    /// writer's records in order always applies each; a record never moves back to an earlier
    /// state, and a final record never changes again (two conflicting final states: the first
    /// one this book saw stays; the outcome ledger decides which outcome counts).
    static func isAhead(_ incoming: HoldRecord, of current: HoldRecord) -> Bool {
        guard !current.status.isFinal else { return false }
        func key(_ r: HoldRecord) -> (Int, Int, Int) { (stage(r.status), r.request == nil ? 0 : 1, r.decisions.count) }
        return key(incoming) > key(current)
    }

    func record(_ requestID: String) -> HoldRecord? { records[requestID] }

    /// Parks `inspected` (or reports the existing record), applying any early decisions.
    /// `traceparent`: the parking span's, kept in the record for the delivery after approval.
    mutating func park(_ inspected: InspectedRequest, policy: HoldPolicy, now: Int64, traceparent: String? = nil) -> ParkOutcome {
        let id = inspected.metadata.requestID
        var early: [ApprovalDecision] = []
        if let existing = records[id] {
            guard existing.request == nil else { return .known(existing) }
            early = existing.decisions
        }
        var record = HoldRecord(
            requestID: id, request: inspected, approvalsRequired: policy.approvalsRequired,
            createdAtMillis: now, expiresAtMillis: now + policy.holdTimeoutMillis, traceparent: traceparent)
        records[id] = record
        for d in early {
            switch decide(d, policy: policy, now: now) {
            case .denied(let r), .approved(let r): return .decided(r)
            default: continue
            }
        }
        record = records[id] ?? record
        return record.status == .pending ? .parked(record) : .decided(record)
    }

    /// Applies one decision. `policy` is the connection's (nil when the request is not parked
    /// yet or its connection is unknown to this Forwarder).
    mutating func decide(_ decision: ApprovalDecision, policy: HoldPolicy?, now: Int64) -> DecisionOutcome {
        let id = decision.requestID
        guard var record = records[id], let request = record.request else {
            var early = records[id] ?? HoldRecord(
                requestID: id, request: nil, approvalsRequired: 1, createdAtMillis: now, expiresAtMillis: now)
            if !early.decisions.contains(where: { $0.decisionID == decision.decisionID }) { early.decisions.append(decision) }
            early.updatedAtMillis = now
            records[id] = early
            return .early(early)
        }
        guard record.status == .pending else {
            return .ignored(reason: "request already \(record.status.rawValue)", record)
        }
        guard let policy, !Set(policy.approvers).isDisjoint(with: decision.approver.groups) else {
            return .rejected(.forbidden, reason: "not an approver of connection \(request.metadata.connection)", record)
        }
        guard decision.approver.id != request.metadata.identity.id, !decision.approver.isSamePerson(as: request.metadata.identity) else {
            return .rejected(.selfApproval, reason: "no person may decide on their own request", record)
        }
        if decision.vote == .approve, record.approvingPersons.contains(decision.approver.personKey) {
            return .ignored(reason: "already approved by this person", record)
        }
        record.decisions.append(decision)
        record.updatedAtMillis = now
        switch decision.vote {
        case .deny:
            record.status = .denied
            record.response = .jsonError(
                status: 403, error: "denied", message: "A reviewer denied this request; it was not delivered.",
                extra: ["reason": decision.reason, "request_id": id])
            record = record.withBodyCutToPreview()
            records[id] = record
            return .denied(record)
        case .approve:
            if record.approvingPersons.count >= record.approvalsRequired {
                record.status = .approved
                records[id] = record
                return .approved(record)
            }
            records[id] = record
            return .recorded(record)
        }
    }

    /// Expires every pending request whose `expiresAtMillis` has passed and that `owns`
    /// (default: all); returns them.
    mutating func expire(now: Int64, owns: (String) -> Bool = { _ in true }) -> [HoldRecord] {
        var out: [HoldRecord] = []
        for (id, var r) in records where r.request != nil && r.status == .pending && r.expiresAtMillis <= now && owns(id) {
            r.status = .expired
            r.updatedAtMillis = now
            r.response = .jsonError(
                status: 410, error: "expired", message: "No decision was made before the hold timed out; it was not delivered.",
                extra: ["request_id": id])
            r = r.withBodyCutToPreview()
            records[id] = r
            out.append(r)
        }
        return out.sorted { $0.expiresAtMillis < $1.expiresAtMillis }
    }

    /// Records the end of an approved request's delivery (`delivered` or `failed`).
    mutating func finish(_ requestID: String, status: HoldStatus, response: HTTPResponseData?, now: Int64) -> HoldRecord? {
        guard var r = records[requestID], r.status == .approved, status.isFinal else { return nil }
        r.status = status
        r.response = response
        r.updatedAtMillis = now
        r = r.withBodyCutToPreview()
        records[requestID] = r
        return r
    }

    /// Approved requests whose delivery has not been recorded (resumed after a restart).
    var approvedUndelivered: [HoldRecord] {
        records.values.filter { $0.status == .approved && $0.request != nil }.sorted { $0.updatedAtMillis < $1.updatedAtMillis }
    }

    /// How many parked requests `owns` covers are still waiting for decisions (pending) or for
    /// delivery (approved).
    func waiting(owns: (String) -> Bool) -> Int {
        records.values.reduce(0) { n, r in
            n + (r.request != nil && (r.status == .pending || r.status == .approved) && owns(r.requestID) ? 1 : 0)
        }
    }

    /// Forgets final requests (and orphan early decisions) unchanged since `cutoff` that `owns`
    /// (default: all); returns their ids.
    mutating func prune(before cutoff: Int64, owns: (String) -> Bool = { _ in true }) -> [String] {
        let ids = records.values.filter { ($0.status.isFinal || $0.request == nil) && $0.updatedAtMillis < cutoff && owns($0.requestID) }.map(\.requestID)
        for id in ids { records[id] = nil }
        return ids.sorted()
    }
}
