import BusContract
import Foundation
import Logging
import Pipeline
import Synchronization
import Testing
@testable import Recorder

/// The Recorder's batches (`StageConsumer.run(maxBatch:_:)`): order, retries, commits, latency.
@Suite("Recorder batches", .serialized)
struct RecorderBatchTests {
    let t = RecordingDay(millis: Int64(Date().timeIntervalSince1970 * 1000)).startMillis
    static let fastRetry = Backoff(initial: .milliseconds(5), maximum: .milliseconds(20))

    /// A context over `bus` (a `CommitRecordingBus` of the env's bus), logging into `logs` if given.
    static func context(_ env: RecorderTestEnv, bus: any Bus, logs: CapturedLogs? = nil) -> StageContext {
        let logger = logs.map { logs in Logger(label: "recorder-batch-test") { _ in CapturingLogHandler(logs: logs) } }
        return StageContext(bus: bus, codec: env.context.codec, logger: logger ?? env.context.logger)
    }

    /// The highest offset of each partition of `topic` (read from the beginning).
    static func highestOffsets(_ env: RecorderTestEnv, topic: String, count: Int) async throws -> [BusPartition: Int64] {
        let reader = try await env.bus.read(topic: topic, from: .beginning)
        let messages = try await collect(reader, count: count, timeout: .seconds(10))
        await reader.close()
        return CommitRecordingBus.highestOffsets(messages)
    }

    /// Runs `service` while `body` runs, then cancels it and waits for it to stop.
    static func running(_ service: RecorderService, _ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            do { try await body() } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
            try await group.waitForAll()
        }
    }

    @Test func aBacklogIsRecordedInBatchesInPartitionOrder() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let sink = BatchSink()
        let service = try RecorderService(config: env.config(), context: env.context, extraSinks: [sink])
        let sessions = (0..<6).map { "s-\($0)" }
        var published: [AuditEvent] = []
        for i in 0..<300 {
            let e = event(.inspected, session: sessions[i % sessions.count], request: "r-\(i)", time: t + Int64(i))
            published.append(e)
            try await env.publish(e)
        }
        let recordings = SessionRecordings(dataDir: env.dataDir)
        try await Self.running(service) {
            // Three readers (the recordings, the file sink, the extra sink), each on its own
            // cursor: wait for all of them, not only the one that finishes first.
            #expect(await eventually {
                await sink.recorded.count == 300 && eventLines(of: env.sinkPath).count == 300
                    && sessions.allSatisfy { s in lines(of: recordings.path(for: published.first { $0.sessionID == s }!)).count == 50 }
            })
        }
        let batches = await sink.batches
        #expect(batches.count < 300, "the backlog was recorded one event at a time")
        #expect(batches.allSatisfy { $0.count <= RecorderService.maxBatch })
        let sunk = lines(of: env.sinkPath).compactMap { try? JSONDecoder().decode(AuditEvent.self, from: Data($0.utf8)) }
        for s in sessions {
            let want = published.filter { $0.sessionID == s }.map(\.eventID)
            #expect(await sink.recorded.filter { $0.sessionID == s }.map(\.eventID) == want)
            #expect(sunk.filter { $0.sessionID == s }.map(\.eventID) == want)
            // One line per event (no batch written twice), in order.
            let file = lines(of: recordings.path(for: published.first { $0.sessionID == s }!))
            #expect(file.compactMap { try? JSONDecoder().decode(AuditEvent.self, from: Data($0.utf8)).eventID } == want)
        }
    }

    @Test func aFailingSinkRetriesTheWholeBatchAndNothingIsCommittedUntilItSucceeds() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let bus = CommitRecordingBus(env.bus)
        let context = Self.context(env, bus: bus)
        let events = (0..<40).map { event(.inspected, session: "s-\($0 % 4)", request: "r-\($0)", time: t + Int64($0)) }
        for e in events { try await env.publish(e) }

        // A sink that refuses every batch: retried, never committed.
        let refusing = BatchSink(failures: .max)
        let everything = try await Self.highestOffsets(env, topic: env.context.topics.audit, count: events.count)
        try await Self.running(try RecorderService(config: env.config(sinks: "[]"), context: context, extraSinks: [refusing], retry: Self.fastRetry)) {
            #expect(await eventually { await refusing.attempts.count >= 3 })
            // (Past the events: the Recorder's sink_failed event follows them.)
            #expect(await eventually {
                let committed = bus.committed(group: env.context.topics.consumerGroup("recorder"))
                return everything.allSatisfy { committed[$0.key] ?? -1 >= $0.value }
            }, "a failing sink held back the recordings")
        }
        let refused = await refusing.attempts
        #expect(refused.allSatisfy { $0 == refused[0] }, "each retry is the same whole batch")
        // Nothing committed for the sink's cursor; the recordings' reader committed on its own.
        let sinkGroup = env.context.topics.consumerGroup("recorder-sink-extra-0")
        #expect(bus.commits(group: sinkGroup).isEmpty, "committed while a sink failed: \(bus.commits(group: sinkGroup).map(\.offset))")
        // The recordings have every event once, whatever the sink did (the service stopped
        // only after the recordings' reader had committed past them all).
        let recordings = SessionRecordings(dataDir: env.dataDir)
        let recordedLines = Set(events.map { recordings.path(for: $0) }).map { lines(of: $0).count }.reduce(0, +)
        #expect(recordedLines == events.count)

        // A sink that refuses twice: the next Recorder gets every event again (the first batch
        // included), retries the batch, then commits everything. Besides the events, the audit
        // topic now holds the Recorder's own sink_failed (twice: one per Recorder) and
        // sink_recovered events, which this sink takes too.
        let flaky = BatchSink(failures: 2)
        try await Self.running(try RecorderService(config: env.config(sinks: "[]"), context: context, extraSinks: [flaky], retry: Self.fastRetry)) {
            #expect(await eventually { await flaky.recorded.map(\.kind).contains(.sinkRecovered) })
            let last = try await Self.highestOffsets(env, topic: env.context.topics.audit, count: events.count + 3)
            #expect(await eventually { bus.committed(group: sinkGroup).filter { $0.key.topic == env.context.topics.audit } == last }, "committed \(bus.committed(group: sinkGroup)), published up to \(last)")
        }
        let attempts = await flaky.attempts
        #expect(attempts.count >= 3 && attempts[0] == attempts[1] && attempts[1] == attempts[2])
        #expect(await flaky.recorded.filter { $0.stage != "recorder" }.map(\.eventID).sorted() == events.map(\.eventID).sorted())
        #expect(await flaky.recorded.filter { $0.stage == "recorder" }.map(\.kind.rawValue).sorted() == ["sink_failed", "sink_failed", "sink_recovered"])
    }

    @Test func aBatchSpanningPartitionsCommitsEachPartition() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let bus = CommitRecordingBus(env.bus)
        let sink = BatchSink()
        let service = try RecorderService(config: env.config(), context: Self.context(env, bus: bus), extraSinks: [sink])
        // Sessions on every partition of `audit` (3 in the test env).
        let partitionOf = { (session: String) in partition(forKey: Array(session.utf8), partitions: 3) }
        var sessions: [String] = []
        var i = 0
        while Set(sessions.map(partitionOf)).count < 3 || sessions.count < 6 {
            sessions.append("span-\(i)")
            i += 1
        }
        let events = (0..<120).map { event(.inspected, session: sessions[$0 % sessions.count], request: "r-\($0)", time: t + Int64($0)) }
        for e in events { try await env.publish(e) }
        let last = try await Self.highestOffsets(env, topic: env.context.topics.audit, count: events.count)
        #expect(last.count == 3)
        try await Self.running(service) {
            #expect(await eventually { await sink.recorded.count == events.count })
            for group in ["recorder", "recorder-sink-extra-0"].map(env.context.topics.consumerGroup) {
                #expect(await eventually { bus.committed(group: group).filter { $0.key.topic == env.context.topics.audit } == last }, "\(group) committed \(bus.committed(group: group)), published up to \(last)")
            }
        }
        let batches = await sink.batches
        #expect(batches.contains { Set($0.map { partitionOf($0.sessionID) }).count > 1 }, "no batch spanned partitions")
        // At most one commit per partition per batch, not one per event.
        let auditCommits = bus.commits(group: env.context.topics.consumerGroup("recorder-sink-extra-0")).filter { $0.topic == env.context.topics.audit }
        let spans = batches.map { Set($0.map { partitionOf($0.sessionID) }).count }.reduce(0, +)
        #expect(auditCommits.count <= spans, "\(auditCommits.count) commits for \(batches.count) batches")
    }

    @Test func aLoneEventIsRecordedWithoutWaitingForABatch() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let sink = BatchSink()
        let service = try RecorderService(config: env.config(sinks: "[]"), context: env.context, extraSinks: [sink])
        try await Self.running(service) {
            try await env.publish(event(.requestReceived, request: "r-1", time: t + 1, id: "warm-up"))
            #expect(await eventually { await sink.recorded.count == 1 })
            // The Recorder is idle: one more event is recorded on its own, well within the deadline.
            try await env.publish(event(.requestReceived, request: "r-2", time: t + 2, id: "lone"))
            #expect(await eventually(timeout: .seconds(2)) { await sink.recorded.count == 2 })
        }
        #expect(await sink.batches.map { $0.map(\.eventID) } == [["warm-up"], ["lone"]])
    }

    @Test func secondOutcomesInOneBatchAreCountedAndNotWritten() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let logs = CapturedLogs()
        let codec = env.context.codec
        try await env.bus.publish(try codec.outcome(event(.delivered, request: "r-1", stage: "forwarder", time: t + 10, status: 200)))
        try await env.bus.publish(try codec.outcome(event(.expired, request: "r-1", stage: "forwarder", time: t + 11)))
        try await env.bus.publish(try codec.outcome(event(.failed, request: "r-1", stage: "forwarder", time: t + 12, status: 502)))
        let sentinel = OutcomeRecordingTests.sentinel(after: "r-1", 1)
        try await env.bus.publish(try codec.outcome(event(.blocked, request: sentinel, stage: "inspector", time: t + 13, status: 403)))
        let sink = BatchSink()
        let service = try RecorderService(config: env.config(sinks: "[]"), context: Self.context(env, bus: env.bus, logs: logs), extraSinks: [sink])
        try await Self.running(service) {
            #expect(await eventually { await sink.recorded.contains { $0.requestID == sentinel } })
        }
        let r1 = await sink.recorded.filter { $0.requestID == "r-1" }
        #expect(r1.map(\.kind) == [.delivered])
        #expect(logs.messages.filter { $0 == "second outcome for a request not recorded" }.count == 2)
    }
}

/// A sink that records the batches it is given and refuses the first `failures` of them.
actor BatchSink: AuditSink {
    private var remaining: Int
    /// The event ids of every attempt, refused or not.
    private(set) var attempts: [[String]] = []
    /// The batches taken.
    private(set) var batches: [[AuditEvent]] = []

    init(failures: Int = 0) { remaining = failures }

    nonisolated var label: String { "batches" }

    var recorded: [AuditEvent] { batches.flatMap { $0 } }

    func write(_ event: AuditEvent) async throws { try await write(batch: [event], lines: []) }

    func write(batch events: [AuditEvent], lines: [[UInt8]]) async throws {
        attempts.append(events.map(\.eventID))
        if remaining > 0 {
            remaining -= 1
            throw RecorderError("batch sink refused \(events.count) events")
        }
        batches.append(events)
    }
}

/// Log messages captured by `CapturingLogHandler`.
final class CapturedLogs: Sendable {
    private let state = Mutex<[String]>([])
    var messages: [String] { state.withLock { $0 } }
    func append(_ message: String) { state.withLock { $0.append(message) } }
}

struct CapturingLogHandler: LogHandler {
    let logs: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) { logs.append(event.message.description) }
}
