import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// The one consume loop of every stage: join the group, handle messages (one by one, or in
/// batches with ``run(maxBatch:_:)``) with bounded concurrency, commit in offset order, and on
/// graceful shutdown drain and leave.
///
/// Guarantees:
/// - At most `concurrency` messages (batches, with `run(maxBatch:_:)`) are handled at once;
///   with `concurrency: 1` they are handled one after another, in partition order.
/// - A batch is what has been delivered and not yet handled, up to `maxBatch`, in delivery
///   order; it is never held back waiting for more (a lone message is handled at once).
/// - A message is committed only after its handler returned `true` (for a batch: the whole
///   batch, one commit per partition at its highest offset), and commits reach the bus
///   in offset order per partition (`CommitCoordinator`); a handler that returns `false` (it
///   was stopped before its work was published) leaves the message (the whole batch)
///   uncommitted, so it is redelivered — at least once.
/// - A redelivery of a message this member is still handling is not handled twice at once.
/// - Graceful shutdown (ServiceLifecycle's, e.g. SIGTERM in a `ServiceGroup`): no new message
///   is started; the handlers in flight finish and are committed; then the member leaves the
///   group and `run` returns. Its bound is the service group's graceful-shutdown limit, after
///   which the task is cancelled. Messages read ahead for a batch but not begun stay
///   uncommitted.
/// - Cancellation: handlers see it, no new message is started, the member leaves the group and
///   `run` returns or throws `CancellationError`; what was not committed is redelivered to the group.
public struct StageConsumer: Sendable {
    let bus: any Bus
    let group: String
    let topics: [String]
    let concurrency: Int
    let pace: ReadPace
    let logger: Logger
    /// Readiness and lag reporting while the loop runs (`nil`: none, e.g. in bus tests).
    let monitor: StageMonitor?
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

    /// `pace`: how soon the member must see new messages (``ReadPace``; the request path unless
    /// nobody waits on the stage message by message). `monitor`: the readiness check and lag
    /// gauges this loop keeps (``StageMonitor``).
    public init(
        bus: any Bus, group: String, topics: [String], concurrency: Int, pace: ReadPace = .requestPath, logger: Logger,
        monitor: StageMonitor? = nil
    ) {
        self.monitor = monitor
        self.bus = bus
        self.group = group
        self.topics = topics
        self.concurrency = max(1, concurrency)
        self.pace = pace
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
        try await consume(maxBatch: 1) { batch, commits in
            for message in batch {
                if case .commit(let outputs) = await handle(message) {
                    await commits.finish(message, publishing: outputs)
                }
            }
        }
    }

    /// Consumes in batches: each batch is every message already delivered and not yet handled,
    /// up to `maxBatch`, in delivery order (so in offset order per partition). A batch is
    /// never held back to fill up: a lone message is a batch of one. `handle` returns `true`
    /// to commit the whole batch (once per partition, at its highest offset), `false` to leave
    /// all of it uncommitted (redelivered). Up to `concurrency` batches are handled at once;
    /// with `concurrency: 1`, one after another in partition order. Throws as ``run(_:)``.
    public func run(maxBatch: Int, _ handle: @escaping @Sendable ([BusMessage]) async -> Bool) async throws {
        try await consume(maxBatch: max(1, maxBatch)) { batch, commits in
            guard await handle(batch) else { return }
            // Finishing a partition's messages highest offset first holds its commit point
            // until the lowest is finished: then `CommitCoordinator` issues one commit, at the
            // highest offset, for the whole batch of that partition.
            for message in batch.reversed() {
                await commits.finish(message)
            }
        }
    }

    /// The one consume loop. Takes batches of up to `maxBatch` messages (with `maxBatch: 1`,
    /// straight from the subscription, no read-ahead), begins their offsets, and hands the
    /// begun ones to `handle` in a handler task (at most `concurrency` at once); `handle`
    /// finishes (commits) what it completed.
    private func consume(
        maxBatch: Int, _ handle: @escaping @Sendable ([BusMessage], CommitCoordinator) async -> Void
    ) async throws {
        let subscription = try await bus.subscribe(group: group, topics: topics, pace: pace)
        current.subscription = subscription
        defer { current.subscription = nil }
        guard let monitor else { return try await consume(subscription, maxBatch: maxBatch, handle) }
        defer { monitor.stopped(group: group) }
        try await withThrowingTaskGroup(of: Void.self) { watch in
            let (bus, group, topics, logger) = (bus, group, topics, logger)
            watch.addTask { await monitor.watch(subscription, bus: bus, group: group, topics: topics, logger: logger) }
            try await consume(subscription, maxBatch: maxBatch, handle)
            watch.cancelAll()
        }
    }

    /// The loop itself, on a subscription made by ``consume(maxBatch:_:)``.
    private func consume(
        _ subscription: BusSubscription, maxBatch: Int, _ handle: @escaping @Sendable ([BusMessage], CommitCoordinator) async -> Void
    ) async throws {
        let logger = self.logger
        let commits = CommitCoordinator(subscription: subscription, logger: logger) { message, error in
            logger.warning("commit failed; the message will be redelivered", metadata: [
                "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
            ])
        }
        let stop = DrainSignal()
        let active = ActiveHandlers()
        // How long each handler (message or batch) took, from its start to its commit being queued.
        let handling = monitor.map { _ in Timer(label: "sluice_stage_seconds", dimensions: [("group", group)]) }
        let readAhead = maxBatch > 1 ? MessageBatchBuffer(capacity: maxBatch) : nil
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
                    // Batches: reads the subscription ahead into a bounded buffer, so the loop
                    // can take what has arrived without waiting for more.
                    if let readAhead {
                        watcher.addTask { await readAhead.fill(from: subscription) }
                    }
                    do {
                        try await withThrowingTaskGroup(of: Void.self) { handlers in
                            var source = BatchSource(subscription: subscription, readAhead: readAhead)
                            defer { readAhead?.close() }
                            var running = 0
                            while true {
                                // A free slot first, then the batch: what arrived meanwhile joins it.
                                if running >= concurrency {
                                    try await handlers.next()
                                    running -= 1
                                }
                                guard let batch = try await source.next(), !stop.isDraining, !Task.isCancelled else { break }
                                var begun: [BusMessage] = []
                                begun.reserveCapacity(batch.count)
                                for message in batch where await commits.begin(message) { begun.append(message) }
                                guard !begun.isEmpty else { continue }
                                let work = begun
                                active.add()
                                handlers.addTask {
                                    let started = ContinuousClock.now
                                    await handle(work, commits)
                                    handling?.recordNanoseconds((ContinuousClock.now - started).totalNanoseconds)
                                    active.remove()
                                }
                                running += 1
                            }
                            try await handlers.waitForAll()
                        }
                    } catch {
                        // The bus failed: end the drain watcher too, or the group would wait for it.
                        stop.finish()
                        throw error
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

/// Where the consume loop takes its batches from: single messages straight from the
/// subscription, or what the read-ahead buffer holds.
private struct BatchSource {
    private var iterator: BusSubscription.AsyncIterator?
    private let readAhead: MessageBatchBuffer?

    init(subscription: BusSubscription, readAhead: MessageBatchBuffer?) {
        self.readAhead = readAhead
        iterator = readAhead == nil ? subscription.makeAsyncIterator() : nil
    }

    /// The next batch, `nil` when the subscription has ended.
    mutating func next() async throws -> [BusMessage]? {
        if let readAhead { return try await readAhead.take() }
        guard let message = try await iterator?.next() else { return nil }
        return [message]
    }
}

/// A bounded FIFO between a subscription (read by `fill(from:)`) and a consume loop that takes
/// everything buffered at once (`take()`).
///
/// Guarantees:
/// - Messages leave in the order they arrived; `take` returns at most `capacity` of them, waits
///   only while none is buffered, and returns `nil` once the subscription ended (after the
///   buffered ones were taken), or throws its error.
/// - `fill` waits while `capacity` messages are buffered (the subscription's own buffer holds
///   the rest) and returns when the subscription ends or after ``close()``.
/// - After ``close()`` nothing more is buffered and `take` returns `nil`; the messages still in
///   the buffer were never begun, so they stay uncommitted and are redelivered.
final class MessageBatchBuffer: Sendable {
    private struct State {
        var messages: [BusMessage] = []
        var ended = false
        var error: (any Error)?
        var taker: CheckedContinuation<Void, Never>?
        var filler: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Reads `subscription` into the buffer until it ends or the buffer is closed.
    func fill(from subscription: BusSubscription) async {
        do {
            for try await message in subscription {
                guard await put(message) else { return }
            }
            end(error: nil)
        } catch {
            end(error: error)
        }
    }

    /// Buffers `message`, waiting for room; `false` when the buffer is closed.
    private func put(_ message: BusMessage) async -> Bool {
        while true {
            enum Step { case added(CheckedContinuation<Void, Never>?), full, closed }
            let step = state.withLock { s -> Step in
                if s.ended { return .closed }
                guard s.messages.count < capacity else { return .full }
                s.messages.append(message)
                defer { s.taker = nil }
                return .added(s.taker)
            }
            switch step {
            case .closed: return false
            case .added(let taker):
                taker?.resume()
                return true
            case .full:
                await withCheckedContinuation { continuation in
                    let wait = state.withLock { s -> Bool in
                        guard !s.ended, s.messages.count >= capacity else { return false }
                        s.filler = continuation
                        return true
                    }
                    if !wait { continuation.resume() }
                }
            }
        }
    }

    /// Everything buffered (at most `capacity`), waiting while nothing is; `nil` once ended and empty.
    func take() async throws -> [BusMessage]? {
        while true {
            enum Step { case batch([BusMessage], CheckedContinuation<Void, Never>?), done, failed(any Error), wait }
            let step = state.withLock { s -> Step in
                if !s.messages.isEmpty {
                    let batch = s.messages
                    s.messages = []
                    s.messages.reserveCapacity(min(batch.count, capacity))
                    defer { s.filler = nil }
                    return .batch(batch, s.filler)
                }
                if let error = s.error { return .failed(error) }
                return s.ended ? .done : .wait
            }
            switch step {
            case .batch(let batch, let filler):
                filler?.resume()
                return batch
            case .done: return nil
            case .failed(let error): throw error
            case .wait:
                await withCheckedContinuation { continuation in
                    let wait = state.withLock { s -> Bool in
                        guard s.messages.isEmpty, !s.ended else { return false }
                        s.taker = continuation
                        return true
                    }
                    if !wait { continuation.resume() }
                }
            }
        }
    }

    /// Ends the buffer: `fill` stops, buffered messages are dropped (they were never begun).
    func close() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.ended = true
            s.messages = []
            defer { s.taker = nil; s.filler = nil }
            return [s.taker, s.filler].compactMap { $0 }
        }
        for w in waiters { w.resume() }
    }

    /// The subscription ended (with `error` when it failed): `take` returns what is left, then `nil` or the error.
    private func end(error: (any Error)?) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            if !s.ended { s.error = error }
            s.ended = true
            defer { s.taker = nil; s.filler = nil }
            return [s.taker, s.filler].compactMap { $0 }
        }
        for w in waiters { w.resume() }
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
