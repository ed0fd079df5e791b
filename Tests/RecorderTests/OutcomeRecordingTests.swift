import BusContract
import Foundation
import Pipeline
import Testing
@testable import Recorder

/// The Recorder writes each request's first outcome from the ledger, once (invariant 8).
@Suite("Recorder: one outcome per request", .serialized)
struct OutcomeRecordingTests {
    /// A request id whose `outcomes` partition is `key`'s, so that once it is written every
    /// earlier record of that partition has been handled.
    static func sentinel(after key: String, partitions: Int = 3, _ n: Int) -> String {
        let target = partition(forKey: Array(key.utf8), partitions: partitions)
        var i = 0
        while true {
            let id = "sentinel-\(n)-\(i)"
            if partition(forKey: Array(id.utf8), partitions: partitions) == target { return id }
            i += 1
        }
    }

    static func outcomeLines(_ env: RecorderTestEnv) -> [AuditEvent] {
        lines(of: env.sinkPath).compactMap { try? JSONDecoder().decode(AuditEvent.self, from: Data($0.utf8)) }.filter { $0.kind.isOutcome }
    }

    @Test("a second outcome for a request is never written: in the backlog, while running, after a restart")
    func secondOutcomesAreDropped() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let codec = env.context.codec
        // Backlog before the Recorder starts: r-1 delivered, then expired (a raced second ending).
        try await env.bus.publish(try codec.outcome(event(.delivered, request: "r-1", stage: "forwarder", time: 10, status: 200)))
        try await env.bus.publish(try codec.outcome(event(.expired, request: "r-1", stage: "forwarder", time: 11)))
        try await env.bus.publish(try codec.outcome(event(.blocked, request: "r-2", stage: "inspector", time: 12, status: 403)))
        let s1 = Self.sentinel(after: "r-1", 1)
        try await env.bus.publish(try codec.outcome(event(.failed, request: s1, stage: "forwarder", time: 13, status: 502)))

        let first = Task { try await RecorderService(config: env.config(), context: env.context).run() }
        #expect(await eventually { Self.outcomeLines(env).contains { $0.requestID == s1 } && Self.outcomeLines(env).contains { $0.requestID == "r-2" } })
        // While running: a third ending of r-1 arrives.
        try await env.bus.publish(try codec.outcome(event(.failed, request: "r-1", stage: "forwarder", time: 14, status: 502)))
        let s2 = Self.sentinel(after: "r-1", 2)
        try await env.bus.publish(try codec.outcome(event(.delivered, request: s2, stage: "forwarder", time: 15, status: 200)))
        #expect(await eventually { Self.outcomeLines(env).contains { $0.requestID == s2 } })
        first.cancel()
        try await first.value

        // After a restart (a fresh view read from the topic): a fourth ending of r-1.
        try await env.bus.publish(try codec.outcome(event(.denied, request: "r-1", stage: "forwarder", time: 16, status: 403)))
        let s3 = Self.sentinel(after: "r-1", 3)
        try await env.bus.publish(try codec.outcome(event(.delivered, request: s3, stage: "forwarder", time: 17, status: 200)))
        let second = Task { try await RecorderService(config: env.config(), context: env.context).run() }
        #expect(await eventually { Self.outcomeLines(env).contains { $0.requestID == s3 } })
        second.cancel()
        try await second.value

        let outcomes = Self.outcomeLines(env)
        let r1 = outcomes.filter { $0.requestID == "r-1" }
        #expect(r1.count == 1 && r1.first?.kind == .delivered, "\(r1.map(\.kind))")
        #expect(Dictionary(grouping: outcomes, by: \.requestID).values.allSatisfy { $0.count == 1 })
        #expect(outcomes.count == 5)
    }
}
