import Logging
/// Which offsets of each partition may be committed while messages finish out of order.
///
/// Messages of a partition arrive in offset order and are processed concurrently; a
/// message may be committed only when it and every earlier message of its partition that
/// this member saw are finished. Offsets are compared, never assumed contiguous (Kafka
/// offsets can have gaps).
///
/// Guarantees:
/// - `finish` returns the message to commit: the highest finished one below the lowest
///   unfinished one of its partition, or `nil` when the commit point did not move.
/// - Commit points only move forward per partition.
/// - `begin` refuses an offset it already tracks (in flight, finished but not yet passed by
///   the commit point, or at or below the commit point), so a message redelivered to this
///   member after a rebalance is not processed twice at once.
public struct OffsetTracker: Sendable {
    public init() {}

    private struct PartitionState: Sendable {
        var inFlight: Set<Int64> = []
        var finished: [Int64: BusMessage] = [:]
        var committed: Int64 = -1

        mutating func begin(_ offset: Int64) -> Bool {
            guard offset > committed, !inFlight.contains(offset), finished[offset] == nil else { return false }
            inFlight.insert(offset)
            return true
        }

        /// The message to commit up to; nil when `message` was not in flight or the commit point did not move.
        mutating func finish(_ message: BusMessage) -> BusMessage? {
            guard inFlight.remove(message.offset) != nil else { return nil }
            finished[message.offset] = message
            let limit = inFlight.min() ?? Int64.max
            let ready = finished.keys.filter { $0 < limit }
            guard let highest = ready.max(), highest > committed else { return nil }
            let target = finished[highest]
            for offset in ready { finished[offset] = nil }
            committed = highest
            return target
        }
    }

    private struct Key: Hashable, Sendable {
        var topic: String
        var partition: Int
    }

    private var partitions: [Key: PartitionState] = [:]

    /// Registers `message` as in flight; `false` when it is already tracked or committed.
    /// The partition's state is updated in place (a copy per call would make a batch of n
    /// messages cost n² copies).
    public mutating func begin(_ message: BusMessage) -> Bool {
        partitions[Key(topic: message.topic, partition: message.partition), default: PartitionState()].begin(message.offset)
    }

    /// Marks `message` finished; returns the message up to which the partition may now be committed.
    public mutating func finish(_ message: BusMessage) -> BusMessage? {
        partitions[Key(topic: message.topic, partition: message.partition)]?.finish(message)
    }

    /// Whether `message` is in flight here (begun, not finished, not forgotten by ``forget(topic:partition:)``).
    public func isInFlight(_ message: BusMessage) -> Bool {
        partitions[Key(topic: message.topic, partition: message.partition)]?.inFlight.contains(message.offset) ?? false
    }

    /// Forgets everything about a partition (this member lost it): its messages still in flight
    /// finish without effect, and the next delivery of any offset is accepted again.
    public mutating func forget(topic: String, partition: Int) {
        partitions[Key(topic: topic, partition: partition)] = nil
    }

    /// Messages in flight, over all partitions.
    public var inFlightCount: Int { partitions.values.reduce(0) { $0 + $1.inFlight.count } }
}

/// Serialises commits so they reach the bus in increasing offset order per partition,
/// even though messages finish concurrently.
///
/// Guarantees:
/// - A commit is issued only for a message `OffsetTracker` released; while one commit of a
///   partition is in progress, later targets are coalesced into the newest one, so a lower
///   offset is never committed after a higher one (Kafka would move back).
/// - Outputs handed to ``finish(_:publishing:)`` are published only together with a commit
///   that covers their message (`BusSubscription.commit(_:publishing:)`), in offset order, so
///   they never become visible for input that is still uncommitted.
/// - A commit with outputs that fails is retried with backoff until it succeeds, the bus says
///   the partition moved (`BusError.Kind.fenced`: the new owner redoes the work), closed or
///   refuses the outputs (`configuration`), or the task is cancelled; the outputs are never
///   dropped while this member owns the partition. When they are given up, the partition is
///   forgotten: no later commit covers those messages, so they are redelivered, not lost. A commit without outputs that fails is logged and left (the messages are
///   redelivered: at least once).
public actor CommitCoordinator {
    private struct Key: Hashable {
        var topic: String
        var partition: Int
    }

    private var tracker = OffsetTracker()
    private var pending: [Key: BusMessage] = [:]
    private var committing: Set<Key> = []
    /// Outputs of finished messages not yet covered by a commit, per partition, by offset.
    private var outputs: [Key: [(offset: Int64, messages: [OutgoingMessage])]] = [:]
    private let subscription: BusSubscription
    private let logger: Logger?
    private let onError: @Sendable (BusMessage, any Error) -> Void
    private let initialBackoff: Duration
    private let maxBackoff: Duration

    public init(
        subscription: BusSubscription, logger: Logger? = nil, initialBackoff: Duration = .milliseconds(50),
        maxBackoff: Duration = .seconds(5), onError: @escaping @Sendable (BusMessage, any Error) -> Void
    ) {
        self.subscription = subscription
        self.logger = logger
        self.onError = onError
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    /// See `OffsetTracker.begin`.
    public func begin(_ message: BusMessage) -> Bool { tracker.begin(message) }

    /// Marks `message` done and commits as far as its partition allows, publishing the
    /// outputs of every message the commit covers with it.
    public func finish(_ message: BusMessage, publishing produced: [OutgoingMessage] = []) async {
        let key = Key(topic: message.topic, partition: message.partition)
        // A message of a partition forgotten after a fence finishes without effect.
        guard tracker.isInFlight(message) else { return }
        if !produced.isEmpty { outputs[key, default: []].append((message.offset, produced)) }
        guard let target = tracker.finish(message) else { return }
        pending[key] = target
        guard !committing.contains(key) else { return }
        committing.insert(key)
        while let next = pending.removeValue(forKey: key) {
            await commit(next, key: key)
        }
        committing.remove(key)
    }

    private func commit(_ message: BusMessage, key: Key) async {
        let covered = takeOutputs(key, upTo: message.offset)
        guard !covered.isEmpty else {
            do { try await subscription.commit(message) } catch { onError(message, error) }
            return
        }
        var delay = initialBackoff
        while true {
            do {
                try await subscription.commit(message, publishing: covered)
                return
            } catch let error as BusError where error.kind == .fenced || error.kind == .closed || error.kind == .configuration {
                // Nothing was published nor committed. Forget the partition, so that no later
                // commit covers these messages without their outputs: they stay uncommitted
                // and are handled again by the partition's next owner (this member too, if it
                // gets the partition back).
                forget(key)
                if error.kind == .configuration {
                    logger?.critical("outputs cannot be published (the bus refuses them); the messages stay uncommitted", metadata: [
                        "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
                    ])
                } else {
                    logger?.notice("outputs not published: the partition moved or the subscription closed; its next owner handles the messages again", metadata: [
                        "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
                    ])
                }
                onError(message, error)
                return
            } catch {
                logger?.error("atomic commit failed; retrying", metadata: [
                    "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
                ])
            }
            do { try await Task.sleep(for: delay) } catch {
                onError(message, CancellationError())
                return
            }
            delay = min(delay * 2, maxBackoff)
        }
    }

    /// Drops a partition's tracking, pending commit and held outputs.
    private func forget(_ key: Key) {
        tracker.forget(topic: key.topic, partition: key.partition)
        pending[key] = nil
        outputs[key] = nil
    }

    /// Removes and returns, in offset order, the outputs of messages at or below `offset`.
    private func takeOutputs(_ key: Key, upTo offset: Int64) -> [OutgoingMessage] {
        guard var list = outputs[key], !list.isEmpty else { return [] }
        list.sort { $0.offset < $1.offset }
        let split = list.firstIndex { $0.offset > offset } ?? list.count
        let taken = list[..<split].flatMap(\.messages)
        list.removeFirst(split)
        outputs[key] = list.isEmpty ? nil : list
        return taken
    }
}
