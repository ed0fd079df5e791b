import Foundation
import Logging
import Metrics

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Deletes recordings past `recorder.retention` and reports what is on disk.
///
/// `run()` makes a pass at start and then one every `interval` until cancelled. A pass lists
/// `recordings/`, deletes what `RecordingsRetention` says is expired (whole day directories;
/// older-layout files by modification time), then sets the gauges `sluice_recordings_disk_bytes`
/// and `sluice_recordings_files` and adds the deleted recording files to
/// `sluice_recordings_deleted_total`.
///
/// Guarantees:
/// - Never throws and never stops for one failure: a listing or delete that fails is logged
///   (with the path and the reason) and counted in `sluice_recordings_janitor_failures_total`
///   (`operation`: `list` or `delete`); the entry is tried again at the next pass.
/// - Deletes nothing that retention does not name: entries it does not recognise stay, and
///   today's directory is never deleted.
/// - When a listing fails the gauges keep their previous values (they never report a guess).
/// - Cancellation stops the loop at the next sleep and stops a pass before its next delete.
/// - A recording written to a day while it is being deleted is not lost silently: the append
///   fails and the Recorder retries it (the day directory is created again), and a later pass
///   deletes it if the day is still past retention.
public struct RecordingsJanitor: Sendable {
    /// What one pass found and did.
    public struct Pass: Sendable, Equatable {
        /// Names of the day directories and older-layout files deleted, in listing order.
        public var deleted: [String] = []
        /// Recording files deleted and their bytes.
        public var deletedFiles = 0
        public var deletedBytes: Int64 = 0
        /// Entries that could not be deleted (or the recordings directory when it could not be listed).
        public var failed: [String] = []
        /// Recording files left on disk after the pass, and their bytes (`nil` when listing failed).
        public var files: Int? = nil
        public var bytes: Int64? = nil

        public init() {}
    }

    public let recordings: SessionRecordings
    public let retention: Duration
    public let interval: Duration
    private let logger: Logger
    private let nowMillis: @Sendable () -> Int64
    private let sleep: @Sendable (Duration) async throws -> Void
    private let remove: @Sendable (String) throws -> Void
    private let metrics: JanitorMetrics

    /// - Parameters:
    ///   - interval: time between passes (default 10 minutes; retention works in whole days).
    ///   - metricsFactory: where the gauges and counters go (default: the bootstrapped system).
    public init(
        recordings: SessionRecordings, retention: Duration, logger: Logger, interval: Duration = .seconds(600),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.init(
            recordings: recordings, retention: retention, logger: logger, interval: interval, metricsFactory: metricsFactory,
            nowMillis: { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) },
            sleep: { try await Task.sleep(for: $0) },
            remove: { try FileManager.default.removeItem(atPath: $0) })
    }

    /// As the public init, with the wall clock (milliseconds since 1970; UTC days are cut on
    /// it), the wait between passes (throws when cancelled) and the delete replaced (for tests).
    init(
        recordings: SessionRecordings, retention: Duration, logger: Logger, interval: Duration, metricsFactory: any MetricsFactory,
        nowMillis: @escaping @Sendable () -> Int64,
        sleep: @escaping @Sendable (Duration) async throws -> Void,
        remove: @escaping @Sendable (String) throws -> Void
    ) {
        self.recordings = recordings
        self.retention = retention
        self.interval = interval
        self.logger = logger
        self.nowMillis = nowMillis
        self.sleep = sleep
        self.remove = remove
        metrics = JanitorMetrics(factory: metricsFactory)
    }

    /// Prunes now and then every `interval`, until the task is cancelled.
    public func run() async {
        logger.info("recordings janitor started", metadata: [
            "directory": "\(recordings.directory)", "retention": "\(retention)", "interval": "\(interval)",
        ])
        while !Task.isCancelled {
            prune()
            do { try await sleep(interval) } catch { break }
        }
        logger.info("recordings janitor stopped")
    }

    /// One pass: list, delete what is expired, update the gauges and counters.
    @discardableResult
    public func prune() -> Pass {
        var pass = Pass()
        let entries: [RecordingsEntry]
        do { entries = try listing() } catch {
            logger.error("cannot list recordings", metadata: ["directory": "\(recordings.directory)", "error": "\(error)"])
            metrics.listFailures.increment()
            pass.failed = [recordings.directory]
            return pass
        }
        let retentionMillis = Self.millis(retention)
        let now = nowMillis()
        var files = 0
        var bytes: Int64 = 0
        var legacyDeleted = 0
        for entry in entries where entry.kind != .other {
            guard RecordingsRetention.isExpired(entry, nowMillis: now, retentionMillis: retentionMillis), !Task.isCancelled else {
                files += entry.files
                bytes += entry.bytes
                continue
            }
            let path = (recordings.directory as NSString).appendingPathComponent(entry.name)
            do {
                try remove(path)
                pass.deleted.append(entry.name)
                pass.deletedFiles += entry.files
                pass.deletedBytes += entry.bytes
                if entry.kind == .legacyFile { legacyDeleted += 1 }
            } catch {
                // Gone already (another Recorder sharing the directory deleted it): nothing to do.
                guard let left = measure(name: entry.name) else { continue }
                metrics.deleteFailures.increment()
                pass.failed.append(entry.name)
                if pass.failed.count <= 10 {
                    logger.error("cannot delete expired recordings", metadata: ["path": "\(path)", "error": "\(error)"])
                }
                // Count what is left of it (a directory may be partly deleted).
                files += left.files
                bytes += left.bytes
            }
        }
        if pass.failed.count > 10 {
            logger.error("cannot delete expired recordings", metadata: ["entries": "\(pass.failed.count)", "first": "\(pass.failed.prefix(10))"])
        }
        pass.files = files
        pass.bytes = bytes
        metrics.files.record(files)
        metrics.diskBytes.record(bytes)
        if pass.deletedFiles > 0 { metrics.deleted.increment(by: pass.deletedFiles) }
        if !pass.deleted.isEmpty {
            logger.info("expired recordings deleted", metadata: [
                "days": "\(pass.deleted.filter { RecordingDay(name: $0) != nil })", "older_layout_files": "\(legacyDeleted)",
                "files": "\(pass.deletedFiles)", "bytes": "\(pass.deletedBytes)", "retention": "\(retention)",
            ])
        }
        return pass
    }

    /// The entries directly under `recordings/`, each measured; none when the directory does not exist.
    func listing() throws -> [RecordingsEntry] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: recordings.directory) } catch {
            guard FileStatus(path: recordings.directory) == nil else { throw error }
            return []
        }
        return names.sorted().compactMap(measure(name:))
    }

    /// The entry `name` under `recordings/` with its files and bytes; `nil` if it is gone.
    func measure(name: String) -> RecordingsEntry? {
        let path = (recordings.directory as NSString).appendingPathComponent(name)
        guard let status = FileStatus(path: path) else { return nil }
        var entry = RecordingsEntry(
            name: name, kind: RecordingsEntry.kind(name: name, isDirectory: status.isDirectory, isRegularFile: status.isRegularFile),
            modifiedMillis: status.modifiedMillis)
        switch entry.kind {
        case .day:
            for file in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
                guard let s = FileStatus(path: (path as NSString).appendingPathComponent(file)), s.isRegularFile else { continue }
                entry.files += 1
                entry.bytes += s.size
            }
        case .legacyFile:
            entry.files = 1
            entry.bytes = status.size
        case .other:
            break
        }
        return entry
    }

    static func millis(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        return seconds.multipliedReportingOverflow(by: 1000).overflow ? .max : seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The janitor's gauges and counters.
    struct JanitorMetrics: Sendable {
        let diskBytes: Gauge
        let files: Gauge
        let deleted: Counter
        let deleteFailures: Counter
        let listFailures: Counter

        init(factory: any MetricsFactory) {
            diskBytes = Gauge(label: "sluice_recordings_disk_bytes", factory: factory)
            files = Gauge(label: "sluice_recordings_files", factory: factory)
            deleted = Counter(label: "sluice_recordings_deleted_total", factory: factory)
            deleteFailures = Counter(label: "sluice_recordings_janitor_failures_total", dimensions: [("operation", "delete")], factory: factory)
            listFailures = Counter(label: "sluice_recordings_janitor_failures_total", dimensions: [("operation", "list")], factory: factory)
        }
    }
}

/// `lstat(2)` of a path: type, size and modification time (symbolic links are not followed).
struct FileStatus {
    let isDirectory: Bool
    let isRegularFile: Bool
    let size: Int64
    let modifiedMillis: Int64

    /// `nil` when the path does not exist or cannot be examined.
    init?(path: String) {
        var s = stat()
        guard lstat(path, &s) == 0 else { return nil }
        let type = s.st_mode & S_IFMT
        isDirectory = type == S_IFDIR
        isRegularFile = type == S_IFREG
        size = Int64(s.st_size)
        #if canImport(Darwin)
        modifiedMillis = Int64(s.st_mtimespec.tv_sec) * 1000 + Int64(s.st_mtimespec.tv_nsec) / 1_000_000
        #else
        modifiedMillis = Int64(s.st_mtim.tv_sec) * 1000 + Int64(s.st_mtim.tv_nsec) / 1_000_000
        #endif
    }
}
