extension Consumer {
    /// The lifecycle of a subscription's consumer handle as a pure value: methods take
    /// events and return actions. ``Consumer`` keeps it in a `Mutex` and performs them
    /// (the poll thread owns the handle; other threads use it only when told to).
    ///
    /// ```
    /// starting ──set up──▶ running ──close()──▶ stopping ──poll thread──▶ closing ──▶ closed
    ///     └──set-up failed──────────────────────▶ stopping
    /// ```
    ///
    /// Guarantees: other threads may use the handle (commit, group metadata) only in
    /// `starting`, `running` and `stopping`, decided under the same lock as the use; the
    /// poll thread closes the handle only after moving to `closing`, so no such use
    /// overlaps `rd_kafka_consumer_close`/`rd_kafka_destroy`.
    struct StateMachine: Equatable {
        enum State: Equatable {
            /// The poll thread is subscribing or assigning.
            case starting
            /// Polling.
            case running
            /// Stop requested (``Consumer/close()``, a set-up failure or a fatal error);
            /// the poll thread finishes its current poll, then ends transactions.
            case stopping
            /// The poll thread is closing and destroying the handle.
            case closing
            /// The handle is destroyed.
            case closed
        }

        enum PollLoopAction: Equatable {
            case poll
            /// End the transactional producers, then ``handleClosing()`` and close the handle.
            case stop
        }

        private(set) var state: State = .starting

        init() {}

        /// Whether threads other than the poll thread may call into the handle now.
        var handleUsable: Bool {
            switch state {
            case .starting, .running, .stopping: true
            case .closing, .closed: false
            }
        }

        /// Subscribing (group) or assigning (reader) finished.
        mutating func setUpFinished(succeeded: Bool) {
            guard state == .starting else { return }
            state = succeeded ? .running : .stopping
        }

        /// ``Consumer/close()`` or a fatal client error. Returns whether this call asked first.
        mutating func stop() -> Bool {
            switch state {
            case .starting, .running:
                state = .stopping
                return true
            case .stopping, .closing, .closed:
                return false
            }
        }

        /// The poll thread asks whether to poll again.
        func nextPollLoopAction() -> PollLoopAction {
            switch state {
            case .starting, .running: .poll
            case .stopping, .closing, .closed: .stop
            }
        }

        /// The poll thread is about to close the handle: from now on nobody else may use it.
        mutating func handleClosing() {
            state = .closing
        }

        /// The handle is destroyed.
        mutating func handleClosed() {
            state = .closed
        }
    }
}
