import Foundation
import Logging
import Metrics
import Pipeline

/// The Recorder stage: consumes `audit` and `outcomes`, appends every event to its session's
/// recording (`SessionRecordings`, consumer group `<prefix>recorder`) and sends it to each
/// configured sink, each sink reading with a cursor of its own (`SinkLane`, consumer group
/// `<prefix>recorder-sink-<id>`).
///
/// Each reader works in batches (`StageConsumer.run(maxBatch:_:)`): every message already
/// delivered, up to `maxBatch`, never waiting for more (a lone event is recorded at once). Per
/// batch: one append per recording file (the file's lines of the batch, whole, in order), or one
/// `AuditSink.write(batch:lines:)`, then one commit per partition.
///
/// Guarantees:
/// - Events reach every recording file and every sink in partition order.
/// - A slow or dead sink holds back only itself; the recordings and the other sinks go on.
/// - At-least-once per output: a batch is committed for the recordings only once each of its
///   events is in its recording, for a sink only once the sink took it (or gave up on it after
///   `max_behind`, reported: see `SinkLane`). A failed write is retried (with backoff, only the
///   recording files that failed, each with its whole part of the batch) until it succeeds or
///   `run` is cancelled; then the batch stays uncommitted and is redelivered. Replay
///   de-duplicates by `eventID`.
/// - Exactly one outcome per request (invariant 8): of the records on `outcomes`, only each
///   request's first (`OutcomeLedger.isFirst`) is written, as its `delivered|blocked|denied|
///   expired|failed` event; a second record (two stages raced to end one request) is counted
///   in `sluice_recorder_duplicate_outcomes_total` and committed unwritten. Every reader of every
///   Recorder instance decides alike, before or after restarts and rebalances.
/// - Recordings are filed per session per day (`SessionRecordings`); the `RecordingsJanitor`
///   runs beside the consume loops and deletes days older than `recorder.retention`.
/// - A message that is not an audit event goes to `deadletter` (once, from the recordings'
///   reader) and is committed.
/// - Nothing but the event's own fields is written anywhere (`AuditEventLine`); sinks get each
///   event's line with the hash-chain members appended (`AuditChain`, per sink and source
///   partition), plus `chain_start` and `checkpoint` lines (`AuditChainer`). The chain position
///   is saved under `<data_dir>/recorder/chains/<sink id>/` before a batch goes to the sink, so
///   a redelivered batch gives byte-identical lines. Recordings keep the unchained lines.
/// - Start-up fails (from `init`) on a sink kind this build does not support, naming
///   `recorder.sinks[i]`, on two entries for the same sink, and on a recordings directory or
///   sink file that cannot be opened.
public struct RecorderService: Sendable {
    /// The consumer group of the recordings' reader of every Recorder instance of a deployment.
    public var group: String { context.topics.consumerGroup("recorder") }

    private let context: StageContext
    /// Where recordings go: files under `data_dir` or a postgres table.
    private let store: Store
    enum Store: Sendable {
        case files(SessionRecordings, RecordingsJanitor)
        case postgres(PostgresRecordings, PostgresRecordingsJanitor)
    }
    /// One per sink, in configuration order (then the extra sinks).
    let lanes: [SinkLane]
    private let retry: Backoff
    private let ledger: OutcomeLedger
    /// Whether recordings hold content (`recorder.content`), cut at `maxBodyBytes`.
    private let content: Bool
    private let maxBodyBytes: Int
    /// Content messages (`inspected`, `replies`) that did not open or decode: skipped, counted.
    private let unreadableContent = Counter(label: "sluice_recorder_content_unreadable_total")
    /// Events written to the recordings.
    private let recordedEvents = Counter(label: "sluice_recorder_events_total")
    /// 1 while the recordings store takes writes, 0 after a failed attempt (until one succeeds).
    private let storeUp: Gauge
    /// How old the last recorded event was when it was in its recording (now − its time): how far
    /// the audit trail behind the data path is (under sustained saturation the Recorder lags).
    /// Per sink: `sluice_sink_delay_seconds{sink}`.
    private let auditDelay = Gauge(label: "sluice_audit_delay_seconds")
    /// Messages per batch handled by the recordings' reader (how far behind the Recorder is: 1
    /// when idle, up to `maxBatch`).
    private let batchSize = Metrics.Recorder(label: "sluice_recorder_batch_size")

    /// The most messages handled as one batch.
    static let maxBatch = 512
    /// Updates `sluice_recorder_lag_events` and `sluice_sink_lag_events{sink}` beside the readers.
    private let lag: RecorderLag

    /// `ledger`: the process's shared outcome ledger (`sluice run`: one view for all its stages,
    /// read by `OutcomeLedger.follow()`; it must be made with `decidesFirstRecords`); `nil`
    /// makes one that this stage reads.
    public init(config: SluiceConfig, context: StageContext, ledger: OutcomeLedger? = nil) throws {
        try self.init(config: config, context: context, extraSinks: [], ledger: ledger)
    }

    /// As `init(config:context:)`, with sinks added after the configured ones (for tests
    /// and embedders; ids `extra-<i>`, `max_behind` never unless `extraMaxBehind`). The lag gauges
    /// are updated every `lagInterval` (`RecorderLag`).
    init(
        config: SluiceConfig, context: StageContext, extraSinks: [any AuditSink], retry: Backoff = Backoff(),
        ledger: OutcomeLedger? = nil, environment: [String: String] = ProcessInfo.processInfo.environment,
        extraMaxBehind: Duration? = nil, metricsFactory: (any MetricsFactory)? = nil, lagInterval: Duration = .seconds(5)
    ) throws {
        self.context = context
        storeUp = Gauge(label: "sluice_recordings_store_up", factory: metricsFactory ?? MetricsSystem.factory)
        let ids = try SinkIdentity.ids(of: config.recorder.sinks)
        let configured = try SinkFactory.makeSinks(config.recorder.sinks, logger: context.logger)
        self.retry = retry
        let ledger = ledger ?? OutcomeLedger(context: context, retention: config.bus.retention.duration, decidesFirstRecords: true)
        self.ledger = ledger
        switch config.recorder.store.kind {
        case .file:
            let recordings = SessionRecordings(dataDir: config.dataDir)
            try recordings.prepare()
            store = .files(recordings, RecordingsJanitor(recordings: recordings, retention: config.recorder.retention.duration, logger: context.logger))
        case .postgres:
            // The URL and CA file are checked here; the database is reached in `run`.
            let database = try PostgresRecordings(store: config.recorder.store, environment: environment, logger: context.logger)
            store = .postgres(database, PostgresRecordingsJanitor(database: database, retention: config.recorder.retention.duration, logger: context.logger))
        }
        self.content = config.recorder.content
        self.maxBodyBytes = config.recorder.maxBodyBytes
        var sinks: [(id: String, sink: any AuditSink, maxBehind: Int64?)] = zip(ids, zip(configured, config.recorder.sinks)).map { id, pair in
            let maxBehind: Int64? = switch pair.1.maxBehind {
            case .busRetention: config.bus.retention.milliseconds
            case .after(let limit): limit.milliseconds
            case .never: nil
            }
            return (id, pair.0, maxBehind)
        }
        sinks += extraSinks.enumerated().map { ("extra-\($0.offset)", $0.element, extraMaxBehind?.totalMilliseconds) }
        if sinks.isEmpty {
            lanes = []
        } else {
            // A configured key that cannot be read fails start-up (naming recorder.chain_key).
            let (key, source) = try AuditChain.key(config: config, environment: environment)
            lanes = try sinks.map { id, sink, maxBehind in
                let store = ChainStateStore(dataDir: config.dataDir, lane: id)
                try store.prepare()
                let chainer = AuditChainer(
                    key: key, checkpointEvery: Int64(config.recorder.checkpointEvery),
                    checkpointIntervalMillis: config.recorder.checkpointInterval.milliseconds, store: store)
                return SinkLane(
                    id: id, sink: sink, chainer: chainer, maxBehindMillis: maxBehind, retry: retry, context: context, ledger: ledger,
                    metricsFactory: metricsFactory)
            }
            context.logger.info("audit chain key", metadata: ["source": "\(source)"])
        }
        lag = RecorderLag(context: context, content: config.recorder.content, lanes: lanes, interval: lagInterval, metricsFactory: metricsFactory)
    }

    /// Consumes `audit` and `outcomes` (the recordings' reader and one per sink) until the task
    /// is cancelled (or the bus closes the subscriptions), then leaves the groups and returns.
    /// Throws only when subscribing fails or the bus fails.
    public func run() async throws {
        // The recordings janitor and the lag gauges run beside the consume loops and are cancelled when they end.
        do {
            try await withThrowingDiscardingTaskGroup { group in
                switch store {
                case .files(_, let janitor):
                    group.addTask { await janitor.run() }
                case .postgres(let database, _):
                    group.addTask { await database.run() }
                }
                group.addTask { await lag.run() }
                try await ledger.whileFollowing {
                    try await withThrowingDiscardingTaskGroup { readers in
                        readers.addTask { try await self.consume() }
                        for lane in lanes {
                            readers.addTask { try await lane.run(maxBatch: Self.maxBatch) }
                        }
                    }
                }
                group.cancelAll()
            }
        } catch {
            await closeSinks()
            throw error
        }
        await closeSinks()
    }

    /// Closes the sinks' connections (syslog) once nothing more is written.
    private func closeSinks() async {
        for lane in lanes { await lane.sink.close() }
    }

    private func consume() async throws {
        if case .postgres(let database, let janitor) = store {
            // Nothing is taken from the bus before the table is there (the sinks go on meanwhile);
            // then retention runs beside the consume loop.
            guard await prepare(database) else { return }
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await janitor.run() }
                try await consumeRecordings()
                group.cancelAll()
            }
        } else {
            try await consumeRecordings()
        }
    }

    private func consumeRecordings() async throws {
        context.logger.info("recorder started", metadata: [
            "group": "\(group)", "sinks": "\(lanes.map { "\($0.id)=\($0.sink.label)" })", "max_batch": "\(Self.maxBatch)",
        ])
        var topics = [context.topics.audit, context.topics.outcomes]
        // The masked request (as the Forwarder gets it) and the response (as the caller does).
        if content { topics += [context.topics.inspected, context.topics.replies] }
        let consumer = StageConsumer(
            bus: context.bus, group: group, topics: topics, concurrency: 1, pace: .background, logger: context.logger,
            monitor: context.monitor("recorder"))
        try await consumer.run(maxBatch: Self.maxBatch) { batch in await self.record(batch: batch) }
        context.logger.info("recorder stopped")
    }

    /// Records a batch in the recordings, then hands it to every sink (each retrying on its own),
    /// as the readers of `run` do one after the other (tests and embedders). Returns `false`
    /// when any of them was stopped first.
    func handle(batch messages: [BusMessage]) async -> Bool {
        guard await record(batch: messages) else { return false }
        for lane in lanes {
            guard await lane.handle(batch: messages) else { return false }
        }
        return true
    }

    /// Records a batch of messages in the recordings, in order. Returns `false` (commit none of
    /// them) only when stopped before every write succeeded.
    func record(batch messages: [BusMessage]) async -> Bool {
        // One span per request ending in this batch (its outcome record), continuing the trace
        // of the stage that ended it; the spans end when the batch is stored.
        let outcomes = StageSpan.recording ? messages.filter { $0.topic == context.topics.outcomes } : []
        return await StageSpan.runBatch("sluice.recorder", messages: outcomes, attributes: { [.requestID($0.keyString ?? "")] }) {
            await recordTraced(batch: messages)
        }
    }

    private func recordTraced(batch messages: [BusMessage]) async -> Bool {
        batchSize.record(messages.count)
        let contentTopics = [context.topics.inspected, context.topics.replies]
        let contentLines = self.contentLines(messages.filter { contentTopics.contains($0.topic) })
        guard let batch = await RecorderBatch.prepare(messages.filter { !contentTopics.contains($0.topic) }, context: context, ledger: ledger) else { return false }
        for message in batch.laterOutcomes {
            context.logger.warning("second outcome for a request not recorded", metadata: [
                "request_id": "\(message.keyString ?? "")", "partition": "\(message.partition)", "offset": "\(message.offset)",
            ])
            Counter(label: "sluice_recorder_duplicate_outcomes_total").increment()
        }
        for (message, reason) in batch.undecodable { await context.deadletter(message, reason: reason) }
        return await record(batch.events, content: contentLines)
    }

    /// The sealed recording lines of the content messages (`RecordingContent`), each with the ids
    /// it is filed under: a request from `inspected`; a response from `replies`, preceded by the
    /// blocked request when the reply carries one (a blocked call never reaches `inspected`).
    /// One that does not open or decode is logged and counted, not recorded (the Forwarder or
    /// the Ingress, which read it too, dead-letter or report it).
    func contentLines(_ messages: [BusMessage]) -> [RecordingContent.Record] {
        messages.flatMap { message -> [RecordingContent.Record] in
            do {
                let time = message.timestampMillis
                let contents: [RecordingContent]
                if message.topic == context.topics.inspected {
                    contents = [
                        RecordingContent(
                            inspected: try context.codec.open(InspectedRequest.self, from: message), timeMillis: time, maxBodyBytes: maxBodyBytes)
                    ]
                } else {
                    let reply = try context.codec.open(Reply.self, from: message)
                    contents = [RecordingContent(blockedRequestOf: reply, timeMillis: time, maxBodyBytes: maxBodyBytes)].compactMap { $0 }
                        + [RecordingContent(reply: reply, timeMillis: time, maxBodyBytes: maxBodyBytes)]
                }
                return try contents.map { content in
                    RecordingContent.Record(
                        sessionID: content.sessionID, requestID: content.requestID, timeMillis: content.timeMillis, part: content.part,
                        line: try content.line(sealer: context.codec.sealer))
                }
            } catch {
                unreadableContent.increment()
                context.logger.error("request content not recorded: the message does not open", metadata: [
                    "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
                ])
                return []
            }
        }
    }

    /// Appends `events` (in order) and the content lines to their recordings, retrying until
    /// stored (files: only the files that failed; postgres: the batch's one statement).
    func record(_ events: [AuditEvent], content: [RecordingContent.Record] = []) async -> Bool {
        guard !events.isEmpty || !content.isEmpty else { return true }
        // Encoded once for every recording file.
        let lines = events.map(AuditEventLine.encode)
        let stored: Bool
        switch store {
        case .files(let recordings, _):
            stored = await append(lines: lines, of: events, content: content, to: recordings)
        case .postgres(let database, _):
            let rows = zip(events, lines).map { RecordingRow(event: $0, line: $1) } + content.map(RecordingRow.init(content:))
            stored = await retrying(what: "recording write failed", metadata: ["table": "\(database.table)", "rows": "\(rows.count)"]) {
                try await database.write(rows)
            }
        }
        guard stored else { return false }
        recordedEvents.increment(by: Int64(events.count))
        if let last = events.last { auditDelay.record(Double(max(0, currentMillis() - last.timeMillis)) / 1000) }
        return true
    }

    /// The file store's part of `record`: one append per recording file, retrying only the files
    /// that failed.
    private func append(lines: [[UInt8]], of events: [AuditEvent], content: [RecordingContent.Record], to recordings: SessionRecordings) async -> Bool {
        var appends = recordings.appends(of: events, lines: lines)
        for record in content {
            let path = (recordings.directory as NSString).appendingPathComponent(
                SessionRecordings.relativePath(sessionID: record.sessionID, requestID: record.requestID, timeMillis: record.timeMillis))
            if let i = appends.firstIndex(where: { $0.path == path }) {
                appends[i].bytes += record.line
            } else {
                appends.append(SessionRecordings.FileAppend(path: path, bytes: record.line))
            }
        }
        var pending = Array(appends.indices)
        return await retrying(what: "recording write failed", metadata: ["directory": "\(recordings.directory)"]) {
            var failures: [String] = []
            pending = pending.filter { i in
                do {
                    try recordings.append(appends[i])
                    return false
                } catch {
                    failures.append("\(appends[i].path) (\(appends[i].events) events): \(error)")
                    return true
                }
            }
            if !failures.isEmpty { throw RecorderError(failures.joined(separator: "; ")) }
        }
    }

    /// Creates the postgres table, retrying (logged, `sluice_recordings_store_up` 0) until it is
    /// there. Returns `false` when cancelled first.
    private func prepare(_ database: PostgresRecordings) async -> Bool {
        await retrying(what: "recordings database not ready", metadata: ["table": "\(database.table)"]) { try await database.prepare() }
    }

    /// Runs `operation` until it succeeds, logging each failure and waiting `retry`'s backoff;
    /// `sluice_recordings_store_up` says whether the last attempt succeeded (files or postgres).
    /// Returns `false` when cancelled first.
    private func retrying(what: String, metadata: Logger.Metadata, _ operation: () async throws -> Void) async -> Bool {
        var attempt = 0
        while true {
            do {
                try await operation()
                storeUp.record(1)
                context.readiness.set("recordings-store", kind: .dependency, ready: true, detail: "reachable")
                return true
            } catch {
                if Task.isCancelled { return false }
                storeUp.record(0)
                context.readiness.set("recordings-store", kind: .dependency, ready: false, detail: "\(what) (retrying)")
                context.logger.error("\(what)", metadata: metadata.merging(["attempt": "\(attempt)", "error": "\(error)"]) { $1 })
            }
            do { try await Task.sleep(for: retry.delay(afterAttempt: attempt)) } catch { return false }
            attempt += 1
        }
    }
}

extension RecordingContent {
    /// A sealed content line (`line(sealer:)`) with the ids it is filed under.
    struct Record: Sendable {
        var sessionID: String
        var requestID: String
        var timeMillis: Int64
        var part: Part
        var line: [UInt8]
    }
}

/// Exponential backoff: `initial`, doubling, capped at `maximum`.
struct Backoff: Sendable {
    var initial: Duration = .milliseconds(100)
    var maximum: Duration = .seconds(5)

    func delay(afterAttempt attempt: Int) -> Duration {
        var d = initial
        for _ in 0..<min(attempt, 30) {
            d *= 2
            if d >= maximum { return maximum }
        }
        return min(d, maximum)
    }
}
