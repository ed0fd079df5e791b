import Logging
import Metrics
import Pipeline

/// The Recorder stage: consumes `audit` and `outcomes` in the consumer group
/// `<prefix>recorder`, appends every event to its session's recording (`SessionRecordings`)
/// and to each configured sink.
///
/// Guarantees:
/// - At-least-once: a message is committed only after its event is in the recording and
///   in every sink. A failed write is retried (with backoff, only for the targets that
///   failed) until it succeeds or `run` is cancelled; then the message stays uncommitted
///   and is redelivered. Replay de-duplicates by `eventID`.
/// - Exactly one outcome per request (invariant 8): of the records on `outcomes`, only each
///   request's first (`OutcomeLedger.isFirst`) is written, as its `delivered|blocked|denied|
///   expired|failed` event; a second record (two stages raced to end one request) is counted
///   in `sluice_recorder_duplicate_outcomes_total` and committed unwritten. Every Recorder
///   instance decides alike, before or after restarts and rebalances.
/// - Recordings are filed per session per day (`SessionRecordings`); the `RecordingsJanitor`
///   runs beside the consume loop and deletes days older than `recorder.retention`.
/// - A message that is not an audit event goes to `deadletter` and is committed.
/// - Nothing but the event's own fields is written anywhere (`AuditEventLine`).
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
    /// Events written to the recording and every sink.
    private let recordedEvents = Counter(label: "sluice_recorder_events_total")
    /// How old the last recorded event was when it reached every sink (now − its time): how far
    /// the audit trail behind the data path is (under sustained saturation the Recorder lags).
    private let auditDelay = Gauge(label: "sluice_audit_delay_seconds")

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
        ledger: OutcomeLedger? = nil
    ) throws {
        self.context = context
        self.recordings = SessionRecordings(dataDir: config.dataDir)
        try recordings.prepare()
        self.sinks = try SinkFactory.makeSinks(config.recorder.sinks) + extraSinks
        self.retry = retry
        self.ledger = ledger ?? OutcomeLedger(context: context, retention: config.bus.retention.duration, decidesFirstRecords: true)
        self.janitor = RecordingsJanitor(recordings: recordings, retention: config.recorder.retention.duration, logger: context.logger)
    }

    /// Consumes `audit` and `outcomes` until the task is cancelled (or the bus closes the
    /// subscription), then leaves the group and returns. Throws only when subscribing fails or
    /// the bus fails.
    public func run() async throws {
        // The recordings janitor runs beside the consume loop and is cancelled when it ends.
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.janitor.run() }
            try await ledger.whileFollowing { try await self.consume() }
            group.cancelAll()
        }
    }

    private func consume() async throws {
        context.logger.info("recorder started", metadata: ["group": "\(group)", "sinks": "\(sinks.map(\.label))"])
        // One at a time: events reach the sinks in partition order.
        let consumer = StageConsumer(
            bus: context.bus, group: group, topics: [context.topics.audit, context.topics.outcomes],
            concurrency: 1, logger: context.logger)
        try await consumer.run { message in await self.handle(message) }
        context.logger.info("recorder stopped")
    }

    /// Records one message. Returns `false` (do not commit) only when cancelled before every write succeeded.
    func handle(_ message: BusMessage) async -> Bool {
        if message.topic == context.topics.outcomes {
            if TopicFollower.isMarker(message) { return true }
            do {
                guard try await ledger.isFirst(message) else {
                    context.logger.warning("second outcome for a request not recorded", metadata: [
                        "request_id": "\(message.keyString ?? "")", "partition": "\(message.partition)", "offset": "\(message.offset)",
                    ])
                    Counter(label: "sluice_recorder_duplicate_outcomes_total").increment()
                    return true
                }
            } catch {
                // The ledger reader stopped (shutdown or bus failure): do not commit.
                return false
            }
        }
        let event: AuditEvent
        do { event = try context.codec.decodeAudit(message) } catch {
            await context.deadletter(message, reason: "\(error)")
            return true
        }
        return await record(event)
    }

    /// Writes `event` to the recording and every sink, retrying only what failed.
    func record(_ event: AuditEvent) async -> Bool {
        var recorded = false
        var pendingSinks = Array(sinks.indices)
        var attempt = 0
        // Encoded once for the recording and every sink.
        let line = AuditEventLine.encode(event)
        while true {
            if !recorded {
                do {
                    try recordings.append(event, line: line)
                    recorded = true
                } catch {
                    context.logger.error("recording write failed", metadata: ["session_id": "\(event.sessionID)", "event_id": "\(event.eventID)", "attempt": "\(attempt)", "error": "\(error)"])
                }
            }
            var stillPending: [Int] = []
            for i in pendingSinks {
                do { try await sinks[i].write(event, line: line) } catch {
                    stillPending.append(i)
                    context.logger.error("sink write failed", metadata: ["sink": "\(sinks[i].label)", "event_id": "\(event.eventID)", "attempt": "\(attempt)", "error": "\(error)"])
                }
            }
            pendingSinks = stillPending
            if recorded && pendingSinks.isEmpty {
                recordedEvents.increment()
                auditDelay.record(Double(max(0, currentMillis() - event.timeMillis)) / 1000)
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
