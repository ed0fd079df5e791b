import Foundation
import Logging
import Metrics

/// How an `EmbeddedBus` stores, keeps and cleans its logs (`bus.*` in the configuration).
public struct EmbeddedBusOptions: Sendable {
    /// Partitions of a topic created implicitly by first use.
    public var defaultPartitions: Int
    /// `fdatasync` every append (machine-crash durability) instead of relying on the page cache.
    public var sync: Bool
    /// A partition's active segment rolls to a new file once it holds this many bytes (`bus.segment_bytes`).
    public var segmentBytes: Int
    /// A rolled segment is deleted once every group that commits on its topic has committed past
    /// it and its newest record is older than this; tombstones of compacted topics go after it too
    /// (`bus.retention`).
    public var retention: Duration
    /// How often maintenance (deletion, compaction) runs in the background; `nil`: only when
    /// `EmbeddedBus.runMaintenance()` is called.
    public var maintenanceInterval: Duration?
    /// A group with no member that has not committed for this long (and for at least the
    /// retention) no longer holds back deletion (Kafka's `offsets.retention.minutes`, 7 days), so
    /// a group that is gone for good cannot keep every segment forever.
    public var groupExpiry: Duration
    /// The clock for record timestamps and retention (injectable for tests).
    public var now: @Sendable () -> Date
    public var logger: Logger
    public var metrics: EmbeddedBusMetrics
    /// Test support: cuts the bus's file writes short after a number of bytes, as a crash would
    /// (see `SimulatedCrash`); `nil` (always, outside tests).
    var crash: SimulatedCrash? = nil

    public init(
        defaultPartitions: Int = 6, sync: Bool = false, segmentBytes: Int = BusConfig.defaultSegmentBytes,
        retention: Duration = .seconds(86_400), maintenanceInterval: Duration? = .seconds(30),
        groupExpiry: Duration = .seconds(7 * 86_400), now: @escaping @Sendable () -> Date = { Date() },
        logger: Logger = Logger(label: "sluice.bus"), metrics: EmbeddedBusMetrics = .swiftMetrics
    ) {
        self.defaultPartitions = defaultPartitions
        self.sync = sync
        self.segmentBytes = segmentBytes
        self.retention = retention
        self.maintenanceInterval = maintenanceInterval
        self.groupExpiry = groupExpiry
        self.now = now
        self.logger = logger
        self.metrics = metrics
    }
}

/// Where the embedded bus reports its disk use and cleaning: swift-metrics under the names
/// below (`.swiftMetrics`, the default), or a test's own recorder.
public struct EmbeddedBusMetrics: Sendable {
    /// Gauge `sluice_bus_disk_bytes{topic}`: bytes of a topic's segments on disk, after each maintenance pass.
    public static let diskBytesName = "sluice_bus_disk_bytes"
    /// Counter `sluice_bus_segments_deleted_total{topic}`: segments deleted (retention, or emptied by compaction).
    public static let segmentsDeletedName = "sluice_bus_segments_deleted_total"
    /// Counter `sluice_bus_maintenance_failures_total`: maintenance passes that failed (each one is logged).
    public static let maintenanceFailuresName = "sluice_bus_maintenance_failures_total"

    public var diskBytes: @Sendable (_ topic: String, _ bytes: Int64) -> Void
    public var segmentsDeleted: @Sendable (_ topic: String, _ count: Int) -> Void
    public var maintenanceFailed: @Sendable () -> Void

    public init(
        diskBytes: @escaping @Sendable (_ topic: String, _ bytes: Int64) -> Void,
        segmentsDeleted: @escaping @Sendable (_ topic: String, _ count: Int) -> Void,
        maintenanceFailed: @escaping @Sendable () -> Void
    ) {
        self.diskBytes = diskBytes
        self.segmentsDeleted = segmentsDeleted
        self.maintenanceFailed = maintenanceFailed
    }

    public static let none = EmbeddedBusMetrics(diskBytes: { _, _ in }, segmentsDeleted: { _, _ in }, maintenanceFailed: {})

    /// swift-metrics: a gauge and two counters under the names above (dimension `topic`).
    public static let swiftMetrics = EmbeddedBusMetrics(
        diskBytes: { topic, bytes in Gauge(label: diskBytesName, dimensions: [("topic", topic)]).record(bytes) },
        segmentsDeleted: { topic, count in
            Counter(label: segmentsDeletedName, dimensions: [("topic", topic)]).increment(by: Int64(count))
        },
        maintenanceFailed: { Counter(label: maintenanceFailuresName).increment() })
}

/// What one maintenance pass did (returned by `EmbeddedBus.runMaintenance()`, also for tooling).
public struct MaintenanceReport: Sendable, Equatable {
    /// Segments deleted (by retention, or emptied by compaction).
    public var segmentsDeleted = 0
    /// Segments rewritten by compaction.
    public var segmentsCompacted = 0
    /// Records compaction dropped.
    public var recordsRemoved = 0
    /// Bytes freed under `topics/` (and by group commit log rewrites).
    public var bytesFreed: Int64 = 0
    /// Bytes of every topic's segments after the pass.
    public var diskBytes: Int64 = 0
    /// How long the pass took.
    public var duration: Duration = .zero
    /// The longest time compaction of one partition spent on its file work (off the bus actor).
    public var longestCompaction: Duration = .zero

    public init() {}
}
