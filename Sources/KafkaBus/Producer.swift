import CRdKafka
import Logging
import Pipeline
import Synchronization

/// The bus's idempotent producer (`enable.idempotence=true`, `acks=all`).
///
/// ``publish(_:)`` enqueues the message with `rd_kafka_producev` and suspends until
/// its delivery report arrives; a dedicated poll thread serves the reports
/// (`rd_kafka_poll`), which resume the waiting publish through
/// `CallbackContext.deliveries`. The handle also serves metadata and admin requests.
final class Producer: Sendable {
    let client: KafkaClient
    private let logger: Logger
    private let publishTimeout: Duration
    /// `closed` is set once by ``shutdown(flushTimeout:)``; checked (under the lock)
    /// before every enqueue so that nothing is enqueued on a closing handle.
    private let closed = Mutex(false)
    private let stopPolling = Atomic<Bool>(false)
    private let pollerDone = Completion()

    init(configuration: KafkaBusConfiguration, logger: Logger) throws {
        let context = CallbackContext(logger: logger)
        client = try KafkaClient(role: .producer, settings: configuration.settings(for: .producer), context: context)
        self.logger = logger
        publishTimeout = configuration.publishTimeout
        // The poll thread keeps the producer alive until ``shutdown(flushTimeout:)`` stops it.
        DedicatedThread.start(name: "kafka-producer-poll") { [self] in
            while !stopPolling.load(ordering: .acquiring) {
                rd_kafka_poll(client.handle, 100)
            }
            pollerDone.signal()
        }
    }

    /// Publishes `message` and returns once the broker acknowledged it (`acks=all`).
    ///
    /// Throws `BusError` naming the librdkafka error: `.timedOut` when no broker
    /// acknowledged it within the publish timeout, `.closed` after shutdown.
    /// Not cancellable once enqueued: the delivery report always comes within the timeout.
    func publish(_ message: OutgoingMessage) async throws {
        let deadline = ContinuousClock.now + publishTimeout
        while true {
            do {
                try await enqueueAndAwaitDelivery(message)
                return
            } catch let error as QueueFull {
                // librdkafka's local queue is full (queue.buffering.max.*): wait for room.
                guard ContinuousClock.now < deadline else {
                    throw KafkaErrors.error(error.code, "publish to \(message.topic): local queue still full")
                }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    private struct QueueFull: Error { let code: rd_kafka_resp_err_t }

    private func enqueueAndAwaitDelivery(_ message: OutgoingMessage) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let deliveries = client.context.deliveries
            let id = deliveries.register(continuation)
            let result: rd_kafka_resp_err_t? = closed.withLock { closed in
                guard !closed else { return nil }
                return enqueue(message, id: id)
            }
            guard let result else {
                deliveries.complete(id, .failure(BusError(.closed, "publish to \(message.topic): the bus is shut down")))
                return
            }
            switch result {
            case RD_KAFKA_RESP_ERR_NO_ERROR:
                break  // the delivery report completes it
            case RD_KAFKA_RESP_ERR__QUEUE_FULL:
                deliveries.complete(id, .failure(QueueFull(code: result)))
            default:
                deliveries.complete(id, .failure(KafkaErrors.error(result, "publish to \(message.topic)")))
            }
        }
    }

    /// One `rd_kafka_producev` call (through the `sluice_produce` shim); copies key, value and headers.
    private func enqueue(_ message: OutgoingMessage, id: UInt) -> rd_kafka_resp_err_t {
        var headers: OpaquePointer?
        if !message.headers.isEmpty {
            headers = rd_kafka_headers_new(message.headers.count)
            for header in message.headers {
                header.value.withUnsafeBytes { value in
                    _ = rd_kafka_header_add(headers, header.name, -1, value.baseAddress, value.count)
                }
            }
        }
        let result = message.value.withUnsafeBytes { value in
            withKeyPointer(message.key) { key, keyLength in
                // A non-nil pointer even for an empty value: an empty value, not a null (tombstone) one.
                sluice_produce(
                    client.handle, message.topic, RD_KAFKA_PARTITION_UA, key, keyLength,
                    value.baseAddress ?? nonNullEmpty, value.count, headers, id.opaque)
            }
        }
        if result != RD_KAFKA_RESP_ERR_NO_ERROR, let headers { rd_kafka_headers_destroy(headers) }
        return result
    }

    /// Flushes outstanding messages for up to `flushTimeout`, fails what is left,
    /// stops the poll thread and destroys the handle. Blocks: call it on a dedicated thread.
    func shutdown(flushTimeout: Duration) {
        let first = closed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        let handle = client.handle
        let remaining = rd_kafka_flush(handle, flushTimeout.milliseconds)
        if remaining != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("producer flush incomplete, purging outstanding messages",
                           metadata: ["kafka.outstanding": "\(rd_kafka_outq_len(handle))"])
            _ = rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            _ = rd_kafka_flush(handle, 1000)  // serves the purge delivery reports
        }
        stopPolling.store(true, ordering: .releasing)
        pollerDone.waitBlocking()
        client.destroy()
        client.context.deliveries.failAll(BusError(.closed, "the bus was shut down before delivery"))
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
