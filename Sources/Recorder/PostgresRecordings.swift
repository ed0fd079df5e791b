import Foundation
import Logging
import Metrics
import Pipeline
import PostgresNIO
import Synchronization

/// One line of a session recording as the postgres store keeps it: an audit event's line or a
/// sealed content line (`RecordingContent`), without its newline.
public struct RecordingRow: Sendable, Equatable {
    /// Unique per record: `e:<event id>` for an event, `c:<request id>/<part>` for content. A
    /// record written twice (the bus redelivered it) is kept once.
    public var key: String
    public var sessionID: String
    public var requestID: String
    public var timeMillis: Int64
    /// The event's kind, or `content`.
    public var kind: String
    public var line: String

    public init(key: String, sessionID: String, requestID: String, timeMillis: Int64, kind: String, line: String) {
        self.key = key
        self.sessionID = sessionID
        self.requestID = requestID
        self.timeMillis = timeMillis
        self.kind = kind
        self.line = line
    }

    /// The row of an event, `line` its `AuditEventLine` (with or without the newline).
    public init(event: AuditEvent, line: [UInt8]) {
        self.init(
            key: "e:" + event.eventID, sessionID: event.sessionID, requestID: event.requestID, timeMillis: event.timeMillis,
            kind: event.kind.rawValue, line: Self.text(line))
    }

    /// The row of a sealed content line.
    init(content: RecordingContent.Record) {
        self.init(
            key: "c:\(content.requestID)/\(content.part.rawValue)", sessionID: content.sessionID, requestID: content.requestID,
            timeMillis: content.timeMillis, kind: RecordingContent.lineKind, line: Self.text(content.line))
    }

    private static func text(_ line: [UInt8]) -> String {
        String(decoding: line.last == UInt8(ascii: "\n") ? line.dropLast() : line[...], as: UTF8.self)
    }
}

/// Session recordings in one PostgreSQL table (`recorder.store.kind: postgres`), read and written
/// through postgres-nio's `PostgresClient` (a pool of at most `max_connections`).
///
/// ```sql
/// CREATE TABLE sluice_recordings (
///   id         bigint GENERATED ALWAYS AS IDENTITY,  -- write order
///   record_key text PRIMARY KEY,                     -- e:<event id> | c:<request id>/<part>
///   session_id text NOT NULL, request_id text NOT NULL,
///   time_ms    bigint NOT NULL,                      -- event time, ms since 1970 (UTC)
///   kind       text NOT NULL,                        -- the event kind, or content
///   line       text NOT NULL);                       -- the recording line, as the file store writes it
/// -- indexes: (session_id, time_ms, id) for replay, (time_ms) for retention
/// ```
///
/// Guarantees:
/// - The table and its indexes are created on start if missing (`prepare`); an existing table
///   is used as it is.
/// - A batch is one statement (`INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`): all of
///   it is stored or none of it, and a redelivered record is stored once (by `record_key`).
/// - Each call is bounded by `timeout` (a server that is down or a pool that cannot connect
///   fails the call, which the Recorder retries; nothing is committed on the bus meanwhile).
/// - Rows hold exactly what the file store's lines hold: events without bodies or secrets,
///   content sealed with the sealing key ring.
/// - Errors carry the operation and the server's reason, never the connection URL.
public struct PostgresRecordings: Sendable {
    public let table: String
    let client: PostgresClient
    let logger: Logger
    let timeout: Duration

    public init(store: RecorderConfig.Store, environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger, timeout: Duration = .seconds(10)) throws {
        guard let url = store.url else { throw ConfigError(path: "recorder.store.url", message: "required for a postgres store") }
        let target = try PostgresTarget(url: try url.resolve(path: "recorder.store.url", environment: environment), path: "recorder.store.url")
        var configuration = try target.configuration(caFile: store.caFile, caPath: "recorder.store.ca_file")
        configuration.options.maximumConnections = store.maxConnections
        configuration.options.connectTimeout = timeout
        let connectionErrors = LastConnectionError()
        // The pool logs each failed connection (with the server's reason) and retries; the last
        // reason is kept for the error of a call that times out waiting for a connection.
        let poolLogger = Logger(label: logger.label) { _ in LastConnectionError.Handler(upstream: logger.handler, errors: connectionErrors) }
        self.init(
            client: PostgresClient(configuration: configuration, backgroundLogger: poolLogger), table: store.table, logger: logger,
            timeout: timeout, connectionErrors: connectionErrors)
    }

    init(client: PostgresClient, table: String, logger: Logger, timeout: Duration, connectionErrors: LastConnectionError = LastConnectionError()) {
        self.client = client
        self.table = table
        self.logger = logger
        self.timeout = timeout
        self.connectionErrors = connectionErrors
    }

    private let connectionErrors: LastConnectionError

    /// Runs the connection pool until cancelled; every other call needs it running. A store runs
    /// once: make another to run again.
    public func run() async { await client.run() }

    /// Runs `body` with the pool running beside it, then stops the pool (once per store, as `run`).
    public func withRunning<T: Sendable>(_ body: @Sendable (PostgresRecordings) async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { await self.run(); return nil }
            defer { group.cancelAll() }
            return try await body(self)
        }
    }

    /// Creates the table and its indexes if missing.
    public func prepare() async throws {
        try await bounded("create table \(table)") {
            try await client.query("""
                CREATE TABLE IF NOT EXISTS \(unescaped: table) (
                  id bigint GENERATED ALWAYS AS IDENTITY,
                  record_key text PRIMARY KEY,
                  session_id text NOT NULL,
                  request_id text NOT NULL,
                  time_ms bigint NOT NULL,
                  kind text NOT NULL,
                  line text NOT NULL)
                """, logger: logger)
            try await client.query("CREATE INDEX IF NOT EXISTS \(unescaped: table)_session ON \(unescaped: table) (session_id, time_ms, id)", logger: logger)
            try await client.query("CREATE INDEX IF NOT EXISTS \(unescaped: table)_time ON \(unescaped: table) (time_ms)", logger: logger)
        }
    }

    /// Stores `rows` in one statement; a row whose key is stored already is left as it is.
    public func write(_ rows: [RecordingRow]) async throws {
        guard !rows.isEmpty else { return }
        let keys = rows.map(\.key), sessions = rows.map(\.sessionID), requests = rows.map(\.requestID)
        let times = rows.map(\.timeMillis), kinds = rows.map(\.kind), lines = rows.map(\.line)
        try await bounded("insert \(rows.count) rows into \(table)") {
            try await client.query("""
                INSERT INTO \(unescaped: table) (record_key, session_id, request_id, time_ms, kind, line)
                SELECT * FROM unnest(\(keys)::text[], \(sessions)::text[], \(requests)::text[], \(times)::bigint[], \(kinds)::text[], \(lines)::text[])
                ON CONFLICT (record_key) DO NOTHING
                """, logger: logger)
        }
    }

    /// The lines of `sessionID`, by event time then write order.
    public func lines(sessionID: String) async throws -> [String] {
        try await bounded("read session from \(table)") {
            var lines: [String] = []
            let rows = try await client.query(
                "SELECT line FROM \(unescaped: table) WHERE session_id = \(sessionID) ORDER BY time_ms, id", logger: logger)
            for try await line in rows.decode(String.self) { lines.append(line) }
            return lines
        }
    }

    /// Deletes the rows whose event time is before `cutoffMillis`, at most `limit` of them (the
    /// oldest first, by the `time_ms` index), in one statement; returns how many. Retention calls
    /// it until fewer than `limit` go, so a day of millions of rows is deleted in statements that
    /// each stay well inside the call's time bound.
    public func delete(before cutoffMillis: Int64, limit: Int = 10_000) async throws -> Int {
        try await bounded("delete expired rows from \(table)") {
            let rows = try await client.query("""
                WITH gone AS (
                  DELETE FROM \(unescaped: table) WHERE record_key IN (
                    SELECT record_key FROM \(unescaped: table) WHERE time_ms < \(cutoffMillis) ORDER BY time_ms LIMIT \(Int64(limit)))
                  RETURNING 1)
                SELECT count(*)::bigint FROM gone
                """, logger: logger)
            var count: Int64 = 0
            for try await n in rows.decode(Int64.self) { count = n }
            return Int(count)
        }
    }

    /// Drops the table (benchmarks and tests; never called by the Recorder).
    public func drop() async throws {
        try await bounded("drop table \(table)") { try await client.query("DROP TABLE IF EXISTS \(unescaped: table)", logger: logger) }
    }

    /// The table's size on disk with its indexes and TOAST.
    public func diskBytes() async throws -> Int64 {
        try await bounded("size of \(table)") {
            let rows = try await client.query("SELECT pg_total_relation_size(\(table)::regclass)::bigint", logger: logger)
            var bytes: Int64 = 0
            for try await n in rows.decode(Int64.self) { bytes = n }
            return bytes
        }
    }

    /// Runs `operation`, failing with a `RecorderError` naming `what` when it throws or takes
    /// longer than `timeout` (it is then cancelled).
    private func bounded<T: Sendable>(_ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await operation() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else {
                    let last = connectionErrors.value.withLock { $0 }.map { "; the last connection attempt failed: \($0)" } ?? ""
                    throw RecorderError("\(what): no answer from the recordings database within \(timeout)\(last)")
                }
                connectionErrors.value.withLock { $0 = nil }
                return value
            }
        } catch let error as RecorderError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw RecorderError("\(what): \(Self.reason(error))")
        }
    }

    /// What went wrong, for logs: the server's SQLSTATE and message, or the connection's error.
    /// PSQLError's own description hides these, and its reflection holds the statement and its
    /// bound values (recording lines), which do not belong in a log.
    static func reason(_ error: any Error) -> String {
        guard let psql = error as? PSQLError else { return "\(error)" }
        var out = "\(psql.code)"
        if let info = psql.serverInfo {
            if let state = info[.sqlState] { out += " SQLSTATE \(state)" }
            if let message = info[.message] { out += ": \(message)" }
            if let detail = info[.detail] { out += " (\(detail))" }
        } else if let underlying = psql.underlying {
            out += ": \(underlying)"
        }
        return out
    }
}

/// The reason the connection pool last gave for a connection it could not make (`nil` once a
/// call succeeded), read from what the pool logs.
final class LastConnectionError: Sendable {
    let value = Mutex<String?>(nil)

    /// Passes records at `upstream`'s level or above on to it, and keeps the `psql_error` of
    /// failed connections (logged by the pool at `info`) whatever `upstream`'s level.
    struct Handler: LogHandler {
        var upstream: any LogHandler
        let errors: LastConnectionError

        var logLevel: Logger.Level {
            get { min(upstream.logLevel, .info) }
            set { upstream.logLevel = newValue }
        }
        var metadata: Logger.Metadata {
            get { upstream.metadata }
            set { upstream.metadata = newValue }
        }
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { upstream[metadataKey: key] }
            set { upstream[metadataKey: key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            if let error = metadata?["psql_error"] { errors.value.withLock { $0 = "\(error)" } }
            guard level >= upstream.logLevel else { return }
            upstream.log(level: level, message: message, metadata: metadata, source: source, file: file, function: function, line: line)
        }
    }
}
