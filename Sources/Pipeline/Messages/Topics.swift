/// The names of Sluice's topics, under a configurable prefix (default `sluice.`).
public struct Topics: Sendable, Hashable {
    public let prefix: String

    public init(prefix: String = "sluice.") { self.prefix = prefix }

    /// Ingress → Inspector (group), key: session id; body and headers sealed.
    public var requests: String { prefix + "requests" }
    /// Inspector → Forwarder (group), key: request id; verdict and masked, sealed request.
    public var inspected: String { prefix + "inspected" }
    /// Approvals API → Forwarder, key: request id; co-partitioned with `inspected`.
    public var approvals: String { prefix + "approvals" }
    /// Forwarder/Inspector → Ingress, key: ingress instance id; each Ingress reads all partitions.
    public var replies: String { prefix + "replies" }
    /// Every stage → Recorder (group), key: session id; JSON events, never a clear-text secret.
    public var audit: String { prefix + "audit" }
    /// Poison messages with the reason, key: the original key.
    public var deadletter: String { prefix + "deadletter" }
    /// Forwarder → Forwarder and Ingress (group-less readers), key: request id; the changelog of
    /// held requests (`HoldRecord`, sealed). Compacted on Kafka: the latest record per request wins.
    public var holds: String { prefix + "holds" }
    /// Every stage that ends a request → Recorder (group) and every ending stage (group-less
    /// readers), key: request id; the outcome ledger (`OutcomeLedger`): the request's outcome
    /// event, clear JSON like `audit`. Compacted, and deleted by age, on Kafka and embedded.
    public var outcomes: String { prefix + "outcomes" }

    /// The consumer group of a stage (`<prefix><stage>`, e.g. `sluice.inspector`), so that two
    /// deployments with different prefixes on one cluster never share a group.
    public func consumerGroup(_ stage: String) -> String { prefix + stage }

    /// Every topic with its partition count (`approvals` and `holds` match `inspected`;
    /// `holds` is a compacted changelog; `outcomes` is compacted and deleted by age).
    public func specs(partitions: Int) -> [TopicSpec] {
        [requests, inspected, approvals, replies, audit, deadletter].map { TopicSpec(name: $0, partitions: partitions) }
            + [
                TopicSpec(name: holds, partitions: partitions, config: ["cleanup.policy": "compact"]),
                TopicSpec(name: outcomes, partitions: partitions, config: ["cleanup.policy": "compact,delete"]),
            ]
    }
}

/// Header names Sluice puts on bus messages.
public enum MessageHeader {
    /// The request id, also the associated data of the sealed value.
    public static let requestID = "sluice-request-id"
    /// The message's type (`request`, `inspected`, `reply`, `audit`, `outcome`, `decision`, `hold`, `holds-marker`, `outcomes-marker`, `deadletter`).
    public static let kind = "sluice-kind"
    /// On `outcomes`: the outcome's kind (`delivered`, `blocked`, ...), so the ledger's readers
    /// learn it without decoding the event. Records written before it existed are decoded.
    public static let outcome = "sluice-outcome"
    /// On `deadletter`: why the message was rejected.
    public static let reason = "sluice-reason"
    /// On `deadletter`: the topic the message came from.
    public static let originalTopic = "sluice-original-topic"
}
