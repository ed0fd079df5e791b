import Pipeline

/// How a ``KafkaBus`` connects to Kafka and tunes librdkafka.
///
/// Every librdkafka setting can be passed through ``librdkafka`` (all clients),
/// ``producerSettings`` or ``consumerSettings`` as `key: value` strings, exactly as
/// librdkafka's CONFIGURATION.md spells them, so TLS, SASL and tuning need no code:
///
/// ```swift
/// KafkaBusConfiguration(
///     brokers: "kafka-1:9093,kafka-2:9093",
///     librdkafka: [
///         "security.protocol": "SASL_SSL",
///         "sasl.mechanisms": "SCRAM-SHA-512",
///         "sasl.username": "sluice",
///         "sasl.password": password,
///         "ssl.ca.location": "/etc/sluice/ca.pem",
///     ])
/// ```
///
/// Settings are applied in this order, later ones winning:
/// 1. the bus defaults (``defaultSettings(for:)``),
/// 2. ``librdkafka``,
/// 3. ``producerSettings`` or ``consumerSettings``,
/// 4. the settings the bus's guarantees depend on, which cannot be overridden:
///    consumers always run with `enable.auto.commit=false` and
///    `enable.auto.offset.store=false` (the bus commits explicitly) and get their
///    `group.id` from ``KafkaBus/subscribe(group:topics:pace:)``; `.background` consumers
///    (``ReadPace``) poll with ``backgroundFetchWait``.
public struct KafkaBusConfiguration: Sendable {
    /// Which kind of librdkafka client a setting map is built for.
    public enum ClientRole: Sendable, Hashable {
        case producer
        case consumer
    }

    /// Bootstrap brokers, `host:port[,host:port...]` (librdkafka `bootstrap.servers`).
    public var brokers: String
    /// Prefix of the librdkafka `client.id` of every client of this bus (shows in broker logs and metrics).
    public var clientId: String
    /// librdkafka settings for every client (producer, group consumers, readers).
    public var librdkafka: [String: String]
    /// librdkafka settings for the producer only.
    public var producerSettings: [String: String]
    /// librdkafka settings for consumers (groups and readers) only.
    public var consumerSettings: [String: String]
    /// How long `publish` may take, including retries, before it fails with
    /// `BusError.Kind.timedOut`; sets the producer's `message.timeout.ms`.
    public var publishTimeout: Duration
    /// Deadline for metadata queries and topic creation (including waiting for a
    /// new topic to show up in metadata).
    public var adminTimeout: Duration
    /// Largest message (key, value and headers) the bus can publish and consume.
    /// Sets `message.max.bytes` on every client and `max.message.bytes` on the topics
    /// the bus creates. The default, 8 MiB, leaves room for 1 MiB values and more;
    /// Kafka's own default (1 MB) rejects a 1 MiB value.
    public var maxMessageBytes: Int
    /// Replication factor of the topics the bus creates; `-1` uses the broker's
    /// `default.replication.factor` (needs Kafka 2.4 or later).
    public var replicationFactor: Int
    /// Topic configuration for the topics the bus creates, below each
    /// `TopicSpec.config` (which wins). `max.message.bytes` is added from
    /// ``maxMessageBytes`` unless set here or in the spec.
    public var topicConfig: [String: String]
    /// How many received but not yet consumed messages a subscription buffers
    /// before it pauses fetching (and resumes at half of it).
    public var consumerBufferLimit: Int
    /// Identifies this instance of the application for transactions:
    /// `commit(_:publishing:)` runs on a transactional producer whose
    /// `transactional.id` is `<group>/<instanceID>/<n>` (`n` numbers this bus's open
    /// subscriptions of the group, from 0). Give each instance (pod, stage replica) a
    /// stable id that survives restarts: a restarted instance then fences its dead
    /// predecessor's producer and aborts that producer's open transaction at once,
    /// instead of leaving it open for ``transactionTimeout``. Two live instances must
    /// never share an id (they would fence each other). `nil` (the default): a random
    /// id per `KafkaBus`, unique per process.
    public var instanceID: String?
    /// Whether `commit(_:publishing:)` uses a transaction (default `true`). `false` publishes
    /// the outputs with the bus's idempotent producer, then commits: not atomic (a crash in
    /// between publishes the outputs again when the input is redelivered). Only for brokers
    /// whose transactions cannot be trusted (see docs/kafka.md, Tansu).
    public var transactions: Bool = true
    /// `transaction.timeout.ms` of the transactional producers, and the limit of each
    /// blocking transaction call. The broker aborts a transaction left open longer; until
    /// then, an open transaction of a dead producer blocks `read_committed` consumers of its
    /// partitions (they stop at its first record). Keep it short; the broker caps it at
    /// its `transaction.max.timeout.ms` (15 min by default); values under 1 s are raised to 1 s.
    public var transactionTimeout: Duration
    /// `fetch.wait.max.ms` of `.background` consumers (``ReadPace``): audit, outcome views and
    /// changelogs, which nobody waits on message by message (when the request path's wait is
    /// longer, that one). Request-path consumers keep the default (10 ms) or what the settings
    /// say. Brokers that hold every fetch for the full wait (Tansu) answer 10× fewer idle polls
    /// from these readers at 100 ms.
    public var backgroundFetchWait: Duration = .milliseconds(100)

    public init(
        brokers: String,
        clientId: String = "sluice",
        librdkafka: [String: String] = [:],
        producerSettings: [String: String] = [:],
        consumerSettings: [String: String] = [:],
        publishTimeout: Duration = .seconds(30),
        adminTimeout: Duration = .seconds(30),
        maxMessageBytes: Int = 8 << 20,
        replicationFactor: Int = -1,
        topicConfig: [String: String] = [:],
        consumerBufferLimit: Int = 1000,
        instanceID: String? = nil,
        transactionTimeout: Duration = .seconds(10)
    ) {
        self.brokers = brokers
        self.clientId = clientId
        self.librdkafka = librdkafka
        self.producerSettings = producerSettings
        self.consumerSettings = consumerSettings
        self.publishTimeout = publishTimeout
        self.adminTimeout = adminTimeout
        self.maxMessageBytes = maxMessageBytes
        self.replicationFactor = replicationFactor
        self.topicConfig = topicConfig
        self.consumerBufferLimit = consumerBufferLimit
        self.instanceID = instanceID
        self.transactionTimeout = transactionTimeout
    }

    /// The bus defaults for `role`, before the caller's settings are applied.
    ///
    /// All clients: `bootstrap.servers`, `client.id`, `message.max.bytes`
    /// (``maxMessageBytes``), `log.connection.close=false`.
    ///
    /// Producer: `enable.idempotence=true`, `acks=all`,
    /// `message.timeout.ms` (``publishTimeout``), `partitioner=murmur2_random`
    /// (Java-compatible, the same placement as `Pipeline.partition(forKey:partitions:)`),
    /// `linger.ms=1`.
    ///
    /// Consumer: `session.timeout.ms=6000`, `heartbeat.interval.ms=1000` (fast
    /// rebalances; librdkafka's defaults take tens of seconds),
    /// `auto.offset.reset=earliest` (a new group starts at the oldest message),
    /// `fetch.wait.max.ms=10` (a gateway waits on replies: keep idle fetch latency low; some
    /// Kafka-protocol brokers hold every fetch for the full wait), `enable.partition.eof=false`,
    /// `isolation.level=read_committed` (outputs of open or aborted transactions are never
    /// delivered; librdkafka's default too, made explicit because atomic
    /// `commit(_:publishing:)` depends on it).
    public func defaultSettings(for role: ClientRole) -> [String: String] {
        var settings: [String: String] = [
            "bootstrap.servers": brokers,
            "client.id": clientId,
            "message.max.bytes": String(maxMessageBytes),
            "log.connection.close": "false",
        ]
        switch role {
        case .producer:
            settings["enable.idempotence"] = "true"
            settings["acks"] = "all"
            settings["message.timeout.ms"] = String(max(publishTimeout.milliseconds, 1))
            settings["partitioner"] = "murmur2_random"
            settings["linger.ms"] = "1"
        case .consumer:
            settings["session.timeout.ms"] = "6000"
            settings["heartbeat.interval.ms"] = "1000"
            settings["auto.offset.reset"] = "earliest"
            settings["fetch.wait.max.ms"] = "10"
            settings["enable.partition.eof"] = "false"
            settings["isolation.level"] = "read_committed"
        }
        return settings
    }

    /// The complete librdkafka settings for a client of `role`, in the order
    /// described on ``KafkaBusConfiguration``. `groupID` is set for consumers.
    /// A `.background` consumer's `fetch.wait.max.ms` is ``backgroundFetchWait``, or the
    /// request path's wait when that is longer.
    func settings(
        for role: ClientRole, groupID: String? = nil, clientSuffix: String? = nil, pace: ReadPace = .requestPath
    ) -> [String: String] {
        var settings = defaultSettings(for: role)
        settings.merge(librdkafka) { _, new in new }
        settings.merge(role == .producer ? producerSettings : consumerSettings) { _, new in new }
        if let clientSuffix, let id = settings["client.id"] { settings["client.id"] = "\(id)-\(clientSuffix)" }
        if role == .consumer, pace == .background {
            // Never polled more often than the request path (a broker may need long waits).
            let requestPath = settings["fetch.wait.max.ms"].flatMap { Int32($0) } ?? 0
            settings["fetch.wait.max.ms"] = String(max(backgroundFetchWait.milliseconds, requestPath, 1))
        }
        if role == .consumer {
            settings["enable.auto.commit"] = "false"
            settings["enable.auto.offset.store"] = "false"
            if let groupID { settings["group.id"] = groupID }
        }
        return settings
    }

    /// What a transactional producer adds to the producer settings (and which cannot be
    /// overridden): `transactional.id`, `transaction.timeout.ms` (``transactionTimeout``)
    /// and `message.timeout.ms` no longer than it (librdkafka requires it).
    func transactionalSettings(transactionalID: String) -> [String: String] {
        let transactionMillis = max(transactionTimeout.milliseconds, 1000)
        let messageMillis = min(max(publishTimeout.milliseconds, 1), transactionMillis)
        return [
            "transactional.id": transactionalID,
            "transaction.timeout.ms": String(transactionMillis),
            "message.timeout.ms": String(messageMillis),
            "enable.idempotence": "true",
            "acks": "all",
        ]
    }
}
