import CRdKafka
import Pipeline

/// Consuming: subscription, assignment, polling, commits, pausing.
extension RDKafkaClient {
    /// What one ``consumerPoll(timeoutMillis:)`` returned.
    enum Polled {
        /// Nothing within the timeout (or a message without a topic).
        case nothing
        /// A consumer error reported as a message (most are transient).
        case error(rd_kafka_resp_err_t, String)
        /// A message, copied out of librdkafka.
        case message(BusMessage)
    }

    /// `RD_KAFKA_OFFSET_BEGINNING`: the oldest retained message.
    static let offsetBeginning = Int64(RD_KAFKA_OFFSET_BEGINNING)

    /// Redirects the main queue to the consumer queue (`rd_kafka_poll_set_consumer`,
    /// so one `rd_kafka_consumer_poll` serves everything) and returns the consumer
    /// queue, on which commit results are delivered. Destroy it with ``destroyQueue(_:)``.
    func consumerQueue() throws -> OpaquePointer {
        let redirect = rd_kafka_poll_set_consumer(handle)
        guard redirect == RD_KAFKA_RESP_ERR_NO_ERROR, let queue = rd_kafka_queue_get_consumer(handle) else {
            throw KafkaErrors.error(redirect, "consumer setup")
        }
        return queue
    }

    /// `rd_kafka_queue_destroy`.
    static func destroyQueue(_ queue: OpaquePointer) {
        rd_kafka_queue_destroy(queue)
    }

    /// `rd_kafka_consumer_poll` (which also runs the rebalance and commit-result callbacks).
    func consumerPoll(timeoutMillis: Int32) -> Polled {
        guard let message = rd_kafka_consumer_poll(handle, timeoutMillis) else { return .nothing }
        defer { rd_kafka_message_destroy(message) }
        let code = message.pointee.err
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            return .error(code, rd_kafka_message_errstr(message).map { String(cString: $0) } ?? "")
        }
        return Self.copy(message).map(Polled.message) ?? .nothing
    }

    /// `rd_kafka_subscribe` to `topics`.
    func subscribe(_ topics: [String]) throws {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let code = rd_kafka_subscribe(handle, list)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(code, "subscribe to \(topics)") }
    }

    /// `rd_kafka_assign` of `positions` (group-less readers).
    func assign(_ positions: [(TopicPartition, Int64)]) throws {
        let list = Self.makePartitionList(positions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code = rd_kafka_assign(handle, list)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaErrors.error(code, "assign \(positions.map { $0.0 })")
        }
    }

    /// The end (high watermark) of `partition`, asked of the broker. Blocks.
    func endOffset(of partition: TopicPartition, timeout: Duration) throws -> Int64 {
        var low: Int64 = 0, high: Int64 = 0
        let code = rd_kafka_query_watermark_offsets(handle, partition.topic, partition.partition, &low, &high, timeout.milliseconds)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(code, "end offset of \(partition)") }
        return high
    }

    /// Pauses (`true`) or resumes every assigned partition; `false` when the
    /// assignment could not be read.
    func setAssignmentPaused(_ pause: Bool) -> Bool {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return false }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        _ = pause ? rd_kafka_pause_partitions(handle, list) : rd_kafka_resume_partitions(handle, list)
        return true
    }

    /// Starts an asynchronous commit of `offset` for `partition`; its result comes to
    /// `context.commits` under `id` when the poll thread serves `queue`.
    func commit(_ partition: TopicPartition, offset: Int64, queue: OpaquePointer, id: UInt) -> rd_kafka_resp_err_t {
        let list = Self.makePartitionList([(partition, offset)])
        defer { rd_kafka_topic_partition_list_destroy(list) }  // librdkafka copies it
        return Self.commit(handle, list, queue: queue, id: id)
    }

    /// The consumer's group metadata now (`rd_kafka_consumer_group_metadata`).
    func consumerGroupMetadata() -> ConsumerGroupMetadata? {
        rd_kafka_consumer_group_metadata(handle).map(ConsumerGroupMetadata.init)
    }

    /// `rd_kafka_consumer_close`: runs the final revoke and leaves the group. Blocks.
    func closeConsumer() -> BusError? {
        let code = rd_kafka_consumer_close(handle)
        return code == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaErrors.error(code, "consumer close")
    }

    // MARK: Partition lists

    /// The topic-partitions in `list`.
    static func partitions(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition] {
        (0..<Int(list.pointee.cnt)).map {
            let element = list.pointee.elems[$0]
            return TopicPartition(topic: String(cString: element.topic), partition: element.partition)
        }
    }

    /// A new list of `partitions` at `offset` (destroy it with `rd_kafka_topic_partition_list_destroy`).
    static func makePartitionList(_ partitions: [(TopicPartition, Int64)]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        for (partition, offset) in partitions {
            rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition).pointee.offset = offset
        }
        return list
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
