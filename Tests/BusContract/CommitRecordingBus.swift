import Pipeline
import Synchronization

/// A bus that passes everything to `inner` and records, in order, the commits made through
/// its group subscriptions: for tests of what a consumer commits, and when.
public final class CommitRecordingBus: Bus {
    public let inner: any Bus
    private let recorded = Mutex<[(group: String, message: BusMessage)]>([])

    public init(_ inner: any Bus) { self.inner = inner }

    /// Every commit that succeeded, in the order they returned.
    public var commits: [BusMessage] { recorded.withLock { $0.map(\.message) } }

    /// The commits of one consumer group, in the order they returned.
    public func commits(group: String) -> [BusMessage] { recorded.withLock { $0.filter { $0.group == group }.map(\.message) } }

    /// The highest offset committed per partition.
    public var committed: [BusPartition: Int64] { Self.highestOffsets(commits) }

    /// The highest offset one consumer group committed per partition.
    public func committed(group: String) -> [BusPartition: Int64] { Self.highestOffsets(commits(group: group)) }

    /// The highest offset of `messages` per partition.
    public static func highestOffsets(_ messages: [BusMessage]) -> [BusPartition: Int64] {
        var highest: [BusPartition: Int64] = [:]
        for m in messages {
            let p = BusPartition(topic: m.topic, partition: m.partition)
            highest[p] = max(highest[p] ?? -1, m.offset)
        }
        return highest
    }

    fileprivate func record(_ message: BusMessage, group: String) { recorded.withLock { $0.append((group, message)) } }

    public func publish(_ message: OutgoingMessage) async throws { try await inner.publish(message) }

    public func subscribe(group: String, topics: [String], pace: ReadPace) async throws -> BusSubscription {
        let subscription = try await inner.subscribe(group: group, topics: topics, pace: pace)
        let messages = IteratorBox(subscription.makeAsyncIterator())
        return BusSubscription(
            stream: AsyncThrowingStream { try await messages.next() },
            control: RecordingControl(inner: subscription, bus: self, group: group))
    }

    public func read(topic: String, partitions: [Int]?, from start: StartPosition, pace: ReadPace) async throws -> BusSubscription {
        try await inner.read(topic: topic, partitions: partitions, from: start, pace: pace)
    }

    public func partitionCount(topic: String) async throws -> Int { try await inner.partitionCount(topic: topic) }

    public func ensureTopics(_ topics: [TopicSpec]) async throws { try await inner.ensureTopics(topics) }

    public func lag(group: String, topics: [String]) async throws -> [BusPartition: PartitionLag] {
        try await inner.lag(group: group, topics: topics)
    }

    public func shutdown() async { await inner.shutdown() }
}

private struct RecordingControl: BusSubscriptionControl {
    let inner: BusSubscription
    let bus: CommitRecordingBus
    let group: String

    func commit(_ message: BusMessage) async throws {
        try await inner.commit(message)
        bus.record(message, group: group)
    }

    func commit(_ message: BusMessage, publishing outputs: [OutgoingMessage]) async throws {
        try await inner.commit(message, publishing: outputs)
        bus.record(message, group: group)
    }

    func assignment() async -> Set<BusPartition> { await inner.assignment() }
    func hasJoinedGroup() async -> Bool { await inner.hasJoinedGroup() }

    func close() async { await inner.close() }
}

/// `@unchecked Sendable`: the iterator is used only by the one stream built on it, and an
/// `AsyncThrowingStream(unfolding:)` is iterated once, so `next` is never called concurrently.
private final class IteratorBox: @unchecked Sendable {
    private var iterator: BusSubscription.AsyncIterator

    init(_ iterator: BusSubscription.AsyncIterator) { self.iterator = iterator }

    func next() async throws -> BusMessage? { try await iterator.next() }
}
