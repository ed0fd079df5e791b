import Foundation

/// Follows a topic the way a stage rebuilds state from a changelog: reads every partition from
/// the beginning (group-less, nothing committed) and hands each record to `apply`, until the task
/// is cancelled or the bus ends the reader.
///
/// A changelog is read at the pace its reader gives (``ReadPace``): `.background` unless a caller
/// waits on the state it builds.
///
/// Guarantees:
/// - `onCaughtUp` is called exactly once, after every record that was in the topic when
///   `follow` started has been applied: it publishes a marker with a fresh nonce to each
///   partition (under a fixed per-partition key, so compaction keeps one marker per partition)
///   and waits until it has read all of them. Markers never reach `apply`.
/// - Records reach `apply` in partition order (offsets increase within a partition).
/// - Consumers of the same topic recognise markers with ``isMarker(_:)`` and skip them.
public struct TopicFollower: Sendable {
    let context: StageContext
    public let topic: String
    /// The `sluice-kind` header of this topic's catch-up markers (e.g. `holds-marker`).
    public let markerKind: String
    /// How soon the follower must see new records.
    public let pace: ReadPace

    public init(context: StageContext, topic: String, markerKind: String, pace: ReadPace = .background) {
        self.context = context
        self.topic = topic
        self.markerKind = markerKind
        self.pace = pace
    }

    /// Whether `message` is a catch-up marker of any follower (kind header ending in `-marker`).
    public static func isMarker(_ message: BusMessage) -> Bool {
        message.header(MessageHeader.kind).flatMap { String(validating: $0, as: UTF8.self) }?.hasSuffix("-marker") == true
    }

    /// Reads until the reader ends (bus shut down, or the task is cancelled); the reader is
    /// closed however this returns.
    public func follow(
        apply: @Sendable (BusMessage) async -> Void, onCaughtUp: @Sendable () async -> Void
    ) async throws {
        let subscription = try await context.bus.read(topic: topic, from: .beginning, pace: pace)
        do {
            try await follow(subscription, apply: apply, onCaughtUp: onCaughtUp)
        } catch {
            await subscription.close()
            throw error
        }
        await subscription.close()
    }

    private func follow(
        _ subscription: BusSubscription, apply: @Sendable (BusMessage) async -> Void, onCaughtUp: @Sendable () async -> Void
    ) async throws {
        let partitions = try await context.bus.partitionCount(topic: topic)
        let nonce = Array(UUID().uuidString.lowercased().utf8)
        var waiting = Set(0..<partitions)
        for p in 0..<partitions {
            let key = Self.markerKey(markerKind, partition: p, partitions: partitions)
            try await context.bus.publish(OutgoingMessage(
                topic: topic, key: key,
                headers: [BusHeader(MessageHeader.requestID, key), BusHeader(MessageHeader.kind, markerKind)],
                value: nonce))
        }
        if waiting.isEmpty { await onCaughtUp() }
        try await withTaskCancellationHandler {
            for try await message in subscription {
                if Self.isMarker(message) {
                    if !waiting.isEmpty, message.value == nonce {
                        waiting.remove(message.partition)
                        if waiting.isEmpty { await onCaughtUp() }
                    }
                    continue
                }
                await apply(message)
            }
        } onCancel: {
            // A cancellation handler cannot await: this task only wakes the loop above (closing
            // ends the message stream); nothing depends on it finishing, and `close` is idempotent
            // (`follow` closes the subscription again once the loop has ended).
            Task { await subscription.close() }
        }
    }

    /// A key of `markerKind` that lands in `partition` (the same on every bus: murmur2 placement).
    static func markerKey(_ markerKind: String, partition p: Int, partitions: Int) -> String {
        var i = 0
        while true {
            let key = "~\(markerKind)-\(p)-\(i)"
            if Pipeline.partition(forKey: Array(key.utf8), partitions: partitions) == p { return key }
            i += 1
        }
    }
}
