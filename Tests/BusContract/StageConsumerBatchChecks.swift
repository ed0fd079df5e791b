import Foundation
import Logging
import Pipeline

/// What `StageConsumer.run(maxBatch:_:)` must do on every bus, checked with the suite's
/// factory; a failed expectation throws `ContractFailure`.
extension BusContractSuite {
    /// A backlog is taken in batches (none larger than `maxBatch`), each key's messages in
    /// publish order; each batch is committed once per partition it spans, at that
    /// partition's highest offset in the batch.
    public func batchesKeepOrderAndCommitOncePerPartition() async throws {
        try await withRecordingBus { bus, topic in
            let keys = (0..<10).map { "key-\($0)" }
            let total = 300
            for i in 0..<total {
                try await bus.publish(OutgoingMessage(topic: topic, key: keys[i % keys.count], value: Array("\(i)".utf8)))
            }
            let batches = Batches()
            let consumer = StageConsumer(bus: bus, group: "g-\(UUID().uuidString)", topics: [topic], concurrency: 1, logger: Self.logger)
            try await running(consumer, maxBatch: 32, handle: { await batches.add($0); return true }) {
                let handledAll = await eventually(timeout: factory.rebalanceTimeout + .seconds(30)) { await batches.count() >= total }
                let handled = await batches.count()
                try expect(handledAll, "handled \(handled) of \(total)")
                let last = CommitRecordingBus.highestOffsets(await batches.all().flatMap { $0 })
                try expect(await eventually(timeout: .seconds(20)) { bus.committed == last },
                           "committed \(bus.committed), handled up to \(last)")
            }
            let all = await batches.all()
            try expect(all.allSatisfy { $0.count <= 32 }, "a batch over maxBatch: \(all.map(\.count).max() ?? 0)")
            try expect(all.count < total, "the backlog was handled one message at a time")
            let messages = all.flatMap { $0 }
            try expect(messages.count == total, "\(messages.count) handled for \(total) published")
            for key in keys {
                let numbers = messages.filter { $0.keyString == key }.compactMap { Int(String(decoding: $0.value, as: UTF8.self)) }
                try expect(numbers == numbers.sorted() && numbers.count == total / keys.count, "key \(key): \(numbers)")
            }
            // One commit per partition per batch, at the batch's highest offset of that partition.
            var expected: [String] = []
            for batch in all {
                for (p, offset) in CommitRecordingBus.highestOffsets(batch) { expected.append("\(p)@\(offset)") }
            }
            let made = bus.commits.map { "\(BusPartition(topic: $0.topic, partition: $0.partition))@\($0.offset)" }
            try expect(made.sorted() == expected.sorted(), "commits \(made.count), expected \(expected.count): \(made) vs \(expected)")
        }
    }

    /// With nothing else to read, a lone message is handled at once, as a batch of one.
    public func loneMessageIsHandledAtOnce() async throws {
        try await withRecordingBus { bus, topic in
            let batches = Batches()
            let consumer = StageConsumer(bus: bus, group: "g-\(UUID().uuidString)", topics: [topic], concurrency: 1, logger: Self.logger)
            try await bus.publish(OutgoingMessage(topic: topic, key: "k", value: Array("first".utf8)))
            try await running(consumer, maxBatch: 512, handle: { await batches.add($0); return true }) {
                try expect(await eventually(timeout: factory.rebalanceTimeout + .seconds(20)) { await batches.count() == 1 }, "the first message was not handled")
                try await bus.publish(OutgoingMessage(topic: topic, key: "k", value: Array("lone".utf8)))
                try expect(await eventually(timeout: .seconds(10)) { await batches.count() == 2 }, "a lone message waited for a batch to fill")
            }
            let all = await batches.all()
            try expect(all.map(\.count) == [1, 1], "batches \(all.map(\.count))")
            try expect(all.last?.first?.value == Array("lone".utf8), "the lone batch held \(String(describing: all.last))")
        }
    }

    /// A batch whose handler returns `false` is not committed: the next member of the group
    /// gets all of it again, and commits it when its handler succeeds.
    public func failedBatchIsNotCommitted() async throws {
        try await withRecordingBus { bus, topic in
            let group = "g-\(UUID().uuidString)"
            let total = 40
            for i in 0..<total {
                try await bus.publish(OutgoingMessage(topic: topic, key: "k\(i % 7)", value: Array("\(i)".utf8)))
            }
            let refused = Batches()
            let first = StageConsumer(bus: bus, group: group, topics: [topic], concurrency: 1, logger: Self.logger)
            try await running(first, maxBatch: 16, handle: { await refused.add($0); return false }) {
                try expect(await eventually(timeout: factory.rebalanceTimeout + .seconds(20)) { await refused.count() > 0 }, "nothing handled")
            }
            try expect(bus.commits.isEmpty, "a refused batch was committed: \(bus.commits.map(\.offset))")
            let accepted = Batches()
            let second = StageConsumer(bus: bus, group: group, topics: [topic], concurrency: 1, logger: Self.logger)
            try await running(second, maxBatch: 16, handle: { await accepted.add($0); return true }) {
                let handledAll = await eventually(timeout: factory.rebalanceTimeout + .seconds(30)) { await accepted.count() >= total }
                let handled = await accepted.count()
                try expect(handledAll, "the second member handled \(handled) of \(total)")
                let last = CommitRecordingBus.highestOffsets(await accepted.all().flatMap { $0 })
                try expect(await eventually(timeout: .seconds(20)) { bus.committed == last }, "committed \(bus.committed), handled \(last)")
            }
            let again = Set(await accepted.all().flatMap { $0 }.map(\.value))
            let firstBatch = Set(await refused.all().flatMap { $0 }.map(\.value))
            try expect(firstBatch.isSubset(of: again), "the refused batch was not redelivered")
            try expect(again.count == total, "\(again.count) of \(total) redelivered")
        }
    }

    // MARK: - Helpers

    private static let logger = Logger(label: "stage-consumer-batch-checks")

    /// Runs `consumer` in batches while `body` runs, then cancels it and waits for it to leave.
    private func running(
        _ consumer: StageConsumer, maxBatch: Int, handle: @escaping @Sendable ([BusMessage]) async -> Bool,
        _ body: () async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do { try await consumer.run(maxBatch: maxBatch, handle) } catch is CancellationError {}
            }
            do { try await body() } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
            try await group.waitForAll()
        }
    }

    /// A bus of the factory that records commits, with a new topic; shut down after `body`.
    private func withRecordingBus(_ body: (CommitRecordingBus, String) async throws -> Void) async throws {
        let bus = CommitRecordingBus(try await factory.makeBus())
        do {
            let topic = "batches-\(UUID().uuidString.prefix(8).lowercased())"
            try await bus.ensureTopics([TopicSpec(name: topic, partitions: partitions)])
            try await body(bus, topic)
        } catch {
            await bus.shutdown()
            throw error
        }
        await bus.shutdown()
    }
}

/// The batches a handler was given, in order.
actor Batches {
    private var batches: [[BusMessage]] = []

    func add(_ batch: [BusMessage]) { batches.append(batch) }
    /// Messages handled so far.
    func count() -> Int { batches.reduce(0) { $0 + $1.count } }
    func all() -> [[BusMessage]] { batches }
}
