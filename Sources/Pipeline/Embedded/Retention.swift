import Foundation

/// How an embedded topic's old records are cleaned up (Kafka's `cleanup.policy`).
///
/// Guarantees: parsing accepts exactly `delete`, `compact` and `compact,delete` (either order),
/// and `description` gives back a string that parses to the same policy.
struct CleanupPolicy: OptionSet, Sendable, Hashable, CustomStringConvertible {
    let rawValue: Int
    /// Rolled segments are deleted once consumed by every group and older than the retention.
    static let delete = CleanupPolicy(rawValue: 1)
    /// Rolled segments keep only the latest record per key; tombstones go after the retention.
    static let compact = CleanupPolicy(rawValue: 2)

    /// The `TopicSpec.config` / topic config file key.
    static let configKey = "cleanup.policy"

    init(rawValue: Int) { self.rawValue = rawValue }

    init?(parsing text: String) {
        var policy: CleanupPolicy = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            switch part.trimmingCharacters(in: .whitespaces) {
            case "delete": policy.insert(.delete)
            case "compact": policy.insert(.compact)
            default: return nil
            }
        }
        guard !policy.isEmpty else { return nil }
        self = policy
    }

    var description: String {
        [contains(.compact) ? "compact" : nil, contains(.delete) ? "delete" : nil].compactMap { $0 }.joined(separator: ",")
    }
}

/// The retention decisions, as pure functions over what is known about segments and records.
///
/// Guarantees:
/// - Only a prefix of the rolled segments is ever deleted (never the active one, never one after
///   a segment that must stay), so a partition's retained offsets stay one range.
/// - A segment is deletable only when both hold: every group position is past its last offset,
///   and its newest record is older than the retention (strictly).
/// - Compaction keeps every record that is the latest of its key, except a tombstone older than
///   the retention; records without a key are always kept.
enum RetentionRules {
    /// What deletion needs to know about one segment.
    struct SegmentFacts: Sendable, Equatable {
        /// `nil` when the segment holds no record.
        var lastOffset: Int64?
        var newestTimestampMillis: Int64?
        var isActive: Bool
    }

    /// How many leading segments may be deleted.
    ///
    /// - Parameter groupPositions: the next offset each group that commits on the topic will read
    ///   in this partition (0 for a group that has committed other partitions only); empty when no
    ///   group commits on the topic, then age alone decides.
    static func deletablePrefix(
        _ segments: [SegmentFacts], groupPositions: [Int64], nowMillis: Int64, retentionMillis: Int64
    ) -> Int {
        var n = 0
        for s in segments {
            guard !s.isActive else { break }
            let oldEnough = s.newestTimestampMillis.map { nowMillis - $0 > retentionMillis } ?? true
            let consumed = s.lastOffset.map { last in groupPositions.allSatisfy { $0 > last } } ?? true
            guard oldEnough, consumed else { break }
            n += 1
        }
        return n
    }

    /// Whether the active segment should be rolled so that maintenance can clean it: it holds a
    /// record older than the retention (Kafka's `segment.ms`, set to the retention), so a quiet
    /// partition is cleaned even when its segment never reaches `segmentBytes`.
    static func shouldRollByAge(oldestTimestampMillis: Int64?, nowMillis: Int64, retentionMillis: Int64) -> Bool {
        guard let oldest = oldestTimestampMillis else { return false }
        return nowMillis - oldest > retentionMillis
    }

    /// One record as compaction sees it.
    struct Record: Sendable, Equatable {
        var offset: Int64
        var key: [UInt8]?
        var timestampMillis: Int64
        /// An empty value: "this key is gone".
        var isTombstone: Bool
    }

    /// The offset of the latest record of each key.
    static func latestOffsets<S: Sequence>(_ records: S) -> [[UInt8]: Int64] where S.Element == Record {
        var latest: [[UInt8]: Int64] = [:]
        for r in records {
            guard let key = r.key else { continue }
            latest[key] = max(latest[key] ?? r.offset, r.offset)
        }
        return latest
    }

    /// Whether compaction keeps `record`, given the latest offset of every key in the partition.
    static func keeps(_ record: Record, latest: [[UInt8]: Int64], nowMillis: Int64, retentionMillis: Int64) -> Bool {
        guard let key = record.key else { return true }
        guard latest[key] == record.offset else { return false }
        if record.isTombstone { return nowMillis - record.timestampMillis <= retentionMillis }
        return true
    }
}
