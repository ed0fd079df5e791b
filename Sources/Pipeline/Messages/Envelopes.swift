import Foundation

/// Who is calling, as established by the Ingress.
///
/// Guarantees: `id` is namespaced by authentication method (`apikey:<config id>`,
/// `oidc:<sub>`), so identities of different methods never collide; `person` names the human
/// (or owner) behind the identity, and one person may hold several identities. Approvals
/// compare persons, never ids (invariant 5). A message written before persons existed decodes
/// with `person` = `id`.
public struct CallerIdentity: Codable, Sendable, Hashable {
    public var id: String
    public var groups: [String]
    /// How the caller authenticated: `api_key` or `oidc`.
    public var method: String
    /// The person behind this identity (`identities.api_keys[].person`, the OIDC `person_claim`).
    public var person: String

    public init(id: String, groups: [String], method: String, person: String? = nil) {
        self.id = id
        self.groups = groups
        self.method = method
        self.person = person ?? id
    }

    enum CodingKeys: String, CodingKey { case id, groups, method, person }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        groups = try c.decode([String].self, forKey: .groups)
        method = try c.decode(String.self, forKey: .method)
        person = try c.decodeIfPresent(String.self, forKey: .person) ?? id
    }

    /// The person as compared: case-insensitive (`Alice@Example.com` is `alice@example.com`),
    /// so a difference in case never makes two persons out of one.
    public var personKey: String { person.lowercased() }

    /// Whether both identities belong to the same person (a person is never their own reviewer).
    public func isSamePerson(as other: CallerIdentity) -> Bool { personKey == other.personKey }
}

/// What every envelope carries about the request it belongs to.
public struct RequestMetadata: Codable, Sendable, Hashable {
    public var requestID: String
    public var sessionID: String
    public var identity: CallerIdentity
    public var connection: String
    /// When the Ingress accepted the request (ms since the epoch).
    public var receivedAtMillis: Int64
    /// After this (ms since the epoch) the request must never be delivered (invariant 3).
    public var deadlineMillis: Int64
    /// The Ingress instance waiting for the reply (the `replies` key).
    public var replyTo: String
    /// The `Idempotency-Key` the upstream receives when the caller sent its own: hex
    /// HMAC-SHA256(fingerprint key, identity id ‖ 0x00 ‖ caller key), computed by the Ingress.
    /// `nil` when the caller sent none (the Forwarder then uses the request id).
    public var idempotencyKey: String?

    public init(
        requestID: String, sessionID: String, identity: CallerIdentity, connection: String,
        receivedAtMillis: Int64, deadlineMillis: Int64, replyTo: String, idempotencyKey: String? = nil
    ) {
        self.requestID = requestID
        self.sessionID = sessionID
        self.identity = identity
        self.connection = connection
        self.receivedAtMillis = receivedAtMillis
        self.deadlineMillis = deadlineMillis
        self.replyTo = replyTo
        self.idempotencyKey = idempotencyKey
    }

    /// Whether the deadline has passed at `now` (ms since the epoch).
    public func isExpired(now: Int64 = currentMillis()) -> Bool { now >= deadlineMillis }
}

/// On `requests`: a request as received, for inspection.
public struct InspectionRequest: Codable, Sendable, Hashable {
    public var metadata: RequestMetadata
    public var request: HTTPRequestData

    public init(metadata: RequestMetadata, request: HTTPRequestData) {
        self.metadata = metadata
        self.request = request
    }
}

/// The Inspector's decision on a request.
public enum Decision: String, Codable, Sendable, Hashable, CaseIterable {
    /// Nothing found; forwarded as is.
    case allow
    /// Findings masked; forwarded masked.
    case mask
    /// Parked until approved, denied or expired.
    case hold
    /// Never forwarded; the caller gets 403 with the rule that fired.
    case block
}

/// Where a finding was, and what it was — never the secret itself.
public struct FindingSummary: Codable, Sendable, Hashable {
    public var rule: String
    public var ruleClass: String
    public var severity: String
    /// `body`, `query`, `path` or `header:<name>`.
    public var location: String
    public var start: Int
    public var end: Int
    /// First 12 hex characters of HMAC-SHA256(fingerprint key, secret).
    public var fingerprint: String

    enum CodingKeys: String, CodingKey {
        case rule, severity, location, start, end, fingerprint
        case ruleClass = "class"
    }

    public init(rule: String, ruleClass: String, severity: String, location: String, start: Int, end: Int, fingerprint: String) {
        self.rule = rule
        self.ruleClass = ruleClass
        self.severity = severity
        self.location = location
        self.start = start
        self.end = end
        self.fingerprint = fingerprint
    }
}

/// The verdict with its reasons.
public struct Verdict: Codable, Sendable, Hashable {
    public var decision: Decision
    /// Rule ids that fired (block/mask/hold), in order of first finding.
    public var rules: [String]
    /// Human-readable reasons (e.g. the hold clause that matched); never a secret.
    public var reasons: [String]

    public init(decision: Decision, rules: [String] = [], reasons: [String] = []) {
        self.decision = decision
        self.rules = rules
        self.reasons = reasons
    }
}

/// On `inspected`: the verdict and the masked request, for the Forwarder.
public struct InspectedRequest: Codable, Sendable, Hashable {
    public var metadata: RequestMetadata
    public var verdict: Verdict
    public var findings: [FindingSummary]
    /// The request with every finding masked.
    public var request: HTTPRequestData

    public init(metadata: RequestMetadata, verdict: Verdict, findings: [FindingSummary], request: HTTPRequestData) {
        self.metadata = metadata
        self.verdict = verdict
        self.findings = findings
        self.request = request
    }
}

/// A request the Inspector blocked, as the session recording keeps it: masked like the request
/// of an `InspectedRequest`, with its connection.
///
/// Guarantees: `request` is the Inspector's masked copy (every finding masked, the caller's
/// `Authorization` already dropped by the Ingress); never the request as received.
public struct MaskedRequest: Codable, Sendable, Hashable {
    public var connection: String
    /// The request with every finding masked.
    public var request: HTTPRequestData

    public init(connection: String, request: HTTPRequestData) {
        self.connection = connection
        self.request = request
    }
}

/// On `replies`: the answer for a waiting caller.
///
/// Guarantees: only `response` reaches the caller (the Ingress answers with it alone);
/// `blockedRequest` is for the Recorder, and only the Inspector's block reply sets it. A reply
/// written before the field existed (binary format version 1, or JSON without the member)
/// decodes with `blockedRequest` = `nil`.
public struct Reply: Codable, Sendable, Hashable {
    public var requestID: String
    public var sessionID: String
    public var response: HTTPResponseData
    /// A blocked request's masked copy, so that its session recording holds the request that was
    /// blocked as well as the 403 (`recorder.content`); `nil` on every other reply.
    public var blockedRequest: MaskedRequest?

    public init(requestID: String, sessionID: String, response: HTTPResponseData, blockedRequest: MaskedRequest? = nil) {
        self.requestID = requestID
        self.sessionID = sessionID
        self.response = response
        self.blockedRequest = blockedRequest
    }
}

/// Milliseconds since the Unix epoch.
public func currentMillis() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
