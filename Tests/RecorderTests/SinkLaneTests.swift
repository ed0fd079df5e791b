import BusContract
import Foundation
import Pipeline
import Testing
@testable import Recorder

/// Each sink reads `audit` with a cursor of its own (`SinkLane`): a dead sink holds back only
/// itself, its backlog is bounded by `max_behind`, and its outages are audit events.
@Suite("Recorder: a cursor per sink", .serialized)
struct SinkLaneTests {
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    static let fastRetry = Backoff(initial: .milliseconds(5), maximum: .milliseconds(50))

    static func group(_ env: RecorderTestEnv, _ id: String) -> String { env.context.topics.consumerGroup("recorder-sink-\(id)") }

    @Test("a dead sink holds back neither the recordings nor another sink; once back it gets every event, then its outage's sink_failed and sink_recovered")
    func aDeadSinkHoldsBackOnlyItself() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let bus = CommitRecordingBus(env.bus)
        let probe = MetricsProbe()
        let dead = SwitchableSink(label: "dead", up: false)
        let live = SwitchableSink(label: "live", up: true)
        let service = try RecorderService(
            config: env.config(), context: RecorderBatchTests.context(env, bus: bus), extraSinks: [dead, live], retry: Self.fastRetry,
            metricsFactory: probe)
        let events = (0..<60).map { event(.inspected, session: "s-\($0 % 5)", request: "r-\($0)", time: now + Int64($0), id: "e-\($0)") }
        for e in events { try await env.publish(e) }
        try await RecorderBatchTests.running(service) {
            // The configured file sink, the live sink and the recordings have everything while
            // the dead sink refuses.
            #expect(await eventually { await live.taken.filter { $0.stage != "recorder" }.count == events.count })
            #expect(await eventually { eventLines(of: env.sinkPath).count >= events.count })
            #expect(await eventually { await dead.attempts >= 3 })
            #expect(await dead.taken.isEmpty)
            #expect(bus.commits(group: Self.group(env, "extra-0")).isEmpty, "the dead sink's cursor moved")
            #expect(await eventually { !bus.commits(group: Self.group(env, "extra-1")).isEmpty })
            #expect(await eventually { !bus.commits(group: env.context.topics.consumerGroup("recorder")).isEmpty })
            // The outage is an audit event, which the live sink already has.
            #expect(await eventually { await live.taken.contains { $0.kind == .sinkFailed && $0.details?["sink"] == "dead" } })
            let failed = try #require(await live.taken.first { $0.kind == .sinkFailed })
            #expect(failed.stage == "recorder" && failed.requestID == failed.eventID && failed.sessionID == failed.eventID)
            #expect(failed.details?["error"]?.contains("dead sink is down") == true)
            #expect(probe.value("sluice_sink_up", [("sink", "dead")]) == 0)
            #expect(probe.value("sluice_sink_up", [("sink", "live")]) == 1)
            #expect((probe.value("sluice_sink_delay_seconds", [("sink", "dead")]) ?? -1) >= 0)

            await dead.set(up: true)
            #expect(await eventually { await dead.taken.contains { $0.kind == .sinkRecovered } })
            #expect(probe.value("sluice_sink_up", [("sink", "dead")]) == 1)
        }
        // Every event, in partition order (per session), then its own outage's events.
        let taken = await dead.taken
        for s in 0..<5 {
            #expect(taken.filter { $0.sessionID == "s-\(s)" }.map(\.eventID) == events.filter { $0.sessionID == "s-\(s)" }.map(\.eventID))
        }
        let recovered = try #require(taken.first { $0.kind == .sinkRecovered })
        #expect(recovered.details?["sink"] == "dead" && recovered.details?["dropped_events"] == "0")
        #expect(Int(recovered.details?["failed_attempts"] ?? "") ?? 0 >= 3)
        // One sink_failed per outage, however many attempts failed.
        #expect(taken.filter { $0.kind == .sinkFailed && $0.details?["sink"] == "dead" }.count == 1)
    }

    @Test("a sink further behind than max_behind: its oldest batches are dropped, counted and reported; it gets what comes after")
    func maxBehindBoundsTheBacklog() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let probe = MetricsProbe()
        let dead = SwitchableSink(label: "dead", up: false)
        let live = SwitchableSink(label: "live", up: true)
        let service = try RecorderService(
            config: env.config(sinks: "[]"), context: env.context, extraSinks: [dead, live], retry: Self.fastRetry,
            extraMaxBehind: .seconds(60), metricsFactory: probe)
        // Events an hour old: past max_behind.
        let old = (0..<40).map { event(.inspected, session: "s-\($0 % 3)", request: "r-\($0)", time: now - 3_600_000 + Int64($0), id: "old-\($0)") }
        for e in old { try await env.publish(e) }
        func droppedCount() -> Int { Int(probe.value("sluice_sink_dropped_events_total", [("sink", "dead")]) ?? 0) }
        try await RecorderBatchTests.running(service) {
            // Old events reach the dead sink's lane in batches; those in a failed batch are given
            // up on. (Old events delivered to the lane after the Recorder's own fresh sink_failed
            // event wait behind it, which is retried, and reach the sink once it is back.)
            #expect(await eventually {
                let nothingTaken = await dead.taken.isEmpty
                return droppedCount() > 0 && nothingTaken
            })
            // The live sink takes them all and is never dropped from.
            #expect(await eventually { await live.taken.filter { $0.eventID.hasPrefix("old-") }.count == old.count })
            #expect(probe.value("sluice_sink_dropped_events_total", [("sink", "live")]) == nil)
            #expect(await eventually { await live.taken.contains { $0.kind == .sinkEventsDropped } })
            await dead.set(up: true)
            let fresh = (0..<5).map { event(.inspected, session: "s-\($0)", request: "f-\($0)", time: currentMillis(), id: "fresh-\($0)") }
            for e in fresh { try await env.publish(e) }
            #expect(await eventually { await dead.taken.filter { $0.eventID.hasPrefix("fresh-") }.count == fresh.count })
            #expect(await eventually { await dead.taken.contains { $0.kind == .sinkRecovered } })
            // Each old event was either given up on or (behind the fresh event) delivered: never both.
            #expect(await eventually {
                let delivered = await dead.taken.filter { $0.eventID.hasPrefix("old-") }.count
                return droppedCount() + delivered == old.count
            })
            // Every drop is reported (the last report at the latest with the recovery).
            #expect(await eventually {
                await live.taken.filter { $0.kind == .sinkEventsDropped }.compactMap { Int($0.details?["events"] ?? "") }.reduce(0, +) == droppedCount()
            })
        }
        let delivered = await dead.taken.filter { $0.eventID.hasPrefix("old-") }
        #expect(Set(delivered.map(\.eventID)).count == delivered.count, "an old event reached the sink twice")
        let report = try #require(await live.taken.first { $0.kind == .sinkEventsDropped })
        #expect(report.details?["sink"] == "dead" && report.details?["max_behind_ms"] == "60000")
        #expect(report.details?["first_event_id"]?.hasPrefix("old-") == true)
        let recovered = try #require(await dead.taken.first { $0.kind == .sinkRecovered })
        #expect(recovered.details?["dropped_events"] == "\(droppedCount())")
    }

    @Test("each cursor is kept across a restart: the sink that was down gets the backlog, the one that was up nothing twice")
    func cursorsSurviveARestart() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let events = (0..<30).map { event(.inspected, session: "s-\($0 % 3)", request: "r-\($0)", time: now + Int64($0), id: "e-\($0)") }
        for e in events { try await env.publish(e) }
        let down = SwitchableSink(label: "a", up: false)
        let up = SwitchableSink(label: "b", up: true)
        let bus = CommitRecordingBus(env.bus)
        let context = RecorderBatchTests.context(env, bus: bus)
        try await RecorderBatchTests.running(try RecorderService(config: env.config(sinks: "[]"), context: context, extraSinks: [down, up], retry: Self.fastRetry)) {
            #expect(await eventually { await up.taken.contains { $0.kind == .sinkFailed } })
            // Stopped once b's cursor is past everything (the events and a's sink_failed).
            let last = try await RecorderBatchTests.highestOffsets(env, topic: env.context.topics.audit, count: events.count + 1)
            #expect(await eventually { bus.committed(group: Self.group(env, "extra-1")).filter { $0.key.topic == env.context.topics.audit } == last })
        }
        let upBefore = Set(await up.taken.map(\.eventID))
        #expect(upBefore.isSuperset(of: events.map(\.eventID)))

        // The same sinks (same ids) after a restart, both up.
        let a = SwitchableSink(label: "a", up: true)
        let b = SwitchableSink(label: "b", up: true)
        try await RecorderBatchTests.running(try RecorderService(config: env.config(sinks: "[]"), context: env.context, extraSinks: [a, b], retry: Self.fastRetry)) {
            #expect(await eventually { Set(await a.taken.map(\.eventID)).isSuperset(of: events.map(\.eventID)) })
            // A marker published now reaches b, which took nothing before it again.
            try await env.publish(event(.inspected, session: "s-0", request: "marker", time: currentMillis(), id: "marker"))
            #expect(await eventually { await b.taken.contains { $0.eventID == "marker" } })
        }
        #expect(Set(await b.taken.map(\.eventID)).isDisjoint(with: upBefore), "a sink got events again that it had taken")
    }

    @Test("sink names, max_behind and one cursor per destination are checked at start-up")
    func configuration() throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let other = env.root.appendingPathComponent("other.jsonl").path
        // Named and derived ids; max_behind parsed.
        let config = try env.config(sinks: """
            [{"kind": "file", "path": "\(env.sinkPath)", "name": "siem-file", "max_behind": "2h"},
             {"kind": "file", "path": "\(other)", "max_behind": "never"},
             {"kind": "file", "path": "\(other)", "schema": "ocsf"}]
            """)
        let ids = try SinkIdentity.ids(of: config.recorder.sinks)
        #expect(ids[0] == "siem-file")
        #expect(ids[1].hasPrefix("file-") && ids[1].count == "file-".count + 8)
        #expect(ids[1] != ids[2], "an OCSF copy of the same file is another destination")
        #expect(ids[1] == SinkIdentity.id(of: try env.config(sinks: #"[{"kind": "file", "path": "\#(other)"}]"#).recorder.sinks[0]), "the id is not stable")
        #expect(config.recorder.sinks.map(\.maxBehind) == [.after(ConfigDuration(.seconds(7200))), .never, .busRetention])
        let service = try RecorderService(config: config, context: env.context)
        #expect(service.lanes.map(\.maxBehindMillis) == [7_200_000, nil, 86_400_000])

        let bad: [(String, String)] = [
            (#"[{"kind": "file", "path": "\#(other)", "name": "Bad Name"}]"#, "recorder.sinks[0].name"),
            (#"[{"kind": "file", "path": "\#(other)", "name": "-x"}]"#, "recorder.sinks[0].name"),
            (#"[{"kind": "file", "path": "\#(other)", "max_behind": "0s"}]"#, "recorder.sinks[0].max_behind"),
            (#"[{"kind": "file", "path": "\#(other)", "max_behind": "soon"}]"#, "recorder.sinks[0].max_behind"),
        ]
        for (sinks, path) in bad {
            do {
                _ = try env.config(sinks: sinks)
                Issue.record("accepted \(sinks)")
            } catch let error as ConfigError {
                #expect(error.path == path, "\(error)")
            }
        }
        // Two entries for one destination, or two with one name, would share a cursor.
        for sinks in [
            #"[{"kind": "file", "path": "\#(other)"}, {"kind": "file", "path": "\#(other)"}]"#,
            #"[{"kind": "file", "path": "\#(other)", "name": "n"}, {"kind": "file", "path": "\#(env.sinkPath)", "name": "n"}]"#,
        ] {
            do {
                _ = try RecorderService(config: try env.config(sinks: sinks), context: env.context)
                Issue.record("accepted \(sinks)")
            } catch let error as ConfigError {
                #expect(error.path.hasPrefix("recorder.sinks[1]") && error.message.contains("recorder.sinks[0]"), "\(error)")
            }
        }
    }
}

/// A sink that takes batches while up and refuses them while down.
actor SwitchableSink: AuditSink {
    nonisolated let label: String
    private var up: Bool
    private(set) var attempts = 0
    private(set) var taken: [AuditEvent] = []

    init(label: String, up: Bool) {
        self.label = label
        self.up = up
    }

    func set(up: Bool) { self.up = up }

    func write(_ event: AuditEvent) async throws { try await write(batch: [event], lines: []) }

    func write(batch events: [AuditEvent], lines: [[UInt8]]) async throws {
        attempts += 1
        guard up else { throw RecorderError("\(label) sink is down") }
        taken += events
    }
}
