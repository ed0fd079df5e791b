import Crypto
import Foundation
import Logging
import Metrics
import Pipeline
import Synchronization

/// One sink's own cursor on `audit` and `outcomes`: its consumer group
/// (`<prefix>recorder-sink-<id>`), its audit chain, its retries.
///
/// Guarantees:
/// - A slow or dead sink holds back only itself: the recordings and every other sink read with
///   their own groups and commit on their own.
/// - At-least-once per sink: a batch is committed only after the sink took it (`AuditSink`); a
///   failed write is retried, the whole batch with the same lines, with backoff, until it
///   succeeds, the lane is stopped (then nothing is committed and the batch is redelivered), or
///   the batch is older than `maxBehind`.
/// - Bounded backlog: when a write fails, the batch's events older than `maxBehind` (by event
///   time) are given up on for this sink (the rest is retried; the batch is committed once the
///   rest is taken): counted in
///   `sluice_sink_dropped_events_total{sink}` and reported as a `sink_events_dropped` audit event
///   (at most one a minute, counting the events since the last; the rest at recovery or stop).
///   While the sink stays down, events past `maxBehind` are dropped without a write, except one
///   write attempt every `retry.maximum` to find out whether it is back. In the sink's own chain a
///   drop shows as missing events (`sluice audit verify`).
/// - Visible: `sink_failed` (the first failure after a success) and `sink_recovered` audit events;
///   gauges `sluice_sink_up{sink}` (1 taking events, 0 failing) and
///   `sluice_sink_delay_seconds{sink}` (age of the newest event it took; while failing, of the
///   oldest it has not).
/// - Messages that are not audit events are skipped here (the recordings' reader dead-letters
///   them); second outcome records are skipped as everywhere (`RecorderBatch`).
struct SinkLane: Sendable {
    let id: String
    let sink: any AuditSink
    let chainer: AuditChainer
    /// `nil`: never drop.
    let maxBehindMillis: Int64?
    let retry: Backoff
    let context: StageContext
    let ledger: OutcomeLedger
    private let health: Health
    private let up: Gauge
    private let delay: Gauge
    private let dropped: Counter
    /// How often at most a `sink_events_dropped` event is published.
    static let dropReportIntervalMillis: Int64 = 60_000

    init(
        id: String, sink: any AuditSink, chainer: AuditChainer, maxBehindMillis: Int64?, retry: Backoff, context: StageContext,
        ledger: OutcomeLedger, metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.id = id
        self.sink = sink
        self.chainer = chainer
        self.maxBehindMillis = maxBehindMillis
        self.retry = retry
        self.context = context
        self.ledger = ledger
        self.health = Health()
        let dimensions = [("sink", sink.label)]
        let factory = metricsFactory ?? MetricsSystem.factory
        up = Gauge(label: "sluice_sink_up", dimensions: dimensions, factory: factory)
        delay = Gauge(label: "sluice_sink_delay_seconds", dimensions: dimensions, factory: factory)
        dropped = Counter(label: "sluice_sink_dropped_events_total", dimensions: dimensions, factory: factory)
        up.record(1)
        // The reader's own check gates before the sink's (set ready just below) can count.
        context.readiness.expect(readerCheck)
        setReady(true, "no write has failed")
    }

    /// The sink's readiness check (`sink:<label>`, a dependency): follows `sluice_sink_up`.
    private func setReady(_ ready: Bool, _ detail: String) {
        context.readiness.set("sink:\(sink.label)", kind: .dependency, ready: ready, detail: detail)
    }

    /// The readiness check of the lane's consume loop.
    var readerCheck: String { "recorder.sink-reader.\(sink.label)" }

    /// The lane's consumer group.
    var group: String { context.topics.consumerGroup("recorder-sink-\(id)") }

    /// Consumes until cancelled (or the bus ends the subscription); reports drops not yet reported.
    func run(maxBatch: Int) async throws {
        context.logger.info("sink reader started", metadata: ["sink": "\(sink.label)", "group": "\(group)"])
        let consumer = StageConsumer(
            bus: context.bus, group: group, topics: [context.topics.audit, context.topics.outcomes], concurrency: 1,
            pace: .background, logger: context.logger, monitor: context.monitor(readerCheck))
        defer { context.logger.info("sink reader stopped", metadata: ["sink": "\(sink.label)"]) }
        do {
            try await consumer.run(maxBatch: maxBatch) { messages in await self.handle(batch: messages) }
        } catch {
            await reportDrops(force: true)
            throw error
        }
        await reportDrops(force: true)
    }

    /// Delivers one batch of messages to the sink. Returns `false` (commit none) only when
    /// stopped before the sink took it (or gave up on it, see the type).
    func handle(batch messages: [BusMessage]) async -> Bool {
        guard let batch = await RecorderBatch.prepare(messages, context: context, ledger: ledger) else { return false }
        return await deliver(batch)
    }

    func deliver(_ batch: RecorderBatch) async -> Bool {
        guard !batch.events.isEmpty else { return true }
        let lines = batch.events.map(AuditEventLine.encode)
        var chained: ChainedBatch?
        // What is still to be sent: the batch's events and chained lines, less those given up on.
        var pending: (events: [AuditEvent], lines: [[UInt8]]) = ([], [])
        var attempt = 0
        while true {
            if chained == nil {
                do {
                    // Saved before the sink gets the lines, so a redelivery finds them.
                    let made = try chainer.chain(events: batch.events, lines: lines, chains: batch.chains, offsets: batch.offsets, spans: batch.spans)
                    for (chainID, positions) in made.positions.sorted(by: { $0.key < $1.key }) { try chainer.store.save(chainID, positions) }
                    for (chainID, after) in made.segmentStarts.sorted(by: { $0.key < $1.key }) {
                        Counter(label: "sluice_audit_chain_segments_total").increment()
                        context.logger.warning("audit chain segment started: no saved chain position before this batch", metadata: [
                            "sink": "\(sink.label)", "chain_id": "\(chainID)", "after_offset": "\(after)",
                        ])
                    }
                    chained = made
                    pending = (batch.events, made.lines)
                } catch {
                    context.logger.error("audit chain state write failed", metadata: ["sink": "\(sink.label)", "attempt": "\(attempt)", "error": "\(error)"])
                }
            }
            if chained != nil {
                // While the sink is down, what is past max_behind goes without a write (but for a
                // probe now and then).
                if health.isDown(probeEveryMillis: retry.maximum.totalMilliseconds, now: currentMillis()) {
                    pending = await dropStale(pending)
                    if pending.events.isEmpty { return true }
                }
                do {
                    try await sink.write(batch: pending.events, lines: pending.lines)
                    await succeeded(newestEventMillis: pending.events.lazy.map(\.timeMillis).max() ?? 0)
                    return true
                } catch {
                    await failed(error: error, attempt: attempt, events: pending.events)
                    pending = await dropStale(pending)
                    if pending.events.isEmpty { return true }
                }
            }
            do { try await Task.sleep(for: retry.delay(afterAttempt: attempt)) } catch { return false }
            attempt += 1
        }
    }

    /// Gives up on the events (with their lines) older than `maxBehind`, by event time (a batch
    /// spans partitions, so old and new events can share it); returns the rest.
    private func dropStale(_ pending: (events: [AuditEvent], lines: [[UInt8]])) async -> (events: [AuditEvent], lines: [[UInt8]]) {
        guard let maxBehindMillis else { return pending }
        let now = currentMillis()
        var kept: (events: [AuditEvent], lines: [[UInt8]]) = ([], [])
        var stale: [AuditEvent] = []
        for (event, line) in zip(pending.events, pending.lines) {
            if now - event.timeMillis > maxBehindMillis {
                stale.append(event)
            } else {
                kept.events.append(event)
                kept.lines.append(line)
            }
        }
        if let first = stale.first, let last = stale.last { await drop(stale.count, first: first, last: last) }
        return kept
    }

    private func succeeded(newestEventMillis: Int64) async {
        delay.record(Double(max(0, currentMillis() - newestEventMillis)) / 1000)
        guard let outage = health.recovered() else { return }
        up.record(1)
        setReady(true, "writing again")
        context.logger.notice("sink recovered", metadata: [
            "sink": "\(sink.label)", "failed_for_ms": "\(outage.failedForMillis)", "failed_attempts": "\(outage.attempts)",
        ])
        await reportDrops(force: true)
        await publish(.sinkRecovered, [
            "sink": sink.label, "failed_for_ms": "\(outage.failedForMillis)", "failed_attempts": "\(outage.attempts)",
            "dropped_events": "\(outage.droppedEvents)",
        ])
    }

    private func failed(error: any Error, attempt: Int, events: [AuditEvent]) async {
        delay.record(Double(max(0, currentMillis() - (events.lazy.map(\.timeMillis).min() ?? currentMillis()))) / 1000)
        context.logger.error("sink write failed", metadata: [
            "sink": "\(sink.label)", "events": "\(events.count)", "first_event_id": "\(events.first?.eventID ?? "")",
            "attempt": "\(attempt)", "error": "\(error)",
        ])
        guard health.failed(now: currentMillis()) else { return }
        up.record(0)
        setReady(false, "writes failing (see sluice_sink_failures_total and the sink_failed audit event)")
        await publish(.sinkFailed, ["sink": sink.label, "error": String(String(describing: error).prefix(300))])
    }

    private func drop(_ count: Int, first: AuditEvent, last: AuditEvent) async {
        dropped.increment(by: Int64(count))
        health.dropped(count, firstEventID: first.eventID, lastEventID: last.eventID)
        context.logger.error("sink is further behind than max_behind: events dropped for it", metadata: [
            "sink": "\(sink.label)", "events": "\(count)", "first_event_id": "\(first.eventID)",
            "last_event_id": "\(last.eventID)", "max_behind_ms": "\(maxBehindMillis ?? 0)",
        ])
        await reportDrops(force: false)
    }

    /// Publishes a `sink_events_dropped` event for the drops not yet reported: when `force`, or
    /// when the last report is `dropReportIntervalMillis` old.
    private func reportDrops(force: Bool) async {
        guard let report = health.takeDropReport(now: currentMillis(), force: force, interval: Self.dropReportIntervalMillis) else { return }
        await publish(.sinkEventsDropped, [
            "sink": sink.label, "events": "\(report.events)", "first_event_id": report.firstEventID,
            "last_event_id": report.lastEventID, "max_behind_ms": "\(maxBehindMillis ?? 0)",
        ])
    }

    /// A sessionless Recorder event about this sink, onto `audit` (so into the recordings and
    /// every sink, this one included once it takes events again).
    private func publish(_ kind: AuditEvent.Kind, _ details: [String: String]) async {
        let id = UUID().uuidString.lowercased()
        _ = await context.audit(AuditEvent(kind: kind, stage: "recorder", requestID: id, sessionID: id, details: details, eventID: id))
    }

    /// The lane's outage and drop bookkeeping (in a `Mutex`).
    final class Health: Sendable {
        struct Outage: Sendable {
            var sinceMillis: Int64
            var attempts: Int
            var lastAttemptMillis: Int64
            var droppedEvents: Int
        }
        struct Drops: Sendable {
            var events: Int
            var firstEventID: String
            var lastEventID: String
        }
        struct Recovery: Sendable {
            var failedForMillis: Int64
            var attempts: Int
            var droppedEvents: Int
        }
        private struct State: Sendable {
            var outage: Outage?
            var unreported: Drops?
            var lastReportMillis: Int64 = .min
        }
        private let state = Mutex(State())

        /// Records a failed write; `true` when it starts an outage.
        func failed(now: Int64) -> Bool {
            state.withLock { s in
                if s.outage != nil {
                    s.outage?.attempts += 1
                    s.outage?.lastAttemptMillis = now
                    return false
                }
                s.outage = Outage(sinceMillis: now, attempts: 1, lastAttemptMillis: now, droppedEvents: 0)
                return true
            }
        }

        /// Ends the outage, if there is one.
        func recovered() -> Recovery? {
            state.withLock { s in
                guard let outage = s.outage else { return nil }
                s.outage = nil
                return Recovery(failedForMillis: currentMillis() - outage.sinceMillis, attempts: outage.attempts, droppedEvents: outage.droppedEvents)
            }
        }

        /// Whether the sink is down and the last attempt is less than `probeEveryMillis` old (then
        /// what is past `max_behind` is dropped without a write).
        func isDown(probeEveryMillis: Int64, now: Int64) -> Bool {
            state.withLock { s in
                guard let outage = s.outage else { return false }
                return now - outage.lastAttemptMillis < probeEveryMillis
            }
        }

        func dropped(_ count: Int, firstEventID: String, lastEventID: String) {
            state.withLock { s in
                s.outage?.droppedEvents += count
                if var drops = s.unreported {
                    drops.events += count
                    drops.lastEventID = lastEventID
                    s.unreported = drops
                } else {
                    s.unreported = Drops(events: count, firstEventID: firstEventID, lastEventID: lastEventID)
                }
            }
        }

        func takeDropReport(now: Int64, force: Bool, interval: Int64) -> Drops? {
            state.withLock { s in
                guard let drops = s.unreported, force || s.lastReportMillis == .min || now - s.lastReportMillis >= interval else { return nil }
                s.unreported = nil
                s.lastReportMillis = now
                return drops
            }
        }
    }
}

/// The stable name of a configured sink: its cursor (consumer group) and chain state are keyed by
/// it, so it must not change across restarts while the sink stays the same.
enum SinkIdentity {
    /// `name` when given; else `<kind>-<8 hex>` of the sink's kind, destination and schema (so
    /// two different destinations never share a cursor, and the same one keeps it).
    static func id(of config: RecorderConfig.Sink) -> String {
        if let name = config.name { return name }
        let destination = [
            config.kind.rawValue, config.path.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? "", config.url ?? "",
            config.host ?? "", config.port.map(String.init) ?? "", config.transport?.rawValue ?? "", config.index ?? "",
            config.schema.rawValue,
        ].joined(separator: "\u{0}")
        let digest = SHA256.hash(data: Array(destination.utf8))
        return config.kind.rawValue + "-" + digest.prefix(4).map { String(format: "%02x", $0) }.joined()
    }

    /// The ids of `configs`, or the path of the first that repeats an earlier one's.
    static func ids(of configs: [RecorderConfig.Sink]) throws -> [String] {
        var seen: [String: Int] = [:]
        return try configs.enumerated().map { index, config in
            let id = id(of: config)
            if let earlier = seen[id] {
                throw ConfigError(
                    path: "recorder.sinks[\(index)]" + (config.name == nil ? "" : ".name"),
                    message: "the same sink as recorder.sinks[\(earlier)] (\(id)); give each a different destination or name")
            }
            seen[id] = index
            return id
        }
    }
}
