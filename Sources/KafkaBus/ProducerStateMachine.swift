extension Producer {
    /// The lifecycle of the bus's producer as a pure value: methods take events and
    /// return actions. ``Producer`` keeps it in a `Mutex` and performs the actions.
    ///
    /// ```
    /// running ──shutdown──▶ flushing ──poll thread stopped──▶ finished
    /// ```
    ///
    /// Guarantees: nothing is enqueued once shutdown began (the enqueue decision and
    /// the enqueue happen under the same lock); the poll thread keeps polling until
    /// the flush is over; shutdown's flush-and-destroy runs once.
    struct StateMachine: Equatable {
        enum State: Equatable {
            case running
            /// ``Producer/shutdown(flushTimeout:)`` is flushing; the poll thread still runs.
            case flushing
            /// The flush is over: the poll thread stops, then the handle is destroyed.
            case finished
        }

        enum EnqueueAction: Equatable {
            case enqueue
            case rejectClosed
        }

        enum PollLoopAction: Equatable {
            case poll
            case stop
        }

        enum ShutdownAction: Equatable {
            /// Flush (then purge what is left), then report ``flushed()``.
            case flush
            /// Another call is shutting down or did: nothing to do.
            case none
        }

        private(set) var state: State = .running

        init() {}

        /// A publish wants to enqueue a message.
        func enqueueAction() -> EnqueueAction {
            state == .running ? .enqueue : .rejectClosed
        }

        /// The poll thread asks whether to keep serving delivery reports.
        func nextPollLoopAction() -> PollLoopAction {
            state == .finished ? .stop : .poll
        }

        /// Shutdown was requested.
        mutating func shutdown() -> ShutdownAction {
            guard state == .running else { return .none }
            state = .flushing
            return .flush
        }

        /// The flush (and purge) is over: the poll thread may stop.
        mutating func flushed() {
            state = .finished
        }
    }
}
