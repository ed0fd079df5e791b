import Synchronization

/// Continuations waiting for a librdkafka callback (a delivery report or an
/// offset-commit result), keyed by the integer handed to librdkafka as the
/// per-message or per-commit opaque.
///
/// Using integer keys instead of retained object pointers means a callback that
/// never comes (the handle was destroyed first) leaks nothing: ``failAll(_:)``
/// resumes whatever is left at shutdown.
final class PendingOperations: Sendable {
    private struct State {
        var nextID: UInt = 1
        var waiting: [UInt: @Sendable (Result<Void, any Error>) -> Void] = [:]
    }

    private let state = Mutex(State())

    /// Registers `continuation`; returns the non-zero id to pass as opaque.
    func register(_ continuation: CheckedContinuation<Void, any Error>) -> UInt {
        register { continuation.resume(with: $0) }
    }

    /// Registers `completion`, called exactly once with the operation's result (by
    /// ``complete(_:_:)`` or ``failAll(_:)``); returns the non-zero id to pass as opaque.
    func register(_ completion: @escaping @Sendable (Result<Void, any Error>) -> Void) -> UInt {
        state.withLock { state in
            let id = state.nextID
            state.nextID &+= 1
            if state.nextID == 0 { state.nextID = 1 }
            state.waiting[id] = completion
            return id
        }
    }

    /// Completes the operation `id` with `result` (no-op when already completed).
    func complete(_ id: UInt, _ result: Result<Void, any Error>) {
        state.withLock { $0.waiting.removeValue(forKey: id) }?(result)
    }

    /// Fails every waiting operation with `error`.
    func failAll(_ error: any Error) {
        let all = state.withLock { state in
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for completion in all { completion(.failure(error)) }
    }
}

extension UInt {
    /// This id as a librdkafka opaque pointer (ids are never zero).
    var opaque: UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: self) }

    /// The id carried by an opaque pointer made with ``opaque``.
    init(opaque: UnsafeMutableRawPointer?) { self = UInt(bitPattern: opaque) }
}
