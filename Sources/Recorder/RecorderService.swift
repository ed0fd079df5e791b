import Logging
import Pipeline

/// The Recorder stage: consumes `audit` in the consumer group `<prefix>recorder`, appends
/// every event to its session's recording (`SessionRecordings`) and to each configured sink.
///
/// Guarantees:
/// - At-least-once: a message is committed only after its event is in the recording and
///   in every sink. A failed write is retried (with backoff, only for the targets that
///   failed) until it succeeds or `run` is cancelled; then the message stays uncommitted
///   and is redelivered. Replay de-duplicates by `eventID`.
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

    public init(config: SluiceConfig, context: StageContext) throws {
        try self.init(config: config, context: context, extraSinks: [])
    }

    /// As `init(config:context:)`, with sinks added after the configured ones (for tests
    /// and embedders).
    init(config: SluiceConfig, context: StageContext, extraSinks: [any AuditSink], retry: Backoff = Backoff()) throws {
        self.context = context
        self.recordings = SessionRecordings(dataDir: config.dataDir)
        try recordings.prepare()
        self.sinks = try SinkFactory.makeSinks(config.recorder.sinks) + extraSinks
        self.retry = retry
    }

    /// Consumes `audit` until the task is cancelled (or the bus closes the subscription),
    /// then leaves the group and returns. Throws only when subscribing fails or the bus fails.
    public func run() async throws {
        let subscription = try await context.bus.subscribe(group: group, topics: [context.topics.audit])
        let logger = context.logger
        logger.info("recorder started", metadata: ["group": "\(group)", "sinks": "\(sinks.map(\.label))"])
        try await withTaskCancellationHandler {
            for try await message in subscription {
                guard await handle(message) else { break }
                do { try await subscription.commit(message) } catch {
                    if Task.isCancelled { break }
                    logger.error("commit failed", metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)"])
                }
            }
        } onCancel: {
            Task { await subscription.close() }
        }
        await subscription.close()
        logger.info("recorder stopped")
    }

    /// Records one message. Returns `false` (do not commit) only when cancelled before every write succeeded.
    func handle(_ message: BusMessage) async -> Bool {
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
        while true {
            if !recorded {
                do {
                    try recordings.append(event)
                    recorded = true
                } catch {
                    context.logger.error("recording write failed", metadata: ["session_id": "\(event.sessionID)", "event_id": "\(event.eventID)", "attempt": "\(attempt)", "error": "\(error)"])
                }
            }
            var stillPending: [Int] = []
            for i in pendingSinks {
                do { try await sinks[i].write(event) } catch {
                    stillPending.append(i)
                    context.logger.error("sink write failed", metadata: ["sink": "\(sinks[i].label)", "event_id": "\(event.eventID)", "attempt": "\(attempt)", "error": "\(error)"])
                }
            }
            pendingSinks = stillPending
            if recorded && pendingSinks.isEmpty { return true }
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
