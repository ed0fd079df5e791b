import CRdKafka
import Dispatch
import Logging
import Pipeline
import Synchronization

/// What a ``TransactionalProducer`` needs from the group consumer whose offsets it commits.
struct TransactionOwner: Sendable {
    /// Whether `message` may still be committed by this member (its partition is assigned
    /// and the message was delivered during the current ownership).
    var mayCommit: @Sendable (BusMessage) -> Bool
    /// The consumer handle's group metadata now (current generation and member id),
    /// or `nil` once the consumer is closed.
    var groupMetadata: @Sendable () -> ConsumerGroupMetadata?
}

/// The transactional librdkafka producer of one group subscription: it publishes
/// outputs and commits the consumed offsets in one Kafka transaction
/// (`send_offsets_to_transaction`), so that either both become visible or neither.
///
/// Guarantees:
/// - Every transactional call (`init_transactions`, `begin_transaction`, produce,
///   `send_offsets_to_transaction`, `commit_transaction`, `abort_transaction`) runs on
///   the producer's own worker thread, never on Swift's cooperative pool, one
///   transaction at a time.
/// - Concurrent ``commit(_:publishing:)`` calls are batched: each transaction takes
///   every request queued when it begins; the outputs are produced in queue order,
///   the highest offset + 1 per partition is committed, and every waiter gets the
///   transaction's result.
/// - A request whose partition is no longer owned (``TransactionOwner/mayCommit``)
///   fails with `BusError.Kind.fenced` before anything is produced for it.
/// - On failure nothing of the transaction is visible to `read_committed` consumers:
///   abortable errors abort the transaction (`.broker`, retriable; `.fenced` when the
///   broker rejected the group generation), a fenced producer (`_FENCED`,
///   `PRODUCER_FENCED`, `INVALID_PRODUCER_EPOCH`) fails with `.fenced`, any other fatal
///   error with `.broker`; after a fatal error the producer stops (``isUsable`` is false)
///   and its owner creates a new one for later calls.
/// - ``close()`` fails queued requests with `.closed`, lets the running transaction
///   finish, and destroys the handle.
final class TransactionalProducer: Sendable {
    /// Thrown by ``commit(_:publishing:)`` when this producer stopped (fatal error or
    /// close) before the request was queued: nothing was done, use a new producer.
    struct Unavailable: Error {}

    private struct Request: Sendable {
        var message: BusMessage
        var outputs: [OutgoingMessage]
        var continuation: CheckedContinuation<Void, any Error>

        var partition: TopicPartition { TopicPartition(topic: message.topic, partition: Int32(message.partition)) }
        var what: String { "commit of \(message.topic)[\(message.partition)]@\(message.offset) with \(outputs.count) output(s)" }

        func finish(_ result: Result<Void, any Error>) { continuation.resume(with: result) }
    }

    /// Counts for logs and tests.
    struct Statistics: Sendable, Equatable {
        var transactions = 0
        var requests = 0
        var aborted = 0
    }

    let transactionalID: String
    private let client: RDKafkaClient
    private let owner: TransactionOwner
    private let logger: Logger
    private let timeout: Duration
    /// The lifecycle and the queue of waiting requests (``StateMachine``).
    private let machine = Mutex(StateMachine<Request>())
    private let wake = DispatchSemaphore(value: 0)
    private let done = Completion()
    private let counts = Mutex(Statistics())

    /// Creates the producer (`transactional.id` = `transactionalID`) and starts its
    /// worker thread, which runs `init_transactions` (fencing any older producer of
    /// the same id and aborting its open transaction) before the first transaction.
    init(transactionalID: String, configuration: KafkaBusConfiguration, owner: TransactionOwner, logger: Logger) throws {
        var settings = configuration.settings(for: .producer, clientSuffix: "txn")
        settings.merge(configuration.transactionalSettings(transactionalID: transactionalID)) { _, new in new }
        client = try RDKafkaClient(role: .producer, settings: settings, context: CallbackContext(logger: logger))
        self.transactionalID = transactionalID
        self.owner = owner
        self.logger = logger
        timeout = configuration.transactionTimeout
        DedicatedThread.start(name: "kafka-txn") { [self] in work() }
    }

    /// False once the producer stopped after a fatal error or ``close()``.
    var isUsable: Bool { machine.withLock { $0.isUsable } }

    var statistics: Statistics { counts.withLock { $0 } }

    /// Publishes `outputs` and commits `message`'s offset + 1 in one transaction
    /// (possibly shared with concurrent callers). See the type's guarantees for errors.
    func commit(_ message: BusMessage, publishing outputs: [OutgoingMessage]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let request = Request(message: message, outputs: outputs, continuation: continuation)
            switch machine.withLock({ $0.submit(request) }) {
            case .wakeWorker: wake.signal()
            case .reject: continuation.resume(throwing: Unavailable())
            }
        }
    }

    /// Stops accepting requests, fails the queued ones with `.closed`, waits for the
    /// running transaction to end and destroys the handle. Blocks: call it on a
    /// dedicated thread. Idempotent.
    func close() {
        if machine.withLock({ $0.close() }) { wake.signal() }
        done.waitBlocking()
    }

    // MARK: Worker thread

    private func work() {
        loop: while true {
            switch machine.withLock({ $0.nextWorkerAction() }) {
            case .idle:
                _ = wake.wait(timeout: .now() + .milliseconds(100))
                client.poll(timeoutMillis: 0)  // error and log callbacks between transactions
            case .initialize:
                let result = client.initTransactions(timeout: timeout).map(TransactionError.init)
                let fatal = result.map { $0.isFatal || $0.producerFenced } ?? false
                if let result, fatal { logStop(result) }
                let failed = machine.withLock { $0.initialization(succeeded: result == nil, fatal: fatal) }
                if let result {
                    let error = result.busError("init_transactions of \(transactionalID)")
                    for request in failed { request.finish(.failure(error)) }
                }
            case .transact(let batch):
                var fatal = false
                let carryOver = transact(batch, fatal: &fatal)
                machine.withLock { $0.transactionFinished(carryOver: carryOver, fatal: fatal) }
            case .shutDown(let left):
                for request in left {
                    request.finish(.failure(BusError(.closed, "\(request.what): the transactional producer \(transactionalID) stopped; nothing was published nor committed")))
                }
                break loop
            }
        }
        client.destroy()
        done.signal()
    }

    /// Runs one transaction for `batch`. Returns the requests to carry over to the next
    /// transaction (innocent requests of a batch aborted because of another request).
    private func transact(_ batch: [Request], fatal: inout Bool) -> [Request] {
        var live: [Request] = []
        for request in batch {
            if owner.mayCommit(request.message) {
                live.append(request)
            } else {
                request.finish(.failure(BusError(.fenced, "\(request.what): the partition was revoked from this member; nothing was published nor committed")))
            }
        }
        guard !live.isEmpty else { return [] }
        if let error = client.beginTransaction() {
            fatal = fail(live, TransactionError(error), step: "begin_transaction", abort: false)
            return []
        }
        for (index, request) in live.enumerated() {
            for output in request.outputs {
                let code = produce(output)
                guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    // This request's output cannot be produced: abort, fail it, and let the
                    // other requests of the batch run in the next transaction.
                    let error = KafkaErrors.error(code, "\(request.what): produce to \(output.topic)")
                    guard abort(live, because: error.message) else {
                        fatal = true
                        return []
                    }
                    request.finish(.failure(error))
                    var others = live
                    others.remove(at: index)
                    return others
                }
            }
        }
        var offsets: [TopicPartition: Int64] = [:]
        for request in live {
            offsets[request.partition] = max(offsets[request.partition] ?? .min, request.message.offset + 1)
        }
        guard let metadata = owner.groupMetadata() else {
            let error = BusError(.closed, "the subscription closed before the transaction committed; nothing was published nor committed")
            guard abort(live, because: error.message) else {
                fatal = true
                return []
            }
            for request in live { request.finish(.failure(error)) }
            return []
        }
        let client = client, timeout = timeout
        let steps: [(String, () -> RDKafkaClient.ErrorObject?)] = [
            ("send_offsets_to_transaction", { client.sendOffsetsToTransaction(offsets, metadata: metadata, timeout: timeout) }),
            ("commit_transaction", { client.commitTransaction(timeout: timeout) }),
        ]
        for (step, call) in steps {
            var attempt = 0
            while let error = call() {
                let failure = TransactionError(error)
                attempt += 1
                if failure.isRetriable && !failure.isFatal && !failure.requiresAbort && attempt < 3 {
                    logger.notice("transaction \(transactionalID): \(step) failed, retrying: \(failure.text)")
                    continue
                }
                fatal = fail(live, failure, step: step, abort: !failure.isFatal && !failure.producerFenced)
                return []
            }
        }
        counts.withLock {
            $0.transactions += 1
            $0.requests += live.count
        }
        for request in live { request.finish(.success(())) }
        return []
    }

    /// Enqueues one output, waiting (serving delivery reports) while the
    /// local queue is full, up to the transaction timeout.
    private func produce(_ output: OutgoingMessage) -> rd_kafka_resp_err_t {
        let deadline = ContinuousClock.now + timeout
        while true {
            let code = client.produce(output, opaque: nil)
            guard code == RD_KAFKA_RESP_ERR__QUEUE_FULL, ContinuousClock.now < deadline else { return code }
            client.poll(timeoutMillis: 10)
        }
    }

    /// Fails `requests` after `failure` at `step`, aborting the transaction first when
    /// `abort` (and it is abortable). Returns true when the producer is unusable (a fatal
    /// or fenced failure, or a failed abort).
    private func fail(_ requests: [Request], _ failure: TransactionError, step: String, abort: Bool) -> Bool {
        let error = failure.busError("transaction \(transactionalID): \(step) for \(requests.count) commit(s)")
        if failure.isFatal || failure.producerFenced {
            logStop(failure)
            for request in requests { request.finish(.failure(error)) }
            return true
        }
        if abort {
            guard self.abort(requests, because: error.message) else { return true }
        }
        for request in requests { request.finish(.failure(error)) }
        return false
    }

    /// `abort_transaction`; returns false (and fails `requests`; the producer must stop)
    /// when even the abort fails, so the transaction's outcome is left to the broker's
    /// transaction timeout and the next producer's `init_transactions`.
    private func abort(_ requests: [Request], because reason: String) -> Bool {
        counts.withLock { $0.aborted += 1 }
        var attempt = 0
        while let error = client.abortTransaction(timeout: timeout) {
            let failure = TransactionError(error)
            attempt += 1
            if failure.isRetriable && !failure.isFatal && attempt < 3 { continue }
            logStop(failure)
            let busError = BusError(
                failure.producerFenced ? .fenced : .broker,
                "transaction \(transactionalID): abort after \"\(reason)\" failed: \(failure.text); the producer is replaced and the open transaction ends with the transaction timeout")
            for request in requests { request.finish(.failure(busError)) }
            return false
        }
        logger.debug("transaction \(transactionalID) aborted: \(reason)")
        return true
    }

    private func logStop(_ failure: TransactionError) {
        logger.warning("transactional producer \(transactionalID) stopped, a new one will be created: \(failure.text)")
    }

    /// Test hook: produces `outputs` in a transaction and waits until the broker has
    /// them (flush), then aborts it. Runs on the calling (non-cooperative) thread;
    /// only for a producer no one else uses.
    func produceAndAbortForTesting(_ outputs: [OutgoingMessage]) throws {
        if let error = client.initTransactions(timeout: timeout) {
            throw TransactionError(error).busError("init_transactions")
        }
        if let error = client.beginTransaction() { throw TransactionError(error).busError("begin") }
        for output in outputs {
            let code = produce(output)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(code, "produce") }
        }
        guard client.flush(timeout: timeout) else { throw BusError(.timedOut, "flush of the aborted transaction's messages") }
        if let error = client.abortTransaction(timeout: timeout) { throw TransactionError(error).busError("abort") }
    }
}

/// A transaction call's error, classified.
struct TransactionError: Sendable {
    let code: rd_kafka_resp_err_t
    let text: String
    let isFatal: Bool
    let isRetriable: Bool
    let requiresAbort: Bool

    init(_ error: RDKafkaClient.ErrorObject) {
        code = error.code
        text = "\(error.detail) (\(KafkaErrors.name(code)))"
        isFatal = error.isFatal
        isRetriable = error.isRetriable
        requiresAbort = error.requiresAbort
    }

    /// A newer producer with the same `transactional.id` took over.
    var producerFenced: Bool {
        [RD_KAFKA_RESP_ERR__FENCED, RD_KAFKA_RESP_ERR_PRODUCER_FENCED, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH].contains(code)
    }

    /// The broker rejected the consumer's group generation or member id: the
    /// partitions moved to another member.
    var groupFenced: Bool {
        [RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION, RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID].contains(code)
    }

    /// The error callers see: `.fenced` for a fenced producer or group generation,
    /// otherwise the kind of the code (retriable: nothing was published nor committed).
    func busError(_ context: String) -> BusError {
        let kind: BusError.Kind = producerFenced || groupFenced ? .fenced : KafkaErrors.kind(of: code)
        var suffix = ""
        if producerFenced {
            suffix = " (producer fenced: a new one is created for later calls)"
        } else if isFatal {
            suffix = " (fatal: a new producer is created for later calls)"
        } else if requiresAbort {
            suffix = " (transaction aborted)"
        }
        return BusError(kind, "\(context): \(text)\(suffix); nothing was published nor committed")
    }
}
