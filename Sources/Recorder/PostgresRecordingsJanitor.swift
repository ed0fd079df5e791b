import Foundation
import Logging
import Metrics

/// Deletes postgres recordings past `recorder.retention` and reports the table's size: the
/// postgres store's counterpart of `RecordingsJanitor`.
///
/// `run()` makes a pass at start and then one every `interval` until cancelled. A pass deletes
/// the rows whose event time is older than the retention (`time_ms < now - retention`), oldest
/// first, `chunk` rows per statement until fewer go (each statement stays inside its time
/// bound however much expired), adds them to `sluice_recordings_deleted_rows_total`, then sets
/// `sluice_recordings_disk_bytes` to the table's size with its indexes. A pass that fails part
/// way keeps what it deleted; the next pass deletes the rest.
///
/// Guarantees:
/// - Never throws and never stops for one failure: a pass that fails (the database is down) is
///   logged and counted in `sluice_recordings_janitor_failures_total` (`operation`: `delete` or
///   `size`); the next pass tries again. The gauge keeps its last value (never a guess).
/// - No row younger than the retention is deleted (the cut is by each row's own event time).
/// - Cancellation stops the loop at the next sleep.
public struct PostgresRecordingsJanitor: Sendable {
    public let retention: Duration
    public let interval: Duration
    private let database: PostgresRecordings
    private let logger: Logger
    private let nowMillis: @Sendable () -> Int64
    private let deletedRows: Counter
    private let diskBytes: Gauge
    private let metricsFactory: any MetricsFactory

    /// Rows deleted per statement.
    public let chunk: Int

    public init(
        database: PostgresRecordings, retention: Duration, logger: Logger, interval: Duration = .seconds(600),
        metricsFactory: any MetricsFactory = MetricsSystem.factory, chunk: Int = 10_000,
        nowMillis: @escaping @Sendable () -> Int64 = { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
    ) {
        self.chunk = max(1, chunk)
        self.database = database
        self.retention = retention
        self.interval = interval
        self.logger = logger
        self.nowMillis = nowMillis
        self.metricsFactory = metricsFactory
        deletedRows = Counter(label: "sluice_recordings_deleted_rows_total", factory: metricsFactory)
        diskBytes = Gauge(label: "sluice_recordings_disk_bytes", factory: metricsFactory)
    }

    public func run() async {
        while !Task.isCancelled {
            _ = await pass()
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }

    /// One pass: the rows deleted, or `nil` when the delete failed.
    @discardableResult
    public func pass() async -> Int? {
        let cutoff = nowMillis() - retention.totalMilliseconds
        var deleted: Int?
        var total = 0
        do {
            // In chunks, so no statement outlives its time bound however much expired at once.
            while !Task.isCancelled {
                let n = try await database.delete(before: cutoff, limit: chunk)
                total += n
                deletedRows.increment(by: Int64(n))
                if n < chunk { break }
            }
            deleted = total
        } catch {
            failed("delete", error)
        }
        if total > 0 { logger.info("recordings past retention deleted", metadata: ["table": "\(database.table)", "rows": "\(total)"]) }
        do { diskBytes.record(try await database.diskBytes()) } catch { failed("size", error) }
        return deleted
    }

    private func failed(_ operation: String, _ error: any Error) {
        if Task.isCancelled { return }
        Counter(label: "sluice_recordings_janitor_failures_total", dimensions: [("operation", operation)], factory: metricsFactory).increment()
        logger.error("recordings retention pass failed", metadata: ["table": "\(database.table)", "operation": "\(operation)", "error": "\(error)"])
    }
}
