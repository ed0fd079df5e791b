/// The only way stages talk to each other: topics of keyed, partitioned,
/// ordered messages.
///
/// Guarantees every implementation gives (and `BusContract` tests):
/// - `publish` returns only once the bus has durably accepted the message
///   (Kafka: delivery report with `acks=all`; embedded: appended to its log).
/// - Messages with the same key go to the same partition, in publish order.
/// - The members of one consumer group split a topic's partitions between them;
///   each message is delivered to one member at a time, at least once.
/// - A message is redelivered (to whichever member then owns its partition)
///   until a member commits it; a committed message is not delivered to that
///   group again.
public protocol Bus: Sendable {
    /// Publishes one message and waits until the bus has durably accepted it.
    func publish(_ message: OutgoingMessage) async throws

    /// Joins `group` as a new member consuming `topics`.
    ///
    /// The returned subscription delivers messages of the partitions assigned to
    /// this member, starting after the group's last committed offset. Iterate it
    /// once; call ``BusSubscription/close()`` to leave the group. `pace` says how soon the
    /// member must see new messages (``ReadPace``).
    func subscribe(group: String, topics: [String], pace: ReadPace) async throws -> BusSubscription

    /// Reads `partitions` of `topic` (every partition when `nil`, as of the call) without a
    /// consumer group, from `start`. Nothing is committed; use this for replies and for
    /// rebuilding state. Throws `BusError.Kind.configuration` for a partition the topic does not
    /// have, `unknownTopic` when it does not exist.
    func read(topic: String, partitions: [Int]?, from start: StartPosition, pace: ReadPace) async throws -> BusSubscription

    /// The number of partitions of `topic`.
    func partitionCount(topic: String) async throws -> Int

    /// Creates the topics that do not exist yet, with the given partition counts.
    func ensureTopics(_ topics: [TopicSpec]) async throws

    /// How far `group` is behind on every partition of `topics`: per partition its end offset,
    /// its first retained offset and the group's committed offset (see ``PartitionLag``).
    ///
    /// Asks only: joins no group, commits nothing, creates no topic. A group that never committed
    /// (or does not exist) lags by everything retained. Throws `BusError.Kind.unknownTopic` when a
    /// topic does not exist. Kafka: one metadata request, one offset fetch for the group and one
    /// watermark query per partition, each bounded by the admin timeout, on a dedicated thread;
    /// so call it every few seconds, not per message. Embedded: read from the bus's own state.
    func lag(group: String, topics: [String]) async throws -> [BusPartition: PartitionLag]

    /// Flushes outstanding work and releases resources. Idempotent.
    func shutdown() async
}

/// How soon a reader must see what is published.
///
/// Guarantees: the pace changes only how long a new message may wait before the reader sees
/// it and how many it may be handed ahead, never the order per partition or what is committed.
/// The embedded bus wakes every reader on append; a `.background` group member takes up to
/// 64 messages per turn of the bus instead of one (`EmbeddedBus.deliveryChunk`), so across a
/// rebalance those of a partition that moved away may also reach its new owner (at least once,
/// as with any read-ahead; the Recorder's readers read 512 ahead anyway). The Kafka bus polls `.requestPath` readers with the
/// configured `fetch.wait.max.ms` and `.background` readers with `bus.background_fetch_wait`
/// (default 100 ms; the request path's wait when that is longer): a broker that holds every
/// fetch for the full wait (Tansu) then answers far fewer idle polls, which leaves its CPU to
/// the request path.
public enum ReadPace: Sendable, Hashable {
    /// A caller is waiting on what this reader handles: requests, verdicts, approvals, replies,
    /// the holds a caller polls.
    case requestPath
    /// Nobody waits on it message by message: audit, outcome views, the Forwarder's holds upkeep.
    case background
}

extension Bus {
    /// ``subscribe(group:topics:pace:)`` on the request path.
    public func subscribe(group: String, topics: [String]) async throws -> BusSubscription {
        try await subscribe(group: group, topics: topics, pace: .requestPath)
    }

    /// Every partition of `topic` (``read(topic:partitions:from:pace:)``).
    public func read(topic: String, from start: StartPosition, pace: ReadPace) async throws -> BusSubscription {
        try await read(topic: topic, partitions: nil, from: start, pace: pace)
    }

    /// Every partition of `topic` on the request path (``read(topic:partitions:from:pace:)``).
    public func read(topic: String, from start: StartPosition) async throws -> BusSubscription {
        try await read(topic: topic, partitions: nil, from: start, pace: .requestPath)
    }
}

/// One partition of one topic.
public struct BusPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int

    public init(topic: String, partition: Int) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
    public var description: String { "\(topic)[\(partition)]" }
}

/// One consumer group's position on one partition, from ``Bus/lag(group:topics:)``.
///
/// Offsets count records on the partition, so on Kafka a transaction's commit marker counts as
/// one (a group that has read everything of a partition written with transactions can show a
/// lag of 1 there until the next record is committed past), and on a compacted topic the records
/// compaction removed still count until the group passes them.
public struct PartitionLag: Hashable, Sendable {
    /// The offset the next published record gets (Kafka: the high watermark as
    /// `rd_kafka_query_watermark_offsets` reports it).
    public var endOffset: Int64
    /// The first offset still retained (Kafka: the low watermark / log start offset).
    public var startOffset: Int64
    /// The next offset the group reads, as it committed it; `nil` when it never committed here.
    public var committedOffset: Int64?

    public init(endOffset: Int64, startOffset: Int64, committedOffset: Int64?) {
        self.endOffset = endOffset
        self.startOffset = startOffset
        self.committedOffset = committedOffset
    }

    /// Records the group has not yet committed past: `endOffset` − the group's position, where
    /// the position is its committed offset, or `startOffset` when it never committed or
    /// committed before the first retained record (it would resume there). Never negative.
    public var events: Int64 {
        max(0, endOffset - max(committedOffset ?? startOffset, startOffset))
    }
}

/// What a subscription needs from its bus beyond the message stream.
public protocol BusSubscriptionControl: Sendable {
    /// Marks `message` (and every earlier message of its partition) as done for the group.
    func commit(_ message: BusMessage) async throws

    /// Publishes `outputs` and commits `message` (and every earlier message of its partition)
    /// as one atomic step: after a crash at any point, either all of `outputs` are visible to
    /// consumers and the group's position is past `message`, or none of them is visible and
    /// the group's position is where it was (so the input is redelivered and its outputs are
    /// produced once, by whoever handles it next).
    ///
    /// Kafka: one transaction (`send_offsets_to_transaction`); consumers read
    /// `read_committed`. Embedded: one append that holds the outputs and the commit.
    ///
    /// Throws `BusError.Kind.fenced` when this member no longer owns `message`'s partition
    /// (a rebalance gave it to another member, or a newer instance fenced this one's
    /// producer): nothing was published nor committed, and the partition's new owner handles
    /// the message again. Other errors: nothing was published nor committed; the caller may
    /// retry. For group-less readers this throws `BusError.Kind.configuration`.
    func commit(_ message: BusMessage, publishing outputs: [OutgoingMessage]) async throws

    /// The partitions assigned to this member now (every partition for a group-less reader).
    /// Changes with rebalances; a partition in it may still be revoked a moment later, so
    /// decisions taken on it must tolerate a concurrent owner (see `BusError.Kind.fenced`).
    func assignment() async -> Set<BusPartition>

    /// Whether this member has received its first assignment from the group (possibly empty:
    /// with more members than partitions some own none, and are still members). Stays `true`
    /// through later rebalances. Group-less readers: `true` once reading.
    func hasJoinedGroup() async -> Bool

    /// Leaves the group (or stops the reader); the message stream then finishes.
    func close() async
}

/// A stream of messages from a bus, with explicit commits.
///
/// Iterate it once. The stream finishes after ``close()`` or when the bus shuts
/// down, and throws when the bus fails.
public struct BusSubscription: AsyncSequence, Sendable {
    public typealias Element = BusMessage

    private let stream: AsyncThrowingStream<BusMessage, any Error>
    private let control: any BusSubscriptionControl

    public init(stream: AsyncThrowingStream<BusMessage, any Error>, control: any BusSubscriptionControl) {
        self.stream = stream
        self.control = control
    }

    public func makeAsyncIterator() -> AsyncThrowingStream<BusMessage, any Error>.AsyncIterator {
        stream.makeAsyncIterator()
    }

    /// Commits `message`: the group will not see it (nor anything before it in its partition) again.
    public func commit(_ message: BusMessage) async throws {
        try await control.commit(message)
    }

    /// Publishes `outputs` and commits `message` atomically; see
    /// ``BusSubscriptionControl/commit(_:publishing:)``.
    public func commit(_ message: BusMessage, publishing outputs: [OutgoingMessage]) async throws {
        try await control.commit(message, publishing: outputs)
    }

    /// The partitions this member owns now; see ``BusSubscriptionControl/assignment()``.
    public func assignment() async -> Set<BusPartition> {
        await control.assignment()
    }

    /// Whether this member has joined its group; see ``BusSubscriptionControl/hasJoinedGroup()``.
    public func hasJoinedGroup() async -> Bool {
        await control.hasJoinedGroup()
    }

    /// Leaves the group; uncommitted messages go to the remaining members.
    public func close() async {
        await control.close()
    }
}

/// Errors a bus reports, with context.
public struct BusError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        case unknownTopic
        case closed
        case io
        case corrupt
        case timedOut
        case broker
        case configuration
        /// This member lost the partition (rebalance) or its producer was fenced by a newer
        /// instance: the work was not committed and belongs to the partition's new owner.
        case fenced
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "bus error (\(kind)): \(message)" }
}

/// The partition a key maps to, the same on every bus: murmur2 as Kafka's
/// default partitioner does, so embedded and Kafka place keys alike.
public func partition(forKey key: [UInt8]?, partitions: Int, fallback: Int = 0) -> Int {
    guard partitions > 0 else { return 0 }
    guard let key else { return fallback % partitions }
    return Int(murmur2(key) & 0x7fff_ffff) % partitions
}

/// Kafka's murmur2 (as in the Java client's `Utils.murmur2`).
func murmur2(_ data: [UInt8]) -> UInt32 {
    let seed: UInt32 = 0x9747_b28c
    let m: UInt32 = 0x5bd1_e995
    let r: UInt32 = 24
    let length = data.count
    var h: UInt32 = seed ^ UInt32(truncatingIfNeeded: length)
    let length4 = length / 4
    for i in 0..<length4 {
        let i4 = i * 4
        var k = UInt32(data[i4]) | UInt32(data[i4 + 1]) << 8 | UInt32(data[i4 + 2]) << 16 | UInt32(data[i4 + 3]) << 24
        k = k &* m
        k ^= k >> r
        k = k &* m
        h = h &* m
        h ^= k
    }
    let rest = length % 4
    let base = length & ~3
    if rest == 3 { h ^= UInt32(data[base + 2]) << 16 }
    if rest >= 2 { h ^= UInt32(data[base + 1]) << 8 }
    if rest >= 1 {
        h ^= UInt32(data[base])
        h = h &* m
    }
    h ^= h >> 13
    h = h &* m
    h ^= h >> 15
    return h
}
