import NIOCore
import NIOPosix
import Synchronization

/// Timers that give their memory back the moment they are cancelled.
///
/// `Task.sleep` keeps a cancelled sleep's task alive until its deadline would have passed
/// (swiftlang/swift#60441): a gateway that races every body read, upstream call and reply wait
/// against a 30-second sleep holds tens of megabytes of finished calls under load. These timers
/// are NIO scheduled tasks, which are removed from the event loop's queue when cancelled.
///
/// Guarantees:
/// - ``sleep(until:)`` returns at (or shortly after) the deadline, or throws `CancellationError`
///   as soon as the calling task is cancelled; either way nothing of it is left scheduled.
/// - ``schedule(at:_:)`` runs its action at most once, on an event loop thread, never after
///   ``Timer/cancel()`` returned, unless it had already started.
/// - Neither creates an unstructured task.
public enum Deadlines {
    /// The event loops the timers run on (NIO's shared singleton; the HTTP server and client
    /// use the same one).
    static var loops: any EventLoopGroup { MultiThreadedEventLoopGroup.singleton }

    /// Suspends until `deadline`; throws `CancellationError` at once if the task is cancelled.
    public static func sleep(until deadline: ContinuousClock.Instant) async throws {
        let waiter = OneShot<Bool>()
        let timer = schedule(at: deadline) { waiter.resume(with: true) }
        let fired = await withTaskCancellationHandler {
            await waiter.value()
        } onCancel: {
            waiter.resume(with: false)
        }
        timer.cancel()
        if !fired { throw CancellationError() }
    }

    /// Suspends for `duration`; throws `CancellationError` at once if the task is cancelled.
    public static func sleep(for duration: Duration) async throws {
        try await sleep(until: .now + duration)
    }

    /// Runs `action` on an event loop at `deadline` unless cancelled first.
    public static func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> Timer {
        schedule(after: deadline - .now, action)
    }

    /// Runs `action` on an event loop after `duration` (at once if it is not positive) unless
    /// cancelled first.
    public static func schedule(after duration: Duration, _ action: @escaping @Sendable () -> Void) -> Timer {
        let nanos = duration <= .zero ? 0 : duration.totalNanoseconds
        return Timer(scheduled: loops.any().scheduleTask(in: .nanoseconds(nanos)) { action() })
    }

    /// A pending action of ``Deadlines/schedule(at:_:)``.
    public struct Timer: Sendable {
        fileprivate let scheduled: Scheduled<Void>

        /// Removes the action from its event loop's queue (no effect once it ran).
        public func cancel() { scheduled.cancel() }
    }
}

/// A value handed over once, from any thread, to one waiter.
///
/// Guarantees:
/// - The first ``resume(with:)`` wins; later ones are ignored and return `false`.
/// - ``value()`` returns that first value whether it was resumed before or after the wait
///   began. At most one task may call ``value()``.
public final class OneShot<T: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<T, Never>)
        case done(T)
    }

    private let state = Mutex<State>(.empty)

    public init() {}

    /// Hands `value` over; `false` if a value was handed over before.
    @discardableResult
    public func resume(with value: T) -> Bool {
        let (won, continuation): (Bool, CheckedContinuation<T, Never>?) = state.withLock { state in
            switch state {
            case .empty:
                state = .done(value)
                return (true, nil)
            case .waiting(let continuation):
                state = .done(value)
                return (true, continuation)
            case .done:
                return (false, nil)
            }
        }
        continuation?.resume(returning: value)
        return won
    }

    /// Waits for the value.
    public func value() async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let ready: T? = state.withLock { state in
                switch state {
                case .empty:
                    state = .waiting(continuation)
                    return nil
                case .done(let value):
                    return value
                case .waiting:
                    preconditionFailure("OneShot.value() awaited twice")
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
