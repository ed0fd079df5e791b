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
    }

    private struct Key: Hashable, Sendable {
        var topic: String
        var partition: Int
    }

    private var partitions: [Key: PartitionState] = [:]

    /// Registers `message` as in flight; `false` when it is already tracked or committed.
    public mutating func begin(_ message: BusMessage) -> Bool {
        let key = Key(topic: message.topic, partition: message.partition)
        var state = partitions[key, default: PartitionState()]
        guard message.offset > state.committed, !state.inFlight.contains(message.offset),
              state.finished[message.offset] == nil else { return false }
        state.inFlight.insert(message.offset)
        partitions[key] = state
        return true
    }

    /// Marks `message` finished; returns the message up to which the partition may now be committed.
    public mutating func finish(_ message: BusMessage) -> BusMessage? {
        let key = Key(topic: message.topic, partition: message.partition)
        guard var state = partitions[key], state.inFlight.remove(message.offset) != nil else { return nil }
        state.finished[message.offset] = message
        let limit = state.inFlight.min() ?? Int64.max
        let ready = state.finished.keys.filter { $0 < limit }
        var target: BusMessage?
        if let highest = ready.max(), highest > state.committed {
            target = state.finished[highest]
            for offset in ready { state.finished[offset] = nil }
            state.committed = highest
        }
        partitions[key] = state
        return target
    }

    /// Messages in flight, over all partitions.
    public var inFlightCount: Int { partitions.values.reduce(0) { $0 + $1.inFlight.count } }
}

/// Serialises commits so they reach the bus in increasing offset order per partition,
/// even though messages finish concurrently.
///
/// Guarantees: a commit is issued only for a message `OffsetTracker` released; while one
/// commit of a partition is in progress, later targets are coalesced into the newest one,
/// so a lower offset is never committed after a higher one (Kafka would move back).
public actor CommitCoordinator {
    private var tracker = OffsetTracker()
    private var pending: [String: BusMessage] = [:]
    private var committing: Set<String> = []
    private let subscription: BusSubscription
    private let onError: @Sendable (BusMessage, any Error) -> Void

    public init(subscription: BusSubscription, onError: @escaping @Sendable (BusMessage, any Error) -> Void) {
        self.subscription = subscription
        self.onError = onError
    }

    /// See `OffsetTracker.begin`.
    public func begin(_ message: BusMessage) -> Bool { tracker.begin(message) }

    /// Marks `message` done and commits as far as its partition allows.
    public func finish(_ message: BusMessage) async {
        guard let target = tracker.finish(message) else { return }
        let key = "\(target.topic)#\(target.partition)"
        pending[key] = target
        guard !committing.contains(key) else { return }
        committing.insert(key)
        while let next = pending.removeValue(forKey: key) {
            do { try await subscription.commit(next) } catch { onError(next, error) }
        }
        committing.remove(key)
    }
}
