import Detection
import Foundation
import Pipeline

/// Every scoped approval (``ApprovalGrant``) the Forwarder knows, and the rules that make,
/// match, use and revoke them. Pure and synchronous; the caller persists each returned grant to
/// `holds` before acting on it.
///
/// Guarantees:
/// - ``make(_:request:record:policy:now:)`` refuses what ``GrantRequest/refusal(facts:approvalsRequired:globIsValid:)``
///   refuses: a request with a `credential` finding, a connection needing more than one
///   approval, a window over 24 h, more than 1000 calls, an invalid glob.
/// - ``matching(_:now:)`` never returns a grant for facts with a `credential` finding, nor one
///   that is expired, exhausted or revoked; scopes match strictly (see ``GrantScope``).
/// - ``claim(_:now:)`` counts at most `maxCalls` uses, each request once (a repeated claim of
///   a released request is reported as such and not counted again).
/// - Grants read from `holds` merge forward-only: more uses, a revocation, a later update win.
struct GrantBook: Sendable {
    private(set) var grants: [String: ApprovalGrant] = [:]

    /// What a claim did.
    enum ClaimOutcome: Equatable {
        /// One use counted: the grant as it now is.
        case accepted(ApprovalGrant)
        /// The request was released by this grant before (a redelivered claim).
        case repeated(ApprovalGrant)
        /// Not released: why.
        case refused(String)
    }

    typealias Refusal = GrantRefusal

    /// The grant an approving `decision` with a scope makes from the held request in `record`.
    static func make(
        _ decision: ApprovalDecision, request: GrantRequest, record: HoldRecord, policy: HoldPolicy, now: Int64
    ) -> Result<ApprovalGrant, Refusal> {
        guard let inspected = record.request else { return .failure(.credential) }
        let facts = GrantFacts(inspected)
        if let refusal = request.refusal(facts: facts, approvalsRequired: policy.approvalsRequired, globIsValid: PathGlob.isValid) {
            return .failure(refusal)
        }
        let scope = GrantScope(
            connection: facts.connection, person: facts.person, method: facts.method,
            path: request.pathGlob == nil ? facts.path : nil, pathGlob: request.pathGlob,
            bodyKeys: request.sameBodyShape ? (facts.bodyKeys ?? []) : nil)
        return .success(ApprovalGrant(
            grantID: decision.decisionID, scope: scope, approver: decision.approver, reason: decision.reason,
            fromRequestID: record.requestID, createdAtMillis: now, expiresAtMillis: now + request.windowMillis,
            maxCalls: request.maxCalls))
    }

    /// Whether `scope` covers `facts` (the credential rule aside).
    static func matches(_ scope: GrantScope, _ facts: GrantFacts) -> Bool {
        guard scope.connection == facts.connection, scope.person == facts.person, scope.method == facts.method else { return false }
        if let keys = scope.bodyKeys, keys != (facts.bodyKeys ?? []) || facts.bodyKeys == nil { return false }
        if let path = scope.path { return path == facts.path }
        guard let glob = scope.pathGlob else { return false }
        return PathGlob.matches(glob, facts.path)
    }

    /// Active grants covering `facts`, oldest first; none for a request with a credential finding.
    func matching(_ facts: GrantFacts, now: Int64) -> [ApprovalGrant] {
        guard !facts.credential else { return [] }
        return grants.values
            .filter { $0.state(now: now) == .active && Self.matches($0.scope, facts) }
            .sorted { ($0.createdAtMillis, $0.grantID) < ($1.createdAtMillis, $1.grantID) }
    }

    func grant(_ id: String) -> ApprovalGrant? { grants[id] }

    /// Adds a grant this Forwarder made.
    mutating func add(_ grant: ApprovalGrant) { grants[grant.grantID] = grant }

    /// Merges a grant read from `holds`; whether it changed the book.
    @discardableResult
    mutating func merge(_ incoming: ApprovalGrant) -> Bool {
        if let current = grants[incoming.grantID], !incoming.isAhead(of: current) { return false }
        grants[incoming.grantID] = incoming
        return true
    }

    mutating func remove(_ id: String) { grants[id] = nil }

    /// Counts one use of the claimed grant for the claimed request, if the grant allows it.
    mutating func claim(_ claim: GrantClaim, now: Int64) -> ClaimOutcome {
        guard var grant = grants[claim.grantID] else { return .refused("unknown grant") }
        if grant.released.contains(claim.requestID) { return .repeated(grant) }
        let state = grant.state(now: now)
        guard state == .active else { return .refused("grant \(state.rawValue)") }
        guard !claim.facts.credential else { return .refused("the request has a credential finding") }
        guard Self.matches(grant.scope, claim.facts) else { return .refused("outside the grant's scope") }
        grant.uses += 1
        grant.released.append(claim.requestID)
        if grant.released.count > ApprovalGrant.releasedKept { grant.released.removeFirst(grant.released.count - ApprovalGrant.releasedKept) }
        grant.updatedAtMillis = now
        grants[grant.grantID] = grant
        return .accepted(grant)
    }

    /// Revokes a grant (from then on it releases nothing); `nil` when unknown or already revoked.
    mutating func revoke(_ revocation: GrantRevocation, now: Int64) -> ApprovalGrant? {
        guard var grant = grants[revocation.grantID], grant.revokedAtMillis == nil else { return nil }
        grant.revokedAtMillis = now
        grant.revokedBy = revocation.by
        grant.updatedAtMillis = now
        grants[grant.grantID] = grant
        return grant
    }

    /// Forgets grants no longer active (expired, exhausted, revoked) since before `cutoff`;
    /// returns their ids.
    mutating func prune(before cutoff: Int64, now: Int64) -> [String] {
        let ids = grants.values.filter { $0.state(now: now) != .active && max($0.updatedAtMillis, min($0.expiresAtMillis, now)) < cutoff }
            .map(\.grantID)
        for id in ids { grants[id] = nil }
        return ids.sorted()
    }
}
