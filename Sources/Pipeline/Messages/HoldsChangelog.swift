import Foundation

/// One change read from the `holds` changelog.
public enum HoldsChange: Sendable, Hashable {
    /// The latest state of a held request.
    case record(HoldRecord)
    /// The request was pruned (an empty value under its key).
    case removed(requestID: String)
}

/// Follows the `holds` changelog: reads every partition from the beginning (group-less, nothing
/// committed) and hands each change to `apply`, forever.
///
/// Guarantees:
/// - `onCaughtUp` is called exactly once, after every record that was in the topic when
///   `follow` started has been applied: it publishes a marker with a fresh nonce to each
///   partition (under a fixed per-partition key, so compaction keeps one marker per partition)
///   and waits until it has read all of them.
/// - Records that cannot be opened or decoded are logged (ids only) and skipped; they never
///   stop the reader and never reach `apply`.
public struct HoldsChangelog: Sendable {
    let context: StageContext

    public init(context: StageContext) { self.context = context }

    /// Kind header of the catch-up markers.
    public static let markerKind = "holds-marker"

    /// Reads until the subscription ends (bus shut down, or the task is cancelled).
    public func follow(
        apply: @Sendable (HoldsChange) async -> Void, onCaughtUp: @Sendable () async -> Void
    ) async throws {
        let topic = context.topics.holds
        let subscription = try await context.bus.read(topic: topic, from: .beginning)
        let partitions = try await context.bus.partitionCount(topic: topic)
        let nonce = UUID().uuidString.lowercased()
        var waiting = Set(0..<partitions)
        for p in 0..<partitions {
            let key = Self.markerKey(partition: p, partitions: partitions)
            try await context.bus.publish(OutgoingMessage(
                topic: topic, key: key,
                headers: [BusHeader(MessageHeader.requestID, key), BusHeader(MessageHeader.kind, Self.markerKind)],
                value: Array(nonce.utf8)))
        }
        if waiting.isEmpty { await onCaughtUp() }
        try await withTaskCancellationHandler {
            for try await message in subscription {
                if message.header(MessageHeader.kind).flatMap({ String(validating: $0, as: UTF8.self) }) == Self.markerKind {
                    if !waiting.isEmpty, message.value == Array(nonce.utf8) {
                        waiting.remove(message.partition)
                        if waiting.isEmpty { await onCaughtUp() }
                    }
                    continue
                }
                guard let key = message.keyString else { continue }
                if message.value.isEmpty {
                    await apply(.removed(requestID: key))
                    continue
                }
                do {
                    let record = try context.codec.open(HoldRecord.self, from: message)
                    await apply(.record(record))
                } catch {
                    context.logger.error("unreadable holds record skipped", metadata: [
                        "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
                    ])
                }
            }
        } onCancel: {
            Task { await subscription.close() }
        }
    }

    /// A key that lands in `partition` (the same on every bus: murmur2 placement).
    static func markerKey(partition p: Int, partitions: Int) -> String {
        var i = 0
        while true {
            let key = "~holds-marker-\(p)-\(i)"
            if Pipeline.partition(forKey: Array(key.utf8), partitions: partitions) == p { return key }
            i += 1
        }
    }
}
