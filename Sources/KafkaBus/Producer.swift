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
    let client: RDKafkaClient
    private let logger: Logger
    private let publishTimeout: Duration
    /// The lifecycle (``StateMachine``): consulted under its lock before every enqueue,
    /// so that nothing is enqueued on a closing handle, and by the poll loop.
    private let machine = Mutex(StateMachine())
    private let pollerDone = Completion()

    init(configuration: KafkaBusConfiguration, logger: Logger) throws {
        let context = CallbackContext(logger: logger)
        client = try RDKafkaClient(role: .producer, settings: configuration.settings(for: .producer), context: context)
        self.logger = logger
        publishTimeout = configuration.publishTimeout
        // The poll thread keeps the producer alive until ``shutdown(flushTimeout:)`` stops it.
        DedicatedThread.start(name: "kafka-producer-poll") { [self] in
            while machine.withLock({ $0.nextPollLoopAction() }) == .poll {
                client.poll(timeoutMillis: 100)
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
            let result: rd_kafka_resp_err_t? = machine.withLock { machine in
                switch machine.enqueueAction() {
                case .enqueue: return enqueue(message, id: id)
                case .rejectClosed: return nil
                }
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

    /// Enqueues `message`; its delivery report completes the publish waiting under `id`.
    private func enqueue(_ message: OutgoingMessage, id: UInt) -> rd_kafka_resp_err_t {
        client.produce(message, opaque: id.opaque)
    }

    /// Flushes outstanding messages for up to `flushTimeout`, fails what is left,
    /// stops the poll thread and destroys the handle. Blocks: call it on a dedicated thread.
    func shutdown(flushTimeout: Duration) {
        guard machine.withLock({ $0.shutdown() }) == .flush else { return }
        if !client.flush(timeout: flushTimeout) {
            logger.warning("producer flush incomplete, purging outstanding messages",
                           metadata: ["kafka.outstanding": "\(client.outstanding)"])
            client.purgeAll()
            _ = client.flush(timeout: .seconds(1))  // serves the purge delivery reports
        }
        machine.withLock { $0.flushed() }
        pollerDone.waitBlocking()
        client.destroy()
        client.context.deliveries.failAll(BusError(.closed, "the bus was shut down before delivery"))
    }
}
