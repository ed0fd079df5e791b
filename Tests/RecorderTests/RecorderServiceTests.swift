import BusContract
import Foundation
import Pipeline
import Testing
@testable import Recorder

@Suite("Recorder service", .serialized)
struct RecorderServiceTests {
    /// Event times are today (from its first millisecond, so all in one day's files): the
    /// Recorder's janitor deletes recordings of days older than `recorder.retention` (30 d).
    let t = RecordingDay(millis: Int64(Date().timeIntervalSince1970 * 1000)).startMillis

    @Test func eventsLandInSessionRecordingAndFileSink() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let service = try RecorderService(config: env.config(), context: env.context)
        let events = [
            event(.requestReceived, time: t + 1_000), event(.inspected, stage: "inspector", time: t + 1_010, decision: .allow),
            event(.delivered, stage: "forwarder", time: t + 1_200, status: 200), event(.requestReceived, session: "s-2", request: "r-2", time: t + 1_005),
        ]
        for e in events { try await env.publish(e) }
        let task = Task { try await service.run() }
        let recordings = SessionRecordings(dataDir: env.dataDir)
        #expect(await eventually { eventLines(of: env.sinkPath).count == 4 && lines(of: recordings.path(for: events[0])).count == 3 })
        task.cancel()
        try await task.value

        let s1 = try SessionReplay.load(dataDir: env.dataDir, sessionID: "s-1")
        #expect(s1 == Array(events.prefix(3)))
        #expect(try SessionReplay.load(dataDir: env.dataDir, sessionID: "s-2") == [events[3]])
        let sunk = eventLines(of: env.sinkPath).map { try? JSONDecoder().decode(AuditEvent.self, from: Data($0.utf8)) }
        #expect(Set(sunk.compactMap { $0 }) == Set(events))
    }

    @Test func committedEventsAreNotRecordedAgainAfterRestart() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        try await env.publish(event(.requestReceived, time: t + 1))
        let firstService = try RecorderService(config: env.config(), context: env.context)
        let first = Task { try await firstService.run() }
        #expect(await eventually { eventLines(of: env.sinkPath).count == 1 })
        // Commit happens right after the writes: wait until every reader committed, then restart.
        #expect(await eventually { await Self.committedEverything(env, firstService) })
        first.cancel()
        try await first.value
        try await env.publish(event(.inspected, time: t + 2))
        let secondService = try RecorderService(config: env.config(), context: env.context)
        let second = Task { try await secondService.run() }
        #expect(await eventually { eventLines(of: env.sinkPath).count == 2 })
        #expect(await eventually { await Self.committedEverything(env, secondService) })
        second.cancel()
        try await second.value
        #expect(eventLines(of: env.sinkPath).count == 2)
    }

    /// Whether the recordings' group and every sink's group have committed all of `audit` and
    /// `outcomes` (so a restart starts after what was written).
    static func committedEverything(_ env: RecorderTestEnv, _ service: RecorderService) async -> Bool {
        let topics = [env.context.topics.audit, env.context.topics.outcomes]
        for group in [service.group] + service.lanes.map(\.group) {
            guard let lag = try? await env.bus.lag(group: group, topics: topics),
                lag.values.allSatisfy({ $0.events == 0 })
            else { return false }
        }
        return true
    }

    @Test func redeliveredEventIsNotDuplicatedInReplay() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let e = event(.requestReceived, time: t + 5, id: "evt-1")
        try await env.publish(e)
        try await env.publish(e)  // as if the bus redelivered it after a crash before the commit
        try await env.publish(event(.delivered, time: t + 6, id: "evt-2", status: 201))
        let task = Task { try await RecorderService(config: env.config(), context: env.context).run() }
        let path = SessionRecordings(dataDir: env.dataDir).path(for: e)
        #expect(await eventually { lines(of: path).count == 3 })
        task.cancel()
        try await task.value
        let replay = try SessionReplay.load(dataDir: env.dataDir, sessionID: "s-1")
        #expect(replay.map(\.eventID) == ["evt-1", "evt-2"])
    }

    @Test func undecodableAuditMessageGoesToDeadletter() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        try await env.bus.publish(OutgoingMessage(topic: env.context.topics.audit, key: "s-9", value: Array("not json".utf8)))
        try await env.publish(event(.requestReceived, time: t + 1))
        let task = Task { try await RecorderService(config: env.config(), context: env.context).run() }
        #expect(await eventually { eventLines(of: env.sinkPath).count == 1 })
        let dead = try await env.bus.read(topic: env.context.topics.deadletter, from: .beginning)
        var iterator = dead.makeAsyncIterator()
        let message = try await iterator.next()
        #expect(message?.value == Array("not json".utf8))
        #expect(message?.header(MessageHeader.originalTopic) == Array(env.context.topics.audit.utf8))
        await dead.close()
        task.cancel()
        try await task.value
    }

    @Test func hecAndWebhookSinksAreBuiltWithTheirSecretsResolved() throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let sinks = try SinkFactory.makeSinks(
            try env.config(sinks: """
                [{"kind":"hec","url":"https://splunk.example:8088","token":"env:T_HEC","index":"security"},
                 {"kind":"webhook","url":"http://127.0.0.1:9/in","headers":{"X-Key":"env:T_HOOK"},"schema":"ocsf"}]
                """).recorder.sinks,
            environment: ["T_HEC": "hec-secret", "T_HOOK": "hook-secret"])
        let hec = try #require(sinks[0] as? HTTPBatchSink)
        #expect(hec.url == "https://splunk.example:8088/services/collector/event")
        #expect(hec.headers["Authorization"] == ["Splunk hec-secret"])
        #expect(hec.label == "hec:https://splunk.example:8088" && !hec.label.contains("secret"))
        let ocsf = try #require(sinks[1] as? OCSFSink)
        let hook = try #require(ocsf.inner as? HTTPBatchSink)
        #expect(hook.headers["X-Key"] == ["hook-secret"] && hook.format == .jsonArray)
    }

    @Test func anUnreadableSinkSecretFailsStartUpNamingItsPath() throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let config = try env.config(sinks: #"[{"kind":"file","path":"\#(env.sinkPath)"},{"kind":"hec","url":"https://siem.example","token":"env:SLUICE_TEST_UNSET_TOKEN"}]"#)
        do {
            _ = try SinkFactory.makeSinks(config.recorder.sinks, environment: [:])
            Issue.record("expected a start-up error")
        } catch let error as ConfigError {
            #expect(error.path == "recorder.sinks[1].token")
        }
    }

    @Test func failedSinkWriteIsRetriedBeforeCommit() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let flaky = FlakySink(failures: 3)
        let service = try RecorderService(
            config: env.config(sinks: "[]"), context: env.context, extraSinks: [flaky],
            retry: Backoff(initial: .milliseconds(10), maximum: .milliseconds(20)))
        let e = event(.requestReceived, time: t + 1, id: "evt-x")
        try await env.publish(e)
        let task = Task { try await service.run() }
        // Then the Recorder's own sink_failed and sink_recovered events reach the sink too.
        #expect(await eventually { await flaky.written.map(\.kind).contains(.sinkRecovered) })
        task.cancel()
        try await task.value
        #expect(await flaky.written.first?.eventID == "evt-x")
        #expect(await flaky.attempts == 4 + (await flaky.written.count - 1))
        // The recording succeeded the first time and was not written again while the sink was retried.
        #expect(lines(of: SessionRecordings(dataDir: env.dataDir).path(for: e)).count == 1)
    }

    @Test func sinksHoldOnlyTheEventsFields() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let finding = FindingSummary(rule: "github-pat", ruleClass: "credential", severity: "high", location: "body", start: 10, end: 50, fingerprint: "0123456789ab")
        let e = event(.inspected, stage: "inspector", time: t + 3, findings: [finding], decision: .mask)
        try await env.publish(e)
        let task = Task { try await RecorderService(config: env.config(), context: env.context).run() }
        #expect(await eventually { eventLines(of: env.sinkPath).count == 1 })
        task.cancel()
        try await task.value
        let line = try #require(eventLines(of: env.sinkPath).first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let published = try #require(try JSONSerialization.jsonObject(with: Data(try env.context.codec.audit(e).value)) as? [String: Any])
        // The event's fields and the four members of the hash chain, nothing else.
        #expect(Set(object.keys) == Set(published.keys).union(["chain_id", "prev", "seq", "chain"]))
        #expect(try JSONDecoder().decode(AuditEvent.self, from: Data(line.utf8)) == e)
        // The recording holds the event's line unchained; the sink's line is that line with the
        // chain members appended.
        let recorded = try #require(lines(of: SessionRecordings(dataDir: env.dataDir).path(for: e)).first)
        #expect(line.hasPrefix(String(recorded.dropLast()) + #","chain_id":"#))
        #expect(try JSONDecoder().decode(AuditEvent.self, from: Data(recorded.utf8)) == e)
    }
}

/// A sink that fails its first `failures` writes.
actor FlakySink: AuditSink {
    private var remaining: Int
    private(set) var attempts = 0
    private(set) var written: [AuditEvent] = []

    init(failures: Int) { remaining = failures }

    nonisolated var label: String { "flaky" }

    func write(_ event: AuditEvent) async throws {
        attempts += 1
        if remaining > 0 {
            remaining -= 1
            throw RecorderError("flaky sink refused")
        }
        written.append(event)
    }
}
