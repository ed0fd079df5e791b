import CRdKafka
import Pipeline

/// Producing and transactions.
extension RDKafkaClient {
    /// Enqueues `message` (`rd_kafka_producev` through the `sluice_produce` shim; key,
    /// value and headers are copied) on the partitioner-chosen partition; `opaque` comes
    /// back in its delivery report. Returns librdkafka's enqueue result (`_QUEUE_FULL`,
    /// `MSG_SIZE_TOO_LARGE`, ...).
    func produce(_ message: OutgoingMessage, opaque: UnsafeMutableRawPointer?) -> rd_kafka_resp_err_t {
        var headers: OpaquePointer?
        if !message.headers.isEmpty {
            headers = rd_kafka_headers_new(message.headers.count)
            for header in message.headers {
                header.value.withUnsafeBytes { value in
                    _ = rd_kafka_header_add(headers, header.name, -1, value.baseAddress, value.count)
                }
            }
        }
        let handle = handle
        let result = message.value.withUnsafeBytes { value in
            withKeyPointer(message.key) { key, keyLength in
                // A non-nil pointer even for an empty value: an empty value, not a null (tombstone) one.
                sluice_produce(
                    handle, message.topic, RD_KAFKA_PARTITION_UA, key, keyLength,
                    value.baseAddress ?? nonNullEmpty, value.count, headers, opaque)
            }
        }
        if result != RD_KAFKA_RESP_ERR_NO_ERROR, let headers { rd_kafka_headers_destroy(headers) }
        return result
    }

    // MARK: Transactions (blocking: call them on a dedicated thread)

    /// `rd_kafka_init_transactions`.
    func initTransactions(timeout: Duration) -> ErrorObject? {
        rd_kafka_init_transactions(handle, timeout.milliseconds).map(Self.takeError)
    }

    /// `rd_kafka_begin_transaction`.
    func beginTransaction() -> ErrorObject? {
        rd_kafka_begin_transaction(handle).map(Self.takeError)
    }

    /// `rd_kafka_send_offsets_to_transaction` of `offsets` (next offset to consume per
    /// partition) for the consumer whose group metadata is `metadata`.
    func sendOffsetsToTransaction(
        _ offsets: [TopicPartition: Int64], metadata: ConsumerGroupMetadata, timeout: Duration
    ) -> ErrorObject? {
        let list = Self.makePartitionList(offsets.map { ($0.key, $0.value) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return rd_kafka_send_offsets_to_transaction(handle, list, metadata.pointer, timeout.milliseconds).map(Self.takeError)
    }

    /// `rd_kafka_commit_transaction` (flushes the transaction's messages first).
    func commitTransaction(timeout: Duration) -> ErrorObject? {
        rd_kafka_commit_transaction(handle, timeout.milliseconds).map(Self.takeError)
    }

    /// `rd_kafka_abort_transaction` (purges the transaction's unsent messages).
    func abortTransaction(timeout: Duration) -> ErrorObject? {
        rd_kafka_abort_transaction(handle, timeout.milliseconds).map(Self.takeError)
    }
}

/// A consumer's group metadata (`rd_kafka_consumer_group_metadata_t`: group, generation,
/// member id), destroyed with this object.
///
/// Not `Sendable`: created and used on one thread (a transactional producer's worker).
final class ConsumerGroupMetadata {
    fileprivate let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        rd_kafka_consumer_group_metadata_destroy(pointer)
    }
}

/// A valid address for zero-length keys and values (librdkafka treats a null
/// pointer as "no key"/"null value"). `nonisolated(unsafe)`: immutable, and
/// librdkafka never reads from it (the length is zero).
nonisolated(unsafe) private let nonNullEmpty = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1))

/// Calls `body` with a pointer to `key` (non-null for an empty key) or null for no key.
private func withKeyPointer<R>(_ key: [UInt8]?, _ body: (UnsafeRawPointer?, Int) -> R) -> R {
    guard let key else { return body(nil, 0) }
    return key.withUnsafeBytes { body($0.baseAddress ?? nonNullEmpty, $0.count) }
}
