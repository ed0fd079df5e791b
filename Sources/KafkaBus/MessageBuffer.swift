import Pipeline
import Synchronization

/// A topic and partition, as librdkafka names them.
struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    var topic: String
    var partition: Int32

    var description: String { "\(topic)[\(partition)]" }
}

/// The messages a subscription's poll thread has received and its iterator has
/// not taken yet.
///
/// The poll thread appends; the subscription's single iterator takes with
/// ``next()``, suspending while the buffer is empty. Unlike the buffer inside an
/// `AsyncThrowingStream` continuation, messages here can be withdrawn: when the
/// group revokes a partition, ``drop(_:)`` removes its buffered (uncommitted)
/// messages so this member does not process them after losing ownership.
/// All state is behind one `Mutex`.
final class MessageBuffer: Sendable {
    private struct State {
        var items: [BusMessage] = []
        var head = 0
        var waiter: CheckedContinuation<BusMessage?, any Error>?
        /// Set once: `nil` result means a clean finish, otherwise the error to throw.
        var finished: Result<Void, any Error>?

        var count: Int { items.count - head }

        mutating func popFirst() -> BusMessage? {
            guard head < items.count else { return nil }
            let message = items[head]
            head += 1
            if head >= 256 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return message
        }
    }

    private let state = Mutex(State())

    /// Number of messages waiting to be taken.
    var count: Int { state.withLock { $0.count } }

    /// Appends `message`, or hands it straight to a waiting iterator. Ignored once finished.
    func push(_ message: BusMessage) {
        let waiter: CheckedContinuation<BusMessage?, any Error>? = state.withLock { state in
            guard state.finished == nil else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.items.append(message)
            return nil
        }
        waiter?.resume(returning: message)
    }

    /// Removes the buffered messages of `partitions`; returns how many were removed.
    @discardableResult
    func drop(_ partitions: Set<TopicPartition>) -> Int {
        state.withLock { state in
            let before = state.count
            let kept = state.items[state.head...].filter {
                !partitions.contains(TopicPartition(topic: $0.topic, partition: Int32($0.partition)))
            }
            state.items = Array(kept)
            state.head = 0
            return before - kept.count
        }
    }

    /// Ends the stream. Buffered messages are discarded (they are uncommitted, so
    /// the partitions' next owner receives them); the iterator then sees the end,
    /// or `error` when one is given. Later calls do nothing.
    func finish(throwing error: (any Error)? = nil) {
        let waiter: CheckedContinuation<BusMessage?, any Error>? = state.withLock { state in
            guard state.finished == nil else { return nil }
            state.finished = error.map { .failure($0) } ?? .success(())
            state.items = []
            state.head = 0
            defer { state.waiter = nil }
            return state.waiter
        }
        if let error {
            waiter?.resume(throwing: error)
        } else {
            waiter?.resume(returning: nil)
        }
    }

    /// The next message; `nil` once finished or when the calling task is cancelled.
    /// Throws the error the buffer was finished with. One caller at a time.
    func next() async throws -> BusMessage? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BusMessage?, any Error>) in
                enum Action { case deliver(BusMessage?), fail(any Error), wait }
                let action: Action = state.withLock { state in
                    if let message = state.popFirst() { return .deliver(message) }
                    if let finished = state.finished {
                        if case .failure(let error) = finished { return .fail(error) }
                        return .deliver(nil)
                    }
                    if Task.isCancelled { return .deliver(nil) }
                    if state.waiter != nil {
                        return .fail(BusError(.io, "a subscription can be iterated by one task at a time"))
                    }
                    state.waiter = continuation
                    return .wait
                }
                switch action {
                case .deliver(let message): continuation.resume(returning: message)
                case .fail(let error): continuation.resume(throwing: error)
                case .wait: break
                }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}
