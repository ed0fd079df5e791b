extension TransactionalProducer {
    /// The lifecycle of a transactional producer and its queue of waiting requests, as
    /// a pure value: its methods take events and return what the worker thread (or the
    /// caller) must do. No librdkafka calls, no locking; ``TransactionalProducer`` keeps it
    /// in a `Mutex`.
    ///
    /// ```
    /// uninitialized ──init ok──▶ ready ──fatal──▶ failed ─┐
    ///       │  └─init failed (fatal)──────────────▶ failed │
    ///       └──────────── close ──▶ closing ──────────────┴─▶ stopped
    /// ```
    ///
    /// Guarantees: requests are accepted only in `uninitialized` and `ready`; every
    /// accepted request is handed out exactly once (in a batch, in arrival order, or
    /// in a shut-down list to fail); after `failed` or `closing` the worker is told to
    /// shut down, and nothing is accepted any more.
    struct StateMachine<Request> {
        enum State: Equatable {
            /// `init_transactions` has not succeeded yet.
            case uninitialized
            /// Initialized; between transactions.
            case ready
            /// A fatal error or a fenced producer: the handle is unusable.
            case failed
            /// ``close()`` was called; the worker has not shut down yet.
            case closing
            /// The worker shut down (the handle is destroyed or about to be).
            case stopped
        }

        /// What ``submit(_:)`` tells the caller.
        enum SubmitAction: Equatable {
            /// Queued: wake the worker.
            case wakeWorker
            /// Not accepted: this producer stopped; use a new one.
            case reject
        }

        /// What the worker thread does next.
        enum WorkerAction {
            /// Nothing queued: wait for a wake-up (and serve librdkafka's callbacks).
            case idle
            /// Run `init_transactions`, then report with ``initialization(succeeded:fatal:)``.
            case initialize
            /// Run one transaction for these requests, then report with ``transactionFinished(carryOver:fatal:)``.
            case transact([Request])
            /// Fail these requests (never started), destroy the handle and end the thread.
            case shutDown(failing: [Request])
        }

        private(set) var state: State = .uninitialized
        private var queue: [Request] = []

        init() {}

        /// Whether new requests are accepted (`uninitialized` or `ready`).
        var isUsable: Bool { state == .uninitialized || state == .ready }

        /// Number of queued requests (not yet handed to a transaction).
        var queued: Int { queue.count }

        /// A caller submits a request.
        mutating func submit(_ request: Request) -> SubmitAction {
            guard isUsable else { return .reject }
            queue.append(request)
            return .wakeWorker
        }

        /// The worker asks what to do.
        mutating func nextWorkerAction() -> WorkerAction {
            switch state {
            case .failed, .closing:
                state = .stopped
                defer { queue = [] }
                return .shutDown(failing: queue)
            case .stopped:
                return .shutDown(failing: [])
            case .uninitialized:
                return queue.isEmpty ? .idle : .initialize
            case .ready:
                guard !queue.isEmpty else { return .idle }
                defer { queue = [] }
                return .transact(queue)
            }
        }

        /// `init_transactions` finished. On failure returns the queued requests to fail
        /// with its error (a fatal failure also moves to `failed`; a retriable one is
        /// tried again when requests come).
        mutating func initialization(succeeded: Bool, fatal: Bool) -> [Request] {
            guard state == .uninitialized else { return [] }
            if succeeded {
                state = .ready
                return []
            }
            if fatal { state = .failed }
            defer { queue = [] }
            return queue
        }

        /// A transaction ended. `carryOver` (requests of an aborted batch that were not at
        /// fault) go back to the front of the queue; `fatal` moves to `failed`.
        mutating func transactionFinished(carryOver: [Request], fatal: Bool) {
            queue.insert(contentsOf: carryOver, at: 0)
            if fatal && state == .ready { state = .failed }
        }

        /// The owner closes the producer. Returns whether this call started the close.
        mutating func close() -> Bool {
            switch state {
            case .uninitialized, .ready, .failed:
                state = .closing
                return true
            case .closing, .stopped:
                return false
            }
        }
    }
}
