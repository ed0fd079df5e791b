import Foundation
@testable import Pipeline
import Testing

/// Throughput of `commit(_:publishing:)` on the embedded bus (figures printed, no timing
/// asserts; the counts of outputs and commits are checked).
@Suite("EmbeddedBus commit benchmark", .serialized)
struct EmbeddedBusCommitBenchmarkTests {
    /// `callers` concurrent callers, each committing the messages of its own input partition in
    /// order, each commit publishing one 200-byte output.
    @Test(arguments: [(1, false), (64, false), (1, true), (64, true)])
    func atomicCommitThroughput(callers: Int, sync: Bool) async throws {
        let perCaller = sync ? max(1, 400 / callers) : max(100, 6400 / callers)
        let total = callers * perCaller
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-commit-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let bus = try EmbeddedBus(
            directory: dir, options: EmbeddedBusOptions(defaultPartitions: 6, sync: false, maintenanceInterval: nil, metrics: .none))
        try await bus.ensureTopics([TopicSpec(name: "in", partitions: callers), TopicSpec(name: "out", partitions: 6)])
        for p in 0..<callers {
            let key = (0...).lazy.map { "k\($0)" }.first { partition(forKey: Array($0.utf8), partitions: callers) == p }!
            for i in 0..<perCaller { try await bus.publish(OutgoingMessage(topic: "in", key: key, value: Array("m\(i)".utf8))) }
        }
        await bus.shutdown()
        // Reopen with the sync setting under test (the inputs were written without it).
        let measured = try EmbeddedBus(
            directory: dir, options: EmbeddedBusOptions(defaultPartitions: 6, sync: sync, maintenanceInterval: nil, metrics: .none))
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: 200)

        let atomic = try await Self.run(measured, group: "atomic", total: total) { sub, m in
            try await sub.commit(m, publishing: [OutgoingMessage(topic: "out", key: m.key, value: value)])
        }
        #expect(try await measured.endOffsets(topic: "out").reduce(0, +) == Int64(total))
        #expect(await measured.journalBytes < TransactionJournal.truncateBytes + 4096)
        for p in 0..<callers {
            #expect(await measured.committedOffset(group: "atomic", topic: "in", partition: p) == Int64(perCaller))
        }
        // For comparison: publish, then a plain commit (not atomic).
        let separate = try await Self.run(measured, group: "separate", total: total) { sub, m in
            try await measured.publish(OutgoingMessage(topic: "out", key: m.key, value: value))
            try await sub.commit(m)
        }
        #expect(try await measured.endOffsets(topic: "out").reduce(0, +) == Int64(2 * total))
        await measured.shutdown()
        print(
            "embedded bus, sync=\(sync), \(callers) caller(s), \(total) commits with 1 output of 200 B: "
                + String(
                    format: "atomic commit(_:publishing:) %.0f calls/s (%.1f µs/call); publish + commit %.0f calls/s",
                    Double(total) / atomic, atomic / Double(total) * 1e6, Double(total) / separate))
    }

    /// Consumes every input with a member of `group`, then times `commit` over all of them, one
    /// task per input partition (each in offset order); returns the seconds taken.
    private static func run(
        _ bus: EmbeddedBus, group: String, total: Int, commit: @escaping @Sendable (BusSubscription, BusMessage) async throws -> Void
    ) async throws -> Double {
        let sub = try await bus.subscribe(group: group, topics: ["in"])
        let all = try await TransactionFixture.take(sub, count: total, timeout: .seconds(60))
        let byPartition = Dictionary(grouping: all, by: \.partition).values.map { $0.sorted { $0.offset < $1.offset } }
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for messages in byPartition {
                tasks.addTask { for m in messages { try await commit(sub, m) } }
            }
            try await tasks.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        await sub.close()
        let (seconds, attoseconds) = elapsed.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
