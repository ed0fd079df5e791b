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
    }

    /// Handles a rebalance event on the poll thread (called from the rebalance C callback).
    ///
    /// Assign: takes the partitions (`rd_kafka_assign`, or `rd_kafka_incremental_assign`
    /// under the cooperative protocol); fetching starts at the group's committed offsets.
    /// Revoke: first forgets the partitions and drops their buffered messages, so
    /// they are neither delivered nor committed by this member any more, then gives
    /// them up (`rd_kafka_assign(NULL)` / `rd_kafka_incremental_unassign`). Messages
    /// already handed to the application cannot be recalled; from now on their
    /// commits are skipped, even if the partition comes back to this member (the
    /// partition's next owner receives them again: at-least-once).
    func rebalance(
        _ rk: OpaquePointer, _ code: rd_kafka_resp_err_t, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
    ) {
        let partitions = list.map(PartitionList.members) ?? []
        let cooperative = rd_kafka_rebalance_protocol(rk).map { String(cString: $0) } == "COOPERATIVE"
        switch code {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            assigned(partitions)
            if cooperative {
                if let error = rd_kafka_incremental_assign(rk, list) {
                    logger.error("\(KafkaErrors.consume(error, "incremental assign of \(partitions)"))")
                }
            } else {
                let result = rd_kafka_assign(rk, list)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    logger.error("\(KafkaErrors.error(result, "assign of \(partitions)"))")
                }
            }
            // Pausing is sticky per partition in librdkafka: start new partitions
            // fetching; the poll loop pauses again if the buffer is still full.
            if paused.exchange(false, ordering: .relaxed), let list {
                _ = rd_kafka_resume_partitions(rk, list)
            }
            logger.debug("assigned \(partitions)")
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let revoked = Set(partitions)
            assignment.withLock { assignment in
                for partition in revoked { assignment[partition] = nil }
            }
            let dropped = buffer.drop(revoked)
            let lost = rd_kafka_assignment_lost(rk) != 0
            if cooperative {
                if let error = rd_kafka_incremental_unassign(rk, list) {
                    logger.error("\(KafkaErrors.consume(error, "incremental unassign of \(partitions)"))")
                }
            } else {
                _ = rd_kafka_assign(rk, nil)
            }
            logger.debug("revoked \(partitions)\(lost ? " (lost)" : ""), dropped \(dropped) buffered messages")
        default:
            logger.error("rebalance failed: \(KafkaErrors.describe(code)) (\(KafkaErrors.name(code)))")
            let all = assignment.withLock { state -> Set<TopicPartition> in
                defer { state = [:] }
                return Set(state.keys)
            }
            buffer.drop(all)
            _ = rd_kafka_assign(rk, nil)
        }
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

/// Conversions for `rd_kafka_topic_partition_list_t`.
enum PartitionList {
    /// The topic-partitions in `list`.
    static func members(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition] {
        (0..<Int(list.pointee.cnt)).map {
            let element = list.pointee.elems[$0]
            return TopicPartition(topic: String(cString: element.topic), partition: element.partition)
        }
    }

    /// A new list of `partitions` at `offset` (destroy it with `rd_kafka_topic_partition_list_destroy`).
    static func make(_ partitions: [(TopicPartition, Int64)]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        for (partition, offset) in partitions {
            rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition).pointee.offset = offset
        }
        return list
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
/// `@unchecked Sendable` because of the `queue` pointer: it is immutable, used by
/// other threads only inside `open.withLock` while `open` is true, and destroyed by
/// the poll thread only after it has set `open` to false under that lock.
final class Consumer: BusSubscriptionControl, @unchecked Sendable {
    /// What the consumer reads.
    enum Mode: Sendable {
        /// A member of `group` consuming `topics`; commits go to the group.
        case group(String, topics: [String])
        /// Every partition of `topic` from `start`, without a group; nothing is committed.
        case reader(String, StartPosition)
    }

    let client: KafkaClient
    let mode: Mode
    /// The bus's producer, for ``commit(_:publishing:)``.
    private let producer: Producer
    private let state: ConsumerState
    private let logger: Logger
    /// The consumer queue, on which commit results are delivered to the poll thread.
    private let queue: OpaquePointer
    /// `true` while the handle may be used by callers other than the poll thread;
    /// set to `false` (under the lock) before the poll thread closes the handle.
    private let open = Mutex(true)
    private let stopRequested = Atomic<Bool>(false)
    private let finished = Completion()

    /// Creates the consumer and starts its poll thread; returns once it has subscribed
    /// (group) or assigned every partition at its start position (reader).
    static func start(
        _ mode: Mode, configuration: KafkaBusConfiguration, producer: Producer, logger: Logger,
        onFinish: @escaping @Sendable (Consumer) -> Void
    ) async throws -> Consumer {
        let consumer = try Consumer(mode, configuration: configuration, producer: producer, logger: logger)
        try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, any Error>) in
            DedicatedThread.start(name: "kafka-consumer-poll") {
                consumer.run(ready: ready, bufferLimit: max(configuration.consumerBufferLimit, 1),
                             timeout: configuration.adminTimeout)
                onFinish(consumer)
            }
        }
        return consumer
    }

    private init(_ mode: Mode, configuration: KafkaBusConfiguration, producer: Producer, logger: Logger) throws {
        self.producer = producer
        let state = ConsumerState(logger: logger)
        let settings: [String: String]
        switch mode {
        case .group(let group, _):
            settings = configuration.settings(for: .consumer, groupID: group)
        case .reader(let topic, _):
            // librdkafka needs a group.id for assign() and consumer_poll(); readers
            // never join it (no subscribe) and never commit.
            settings = configuration.settings(
                for: .consumer, groupID: "sluice-reader-\(topic)-\(UUID().uuidString.prefix(8))")
        }
        client = try KafkaClient(role: .consumer, settings: settings, context: CallbackContext(logger: logger, consumer: state))
        let redirect = rd_kafka_poll_set_consumer(client.handle)
        guard redirect == RD_KAFKA_RESP_ERR_NO_ERROR, let queue = rd_kafka_queue_get_consumer(client.handle) else {
            client.destroy()
            throw KafkaErrors.error(redirect, "consumer setup")
        }
        self.queue = queue
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
        guard open.withLock({ $0 }) else {
            throw BusError(.closed, "commit of \(partition)@\(message.offset): subscription closed")
        }
        guard state.mayCommit(message) else {
            logger.debug("not committing \(partition)@\(message.offset): delivered before the partition's last rebalance")
            return
        }
        let commits = client.context.commits
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let id = commits.register(continuation)
            let code: rd_kafka_resp_err_t? = open.withLock { open in
                guard open else { return nil }
                let list = PartitionList.make([(partition, message.offset + 1)])
                defer { rd_kafka_topic_partition_list_destroy(list) }  // librdkafka copies it
                return Callbacks.commit(client.handle, list, queue: queue, id: id)
            }
            if code == nil {
                commits.complete(id, .failure(BusError(.closed, "commit of \(partition)@\(message.offset): subscription closed")))
            } else if let code, code != RD_KAFKA_RESP_ERR_NO_ERROR {
                commits.complete(id, .failure(KafkaErrors.error(code, "commit of \(partition)@\(message.offset)")))
            }
        }
    }

    /// Publishes `outputs`, then commits `message`.
    /// TODO(issue 9): one transaction (send_offsets_to_transaction). Not atomic yet.
    func commit(_ message: BusMessage, publishing outputs: [OutgoingMessage]) async throws {
        guard case .group = mode else {
            throw BusError(.configuration, "a group-less reader cannot commit (\(message.topic)[\(message.partition)]@\(message.offset))")
        }
        for output in outputs { try await producer.publish(output) }
        try await commit(message)
    }

    /// The partitions currently assigned to this member.
    func assignment() async -> Set<BusPartition> {
        state.assignedPartitions
    }

    /// Leaves the group (or stops reading), finishes the stream and waits until the
    /// handle is destroyed. Idempotent.
    func close() async {
        stopRequested.store(true, ordering: .releasing)
        await finished.wait()
    }

    // MARK: Poll thread

    private func run(ready: CheckedContinuation<Void, any Error>, bufferLimit: Int, timeout: Duration) {
        do {
            try setUp(timeout: timeout)
            ready.resume()
        } catch {
            ready.resume(throwing: error)
            stopRequested.store(true, ordering: .releasing)
        }
        let handle = client.handle
        while !stopRequested.load(ordering: .acquiring) {
            applyBackpressure(limit: bufferLimit)
            guard let message = rd_kafka_consumer_poll(handle, 100) else { continue }
            defer { rd_kafka_message_destroy(message) }
            if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                handleError(message)
                continue
            }
            guard let copied = Self.copy(message), state.accept(copied) else {
                continue  // fetched before its partition was revoked
            }
            state.buffer.push(copied)
        }
        open.withLock { $0 = false }
        let closed = rd_kafka_consumer_close(handle)  // runs the final revoke and leaves the group
        if closed != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("\(KafkaErrors.error(closed, "consumer close"))")
        }
        state.buffer.finish()
        rd_kafka_queue_destroy(queue)
        client.destroy()
        client.context.commits.failAll(BusError(.closed, "commit: subscription closed before the broker answered"))
        finished.signal()
    }

    /// Subscribes (group) or assigns every partition at its start offset (reader).
    private func setUp(timeout: Duration) throws {
        let handle = client.handle
        switch mode {
        case .group(_, let topics):
            let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
            let code = rd_kafka_subscribe(handle, list)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(code, "subscribe to \(topics)") }
        case .reader(let topic, let start):
            let count = try Admin.partitionCount(handle, topic: topic, timeout: timeout)
            var positions: [(TopicPartition, Int64)] = []
            for p in 0..<Int32(count) {
                let partition = TopicPartition(topic: topic, partition: p)
                switch start {
                case .beginning:
                    positions.append((partition, Int64(RD_KAFKA_OFFSET_BEGINNING)))
                case .end:
                    // Resolve the end now, so that everything published after read() returns is seen.
                    var low: Int64 = 0, high: Int64 = 0
                    let code = rd_kafka_query_watermark_offsets(handle, topic, p, &low, &high, timeout.milliseconds)
                    guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                        throw KafkaErrors.error(code, "end offset of \(partition)")
                    }
                    positions.append((partition, high))
                }
            }
            let list = PartitionList.make(positions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            state.assigned(positions.map(\.0))
            let code = rd_kafka_assign(handle, list)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(code, "assign \(topic)") }
        }
    }

    /// Pauses fetching of the whole assignment while the buffer holds `limit` or more
    /// messages, and resumes at half of it. Paused partitions keep their position.
    private func applyBackpressure(limit: Int) {
        let count = state.buffer.count
        let paused = state.paused.load(ordering: .relaxed)
        guard (!paused && count >= limit) || (paused && count <= limit / 2) else { return }
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(client.handle, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if paused {
            _ = rd_kafka_resume_partitions(client.handle, list)
        } else {
            _ = rd_kafka_pause_partitions(client.handle, list)
        }
        state.paused.store(!paused, ordering: .relaxed)
    }

    /// Consumer errors come as messages: most are transient (librdkafka retries);
    /// a fatal one ends the stream.
    private func handleError(_ message: UnsafeMutablePointer<rd_kafka_message_t>) {
        let code = message.pointee.err
        switch code {
        case RD_KAFKA_RESP_ERR__PARTITION_EOF:
            return
        case RD_KAFKA_RESP_ERR__FATAL:
            var errstr = [CChar](repeating: 0, count: 512)
            let original = rd_kafka_fatal_error(client.handle, &errstr, errstr.count)
            state.fail(KafkaErrors.error(original, "consumer failed", detail: errstr.cString))
            stopRequested.store(true, ordering: .releasing)
        default:
            let text = rd_kafka_message_errstr(message).map { String(cString: $0) } ?? ""
            logger.warning("\(KafkaErrors.error(code, "consume", detail: text))")
        }
    }

    /// Copies a received message into a `BusMessage` (null key stays `nil`; a null value becomes empty).
    private static func copy(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> BusMessage? {
        let m = message.pointee
        guard let rkt = m.rkt else { return nil }
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        var headers: [BusHeader] = []
        var list: OpaquePointer?
        if rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
            var index = 0
            var name: UnsafePointer<CChar>?
            var bytes: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(list, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let data = bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                headers.append(BusHeader(name.map { String(cString: $0) } ?? "", data))
                index += 1
            }
        }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        return BusMessage(
            topic: String(cString: rd_kafka_topic_name(rkt)), partition: Int(m.partition), offset: m.offset,
            key: key, headers: headers, value: value, timestampMillis: timestamp)
    }
}
