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
    private let current = CurrentSubscription()

    /// What a handler decided about its message.
    public enum Result: Sendable {
        /// Done: commit the message. With `outputs`, the outputs are published and the
        /// message committed in one atomic step (`BusSubscription.commit(_:publishing:)`); they
        /// are held until every earlier message of the partition is done too, so a crash
        /// never leaves outputs published for input that will be handled again.
        case commit(publishing: [OutgoingMessage])
        /// Not done (stopped before the work was published): leave it uncommitted, so it is
        /// redelivered.
        case keep

        /// Done, nothing to publish with the commit.
        public static var commit: Result { .commit(publishing: []) }
    }

    public init(bus: any Bus, group: String, topics: [String], concurrency: Int, logger: Logger) {
        self.bus = bus
        self.group = group
        self.topics = topics
        self.concurrency = max(1, concurrency)
        self.logger = logger
    }

    /// The partitions this member owns now (empty before it has subscribed and after it left).
    /// See `BusSubscription.assignment()`.
    public func assignment() async -> Set<BusPartition> {
        guard let subscription = current.subscription else { return [] }
        return await subscription.assignment()
    }

    /// Consumes until cancelled, the bus ends the subscription, or graceful shutdown drained it.
    /// `handle` returns `true` to commit the message, `false` to leave it uncommitted.
    /// Throws when subscribing fails or the bus fails.
    public func run(_ handle: @escaping @Sendable (BusMessage) async -> Bool) async throws {
        try await run(producing: { await handle($0) ? .commit : .keep })
    }

    /// Consumes like ``run(_:)``; each handler returns what to publish atomically with its
    /// message's commit (see ``Result``).
    public func run(producing handle: @escaping @Sendable (BusMessage) async -> Result) async throws {
        let subscription = try await bus.subscribe(group: group, topics: topics)
        current.subscription = subscription
        defer { current.subscription = nil }
        let logger = self.logger
        let commits = CommitCoordinator(subscription: subscription, logger: logger) { message, error in
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
                                if case .commit(let outputs) = await handle(message) {
                                    await commits.finish(message, publishing: outputs)
                                }
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
                // A cancellation handler cannot await: this task only wakes the loop above (closing
                // ends the message stream); nothing depends on it finishing, and `close` is idempotent
                // (the caller closes the subscription again after the loop).
                Task { await subscription.close() }
            }
        } onGracefulShutdown: {
            stop.drain()
        }
        await subscription.close()
    }
}

/// The subscription a `StageConsumer` is running on, for `assignment()`.
final class CurrentSubscription: Sendable {
    private let state = Mutex<BusSubscription?>(nil)
    var subscription: BusSubscription? {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
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
