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
        try await publish(CollectionOfOne(message))
    }

    /// Publishes `messages` in order and returns once the broker acknowledged every one.
    ///
    /// Guarantees:
    /// - The messages are enqueued back to back, in order, and the acknowledgements awaited
    ///   together: a batch costs about one broker round trip, not one per message.
    /// - Order is kept per partition: the idempotent producer delivers in enqueue order, and
    ///   when librdkafka's local queue is full the rest of the batch is enqueued only after
    ///   what was enqueued before it has been acknowledged.
    /// - After a failed enqueue nothing later in the batch is enqueued. The first failure is
    ///   thrown once every enqueued message has its delivery report; messages before it may
    ///   have been written (retrying the batch is at least once, as for a single publish).
    /// - Errors: as for a single message.
    func publish<Messages: Collection<OutgoingMessage>>(_ messages: Messages) async throws {
        let deadline = ContinuousClock.now + publishTimeout
        var rest = messages[...]
        while !rest.isEmpty {
            let accepted = try await enqueueAndAwaitDelivery(rest)
            rest = rest.dropFirst(accepted)
            guard !rest.isEmpty else { return }
            // librdkafka's local queue is full (queue.buffering.max.*): wait for room.
            guard ContinuousClock.now < deadline else {
                throw KafkaErrors.error(RD_KAFKA_RESP_ERR__QUEUE_FULL, "publish to \(rest.first?.topic ?? "?"): local queue still full")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Enqueues `messages` in order until one is refused, then waits for the delivery
    /// reports of all it enqueued. Returns how many were enqueued and acknowledged (fewer
    /// than `messages.count` only when the local queue was full); throws the first failure.
    private func enqueueAndAwaitDelivery<Messages: Collection<OutgoingMessage>>(_ messages: Messages) async throws -> Int {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
            let deliveries = client.context.deliveries
            let batch = BatchDelivery(continuation)
            machine.withLock { machine in
                for message in messages {
                    let id = deliveries.register { batch.delivered($0) }
                    batch.enqueueing()
                    guard machine.enqueueAction() == .enqueue else {
                        deliveries.complete(id, .failure(BusError(.closed, "publish to \(message.topic): the bus is shut down")))
                        return
                    }
                    let code = enqueue(message, id: id)
                    if code == RD_KAFKA_RESP_ERR_NO_ERROR { continue }  // the delivery report completes it
                    if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                        batch.refused()
                        deliveries.complete(id, .success(()))
                    } else {
                        deliveries.complete(id, .failure(KafkaErrors.error(code, "publish to \(message.topic)")))
                    }
                    return
                }
            }
            batch.allEnqueued()
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

/// The delivery reports of one ``Producer/publish(_:)`` batch, counted down to one resume.
///
/// Guarantees: the continuation is resumed exactly once, after ``allEnqueued()`` and every
/// message counted by ``enqueueing()`` was ``delivered(_:)``: with the first failure, else
/// with the number of messages acknowledged (those counted, minus the one ``refused()``).
private final class BatchDelivery: Sendable {
    private struct State {
        var outstanding = 1  // the enqueueing loop itself, until allEnqueued()
        var acknowledged = 0
        var refused = false
        var failure: (any Error)?
        var continuation: CheckedContinuation<Int, any Error>?
    }
    private let state: Mutex<State>

    init(_ continuation: CheckedContinuation<Int, any Error>) {
        state = Mutex(State(continuation: continuation))
    }

    /// One more message is about to be enqueued.
    func enqueueing() { state.withLock { $0.outstanding += 1 } }

    /// The message being enqueued was refused because the local queue is full (its
    /// completion still follows, and does not count as acknowledged).
    func refused() { state.withLock { $0.refused = true } }

    /// A message's delivery report (or its failed enqueue).
    func delivered(_ result: Result<Void, any Error>) {
        finish { state in
            switch result {
            case .success: state.acknowledged += 1
            case .failure(let error): if state.failure == nil { state.failure = error }
            }
        }
    }

    /// The loop enqueued all it will.
    func allEnqueued() { finish { _ in } }

    private func finish(_ update: (inout State) -> Void) {
        let resume = state.withLock { state -> (CheckedContinuation<Int, any Error>, Result<Int, any Error>)? in
            update(&state)
            state.outstanding -= 1
            guard state.outstanding == 0, let continuation = state.continuation else { return nil }
            state.continuation = nil
            if let failure = state.failure { return (continuation, .failure(failure)) }
            return (continuation, .success(state.acknowledged - (state.refused ? 1 : 0)))
        }
        if let (continuation, result) = resume { continuation.resume(with: result) }
    }
}
