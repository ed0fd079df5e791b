import Logging
import ServiceLifecycle
import Synchronization

/// The one consume loop of every stage: join the group, handle messages with bounded
/// concurrency, commit in offset order, and on graceful shutdown drain and leave.
///
/// Guarantees:
/// - At most `concurrency` messages are handled at once; with `concurrency: 1` they are
///   handled one after another, in partition order.
/// - A message is committed only after its handler returned `true`, and commits reach the bus
///   in offset order per partition (`CommitCoordinator`); a handler that returns `false` (it
///   was stopped before its work was published) leaves the message uncommitted, so it is
///   redelivered — at least once.
/// - A redelivery of a message this member is still handling is not handled twice at once.
/// - Graceful shutdown (ServiceLifecycle's, e.g. SIGTERM in a `ServiceGroup`): no new message
///   is started; the handlers in flight finish and are committed; then the member leaves the
///   group and `run` returns. Its bound is the service group's graceful-shutdown limit, after
///   which the task is cancelled.
/// - Cancellation: handlers see it, the member leaves the group and `run` returns or throws
///   `CancellationError`; what was not committed is redelivered to the group.
public struct StageConsumer: Sendable {
    let bus: any Bus
    let group: String
    let topics: [String]
    let concurrency: Int
    let logger: Logger

    public init(bus: any Bus, group: String, topics: [String], concurrency: Int, logger: Logger) {
        self.bus = bus
        self.group = group
        self.topics = topics
        self.concurrency = max(1, concurrency)
        self.logger = logger
    }

    /// Consumes until cancelled, the bus ends the subscription, or graceful shutdown drained it.
    /// Throws when subscribing fails or the bus fails.
    public func run(_ handle: @escaping @Sendable (BusMessage) async -> Bool) async throws {
        let subscription = try await bus.subscribe(group: group, topics: topics)
        let logger = self.logger
        let commits = CommitCoordinator(subscription: subscription) { message, error in
            logger.warning("commit failed; the message will be redelivered", metadata: [
                "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
            ])
        }
        let stop = DrainSignal()
        let active = ActiveHandlers()
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await withThrowingTaskGroup(of: Void.self) { watcher in
                    // Drains on graceful shutdown: waits for the handlers in flight, then ends
                    // the message stream (which ends the loop below).
                    watcher.addTask {
                        guard await stop.wait() == .drain else { return }
                        logger.info("graceful shutdown: finishing messages in flight", metadata: ["group": "\(group)", "in_flight": "\(active.count)"])
                        await active.waitUntilNone()
                        await subscription.close()
                    }
                    try await withThrowingTaskGroup(of: Void.self) { handlers in
                        var running = 0
                        for try await message in subscription {
                            if stop.isDraining { break }
                            guard await commits.begin(message) else { continue }
                            if running >= concurrency {
                                try await handlers.next()
                                running -= 1
                            }
                            active.add()
                            handlers.addTask {
                                if await handle(message) { await commits.finish(message) }
                                active.remove()
                            }
                            running += 1
                        }
                        try await handlers.waitForAll()
                    }
                    stop.finish()
                    try await watcher.waitForAll()
                }
            } onCancel: {
                stop.finish()
                Task { await subscription.close() }
            }
        } onGracefulShutdown: {
            stop.drain()
        }
        await subscription.close()
    }
}

/// How a consume loop learns that it should drain: set once, read from any thread.
final class DrainSignal: Sendable {
    enum Reason: Sendable { case drain, finished }
    private struct State {
        var reason: Reason?
        var waiters: [CheckedContinuation<Reason, Never>] = []
    }
    private let state = Mutex(State())

    var isDraining: Bool { state.withLock { $0.reason == .drain } }

    func drain() { set(.drain) }
    func finish() { set(.finished) }

    private func set(_ reason: Reason) {
        let waiters = state.withLock { s -> [CheckedContinuation<Reason, Never>] in
            guard s.reason == nil else { return [] }
            s.reason = reason
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume(returning: reason) }
    }

    /// The first reason set.
    func wait() async -> Reason {
        await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Reason? in
                if let r = s.reason { return r }
                s.waiters.append(continuation)
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }
}

/// The handlers running now, and a wait for none.
final class ActiveHandlers: Sendable {
    private struct State {
        var count = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    var count: Int { state.withLock { $0.count } }

    func add() { state.withLock { $0.count += 1 } }

    func remove() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.count -= 1
            guard s.count == 0 else { return [] }
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    func waitUntilNone() async {
        await withCheckedContinuation { continuation in
            let idle = state.withLock { s -> Bool in
                if s.count == 0 { return true }
                s.waiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }
}
