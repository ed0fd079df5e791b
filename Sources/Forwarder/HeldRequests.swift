import Foundation
import Logging
import Metrics
import Pipeline

/// The Forwarder's held requests: a `HoldBook` whose every change is written to the `holds`
/// changelog before anyone acts on it.
///
/// Guarantees:
/// - Each transition is applied to the book and queued for `holds` in one step on this
///   actor, and this Forwarder's records of one request are published in that order (each
///   waits for the previous one of the same request).
/// - Every change any Forwarder writes to `holds` (this one's echoes included) is merged into
///   the book forward-only (`HoldBook.merge`): the book never moves a request back to an
///   earlier state, so a Forwarder that gains a partition works from an up-to-date book.
/// - `persist` retries with backoff until the bus accepts the record; it returns `false` only
///   when the task is cancelled (shutdown), leaving the triggering message uncommitted.
actor HoldStore {
    private var book = HoldBook()
    private var grantBook = GrantBook()
    /// (grant, request) pairs checked, `grant|request`: each pending request is matched against
    /// each grant once and claims it at most once from here (a refused claim is not repeated).
    private var grantsChecked: Set<String> = []
    private var tails: [String: Task<Bool, Never>] = [:]
    private let context: StageContext
    private let logger: Logger
    private let initialBackoff: Duration
    private let maxBackoff: Duration

    init(context: StageContext, logger: Logger, initialBackoff: Duration, maxBackoff: Duration) {
        self.context = context
        self.logger = logger
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    /// Merges a change read from `holds` (forward-only: `HoldBook.merge`, `GrantBook.merge`).
    @discardableResult
    func merge(_ change: HoldsChange) -> HoldBook.MergeOutcome {
        switch change {
        case .grant(let grant): return grantBook.merge(grant) ? .applied : .kept
        case .grantRemoved(let id):
            grantBook.remove(id)
            return .removed
        case .record, .removed: return book.merge(change)
        }
    }

    // MARK: scoped approvals

    /// Makes the grant an approving decision asks for, once that decision released `record`,
    /// and persists it. The refusal when the grant may not be made.
    func makeGrant(_ decision: ApprovalDecision, request: GrantRequest, record: HoldRecord, policy: HoldPolicy) async -> Result<ApprovalGrant, GrantBook.Refusal> {
        if let existing = grantBook.grant(decision.decisionID) { return .success(existing) }
        switch GrantBook.make(decision, request: request, record: record, policy: policy, now: currentMillis()) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let grant):
            grantBook.add(grant)
            _ = await persistGrant(grant)
            return .success(grant)
        }
    }

    /// Counts a claim's use (persisted before returning, unless refused).
    func claim(_ claim: GrantClaim) async -> (GrantBook.ClaimOutcome, persisted: Bool) {
        let outcome = grantBook.claim(claim, now: currentMillis())
        guard case .accepted(let grant) = outcome else { return (outcome, true) }
        return (outcome, await persistGrant(grant))
    }

    /// Revokes a grant (persisted before returning); `nil` when unknown or already revoked.
    func revoke(_ revocation: GrantRevocation) async -> (ApprovalGrant?, persisted: Bool) {
        guard let grant = grantBook.revoke(revocation, now: currentMillis()) else { return (nil, true) }
        return (grant, await persistGrant(grant))
    }

    /// Claims to send now: for each pending request `ownership` covers (or only `requestID`),
    /// the oldest active grant covering it that it has not been checked against yet. Each
    /// (grant, request) pair is checked once — scopes and requests do not change — so a sweep
    /// costs a dictionary walk once everything is checked; a request's body is parsed (for
    /// its JSON keys) only when a grant's connection, person and method fit.
    func claimsDue(_ ownership: HoldOwnership?, only requestID: String? = nil, now: Int64 = currentMillis()) -> [GrantClaim] {
        let active = grantBook.grants.values.filter { $0.state(now: now) == .active }
            .sorted { ($0.createdAtMillis, $0.grantID) < ($1.createdAtMillis, $1.grantID) }
        guard !active.isEmpty else { return [] }
        let candidates: [HoldRecord]
        if let requestID {
            candidates = book.record(requestID).map { [$0] } ?? []
        } else {
            candidates = book.records.values.filter { $0.status == .pending && (ownership?.owns($0.requestID) ?? false) }
        }
        var claims: [GrantClaim] = []
        for record in candidates where record.status == .pending {
            guard let inspected = record.request else { continue }
            let meta = inspected.metadata
            let person = meta.identity.personKey, method = inspected.request.method.uppercased()
            let fitting = active.filter { grant in
                !grantsChecked.contains("\(grant.grantID)|\(record.requestID)") && grant.scope.connection == meta.connection
                    && grant.scope.person == person && grant.scope.method == method
            }
            guard !fitting.isEmpty else { continue }
            let facts = GrantFacts(inspected)
            var chosen: ApprovalGrant? = nil
            for grant in fitting {
                grantsChecked.insert("\(grant.grantID)|\(record.requestID)")
                if !facts.credential, GrantBook.matches(grant.scope, facts) {
                    chosen = grant
                    break
                }
            }
            if let grant = chosen {
                claims.append(GrantClaim(grantID: grant.grantID, requestID: record.requestID, facts: facts, claimedAtMillis: now))
            }
        }
        return claims
    }

    func grantNamed(_ id: String) -> ApprovalGrant? { grantBook.grant(id) }

    /// Grants known (for tests and the holds gauge).
    var grants: [ApprovalGrant] { Array(grantBook.grants.values) }

    private func persistGrant(_ grant: ApprovalGrant) async -> Bool {
        let message: OutgoingMessage
        do { message = try context.codec.grant(grant) } catch {
            logger.critical("cannot seal grant", metadata: ["grant_id": "\(grant.grantID)", "error": "\(error)"])
            return false
        }
        return await enqueue(ApprovalGrant.changelogKey(grant.grantID)) { [context] in try await context.bus.publish(message) }
    }

    var count: Int { book.records.count }

    func record(_ id: String) -> HoldRecord? { book.record(id) }

    var approvedUndelivered: [HoldRecord] { book.approvedUndelivered }

    /// Held requests that have their final status (denied, expired, delivered, failed).
    var finalRecords: [HoldRecord] { book.records.values.filter { $0.status.isFinal } }

    /// Parks a held request; the outcome's record is persisted (unless `.known`) before returning.
    func park(_ inspected: InspectedRequest, policy: HoldPolicy) async -> (HoldBook.ParkOutcome, persisted: Bool) {
        let outcome = book.park(inspected, policy: policy, now: currentMillis(), traceparent: TraceContext.current?.traceparent)
        switch outcome {
        case .known: return (outcome, true)
        case .parked(let r), .decided(let r): return (outcome, await persist(r))
        }
    }

    /// Applies a decision under the policy of its request's connection (looked up in `policies`
    /// in the same step, on this actor: a request parked while the decision waited for the actor
    /// is decided under its policy, never as "no policy"); a changed record is persisted before
    /// returning.
    func decide(_ decision: ApprovalDecision, policies: [String: HoldPolicy]) async -> (HoldBook.DecisionOutcome, persisted: Bool) {
        let policy = book.record(decision.requestID)?.request.flatMap { policies[$0.metadata.connection] }
        let outcome = book.decide(decision, policy: policy, now: currentMillis())
        switch outcome {
        case .rejected, .ignored: return (outcome, true)
        case .early(let r), .recorded(let r), .approved(let r), .denied(let r): return (outcome, await persist(r))
        }
    }

    /// Expires what is due among the requests `ownership` covers; each expired record is
    /// persisted before it is returned.
    func expireDue(_ ownership: HoldOwnership) async -> [HoldRecord] {
        let expired = book.expire(now: currentMillis(), owns: ownership.owns)
        var out: [HoldRecord] = []
        for r in expired where await persist(r) { out.append(r) }
        return out
    }

    /// Records the end of an approved request's delivery.
    func finish(_ id: String, status: HoldStatus, response: HTTPResponseData?) async -> Bool {
        guard let r = book.finish(id, status: status, response: response, now: currentMillis()) else { return true }
        return await persist(r)
    }

    /// Parked requests `ownership` covers that wait for decisions or delivery.
    func waiting(_ ownership: HoldOwnership) -> Int { book.waiting(owns: ownership.owns) }

    /// Forgets final requests older than `cutoff` among those `ownership` covers and
    /// tombstones them in `holds` (the other Forwarders drop them when they read the tombstone).
    func prune(before cutoff: Int64, _ ownership: HoldOwnership) async -> Int {
        let ids = book.prune(before: cutoff, owns: ownership.owns)
        let pruned = Set(ids)
        grantsChecked = grantsChecked.filter { key in !pruned.contains(String(key.split(separator: "|").last ?? "")) }
        // Grants no longer active are pruned by the owner of their partition only (as claims go there).
        for id in grantBook.prune(before: cutoff, now: currentMillis())
        where ownership.owns(id) {
            let key = ApprovalGrant.changelogKey(id)
            _ = await enqueue(key) { [context] in try await context.bus.publish(context.codec.holdTombstone(requestID: key)) }
        }
        for id in ids {
            _ = await enqueue(id) { [context] in try await context.bus.publish(context.codec.holdTombstone(requestID: id)) }
        }
        return ids.count
    }

    private func persist(_ record: HoldRecord) async -> Bool {
        let message: OutgoingMessage
        do { message = try context.codec.hold(record) } catch {
            logger.critical("cannot seal hold record", metadata: ["request_id": "\(record.requestID)", "error": "\(error)"])
            return false
        }
        return await enqueue(record.requestID) { [context] in try await context.bus.publish(message) }
    }

    /// Runs `publish` after every earlier publish of the same request, retrying until it succeeds.
    private func enqueue(_ id: String, _ publish: @escaping @Sendable () async throws -> Void) async -> Bool {
        let previous = tails[id]
        let (logger, initial, maxBackoff) = (logger, initialBackoff, maxBackoff)
        let task = Task<Bool, Never> {
            _ = await previous?.value
            var delay = initial
            while true {
                do {
                    try await publish()
                    return true
                } catch {
                    logger.error("holds publish failed; retrying", metadata: ["request_id": "\(id)", "error": "\(error)"])
                }
                do { try await Task.sleep(for: delay) } catch { return false }
                delay = min(delay * 2, maxBackoff)
            }
        }
        tails[id] = task
        let ok = await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
        if tails[id] == task { tails[id] = nil }
        return ok
    }
}

/// The reply a caller gets while its request waits for approval; the Ingress keeps waiting up
/// to `hold_wait` for the final reply, then answers with this.
enum PendingReply {
    static func make(requestID: String, sessionID: String) -> Reply {
        let body = (try? JSONSerialization.data(
            withJSONObject: ["request_id": requestID, "status": "pending_approval", "poll": "/v1/requests/\(requestID)"],
            options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Reply(
            requestID: requestID, sessionID: sessionID,
            response: HTTPResponseData(
                status: 202,
                headers: [HTTPField("Content-Type", "application/json"), HTTPField("X-Sluice-Status", "pending_approval")],
                body: body))
    }
}

extension ForwarderService {
    /// Parks a held request: records it in `holds`, announces it, answers the caller "pending".
    /// Returns `true` once the record is durable (the message may then be committed).
    ///
    /// Once parked, a request is no longer bound by its original deadline (it waits for
    /// `hold_timeout`); a request that arrives here after that deadline without having been
    /// parked is recorded `expired` and never delivered (its caller already got 504).
    func park(_ inspected: InspectedRequest) async -> Bool {
        let meta = inspected.metadata
        var log = logger
        log[metadataKey: "request_id"] = "\(meta.requestID)"
        log[metadataKey: "connection"] = "\(meta.connection)"
        guard let policy = holdPolicies[meta.connection] else {
            // Nowhere to deliver it anyway: the ordinary path answers 502 and records `failed`.
            return await deliver(inspected)
        }
        if meta.isExpired(), await holds.record(meta.requestID)?.request == nil {
            // Never parked and the caller's deadline has passed (it got 504): invariant 3 — it
            // must not be delivered later. The ordinary path records `expired` without a reply.
            log.info("held request reached the forwarder after its deadline; not parked")
            return await deliver(inspected)
        }
        let (outcome, persisted) = await holds.park(inspected, policy: policy)
        guard persisted else { return false }
        switch outcome {
        case .known(let record):
            // A redelivery: the caller may still be waiting on the first attempt.
            if record.status == .pending {
                _ = await publishReliably("reply", log: log) {
                    try await context.bus.publish(try context.codec.reply(PendingReply.make(requestID: meta.requestID, sessionID: meta.sessionID), to: meta.replyTo))
                }
            }
            return true
        case .parked(let record):
            log.info("request held for approval", metadata: ["approvals_required": "\(record.approvalsRequired)"])
            Counter(label: "sluice_holds_total", dimensions: [("event", "parked")]).increment()
            await announce(record, inspected)
            // A scoped approval covering it releases it without a reviewer.
            await sendClaims(await holds.claimsDue(nil, only: record.requestID), log: log)
            return await publishReliably("reply", log: log) {
                try await context.bus.publish(try context.codec.reply(PendingReply.make(requestID: meta.requestID, sessionID: meta.sessionID), to: meta.replyTo))
            }
        case .decided(let record):
            await announce(record, inspected)
            // `process` holds this request's ledger claim.
            return await conclude(record, claimed: true, log: log)
        }
    }

    private func announce(_ record: HoldRecord, _ inspected: InspectedRequest) async {
        let meta = inspected.metadata
        await context.audit(AuditEvent(
            kind: .approvalRequested, stage: "forwarder", requestID: meta.requestID, sessionID: meta.sessionID,
            connection: meta.connection, identity: meta.identity.id, method: inspected.request.method,
            path: inspected.request.path, decision: .hold, rules: inspected.verdict.rules, reasons: inspected.verdict.reasons,
            findings: inspected.findings.isEmpty ? nil : inspected.findings,
            details: ["approvals_required": "\(record.approvalsRequired)", "expires_ms": "\(record.expiresAtMillis)"]))
        notifier.announce(ApprovalNotifier.Announcement(record: record, inspected: inspected))
    }

    /// Applies one message from `approvals`: a decision, a grant claim or a grant revocation.
    /// Returns `true` when it may be committed.
    func processApprovals(_ message: BusMessage) async -> Bool {
        switch MessageCodec.kind(of: message) {
        case MessageCodec.grantClaimKind: return await processGrantClaim(message)
        case MessageCodec.grantRevocationKind: return await processGrantRevocation(message)
        default: return await processDecision(message)
        }
    }

    /// Applies one decision from `approvals`. Returns `true` when it may be committed.
    func processDecision(_ message: BusMessage) async -> Bool {
        let decision: ApprovalDecision
        do { decision = try context.codec.open(ApprovalDecision.self, from: message) } catch {
            await context.deadletter(message, reason: "\(error)")
            return true
        }
        var log = logger
        log[metadataKey: "request_id"] = "\(decision.requestID)"
        log[metadataKey: "approver"] = "\(decision.approver.id)"
        // The policy is looked up on the store's actor with the decision: reading the record here
        // first raced with a park in flight (an early decision was then refused as `forbidden`).
        let (outcome, persisted) = await holds.decide(decision, policies: holdPolicies)
        guard persisted else { return false }
        let policy: HoldPolicy? = {
            switch outcome {
            case .rejected(_, _, let r), .ignored(_, let r), .early(let r), .recorded(let r), .approved(let r), .denied(let r):
                return r.request.flatMap { holdPolicies[$0.metadata.connection] }
            }
        }()
        switch outcome {
        case .early:
            log.info("decision kept until its request is parked", metadata: ["vote": "\(decision.vote.rawValue)"])
            return true
        case .rejected(let refusal, let reason, let record):
            log.warning("decision refused", metadata: ["vote": "\(decision.vote.rawValue)", "refusal": "\(refusal.rawValue)"])
            await auditRefusal(decision, record, refusal: refusal, why: reason)
            return true
        case .ignored(let reason, let record):
            log.info("decision not counted", metadata: ["vote": "\(decision.vote.rawValue)", "reason": "\(reason)"])
            await auditDecision(decision, record, result: "not_counted", why: reason)
            // A redelivered approval that was counted before (this Forwarder stopped between
            // recording it and making its grant): make the grant now (idempotent by its id).
            if let request = decision.grant, let policy, record.decisions.contains(where: { $0.decisionID == decision.decisionID }),
                [.approved, .delivered, .failed].contains(record.status) {
                await makeGrant(decision, request: request, record: record, policy: policy, log: log)
            }
            return true
        case .recorded(let record):
            log.info("approval recorded", metadata: ["approvals": "\(record.approvingPersons.count)", "required": "\(record.approvalsRequired)"])
            await auditDecision(decision, record, result: "counted", why: nil)
            return true
        case .approved(let record), .denied(let record):
            log.info("held request decided", metadata: ["status": "\(record.status.rawValue)"])
            await auditDecision(decision, record, result: "counted", why: nil)
            if record.status == .approved, let request = decision.grant, let policy {
                await makeGrant(decision, request: request, record: record, policy: policy, log: log)
            }
            // Delivered (or denied) in the held request's own trace, as a child of the span
            // that parked it: one call stays one trace across the wait for a human.
            return await StageSpan.run(
                "sluice.forwarder.release", kind: .consumer, continuing: Self.heldTrace(record),
                [.requestID(record.requestID), .decision(record.status.rawValue)]
            ) {
                await conclude(record, claimed: false, log: log)
            }
        }
    }

    // MARK: scoped approvals

    /// Makes the grant an approval asked for, audits it, and claims it for the matching
    /// requests this Forwarder holds (the other Forwarders do the same when they read it).
    private func makeGrant(_ decision: ApprovalDecision, request: GrantRequest, record: HoldRecord, policy: HoldPolicy, log: Logger) async {
        switch await holds.makeGrant(decision, request: request, record: record, policy: policy) {
        case .failure(let refusal):
            // The Ingress checks the same before publishing: only a tampered or raced decision gets here.
            log.warning("scoped approval not made; the request itself stays approved", metadata: ["why": "\(refusal)"])
            Counter(label: "sluice_grants_total", dimensions: [("event", "refused")]).increment()
        case .success(let grant):
            log.info("scoped approval made", metadata: ["grant_id": "\(grant.grantID)"])
            Counter(label: "sluice_grants_total", dimensions: [("event", "created")]).increment()
            let meta = record.request?.metadata
            var details = [
                "grant_id": grant.grantID, "person": grant.approver.person, "scope_method": grant.scope.method,
                "requester_person": meta?.identity.person ?? "", "expires_ms": "\(grant.expiresAtMillis)",
                "reason": String(grant.reason.prefix(500)),
            ]
            if let path = grant.scope.path { details["scope_path"] = path }
            if let glob = grant.scope.pathGlob { details["scope_path_glob"] = glob }
            if let keys = grant.scope.bodyKeys { details["scope_body_keys"] = keys.joined(separator: ",") }
            if let calls = grant.maxCalls { details["max_calls"] = "\(calls)" }
            await context.audit(AuditEvent(
                kind: .grantCreated, stage: "forwarder", requestID: record.requestID, sessionID: meta?.sessionID ?? record.requestID,
                connection: grant.scope.connection, identity: grant.approver.id, details: details))
            await sendClaims(await holds.claimsDue(await currentOwnership()), log: log)
        }
    }

    /// The held requests this member owns now, for sweeps outside the maintenance loop.
    func currentOwnership() async -> HoldOwnership? {
        guard let count = try? await context.bus.partitionCount(topic: context.topics.inspected) else { return nil }
        return await holdOwnership(partitionCount: count)
    }

    /// Publishes claims (each to its grant's partition of `approvals`).
    func sendClaims(_ claims: [GrantClaim], log: Logger) async {
        for claim in claims {
            log.info("claiming a scoped approval", metadata: ["grant_id": "\(claim.grantID)", "claimed_request_id": "\(claim.requestID)"])
            _ = await publishReliably("grant claim", log: log) { try await context.bus.publish(try context.codec.grantClaim(claim)) }
        }
    }

    /// A claim reached the grant's owner: counts the use and approves the request in the
    /// grant's name, or leaves it held.
    func processGrantClaim(_ message: BusMessage) async -> Bool {
        let claim: GrantClaim
        do { claim = try context.codec.open(GrantClaim.self, from: message) } catch {
            await context.deadletter(message, reason: "\(error)")
            return true
        }
        var log = logger
        log[metadataKey: "grant_id"] = "\(claim.grantID)"
        log[metadataKey: "request_id"] = "\(claim.requestID)"
        let (outcome, persisted) = await holds.claim(claim)
        guard persisted else { return false }
        let grant: ApprovalGrant
        switch outcome {
        case .refused(let why):
            log.info("scoped approval does not release the request", metadata: ["why": "\(why)"])
            return true
        case .repeated(let g):
            grant = g
        case .accepted(let g):
            grant = g
            Counter(label: "sluice_grants_total", dimensions: [("event", "released")]).increment()
        }
        // Deterministic id: a repeated claim publishes the same decision again, which the
        // request's owner does not count twice.
        let decision = ApprovalDecision(
            requestID: claim.requestID, vote: .approve, approver: grant.approver,
            reason: "scoped approval \(grant.grantID)" + (grant.reason.isEmpty ? "" : ": \(grant.reason)"),
            decisionID: "\(grant.grantID)/\(claim.requestID)", grantID: grant.grantID)
        return await publishReliably("grant decision", log: log) { try await context.bus.publish(try context.codec.decision(decision)) }
    }

    /// A revocation reached the grant's owner: from now on the grant releases nothing.
    func processGrantRevocation(_ message: BusMessage) async -> Bool {
        let revocation: GrantRevocation
        do { revocation = try context.codec.open(GrantRevocation.self, from: message) } catch {
            await context.deadletter(message, reason: "\(error)")
            return true
        }
        var log = logger
        log[metadataKey: "grant_id"] = "\(revocation.grantID)"
        // The Ingress checked the reviewer; the Forwarder checks again (approver of the grant's connection).
        guard let known = await holds.grantNamed(revocation.grantID) else {
            log.info("revocation of an unknown grant ignored")
            return true
        }
        guard let policy = holdPolicies[known.scope.connection], !Set(policy.approvers).isDisjoint(with: revocation.by.groups) else {
            log.warning("revocation refused: not an approver of the grant's connection", metadata: ["by": "\(revocation.by.id)"])
            return true
        }
        let (revoked, persisted) = await holds.revoke(revocation)
        guard persisted else { return false }
        guard let grant = revoked else { return true }
        log.info("scoped approval revoked", metadata: ["by": "\(revocation.by.id)"])
        Counter(label: "sluice_grants_total", dimensions: [("event", "revoked")]).increment()
        await context.audit(AuditEvent(
            kind: .grantRevoked, stage: "forwarder", requestID: grant.fromRequestID, sessionID: grant.fromRequestID,
            connection: grant.scope.connection, identity: revocation.by.id,
            details: ["grant_id": grant.grantID, "person": revocation.by.person, "uses": "\(grant.uses)"]))
        return true
    }

    /// The trace a decided request is concluded in: continuing the span that parked it when the
    /// record kept it, else the decision's own (a record from before `traceparent` was kept).
    static func heldTrace(_ record: HoldRecord) -> TraceContext {
        if let header = record.traceparent, case .success(let parent) = TraceParent.parse(header) {
            return TraceContext.continuing(parent)
        }
        return TraceContext.current ?? .root()
    }

    /// Audits a refused decision (`approval_refused`): the refusal code, the approver's identity
    /// and person; never the reviewer's reason text.
    private func auditRefusal(_ d: ApprovalDecision, _ record: HoldRecord, refusal: HoldBook.Refusal, why: String) async {
        let meta = record.request?.metadata
        await context.audit(AuditEvent(
            kind: .approvalRefused, stage: "forwarder", requestID: d.requestID, sessionID: meta?.sessionID ?? d.requestID,
            connection: meta?.connection, identity: d.approver.id, decision: .hold, status: 403,
            details: [
                "reason": refusal.rawValue, "person": d.approver.person, "vote": d.vote.rawValue,
                "decision_id": d.decisionID, "why": why, "requester": meta?.identity.id ?? "",
            ]))
    }

    private func auditDecision(_ d: ApprovalDecision, _ record: HoldRecord, result: String, why: String?) async {
        let meta = record.request?.metadata
        var details = [
            "vote": d.vote.rawValue, "result": result, "reason": String(d.reason.prefix(500)),
            "approvals": "\(record.approvingPersons.count)", "approvals_required": "\(record.approvalsRequired)",
            "status": record.status.rawValue, "decision_id": d.decisionID, "person": d.approver.person,
        ]
        if let why { details["not_counted_because"] = why }
        if let grantID = d.grantID { details["grant_id"] = grantID }
        await context.audit(AuditEvent(
            kind: .approvalDecided, stage: "forwarder", requestID: d.requestID, sessionID: meta?.sessionID ?? d.requestID,
            connection: meta?.connection, identity: d.approver.id, decision: .hold, details: details))
    }

    /// Acts on a decided record: delivers an approved one, answers and records a denied one.
    /// `claimed`: the caller already holds the request's ledger claim.
    private func conclude(_ record: HoldRecord, claimed: Bool, log: Logger) async -> Bool {
        guard let inspected = record.request else { return true }
        switch record.status {
        case .approved:
            return await release(record, claimed: claimed)
        case .denied:
            Counter(label: "sluice_holds_total", dimensions: [("event", "denied")]).increment()
            let event = outcomeEvent(.denied, inspected, status: 403, details: ["reason": String((record.denial?.reason ?? "").prefix(500)), "denied_by": record.denial?.approver.id ?? ""])
            let reply = record.response.map { Reply(requestID: record.requestID, sessionID: inspected.metadata.sessionID, response: $0) }
            return await publish(reply: reply, audit: event, meta: inspected.metadata, log: log)
        default:
            return true
        }
    }

    /// Delivers an approved request with a fresh deadline (the connection's timeout, else
    /// `request_timeout`), records the result in `holds`, then answers the caller and
    /// publishes the outcome. `false` when cancelled first (a restart resumes it). Unless the
    /// caller holds the request's ledger claim (`claimed`), it is taken here, so a decision and
    /// a resumed delivery never deliver one request twice, and a request with an outcome is not
    /// delivered again.
    func release(_ record: HoldRecord, claimed: Bool) async -> Bool {
        guard !claimed else { return await releaseClaimed(record) }
        if case .ended(let kind) = await ledger.claim(record.requestID) {
            // Delivered (or failed) by an earlier run that stopped before recording it in `holds`.
            return await holds.finish(record.requestID, status: kind == .delivered ? .delivered : .failed, response: nil)
        }
        let done = await releaseClaimed(record)
        await ledger.release(record.requestID)
        return done
    }

    private func releaseClaimed(_ record: HoldRecord) async -> Bool {
        guard var inspected = record.request else { return true }
        var log = logger
        log[metadataKey: "request_id"] = "\(record.requestID)"
        log[metadataKey: "connection"] = "\(inspected.metadata.connection)"
        let budget = targets[inspected.metadata.connection]?.timeout ?? requestTimeout
        inspected.metadata.deadlineMillis = currentMillis() + budget.milliseconds
        Counter(label: "sluice_holds_total", dimensions: [("event", "released")]).increment()
        guard let outcome = await deliveryOutcome(inspected, log: log) else { return false }
        let status: HoldStatus = outcome.event.kind == .delivered ? .delivered : .failed
        guard await holds.finish(record.requestID, status: status, response: outcome.reply?.response) else { return false }
        return await publish(reply: outcome.reply, audit: outcome.event, meta: inspected.metadata, log: log)
    }
}
