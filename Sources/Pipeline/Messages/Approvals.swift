import Foundation

/// On `approvals`: one reviewer's decision on a held request, keyed by request id (so it is
/// co-partitioned with the request on `inspected`). Sealed like every envelope.
///
/// The Ingress publishes it after authenticating the reviewer; the Forwarder is the
/// authority and checks it again (approver group, not the requester's person, request still
/// pending, this person not counted yet).
public struct ApprovalDecision: Codable, Sendable, Hashable {
    public enum Vote: String, Codable, Sendable, Hashable {
        case approve, deny
    }

    /// Unique per decision; lets the API see its own decision in the `holds` changelog.
    public var decisionID: String
    public var requestID: String
    public var vote: Vote
    /// The reviewer as the Ingress authenticated them.
    public var approver: CallerIdentity
    /// The reviewer's free-text reason (may be empty). Shown to reviewers and the caller on denial.
    public var reason: String
    public var decidedAtMillis: Int64
    /// An approval that also pre-approves calls like this one (a scoped approval): the
    /// Forwarder creates the grant, under this decision's id, when the approval releases it.
    public var grant: GrantRequest?
    /// Set on the approval a grant's owner publishes for a call the grant released.
    public var grantID: String?

    public init(
        requestID: String, vote: Vote, approver: CallerIdentity, reason: String,
        decidedAtMillis: Int64 = currentMillis(), decisionID: String = UUID().uuidString.lowercased(),
        grant: GrantRequest? = nil, grantID: String? = nil
    ) {
        self.grant = grant
        self.grantID = grantID
        self.decisionID = decisionID
        self.requestID = requestID
        self.vote = vote
        self.approver = approver
        self.reason = reason
        self.decidedAtMillis = decidedAtMillis
    }
}

/// Where a held request stands.
public enum HoldStatus: String, Codable, Sendable, Hashable, CaseIterable {
    /// Waiting for decisions.
    case pending
    /// Enough distinct approvals; delivery is under way (a restart resumes it).
    case approved
    /// One approver denied it; never delivered.
    case denied
    /// `hold_timeout` passed first; never delivered.
    case expired
    /// Approved and delivered; `response` is the upstream's (masked) answer.
    case delivered
    /// Approved, but delivery failed; `response` is the 502/504 the caller gets.
    case failed

    /// Whether the request has its final outcome.
    public var isFinal: Bool {
        switch self {
        case .pending, .approved: false
        case .denied, .expired, .delivered, .failed: true
        }
    }
}

/// On `holds`: the latest state of one held request, keyed by request id, sealed. The topic is
/// a changelog (compacted on Kafka): replaying it from the beginning and keeping the last
/// record per key rebuilds every held request and its decisions, so nothing lives only in
/// memory. Only the Forwarder writes it; the Ingress reads it to answer callers and reviewers.
///
/// `request` is `nil` for a record that only keeps decisions which arrived before the held
/// request itself (possible on Kafka); such a record is invisible to the APIs.
public struct HoldRecord: Codable, Sendable, Hashable {
    public var requestID: String
    public var request: InspectedRequest?
    public var status: HoldStatus
    /// Every accepted decision, in the order the Forwarder recorded them.
    public var decisions: [ApprovalDecision]
    /// Distinct approvals needed (the connection's `approvals_required` when parked).
    public var approvalsRequired: Int
    public var createdAtMillis: Int64
    /// After this the request expires (`hold_timeout` after parking).
    public var expiresAtMillis: Int64
    public var updatedAtMillis: Int64
    /// The answer for the caller once final: the delivered response (masked), or the
    /// 403 denied / 410 expired / 502-504 failed JSON error.
    public var response: HTTPResponseData?
    /// The `traceparent` of the Forwarder's span that parked the request (absent in records
    /// written before it existed): its delivery after approval continues that trace.
    public var traceparent: String?

    public init(
        requestID: String, request: InspectedRequest?, status: HoldStatus = .pending, decisions: [ApprovalDecision] = [],
        approvalsRequired: Int, createdAtMillis: Int64, expiresAtMillis: Int64, updatedAtMillis: Int64? = nil,
        response: HTTPResponseData? = nil, traceparent: String? = nil
    ) {
        self.traceparent = traceparent
        self.requestID = requestID
        self.request = request
        self.status = status
        self.decisions = decisions
        self.approvalsRequired = approvalsRequired
        self.createdAtMillis = createdAtMillis
        self.expiresAtMillis = expiresAtMillis
        self.updatedAtMillis = updatedAtMillis ?? createdAtMillis
        self.response = response
    }

    /// Distinct identities that approved, in order of their first approval (for display).
    public var approvers: [String] {
        var seen: [String] = []
        for d in decisions where d.vote == .approve && !seen.contains(d.approver.id) { seen.append(d.approver.id) }
        return seen
    }

    /// Distinct persons that approved (``CallerIdentity/personKey``), in order of their first
    /// approval: what `approvals_required` counts (two identities of one person count once).
    public var approvingPersons: [String] {
        var seen: [String] = []
        for d in decisions where d.vote == .approve && !seen.contains(d.approver.personKey) { seen.append(d.approver.personKey) }
        return seen
    }

    /// The first deny, if any.
    public var denial: ApprovalDecision? { decisions.first { $0.vote == .deny } }

    /// The identity that made the request.
    public var requester: String? { request?.metadata.identity.id }

    /// The person who made the request.
    public var requesterPerson: String? { request?.metadata.identity.person }

    /// How much of a held request's (masked) body reviewers are shown.
    public static let previewBytes = 512

    /// The record with the held request's body cut to the reviewers' preview plus one byte (so
    /// that truncation stays visible). What every holder keeps of a request it will never
    /// deliver: the Ingress for every record, the Forwarder once a record is final.
    public func withBodyCutToPreview() -> HoldRecord {
        guard var held = request, held.request.body.count > Self.previewBytes + 1 else { return self }
        var r = self
        held.request.body = Data(held.request.body.prefix(Self.previewBytes + 1))
        r.request = held
        return r
    }
}

extension MessageCodec {
    /// A sealed decision on `approvals`, keyed by request id.
    public func decision(_ d: ApprovalDecision) throws -> OutgoingMessage {
        try sealed(d, kind: "decision", topic: topics.approvals, key: d.requestID, requestID: d.requestID)
    }

    /// A sealed hold record on `holds`, keyed by request id.
    public func hold(_ r: HoldRecord) throws -> OutgoingMessage {
        try sealed(r, kind: "hold", topic: topics.holds, key: r.requestID, requestID: r.requestID)
    }

    /// Removes a request from the `holds` changelog: an empty value under its key.
    public func holdTombstone(requestID: String) -> OutgoingMessage {
        OutgoingMessage(
            topic: topics.holds, key: requestID,
            headers: [BusHeader(MessageHeader.requestID, requestID), BusHeader(MessageHeader.kind, "hold")], value: [])
    }
}
