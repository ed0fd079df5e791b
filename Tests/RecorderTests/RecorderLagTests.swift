import BusContract
import Foundation
import Pipeline
import Testing
@testable import Recorder

/// `sluice_sink_lag_events{sink}` and `sluice_recorder_lag_events`: how many events each of the
/// Recorder's consumer groups has not committed past (`RecorderLag`).
@Suite("Recorder: consumer lag gauges", .serialized)
struct RecorderLagTests {
    @Test("a dead sink's lag grows to every event published while the live sink's and the recordings' go to 0; back, its lag goes to 0")
    func aDeadSinkLagsByEverythingPublished() async throws {
        try await withEnv(deadSinkLag)
    }

    /// Runs `body` with a new environment, cleaned up after it however it ends.
    private func withEnv(_ body: (RecorderTestEnv) async throws -> Void) async throws {
        let env = try RecorderTestEnv()
        do {
            try await body(env)
        } catch {
            await env.cleanUp()
            throw error
        }
        await env.cleanUp()
    }

    private func deadSinkLag(_ env: RecorderTestEnv) async throws {
        let probe = MetricsProbe()
        let dead = SwitchableSink(label: "dead", up: false)
        let live = SwitchableSink(label: "live", up: true)
        let service = try RecorderService(
            config: env.config(sinks: "[]"), context: env.context, extraSinks: [dead, live], retry: SinkLaneTests.fastRetry,
            metricsFactory: probe, lagInterval: .milliseconds(50))
        let now = currentMillis()
        let events = (0..<40).map { event(.inspected, session: "s-\($0 % 4)", request: "r-\($0)", time: now + Int64($0), id: "e-\($0)") }
        for e in events { try await env.publish(e) }
        let topics = [env.context.topics.audit, env.context.topics.outcomes]
        // Every event on the sinks' topics: the lag of a group that never committed.
        func published() async -> Int64? {
            guard let lag = try? await env.bus.lag(group: "never-committed", topics: topics) else { return nil }
            return lag.values.reduce(0) { $0 + $1.events }
        }
        func lag(_ sink: String) -> Int64? { probe.value("sluice_sink_lag_events", [("sink", sink)]) }

        try await RecorderBatchTests.running(service) {
            #expect(await eventually { await live.taken.filter { $0.stage != "recorder" }.count == events.count })
            #expect(await eventually { await dead.attempts >= 3 })
            // The dead sink lags by everything published (the events and the Recorder's own
            // sink_failed), the live sink and the recordings by nothing.
            #expect(await eventually {
                guard let all = await published(), all > Int64(events.count) else { return false }
                return lag("dead") == all && lag("live") == 0 && probe.value("sluice_recorder_lag_events") == 0
            })
            // (Queries before the readers created `outcomes` failed; none does since.)
            let failures = probe.value("sluice_recorder_lag_query_failures_total")

            await dead.set(up: true)
            #expect(await eventually { await dead.taken.contains { $0.kind == .sinkRecovered } })
            #expect(await eventually { lag("dead") == 0 && lag("live") == 0 && probe.value("sluice_recorder_lag_events") == 0 })
            #expect(probe.value("sluice_recorder_lag_query_failures_total") == failures)
        }
        #expect(Set(await dead.taken.map(\.eventID)).isSuperset(of: events.map(\.eventID)))
    }

    @Test("a failed lag query is counted and the gauge keeps its last value")
    func aFailedQueryKeepsTheGauge() async throws {
        try await withEnv { env in
            let probe = MetricsProbe()
            let lane = SwitchableSink(label: "a", up: true)
            let service = try RecorderService(
                config: env.config(sinks: "[]"), context: env.context, extraSinks: [lane], retry: SinkLaneTests.fastRetry,
                metricsFactory: probe, lagInterval: .milliseconds(50))
            try await env.publish(event(.inspected, time: currentMillis(), id: "e-0"))
            let monitor = RecorderLag(
                context: env.context, content: false, lanes: service.lanes, interval: .milliseconds(50), metricsFactory: probe)
            // The outcomes topic does not exist yet: the lanes' query fails, nothing is recorded.
            for target in monitor.targets { await monitor.update(target) }
            #expect(probe.value("sluice_recorder_lag_query_failures_total") == 2)
            #expect(probe.value("sluice_sink_lag_events", [("sink", "a")]) == nil)
            try await env.bus.ensureTopics([TopicSpec(name: env.context.topics.outcomes, partitions: 3)])
            for target in monitor.targets { await monitor.update(target) }
            #expect(probe.value("sluice_sink_lag_events", [("sink", "a")]) == 1)
            // A query that fails again (the bus is shut down) leaves the value.
            await env.bus.shutdown()
            for target in monitor.targets { await monitor.update(target) }
            #expect(probe.value("sluice_recorder_lag_query_failures_total") == 4)
            #expect(probe.value("sluice_sink_lag_events", [("sink", "a")]) == 1)
            #expect(probe.value("sluice_recorder_lag_events") == 1)
        }
    }
}
