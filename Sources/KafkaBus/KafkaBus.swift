import CRdKafka
import Foundation
import Logging
import Pipeline
import Synchronization

/// The Kafka implementation of `Bus`, over librdkafka.
///
/// - One idempotent producer per bus (`enable.idempotence=true`, `acks=all`):
///   ``publish(_:)`` returns once the message's delivery report says the broker
///   has it.
/// - One librdkafka consumer per subscription: ``subscribe(group:topics:)`` joins a
///   consumer group and commits explicitly (offset + 1 of the committed message's
///   partition); ``read(topic:from:)`` assigns every partition without a group.
/// - ``ensureTopics(_:)`` uses the Admin API; ``partitionCount(topic:)`` metadata.
///
/// Blocking librdkafka calls run on dedicated threads (one poll thread per client,
/// short-lived threads for metadata and admin requests), never on Swift's
/// cooperative pool.
///
/// Call ``shutdown()`` when done: the poll threads keep the clients alive until then.
/// Configuration, defaults and rebalance behaviour: docs/kafka.md.
public final class KafkaBus: Bus {
    public let configuration: KafkaBusConfiguration
    private let logger: Logger
    private let producer: Producer
    private let state = Mutex(State())
    private let shutDown = Completion()

    private struct State {
        var closing = false
        var consumers: [ObjectIdentifier: Consumer] = [:]
        /// Per group, the transactional-id slots (`n` of `<group>/<instanceID>/<n>`)
        /// held by this bus's open subscriptions.
        var transactionalSlots: [String: Set<Int>] = [:]
    }

    /// ``KafkaBusConfiguration/instanceID``, or a random id for this bus.
    private let instanceID: String

    /// Creates the bus and its producer. Connects lazily: an unreachable broker
    /// shows up as publish or admin failures, not here.
    ///
    /// Throws `BusError.Kind.configuration` when librdkafka is older than 2.8.0 (see
    /// ``checkLibrary()``) or rejects a setting (the error names the key).
    public init(configuration: KafkaBusConfiguration, logger: Logger = Logger(label: "sluice.kafka")) throws {
        try Self.checkLibrary()
        self.configuration = configuration
        self.logger = logger
        instanceID = configuration.instanceID ?? "sluice-\(UUID().uuidString.prefix(13).lowercased())"
        producer = try Producer(configuration: configuration, logger: logger)
    }

    // MARK: Library check

    /// The oldest librdkafka the bus supports: 2.8.0.
    public static let minimumLibraryVersion = 0x0208_0000

    /// The librdkafka version loaded at run time, e.g. "2.8.0".
    public static var libraryVersion: String { RDKafkaClient.runtimeVersionString }

    /// Checks the librdkafka loaded at run time: it must be at least 2.8.0 and not
    /// older than the headers this module was compiled against (`RD_KAFKA_VERSION`).
    /// Called by ``init(configuration:logger:)``; call it at start-up to fail early.
    ///
    /// Throws `BusError.Kind.configuration` naming both versions otherwise.
    public static func checkLibrary() throws {
        try checkLibrary(runtime: RDKafkaClient.runtimeVersion, compiled: RDKafkaClient.compiledVersion)
    }

    /// ``checkLibrary()`` with explicit version integers in librdkafka's
    /// `0xMMmmrrpp` format (`pp` is the pre-release byte, `ff` for a final release).
    public static func checkLibrary(runtime: Int, compiled: Int) throws {
        func text(_ v: Int) -> String { "\((v >> 24) & 0xff).\((v >> 16) & 0xff).\((v >> 8) & 0xff)" }
        // Compare major.minor.revision only; the pre-release byte does not matter here.
        let run = runtime & ~0xff, built = compiled & ~0xff
        if run < minimumLibraryVersion {
            throw BusError(.configuration, """
                librdkafka \(text(runtime)) is loaded but KafkaBus needs \(text(minimumLibraryVersion)) or newer \
                (compiled against \(text(compiled))); install a newer librdkafka or point the loader \
                (rpath / LD_LIBRARY_PATH) at it
                """)
        }
        if run < built {
            throw BusError(.configuration, """
                librdkafka \(text(runtime)) is loaded but KafkaBus was compiled against \(text(compiled)); \
                the loader found an older library than the headers used for the build
                """)
        }
    }

    // MARK: Bus

    public func publish(_ message: OutgoingMessage) async throws {
        try await producer.publish(message)
    }

    public func subscribe(group: String, topics: [String], pace: ReadPace) async throws -> BusSubscription {
        try await start(.group(group, topics: topics), pace: pace).subscription
    }

    public func read(topic: String, partitions: [Int]?, from start: StartPosition, pace: ReadPace) async throws -> BusSubscription {
        try await self.start(.reader(topic, start, partitions: partitions), pace: pace).subscription
    }

    public func partitionCount(topic: String) async throws -> Int {
        try checkOpen()
        let client = producer.client, timeout = configuration.adminTimeout
        return try await DedicatedThread.run(name: "kafka-metadata") {
            try client.partitionCount(topic: topic, timeout: timeout)
        }
    }

    /// Creates the missing topics with the Admin API; existing topics are left as
    /// they are (their partition count is not changed). Created topics get
    /// `max.message.bytes` = ``KafkaBusConfiguration/maxMessageBytes`` and
    /// ``KafkaBusConfiguration/topicConfig``, below each spec's own config. Returns
    /// once metadata shows every topic.
    public func ensureTopics(_ topics: [TopicSpec]) async throws {
        try checkOpen()
        let client = producer.client, configuration = configuration
        var defaults = ["max.message.bytes": String(configuration.maxMessageBytes)]
        defaults.merge(configuration.topicConfig) { _, new in new }
        try await DedicatedThread.run(name: "kafka-admin") { [defaults] in
            try client.createTopics(
                topics, defaults: defaults, replicationFactor: configuration.replicationFactor,
                timeout: configuration.adminTimeout)
        }
    }

    /// The group's committed offsets (Admin API `ListConsumerGroupOffsets`, from the producer's
    /// client: nothing joins the group) and each partition's watermarks
    /// (`rd_kafka_query_watermark_offsets`), read in that order: the lag is never under-reported
    /// (a commit between the two reads makes it read high by what was committed). Runs on a dedicated thread,
    /// each request bounded by ``KafkaBusConfiguration/adminTimeout``, at most 5 s (a monitoring
    /// query must not hold up a stage's shutdown; `BusError.Kind.timedOut` or the broker's error
    /// otherwise, naming the group and partition).
    public func lag(group: String, topics: [String]) async throws -> [BusPartition: PartitionLag] {
        try checkOpen()
        let client = producer.client, timeout = min(configuration.adminTimeout, .seconds(5))
        return try await DedicatedThread.run(name: "kafka-lag") {
            try client.lag(group: group, topics: topics, timeout: timeout)
        }
    }

    /// Closes every subscription (leaving their groups), flushes the producer for up
    /// to the publish timeout, then destroys all handles and joins their threads.
    /// Idempotent; concurrent calls all return once shutdown is complete.
    public func shutdown() async {
        let consumers: [Consumer]? = state.withLock { state in
            guard !state.closing else { return nil }
            state.closing = true
            return Array(state.consumers.values)
        }
        guard let consumers else {
            await shutDown.wait()
            return
        }
        await withTaskGroup(of: Void.self) { group in
            for consumer in consumers { group.addTask { await consumer.close() } }
        }
        let producer = producer, flushTimeout = configuration.publishTimeout
        await DedicatedThread.run(name: "kafka-producer-shutdown") { producer.shutdown(flushTimeout: flushTimeout) }
        shutDown.signal()
    }

    /// Transactions run and `commit(_:publishing:)` calls served by the open
    /// subscriptions' transactional producers (for tests and diagnostics).
    var transactionStatistics: TransactionalProducer.Statistics {
        let consumers = state.withLock { Array($0.consumers.values) }
        return consumers.reduce(into: TransactionalProducer.Statistics()) { sum, consumer in
            let s = consumer.transactionStatistics
            sum.transactions += s.transactions
            sum.requests += s.requests
            sum.aborted += s.aborted
        }
    }

    // MARK: Helpers

    private func checkOpen() throws {
        if state.withLock({ $0.closing }) { throw BusError(.closed, "the Kafka bus is shut down") }
    }

    private func start(_ mode: Consumer.Mode, pace: ReadPace) async throws -> Consumer {
        try checkOpen()
        // Group members get the smallest free transactional-id slot of their group, so
        // a restarted instance reuses its predecessor's ids (and fences its producers).
        let slot: (group: String, n: Int)?
        if case .group(let group, _) = mode {
            slot = state.withLock { state in
                var n = 0
                while state.transactionalSlots[group, default: []].contains(n) { n += 1 }
                state.transactionalSlots[group, default: []].insert(n)
                return (group, n)
            }
        } else {
            slot = nil
        }
        let transactionalID = slot.map { "\($0.group)/\(instanceID)/\($0.n)" }
        let release: @Sendable () -> Void = { [weak self] in
            guard let slot else { return }
            _ = self?.state.withLock { $0.transactionalSlots[slot.group]?.remove(slot.n) }
        }
        let consumer: Consumer
        do {
            consumer = try await Consumer.start(
                mode, pace: pace, configuration: configuration, transactionalID: transactionalID, logger: logger,
                publish: { [producer] in try await producer.publish($0) }
            ) { [weak self] consumer in
                _ = self?.state.withLock { $0.consumers.removeValue(forKey: ObjectIdentifier(consumer)) }
                release()
            }
        } catch {
            release()
            throw error
        }
        let registered = state.withLock { state -> Bool in
            guard !state.closing else { return false }
            state.consumers[ObjectIdentifier(consumer)] = consumer
            return true
        }
        if !registered {
            await consumer.close()
            throw BusError(.closed, "the Kafka bus is shut down")
        }
        return consumer
    }
}
