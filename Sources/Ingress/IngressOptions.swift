import Foundation

/// Per-process settings of an Ingress instance that are not in the configuration file.
///
/// `instanceID` is the key of this instance's messages on `replies`; it must be unique
/// among running Ingress instances (the default is a fresh lowercase UUID with an `ingress-` prefix).
public struct IngressOptions: Sendable {
    /// The `replies` key this instance reads; also the `replyTo` of every request it publishes.
    public var instanceID: String
    /// Requests accepted and awaiting a reply at most at once; beyond it callers get 429.
    public var maxInFlight: Int
    /// How long after a request's deadline the Ingress still waits for its reply before answering 504.
    public var replyGrace: Duration
    /// The least time between two JWKS fetches triggered by an unknown `kid`.
    public var jwksMinRefreshInterval: Duration
    /// The time limit of one JWKS fetch.
    public var jwksFetchTimeout: Duration
    /// How long `POST /v1/approvals/<id>/approve|deny` waits for the Forwarder to record the
    /// decision in `holds` before answering with the state it knows.
    public var decisionEcho: Duration = .seconds(5)

    public init(
        instanceID: String = "ingress-" + UUID().uuidString.lowercased(),
        maxInFlight: Int = 1024,
        replyGrace: Duration = .seconds(2),
        jwksMinRefreshInterval: Duration = .seconds(10),
        jwksFetchTimeout: Duration = .seconds(5)
    ) {
        self.instanceID = instanceID
        self.maxInFlight = maxInFlight
        self.replyGrace = replyGrace
        self.jwksMinRefreshInterval = jwksMinRefreshInterval
        self.jwksFetchTimeout = jwksFetchTimeout
    }
}
