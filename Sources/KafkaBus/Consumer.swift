import CRdKafka
import Foundation
import Logging
import Pipeline
import Synchronization

/// What a consumer's rebalance callback, poll thread and `commit` callers share.
final class ConsumerState: Sendable {
    /// Received messages not yet taken by the subscription's iterator.
    let buffer = MessageBuffer()
    let logger: Logger
    /// Partitions currently assigned to this member, each with the offset of the
    /// first message delivered since it was assigned (`nil` until then). The poll
    /// loop and `commit` consult it, so that nothing of a revoked partition is
    /// delivered or committed, and no message delivered during an earlier ownership
    /// of a partition is committed (which could move the group's offset backwards).
    private let assignment = Mutex<[TopicPartition: Int64?]>([:])
    /// Whether the poll thread paused fetching because ``buffer`` is full. Only the
    /// poll thread (loop and rebalance callback) touches it.
    let paused = Atomic<Bool>(false)
    /// Set by the first assignment (a rebalance's, even empty, or a reader's); never cleared:
    /// readiness should not flap through the rebalances of a running group.
    let joined = Atomic<Bool>(false)

    init(logger: Logger) {
        self.logger = logger
    }

    /// Whether `message` may be delivered: its partition is assigned to this member.
    /// Called by the poll loop for each received message, in order.
    func accept(_ message: BusMessage) -> Bool {
        let partition = TopicPartition(topic: message.topic, partition: Int32(message.partition))
        return assignment.withLock { assignment in
            guard let first = assignment[partition] else { return false }
            if first == nil { assignment[partition] = message.offset }
            return true
        }
    }

    /// Whether `message` may be committed: its partition is still assigned and the
    /// message was delivered during the current ownership of that partition.
    func mayCommit(_ message: BusMessage) -> Bool {
        let partition = TopicPartition(topic: message.topic, partition: Int32(message.partition))
        return assignment.withLock { assignment in
            guard let entry = assignment[partition], let first = entry else { return false }
            return message.offset >= first
        }
    }

    /// The partitions assigned now.
    var assignedPartitions: Set<BusPartition> {
        assignment.withLock { Set($0.keys.map { BusPartition(topic: $0.topic, partition: Int($0.partition)) }) }
    }

    /// Records an assignment made outside a rebalance (group-less readers).
    func assigned(_ partitions: [TopicPartition]) {
        assignment.withLock { assignment in
            for partition in partitions { assignment[partition] = .some(nil) }
        }
        joined.store(true, ordering: .releasing)
    }

    /// Records partitions assigned by a rebalance (before the handle takes them).
    /// Returns whether fetching was paused, so that the new partitions must be resumed
    /// (pausing is sticky per partition in librdkafka).
    func rebalanceAssigned(_ partitions: [TopicPartition]) -> Bool {
        assigned(partitions)
        return paused.exchange(false, ordering: .relaxed)
    }

    /// Records partitions revoked by a rebalance, before the handle gives them up:
    /// forgets them and drops their buffered messages, so they are neither delivered
    /// nor committed by this member any more. Messages already handed to the
    /// application cannot be recalled; from now on their commits are skipped, even if
    /// the partition comes back to this member (the partition's next owner receives
    /// them again: at-least-once). Returns how many buffered messages were dropped.
    func revoked(_ partitions: [TopicPartition]) -> Int {
        let revoked = Set(partitions)
        assignment.withLock { assignment in
            for partition in revoked { assignment[partition] = nil }
        }
        return buffer.drop(revoked)
    }

    /// A failed rebalance: forgets every partition and drops the buffer.
    func rebalanceFailed() {
        let all = assignment.withLock { state -> Set<TopicPartition> in
            defer { state = [:] }
            return Set(state.keys)
        }
        buffer.drop(all)
    }

    /// Completes the commit `id` (called from the commit-result C callback).
    ///
    /// A commit that lost a race with a rebalance (`REBALANCE_IN_PROGRESS`,
    /// `ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`, `_ASSIGNMENT_LOST`) is not an error:
    /// the partition's next owner receives the message again (at-least-once).
    func commitFinished(id: UInt, _ code: rd_kafka_resp_err_t, context: CallbackContext) {
        switch code {
        case RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR__NO_OFFSET:
            context.commits.complete(id, .success(()))
        case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
            RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID, RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST:
            logger.notice("commit lost to a rebalance, the message will be redelivered (\(KafkaErrors.name(code)))")
            context.commits.complete(id, .success(()))
        default:
            context.commits.complete(id, .failure(KafkaErrors.error(code, "commit")))
        }
    }

    /// Ends the message stream with `error` (a fatal client error).
    func fail(_ error: BusError) {
        buffer.finish(throwing: error)
    }
}

/// One librdkafka high-level consumer behind a `BusSubscription`: either a group
/// member (`subscribe`) or a group-less reader of every partition of a topic (`read`).
///
/// A dedicated poll thread owns the handle: it subscribes or assigns, then loops on
/// `rd_kafka_consumer_poll` (which also runs the rebalance and commit-result
/// callbacks), copies each message into the ``ConsumerState/buffer`` that feeds the
/// subscription's stream, pauses fetching while that buffer is full, and on
/// ``close()`` leaves the group (`rd_kafka_consumer_close`) and destroys the handle.
///
/// The lifecycle is an explicit ``StateMachine`` kept in `machine`.
///
/// `@unchecked Sendable` because of the `queue` pointer: it is immutable, used by
/// other threads only inside `machine.withLock` while the machine says the handle is
/// usable, and destroyed by the poll thread only after it has moved the machine to
/// `closing` under that lock.
final class Consumer: BusSubscriptionControl, @unchecked Sendable {
    /// What the consumer reads.
    enum Mode: Sendable {
        /// A member of `group` consuming `topics`; commits go to the group.
        case group(String, topics: [String])
        /// `partitions` of `topic` (all when `nil`) from `start`, without a group; nothing is committed.
        case reader(String, StartPosition, partitions: [Int]?)
    }

    let client: RDKafkaClient
    let mode: Mode
    /// `transactional.id` of this subscription's transactional producers (group members only).
    let transactionalID: String?
    private let configuration: KafkaBusConfiguration
    /// The transactional producer for ``commit(_:publishing:)``, created when first
    /// needed and replaced after a fatal error; `all` keeps every one created so that
    /// closing the subscription waits until each is destroyed.
    private let transactional = Mutex(TransactionalProducers())
    /// The bus's idempotent producer, for commits with outputs when transactions are off.
    private let publishPlain = Mutex<@Sendable ([OutgoingMessage]) async throws -> Void>({ _ in })
    private struct TransactionalProducers {
        var current: TransactionalProducer?
        var all: [TransactionalProducer] = []
        var closed = false
    }
    private let state: ConsumerState
    private let logger: Logger
    /// The consumer queue, on which commit results are delivered to the poll thread.
    private let queue: OpaquePointer
    /// The lifecycle; other threads use the handle only under this lock while
    /// ``StateMachine/handleUsable``.
    private let machine = Mutex(StateMachine())
    private let finished = Completion()

    /// Creates the consumer and starts its poll thread; returns once it has subscribed
    /// (group) or assigned every partition at its start position (reader).
    static func start(
        _ mode: Mode, pace: ReadPace, configuration: KafkaBusConfiguration, transactionalID: String?, logger: Logger,
        publish: @escaping @Sendable ([OutgoingMessage]) async throws -> Void = { _ in },
        onFinish: @escaping @Sendable (Consumer) -> Void
    ) async throws -> Consumer {
        let consumer = try Consumer(mode, pace: pace, configuration: configuration, transactionalID: transactionalID, logger: logger)
        consumer.publishPlain.withLock { $0 = publish }
        try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, any Error>) in
            DedicatedThread.start(name: "kafka-consumer-poll") {
                consumer.run(ready: ready, bufferLimit: max(configuration.consumerBufferLimit, 1),
                             timeout: configuration.adminTimeout)
                onFinish(consumer)
            }
        }
        return consumer
    }

    private init(_ mode: Mode, pace: ReadPace, configuration: KafkaBusConfiguration, transactionalID: String?, logger: Logger) throws {
        self.transactionalID = transactionalID
        self.configuration = configuration
        let state = ConsumerState(logger: logger)
        let settings: [String: String]
        switch mode {
        case .group(let group, _):
            settings = configuration.settings(for: .consumer, groupID: group, pace: pace)
        case .reader(let topic, _, _):
            // librdkafka needs a group.id for assign() and consumer_poll(); readers
            // never join it (no subscribe) and never commit.
            settings = configuration.settings(
                for: .consumer, groupID: "sluice-reader-\(topic)-\(UUID().uuidString.prefix(8))", pace: pace)
        }
        client = try RDKafkaClient(role: .consumer, settings: settings, context: CallbackContext(logger: logger, consumer: state))
        do {
            queue = try client.consumerQueue()
        } catch {
            client.destroy()
            throw error
        }
        self.mode = mode
        self.state = state
        self.logger = logger
    }

    /// The subscription over this consumer.
    var subscription: BusSubscription {
        let buffer = state.buffer
        return BusSubscription(stream: AsyncThrowingStream(unfolding: { try await buffer.next() }), control: self)
    }

    // MARK: BusSubscriptionControl

    /// Commits `message`'s offset + 1 for its partition and waits for the broker's answer.
    ///
    /// Does nothing for readers (no group), and nothing when the partition was
    /// revoked since `message` was delivered (its new owner, possibly this member
    /// again, gets the message again: at-least-once). Throws `BusError.Kind.closed`
    /// after ``close()``.
    func commit(_ message: BusMessage) async throws {
        guard case .group = mode else { return }
        let partition = TopicPartition(topic: message.topic, partition: Int32(message.partition))
        guard machine.withLock({ $0.handleUsable }) else {
            throw BusError(.closed, "commit of \(partition)@\(message.offset): subscription closed")
        }
        guard state.mayCommit(message) else {
            logger.debug("not committing \(partition)@\(message.offset): delivered before the partition's last rebalance")
            return
        }
        let commits = client.context.commits
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let id = commits.register(continuation)
            let code: rd_kafka_resp_err_t? = machine.withLock { machine in
                guard machine.handleUsable else { return nil }
                return client.commit(partition, offset: message.offset + 1, queue: queue, id: id)
            }
            if code == nil {
                commits.complete(id, .failure(BusError(.closed, "commit of \(partition)@\(message.offset): subscription closed")))
            } else if let code, code != RD_KAFKA_RESP_ERR_NO_ERROR {
                commits.complete(id, .failure(KafkaErrors.error(code, "commit of \(partition)@\(message.offset)")))
            }
        }
    }

    /// Publishes `outputs` and commits `message`'s offset + 1 in one Kafka transaction of
    /// this subscription's transactional producer (see ``TransactionalProducer``), shared
    /// with concurrent callers.
    ///
    /// Throws `.fenced` when the partition was revoked since `message` was delivered, or
    /// the producer or group generation was fenced; `.configuration` for readers; `.closed`
    /// after ``close()``; other kinds when the transaction failed (nothing is visible to
    /// `read_committed` consumers; retrying is safe).
    func commit(_ message: BusMessage, publishing outputs: [OutgoingMessage]) async throws {
        guard case .group = mode, let transactionalID else {
            throw BusError(.configuration, "a group-less reader cannot commit (\(message.topic)[\(message.partition)]@\(message.offset))")
        }
        let what = "commit of \(message.topic)[\(message.partition)]@\(message.offset) with \(outputs.count) output(s)"
        guard machine.withLock({ $0.handleUsable }) else { throw BusError(.closed, "\(what): subscription closed") }
        guard state.mayCommit(message) else {
            throw BusError(.fenced, "\(what): the partition was revoked from this member since the message was delivered; nothing was published nor committed")
        }
        if !configuration.transactions {
            // Not atomic (configured off): publish (in order, acknowledged together), then commit.
            let publish = publishPlain.withLock { $0 }
            if !outputs.isEmpty { try await publish(outputs) }
            try await commit(message)
            return
        }
        for _ in 0..<3 {
            let producer = try transactional.withLock { producers -> TransactionalProducer in
                guard !producers.closed else { throw BusError(.closed, "\(what): subscription closed") }
                if let current = producers.current, current.isUsable { return current }
                let state = state
                let owner = TransactionOwner(
                    mayCommit: { state.mayCommit($0) },
                    groupMetadata: { [weak self] in self?.groupMetadata() })
                let created = try TransactionalProducer(
                    transactionalID: transactionalID, configuration: configuration, owner: owner, logger: logger)
                producers.current = created
                producers.all.append(created)
                return created
            }
            do {
                try await producer.commit(message, publishing: outputs)
                return
            } catch is TransactionalProducer.Unavailable {
                continue  // it stopped after a fatal error: the next round creates a new one
            }
        }
        throw BusError(.broker, "\(what): the transactional producer \(transactionalID) keeps failing; nothing was published nor committed")
    }

    /// A copy of the consumer's group metadata (generation, member id) for
    /// `send_offsets_to_transaction`, or `nil` once the handle is closing.
    private func groupMetadata() -> ConsumerGroupMetadata? {
        machine.withLock { machine in machine.handleUsable ? client.consumerGroupMetadata() : nil }
    }

    /// Transactions run and calls served by this subscription's transactional producers.
    var transactionStatistics: TransactionalProducer.Statistics {
        transactional.withLock { producers in
            producers.all.reduce(into: TransactionalProducer.Statistics()) { sum, producer in
                let s = producer.statistics
                sum.transactions += s.transactions
                sum.requests += s.requests
                sum.aborted += s.aborted
            }
        }
    }

    /// The partitions currently assigned to this member.
    func assignment() async -> Set<BusPartition> {
        state.assignedPartitions
    }

    /// Whether the group gave this member its first assignment (or the reader assigned itself).
    func hasJoinedGroup() async -> Bool {
        state.joined.load(ordering: .acquiring)
    }

    /// Leaves the group (or stops reading), finishes the stream and waits until the
    /// handle is destroyed. Idempotent.
    func close() async {
        _ = machine.withLock { $0.stop() }
        await finished.wait()
    }

    // MARK: Poll thread

    private func run(ready: CheckedContinuation<Void, any Error>, bufferLimit: Int, timeout: Duration) {
        do {
            try setUp(timeout: timeout)
            machine.withLock { $0.setUpFinished(succeeded: true) }
            ready.resume()
        } catch {
            machine.withLock { $0.setUpFinished(succeeded: false) }
            ready.resume(throwing: error)
        }
        while machine.withLock({ $0.nextPollLoopAction() }) == .poll {
            applyBackpressure(limit: bufferLimit)
            switch client.consumerPoll(timeoutMillis: 100) {
            case .nothing:
                continue
            case .error(let code, let text):
                handleError(code, text)
            case .message(let message):
                guard state.accept(message) else { continue }  // fetched before its partition was revoked
                state.buffer.push(message)
            }
        }
        // Transactions use the handle's group metadata: end them while it is open.
        let producers = transactional.withLock { producers in
            producers.closed = true
            return producers.all
        }
        for producer in producers { producer.close() }
        machine.withLock { $0.handleClosing() }
        if let error = client.closeConsumer() {  // runs the final revoke and leaves the group
            logger.warning("\(error)")
        }
        state.buffer.finish()
        RDKafkaClient.destroyQueue(queue)
        client.destroy()
        client.context.commits.failAll(BusError(.closed, "commit: subscription closed before the broker answered"))
        machine.withLock { $0.handleClosed() }
        finished.signal()
    }

    /// Subscribes (group) or assigns every partition at its start offset (reader).
    private func setUp(timeout: Duration) throws {
        switch mode {
        case .group(_, let topics):
            try client.subscribe(topics)
        case .reader(let topic, let start, let wanted):
            let count = try client.partitionCount(topic: topic, timeout: timeout)
            if let bad = wanted?.first(where: { !(0..<count).contains($0) }) {
                throw BusError(.configuration, "read of \(topic): no partition \(bad) (the topic has \(count))")
            }
            var positions: [(TopicPartition, Int64)] = []
            for p in (wanted.map { Set($0).sorted() } ?? Array(0..<count)).map(Int32.init) {
                let partition = TopicPartition(topic: topic, partition: p)
                switch start {
                case .beginning:
                    positions.append((partition, RDKafkaClient.offsetBeginning))
                case .end:
                    // Resolve the end now, so that everything published after read() returns is seen.
                    positions.append((partition, try client.endOffset(of: partition, timeout: timeout)))
                }
            }
            state.assigned(positions.map(\.0))
            try client.assign(positions)
        }
    }

    /// Pauses fetching of the whole assignment while the buffer holds `limit` or more
    /// messages, and resumes at half of it. Paused partitions keep their position.
    private func applyBackpressure(limit: Int) {
        let count = state.buffer.count
        let paused = state.paused.load(ordering: .relaxed)
        guard (!paused && count >= limit) || (paused && count <= limit / 2) else { return }
        guard client.setAssignmentPaused(!paused) else { return }
        state.paused.store(!paused, ordering: .relaxed)
    }

    /// Consumer errors come as messages: most are transient (librdkafka retries);
    /// a fatal one ends the stream.
    private func handleError(_ code: rd_kafka_resp_err_t, _ text: String) {
        switch code {
        case RD_KAFKA_RESP_ERR__PARTITION_EOF:
            return
        case RD_KAFKA_RESP_ERR__FATAL:
            state.fail(client.fatalBusError("consumer failed"))
            _ = machine.withLock { $0.stop() }
        default:
            logger.warning("\(KafkaErrors.error(code, "consume", detail: text))")
        }
    }
}
