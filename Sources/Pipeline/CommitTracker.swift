/// Keeps commits safe when messages are processed concurrently: a partition's offset
/// is committed only up to the highest message such that it and every earlier message
/// handed out in that partition have finished. A crash then redelivers whatever had
/// not finished (at least once), never skips it.
///
/// Usage: `begin` each message as it is received (in delivery order), `finish` it when
/// done, and commit the message `finish` returns, if any.
public actor CommitTracker {
    private struct PartitionState {
        /// Offsets handed out and not yet finished, in delivery order.
        var pending: [Int64] = []
        var finished: Set<Int64> = []
        var messages: [Int64: BusMessage] = [:]
    }

    private var partitions: [TopicPartitionKey: PartitionState] = [:]

    public init() {}

    /// Records that `message` is being processed.
    public func begin(_ message: BusMessage) {
        let key = TopicPartitionKey(topic: message.topic, partition: message.partition)
        partitions[key, default: PartitionState()].pending.append(message.offset)
        partitions[key]!.messages[message.offset] = message
    }

    /// Records that `message` is done; returns the message to commit now, if the
    /// contiguous finished prefix of its partition grew.
    public func finish(_ message: BusMessage) -> BusMessage? {
        let key = TopicPartitionKey(topic: message.topic, partition: message.partition)
        guard var state = partitions[key] else { return nil }
        state.finished.insert(message.offset)
        var commit: BusMessage?
        while let first = state.pending.first, state.finished.contains(first) {
            state.pending.removeFirst()
            state.finished.remove(first)
            commit = state.messages.removeValue(forKey: first)
        }
        partitions[key] = state
        return commit
    }

    /// Messages begun and not finished.
    public var inFlight: Int { partitions.values.reduce(0) { $0 + $1.pending.count } }
}

struct TopicPartitionKey: Hashable {
    var topic: String
    var partition: Int
}
