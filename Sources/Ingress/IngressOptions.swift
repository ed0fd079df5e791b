import Foundation

/// Per-process settings of an Ingress instance that are not in the configuration file (the
/// limits — `max_in_flight`, `max_in_flight_per_identity`, `body_read_timeout`,
/// `header_read_timeout`, `max_held_per_identity` — are).
///
/// `instanceID` is the key of this instance's messages on `replies`; it must be unique
/// among running Ingress instances (the default is a fresh lowercase UUID with an `ingress-` prefix).
public struct IngressOptions: Sendable {
    /// The `replies` key this instance reads; also the `replyTo` of every request it publishes.
    public var instanceID: String
    /// How long after a request's deadline the Ingress still waits for its reply before answering 504.
    public var replyGrace: Duration
    /// The least time between two JWKS fetches triggered by an unknown `kid`.
    public var jwksMinRefreshInterval: Duration
    /// The time limit of one JWKS fetch.
    public var jwksFetchTimeout: Duration
    /// How long `POST /v1/approvals/<id>/approve|deny` waits for the Forwarder to record the
    /// decision in `holds` before answering with the state it knows.
    public var decisionEcho: Duration = .seconds(5)
    /// The key that derives the upstream's `Idempotency-Key` from a caller's own (HMAC-SHA256;
    /// `sluice` passes `sealing.fingerprint_key`). Empty: a random key per process.
    public var idempotencySecret: [UInt8] = []
    /// Callers' `Idempotency-Key`s remembered at most at once (the oldest finished are forgotten first).
    public var idempotencyMaxEntries: Int = 100_000

    public init(
        instanceID: String = "ingress-" + UUID().uuidString.lowercased(),
        replyGrace: Duration = .seconds(2),
        jwksMinRefreshInterval: Duration = .seconds(10),
        jwksFetchTimeout: Duration = .seconds(5)
    ) {
        self.instanceID = instanceID
        self.replyGrace = replyGrace
        self.jwksMinRefreshInterval = jwksMinRefreshInterval
        self.jwksFetchTimeout = jwksFetchTimeout
    }
}
