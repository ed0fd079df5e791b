import Foundation

/// One step of a session, published on `audit` in clear JSON. It never holds a body,
/// a header value or a secret: findings are rule, location and fingerprint only.
public struct AuditEvent: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable, Hashable {
        case requestReceived = "request_received"
        case requestRejected = "request_rejected"
        case inspected
        case delivered
        case blocked
        case denied
        case expired
        case failed
        case approvalRequested = "approval_requested"
        case approvalDecided = "approval_decided"
        case responseMasked = "response_masked"
        /// An approval attempt the gateway refused (`details.reason`: `self_approval`,
        /// `forbidden`, ...); `identity` is the approver, `details.person` their person. Never the
        /// reviewer's reason text.
        case approvalRefused = "approval_refused"
        /// A retry with the caller's `Idempotency-Key` answered with the first request's outcome
        /// (`details.first_request_id`); nothing was published or delivered for it.
        case idempotentReplay = "idempotent_replay"
        /// A sink's write failed after it had been delivering (the start of an outage; one per
        /// outage). `stage` is `recorder`; `details`: `sink` (its label), `error`. Sessionless:
        /// `requestID` and `sessionID` are the event's own fresh id.
        case sinkFailed = "sink_failed"
        /// A sink took a batch again after failing; `details`: `sink`, `failed_for_ms`,
        /// `failed_attempts`, `dropped_events` (during the outage).
        case sinkRecovered = "sink_recovered"
        /// Events a sink will never get: it was down for longer than its `max_behind`, so the
        /// Recorder moved its cursor past them. `details`: `sink`, `events` (since the last such
        /// event), `first_event_id`, `last_event_id`, `max_behind_ms`.
        case sinkEventsDropped = "sink_events_dropped"
        /// A stage process started with a configuration (a restart is how a new configuration
        /// takes effect: one event per start). `stage` is the command (`run`, `ingress`,
        /// `inspector`, `forwarder`, `recorder`); `details`: `config_sha256` (hex SHA-256 of the
        /// file's bytes as read), `config_path`, `stages` (comma list), `version`, `instance`.
        /// Never a configuration value. Sessionless: `requestID` and `sessionID` are the event's
        /// own fresh id.
        case configLoaded = "config_loaded"
        /// A scoped approval was made (``ApprovalGrant``): `requestID` the request it was made
        /// from, `identity` the approver; `details`: `grant_id`, `person`, `scope_method`,
        /// `scope_path` or `scope_path_glob`, `scope_body_keys`, `requester_person`,
        /// `expires_ms`, `max_calls`. Each call it releases is its own `approval_decided` with
        /// `details.grant_id`.
        case grantCreated = "grant_created"
        /// A scoped approval was revoked; `details`: `grant_id`, `person`, `uses`.
        case grantRevoked = "grant_revoked"
    }

    public var kind: Kind
    public var eventID: String
    public var timeMillis: Int64
    /// The stage that emitted it: `ingress`, `inspector`, `forwarder`, `recorder` (`run` for a
    /// `config_loaded` of `sluice run`).
    public var stage: String
    public var requestID: String
    public var sessionID: String
    public var connection: String?
    public var identity: String?
    public var method: String?
    /// The path below the connection, with findings masked.
    public var path: String?
    public var decision: Decision?
    public var rules: [String]?
    public var reasons: [String]?
    public var findings: [FindingSummary]?
    public var status: Int?
    public var durationMillis: Int64?
    /// Extra facts (bytes, attempts, error text); never payload content.
    public var details: [String: String]?

    public init(
        kind: Kind, stage: String, requestID: String, sessionID: String, connection: String? = nil,
        identity: String? = nil, method: String? = nil, path: String? = nil, decision: Decision? = nil,
        rules: [String]? = nil, reasons: [String]? = nil, findings: [FindingSummary]? = nil, status: Int? = nil,
        durationMillis: Int64? = nil, details: [String: String]? = nil, timeMillis: Int64 = currentMillis(),
        eventID: String = UUID().uuidString.lowercased()
    ) {
        self.kind = kind
        self.eventID = eventID
        self.timeMillis = timeMillis
        self.stage = stage
        self.requestID = requestID
        self.sessionID = sessionID
        self.connection = connection
        self.identity = identity
        self.method = method
        self.path = path
        self.decision = decision
        self.rules = rules
        self.reasons = reasons
        self.findings = findings
        self.status = status
        self.durationMillis = durationMillis
        self.details = details
    }

    enum CodingKeys: String, CodingKey {
        case kind, stage, connection, identity, method, path, decision, rules, reasons, findings, status, details
        case eventID = "event_id"
        case timeMillis = "time_ms"
        case requestID = "request_id"
        case sessionID = "session_id"
        case durationMillis = "duration_ms"
    }

    /// Whether this event ends the request: exactly one such event per accepted request (invariant 8).
    public var isOutcome: Bool {
        switch kind {
        case .delivered, .blocked, .denied, .expired, .failed: true
        default: false
        }
    }
}
