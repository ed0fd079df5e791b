import Foundation

/// A scoped approval: a reviewer, approving one held request, pre-approves the calls like it —
/// the same person, connection, method and path (or path glob), optionally the same JSON body
/// keys — for a time window and at most a number of calls.
///
/// Lives in the `holds` changelog under the key `grant:<id>` (sealed), written only by the
/// Forwarder, like hold records; the Ingress reads it to list grants.
///
/// Guarantees (enforced by the Forwarder's `GrantBook`, checked again by the Ingress):
/// - A grant never covers a request with a finding of class `credential`: a secret is never
///   pre-approved (neither the request it is made from nor any call it releases).
/// - Only from a connection whose `approvals_required` is 1 (one reviewer cannot stand in for
///   several), by an approver of that connection, never the requester's person.
/// - Uses are counted by one writer (the Forwarder that owns the grant's partition of
///   `approvals`), so `maxCalls` is exact with any number of Forwarders.
public struct ApprovalGrant: Codable, Sendable, Hashable {
    public var grantID: String
    public var scope: GrantScope
    /// The reviewer who granted it: each call it releases is approved in their name.
    public var approver: CallerIdentity
    public var reason: String
    /// The held request it was granted from.
    public var fromRequestID: String
    public var createdAtMillis: Int64
    public var expiresAtMillis: Int64
    /// At most this many calls (beyond the one it was granted from); `nil`: any number in the window.
    public var maxCalls: Int?
    /// Calls released so far.
    public var uses: Int
    /// The request ids released, oldest first (the last ``releasedKept``).
    public var released: [String]
    public var revokedAtMillis: Int64?
    public var revokedBy: CallerIdentity?
    public var updatedAtMillis: Int64

    /// How many released request ids a grant keeps.
    public static let releasedKept = 100

    public init(
        grantID: String, scope: GrantScope, approver: CallerIdentity, reason: String, fromRequestID: String,
        createdAtMillis: Int64, expiresAtMillis: Int64, maxCalls: Int?
    ) {
        self.grantID = grantID
        self.scope = scope
        self.approver = approver
        self.reason = reason
        self.fromRequestID = fromRequestID
        self.createdAtMillis = createdAtMillis
        self.expiresAtMillis = expiresAtMillis
        self.maxCalls = maxCalls
        self.uses = 0
        self.released = []
        self.revokedAtMillis = nil
        self.revokedBy = nil
        self.updatedAtMillis = createdAtMillis
    }

    /// Where a grant stands.
    public enum State: String, Sendable {
        case active, expired, exhausted, revoked
    }

    public func state(now: Int64) -> State {
        if revokedAtMillis != nil { return .revoked }
        if let maxCalls, uses >= maxCalls { return .exhausted }
        if now >= expiresAtMillis { return .expired }
        return .active
    }

    /// The merge rule for records read from `holds`: revoked over not, then more uses, then a
    /// later update. Every change the owner makes raises this key, so grants only move forward.
    public func isAhead(of current: ApprovalGrant) -> Bool {
        func key(_ g: ApprovalGrant) -> (Int, Int, Int64) { (g.revokedAtMillis == nil ? 0 : 1, g.uses, g.updatedAtMillis) }
        return key(self) > key(current)
    }

    /// The key of a grant's record in the `holds` changelog.
    public static func changelogKey(_ grantID: String) -> String { keyPrefix + grantID }
    public static let keyPrefix = "grant:"
}

/// Which calls a grant covers. Matching is strict: the canonical path as delivered, compared
/// case-sensitively (a grant is a permission: when in doubt, the call is held as usual).
public struct GrantScope: Codable, Sendable, Hashable {
    public var connection: String
    /// The requester's person (``CallerIdentity/personKey``), whatever identity they call with.
    public var person: String
    /// Upper case.
    public var method: String
    /// The exact canonical path, when no glob was given.
    public var path: String?
    /// A path glob (`*` within a segment, `**` across), as `policy.hold.paths` writes them.
    public var pathGlob: String?
    /// The sorted top-level keys a JSON object body must have exactly; `nil`: any body.
    public var bodyKeys: [String]?

    public init(connection: String, person: String, method: String, path: String?, pathGlob: String?, bodyKeys: [String]?) {
        self.connection = connection
        self.person = person
        self.method = method.uppercased()
        self.path = path
        self.pathGlob = pathGlob
        self.bodyKeys = bodyKeys
    }
}

/// What a grant looks at in a held request: no body, no values.
public struct GrantFacts: Codable, Sendable, Hashable {
    public var connection: String
    public var person: String
    public var method: String
    public var path: String
    /// Sorted top-level keys of a JSON object body; `nil` for any other body.
    public var bodyKeys: [String]?
    /// Whether the request has a finding of class `credential`.
    public var credential: Bool

    public init(connection: String, person: String, method: String, path: String, bodyKeys: [String]?, credential: Bool) {
        self.connection = connection
        self.person = person
        self.method = method.uppercased()
        self.path = path
        self.bodyKeys = bodyKeys
        self.credential = credential
    }

    /// The facts of a held request.
    public init(_ inspected: InspectedRequest) {
        self.init(
            connection: inspected.metadata.connection, person: inspected.metadata.identity.personKey,
            method: inspected.request.method, path: inspected.request.path, bodyKeys: Self.bodyKeys(inspected.request.body),
            credential: inspected.findings.contains { $0.ruleClass == "credential" })
    }

    /// The sorted top-level keys of `body` when it is a JSON object (at most 1 MiB read), else `nil`.
    public static func bodyKeys(_ body: Data) -> [String]? {
        guard !body.isEmpty, body.count <= 1 << 20,
            let object = (try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])) as? [String: Any]
        else { return nil }
        return object.keys.sorted()
    }
}

/// What a reviewer asks for when approving with a scope (on the decision that approves).
public struct GrantRequest: Codable, Sendable, Hashable {
    /// How long the grant lasts from its creation.
    public var windowMillis: Int64
    /// At most this many further calls; `nil`: any number within the window.
    public var maxCalls: Int?
    /// A path glob; `nil`: the held request's exact path.
    public var pathGlob: String?
    /// Whether calls must have the held request's JSON body keys.
    public var sameBodyShape: Bool

    public init(windowMillis: Int64, maxCalls: Int?, pathGlob: String?, sameBodyShape: Bool) {
        self.windowMillis = windowMillis
        self.maxCalls = maxCalls
        self.pathGlob = pathGlob
        self.sameBodyShape = sameBodyShape
    }

    /// The longest window and the most calls a grant may have.
    public static let maxWindowMillis: Int64 = 24 * 3_600_000
    public static let maxCallsLimit = 1000

    /// Why this grant may not be made for a request with `facts` on a connection needing
    /// `approvalsRequired` approvals; `nil` when it may. The Ingress checks it before publishing,
    /// the Forwarder again before making the grant. `globIsValid` checks a path glob.
    public func refusal(facts: GrantFacts, approvalsRequired: Int, globIsValid: (String) -> Bool) -> GrantRefusal? {
        if facts.credential { return .credential }
        if approvalsRequired > 1 { return .severalApprovalsRequired(approvalsRequired) }
        if windowMillis < 1000 || windowMillis > Self.maxWindowMillis { return .window }
        if let calls = maxCalls, calls < 1 || calls > Self.maxCallsLimit { return .calls }
        if let glob = pathGlob, !globIsValid(glob) { return .glob(glob) }
        return nil
    }
}

/// Why a scoped approval may not be made.
public enum GrantRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    case credential
    case severalApprovalsRequired(Int)
    case window
    case calls
    case glob(String)

    public var description: String {
        switch self {
        case .credential: "the request has a credential finding: a secret is never pre-approved"
        case .severalApprovalsRequired(let n): "the connection needs \(n) approvals: one reviewer cannot pre-approve calls for several"
        case .window: "the window must be between 1 second and 24 hours"
        case .calls: "calls must be between 1 and \(GrantRequest.maxCallsLimit)"
        case .glob(let g): "\"\(g)\" is not a path glob (it starts with / and uses * within a segment, ** across)"
        }
    }
}

/// On `approvals`, keyed by grant id: a Forwarder asks the grant's owner to release a held
/// request under it. The owner counts the use and, if the grant allows it, publishes the
/// approving decision for the request.
public struct GrantClaim: Codable, Sendable, Hashable {
    public var grantID: String
    public var requestID: String
    public var facts: GrantFacts
    public var claimedAtMillis: Int64

    public init(grantID: String, requestID: String, facts: GrantFacts, claimedAtMillis: Int64 = currentMillis()) {
        self.grantID = grantID
        self.requestID = requestID
        self.facts = facts
        self.claimedAtMillis = claimedAtMillis
    }
}

/// On `approvals`, keyed by grant id: a reviewer revokes a grant.
public struct GrantRevocation: Codable, Sendable, Hashable {
    public var grantID: String
    public var by: CallerIdentity
    public var atMillis: Int64

    public init(grantID: String, by: CallerIdentity, atMillis: Int64 = currentMillis()) {
        self.grantID = grantID
        self.by = by
        self.atMillis = atMillis
    }
}

extension MessageCodec {
    /// Message kinds on `approvals` besides `decision`.
    public static let grantClaimKind = "grant-claim"
    public static let grantRevocationKind = "grant-revoke"
    /// The kind of a grant's record on `holds`.
    public static let grantKind = "grant"

    /// A claim on `approvals`, keyed (and sealed) by grant id: every claim of one grant goes to
    /// one partition, so one Forwarder counts its uses.
    public func grantClaim(_ c: GrantClaim) throws -> OutgoingMessage {
        try sealed(c, kind: Self.grantClaimKind, topic: topics.approvals, key: c.grantID, requestID: c.grantID)
    }

    /// A revocation on `approvals`, keyed by grant id (the same partition as its claims).
    public func grantRevocation(_ r: GrantRevocation) throws -> OutgoingMessage {
        try sealed(r, kind: Self.grantRevocationKind, topic: topics.approvals, key: r.grantID, requestID: r.grantID)
    }

    /// A grant's record on `holds`, under `grant:<id>`.
    public func grant(_ g: ApprovalGrant) throws -> OutgoingMessage {
        try sealed(g, kind: Self.grantKind, topic: topics.holds, key: ApprovalGrant.changelogKey(g.grantID), requestID: g.grantID)
    }

    /// The kind header of a message, if any.
    public static func kind(of message: BusMessage) -> String? {
        message.header(MessageHeader.kind).map { String(decoding: $0, as: UTF8.self) }
    }
}
