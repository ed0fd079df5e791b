import Foundation
import Logging
import Metrics
import Pipeline

/// The Recorder stage: consumes `audit` and `outcomes` in the consumer group
/// `<prefix>recorder`, appends every event to its session's recording (`SessionRecordings`)
/// and to each configured sink.
///
/// It works in batches (`StageConsumer.run(maxBatch:_:)`): every message already delivered, up
/// to `maxBatch`, never waiting for more (a lone event is recorded at once). Per batch: one
/// append per recording file (the file's lines of the batch, whole, in order), one
/// `AuditSink.write(batch:lines:)` per sink, one commit per partition.
///
/// Guarantees:
/// - Events reach every recording file and every sink in partition order.
/// - At-least-once: a batch is committed only after each of its events is in the recording
///   and in every sink. A failed write is retried (with backoff, only for the recording files
///   and sinks that failed, each with its whole part of the batch) until it succeeds or `run`
///   is cancelled; then the batch stays uncommitted and is redelivered. Replay de-duplicates
///   by `eventID`.
/// - Exactly one outcome per request (invariant 8): of the records on `outcomes`, only each
///   request's first (`OutcomeLedger.isFirst`) is written, as its `delivered|blocked|denied|
///   expired|failed` event; a second record (two stages raced to end one request) is counted
///   in `sluice_recorder_duplicate_outcomes_total` and committed unwritten. Every Recorder
///   instance decides alike, before or after restarts and rebalances.
/// - Recordings are filed per session per day (`SessionRecordings`); the `RecordingsJanitor`
///   runs beside the consume loop and deletes days older than `recorder.retention`.
/// - A message that is not an audit event goes to `deadletter` and is committed.
/// - Nothing but the event's own fields is written anywhere (`AuditEventLine`); sinks get each
///   event's line with the hash-chain members appended (`AuditChain`, per source partition),
///   plus `chain_start` and `checkpoint` lines (`AuditChainer`). The chain position is saved
///   under `<data_dir>/recorder/chains/` before a batch goes to the sinks, so a redelivered batch
///   gives byte-identical lines. Recordings keep the unchained lines.
/// - Start-up fails (from `init`) on a sink kind this build does not support, naming
///   `recorder.sinks[i]`, and on a recordings directory or sink file that cannot be opened.
public struct RecorderService: Sendable {
    /// The consumer group of every Recorder instance of a deployment.
    public var group: String { context.topics.consumerGroup("recorder") }

    private let context: StageContext
    private let recordings: SessionRecordings
    private let sinks: [any AuditSink]
    private let retry: Backoff
    private let ledger: OutcomeLedger
    private let janitor: RecordingsJanitor
    /// Chains the sink lines; `nil` when there is no sink.
    private let chainer: AuditChainer?
    /// New chain segments (no saved position before a batch: first start, state lost, or a
    /// partition that another instance handled).
    private let chainSegments = Counter(label: "sluice_audit_chain_segments_total")
    /// Events written to the recording and every sink.
    private let recordedEvents = Counter(label: "sluice_recorder_events_total")
    /// How old the last recorded event was when it reached every sink (now − its time): how far
    /// the audit trail behind the data path is (under sustained saturation the Recorder lags).
    private let auditDelay = Gauge(label: "sluice_audit_delay_seconds")
    /// Messages per batch handled (how far behind the Recorder is: 1 when idle, up to `maxBatch`).
    private let batchSize = Metrics.Recorder(label: "sluice_recorder_batch_size")

    /// The most messages handled as one batch.
    static let maxBatch = 512

    /// `ledger`: the process's shared outcome ledger (`sluice run`: one view for all its stages,
    /// read by `OutcomeLedger.follow()`; it must be made with `decidesFirstRecords`); `nil`
    /// makes one that this stage reads.
    public init(config: SluiceConfig, context: StageContext, ledger: OutcomeLedger? = nil) throws {
        try self.init(config: config, context: context, extraSinks: [], ledger: ledger)
    }

    /// As `init(config:context:)`, with sinks added after the configured ones (for tests
    /// and embedders).
    init(
        config: SluiceConfig, context: StageContext, extraSinks: [any AuditSink], retry: Backoff = Backoff(),
        ledger: OutcomeLedger? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.context = context
        self.recordings = SessionRecordings(dataDir: config.dataDir)
        try recordings.prepare()
        self.sinks = try SinkFactory.makeSinks(config.recorder.sinks, logger: context.logger) + extraSinks
        self.retry = retry
        self.ledger = ledger ?? OutcomeLedger(context: context, retention: config.bus.retention.duration, decidesFirstRecords: true)
        self.janitor = RecordingsJanitor(recordings: recordings, retention: config.recorder.retention.duration, logger: context.logger)
        if sinks.isEmpty {
            chainer = nil
        } else {
            // A configured key that cannot be read fails start-up (naming recorder.chain_key).
            let (key, source) = try AuditChain.key(config: config, environment: environment)
            let store = ChainStateStore(dataDir: config.dataDir)
            try store.prepare()
            chainer = AuditChainer(
                key: key, checkpointEvery: Int64(config.recorder.checkpointEvery),
                checkpointIntervalMillis: config.recorder.checkpointInterval.milliseconds, store: store)
            context.logger.info("audit chain key", metadata: ["source": "\(source)", "state": "\(store.directory)"])
        }
    }

    /// Consumes `audit` and `outcomes` until the task is cancelled (or the bus closes the
    /// subscription), then leaves the group and returns. Throws only when subscribing fails or
    /// the bus fails.
    public func run() async throws {
        // The recordings janitor runs beside the consume loop and is cancelled when it ends.
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await self.janitor.run() }
                try await ledger.whileFollowing { try await self.consume() }
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
        for sink in sinks { await sink.close() }
    }

    private func consume() async throws {
        context.logger.info("recorder started", metadata: ["group": "\(group)", "sinks": "\(sinks.map(\.label))", "max_batch": "\(Self.maxBatch)"])
        // One batch at a time: events reach the sinks in partition order.
        let consumer = StageConsumer(
            bus: context.bus, group: group, topics: [context.topics.audit, context.topics.outcomes],
            concurrency: 1, logger: context.logger)
        try await consumer.run(maxBatch: Self.maxBatch) { batch in await self.handle(batch: batch) }
        context.logger.info("recorder stopped")
    }

    /// Records a batch of messages, in order. Returns `false` (commit none of them) only when
    /// stopped before every write succeeded.
    func handle(batch messages: [BusMessage]) async -> Bool {
        batchSize.record(messages.count)
        var events: [AuditEvent] = []
        events.reserveCapacity(messages.count)
        var chains: [String] = []
        var offsets: [Int64] = []
        var spans: [String: ChainSpan] = [:]
        for message in messages {
            let chainID = AuditChain.chainID(topic: message.topic, partition: message.partition)
            spans[chainID, default: ChainSpan(first: message.offset, last: message.offset)].include(message.offset)
            if message.topic == context.topics.outcomes {
                if TopicFollower.isMarker(message) { continue }
                do {
                    guard try await ledger.isFirst(message) else {
                        context.logger.warning("second outcome for a request not recorded", metadata: [
                            "request_id": "\(message.keyString ?? "")", "partition": "\(message.partition)", "offset": "\(message.offset)",
                        ])
                        Counter(label: "sluice_recorder_duplicate_outcomes_total").increment()
                        continue
                    }
                } catch {
                    // The ledger reader stopped (shutdown or bus failure): do not commit.
                    return false
                }
            }
            do {
                events.append(try context.codec.decodeAudit(message))
                chains.append(chainID)
                offsets.append(message.offset)
            } catch {
                await context.deadletter(message, reason: "\(error)")
            }
        }
        return await record(events, chains: chains, offsets: offsets, spans: spans)
    }

    /// Writes `events` (in order) to their recordings and every sink, retrying only what failed.
    /// `chains[i]`/`offsets[i]`: the source partition's chain id and offset of `events[i]`;
    /// `spans`: every partition of the batch (see `AuditChainer`).
    func record(_ events: [AuditEvent], chains: [String], offsets: [Int64], spans: [String: ChainSpan]) async -> Bool {
        // A batch without events changes no chain (the saved position before it still holds).
        guard let last = events.last else { return true }
        // Encoded once for the recording and every sink.
        let lines = events.map(AuditEventLine.encode)
        let appends = recordings.appends(of: events, lines: lines)
        var pendingFiles = Array(appends.indices)
        var pendingSinks = Array(sinks.indices)
        // The sinks' lines and the chain positions to save before the sinks get them.
        var chained: ChainedBatch?
        var pendingState = chainer != nil
        var attempt = 0
        while true {
            if pendingState, let chainer {
                do {
                    let batch = try chained ?? chainer.chain(events: events, lines: lines, chains: chains, offsets: offsets, spans: spans)
                    chained = batch
                    for (id, positions) in batch.positions.sorted(by: { $0.key < $1.key }) { try chainer.store.save(id, positions) }
                    pendingState = false
                    for (id, after) in batch.segmentStarts.sorted(by: { $0.key < $1.key }) {
                        chainSegments.increment()
                        context.logger.warning("audit chain segment started: no saved chain position before this batch", metadata: [
                            "chain_id": "\(id)", "after_offset": "\(after)",
                        ])
                    }
                } catch {
                    context.logger.error("audit chain state write failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                }
            }
            pendingFiles = pendingFiles.filter { i in
                do {
                    try recordings.append(appends[i])
                    return false
                } catch {
                    context.logger.error("recording write failed", metadata: [
                        "file": "\(appends[i].path)", "events": "\(appends[i].events)", "attempt": "\(attempt)", "error": "\(error)",
                    ])
                    return true
                }
            }
            var stillPending: [Int] = []
            for i in pendingSinks {
                // Sinks wait for the chain positions to be saved (a redelivery must find them).
                guard !pendingState else {
                    stillPending.append(i)
                    continue
                }
                do { try await sinks[i].write(batch: events, lines: chained?.lines ?? lines) } catch {
                    stillPending.append(i)
                    context.logger.error("sink write failed", metadata: [
                        "sink": "\(sinks[i].label)", "events": "\(events.count)", "first_event_id": "\(events[0].eventID)",
                        "attempt": "\(attempt)", "error": "\(error)",
                    ])
                }
            }
            pendingSinks = stillPending
            if pendingFiles.isEmpty && pendingSinks.isEmpty {
                recordedEvents.increment(by: Int64(events.count))
                auditDelay.record(Double(max(0, currentMillis() - last.timeMillis)) / 1000)
                return true
            }
            do { try await Task.sleep(for: retry.delay(afterAttempt: attempt)) } catch { return false }
            attempt += 1
        }
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
