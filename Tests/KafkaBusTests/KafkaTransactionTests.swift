import BusContract
import Foundation
@testable import KafkaBus
import Pipeline
import Testing

/// Helpers for the transaction tests.
enum TransactionTestSupport {
    static var brokerKind: String { ProcessInfo.processInfo.environment["SLUICE_KAFKA_BROKER_KIND"] ?? "" }

    static func topicName(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())" }

    /// A key that lands in `partition` of a topic of `partitions` partitions.
    static func key(for partition: Int, of partitions: Int, tag: String = "k") -> String {
        var i = 0
        while true {
            let key = "\(tag)-\(i)"
            if Pipeline.partition(forKey: Array(key.utf8), partitions: partitions) == partition { return key }
            i += 1
        }
    }

    /// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
    static func waitUntil(_ timeout: Duration, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return await condition()
    }

    /// The next `count` messages of `iterator`.
    static func next(
        _ count: Int, _ iterator: inout AsyncThrowingStream<BusMessage, any Error>.AsyncIterator
    ) async throws -> [BusMessage] {
        var messages: [BusMessage] = []
        while messages.count < count {
            guard let message = try await iterator.next() else { break }
            messages.append(message)
        }
        return messages
    }

    static func percentile(_ values: [Duration], _ p: Double) -> Duration {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .zero }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }
}

extension KafkaBrokerTests {
    /// `commit(_:publishing:)` as a Kafka transaction.
    @Suite("transactions")
    struct Transactions {
        typealias Support = TransactionTestSupport
        let brokers = KafkaTestBroker.brokers ?? ""

        @Test(.timeLimit(.minutes(2)))
        func outputsAndCommitAreVisibleAfterCommit() async throws {
            let bus = try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
            let input = Support.topicName("txn-in"), output = Support.topicName("txn-out")
            try await bus.ensureTopics([TopicSpec(name: input, partitions: 1), TopicSpec(name: output, partitions: 1)])
            for i in 0..<5 { try await bus.publish(OutgoingMessage(topic: input, key: "k", value: Array("in-\(i)".utf8))) }
            let group = "g-\(UUID().uuidString)"
            let first = try await bus.subscribe(group: group, topics: [input])
            var iterator = first.makeAsyncIterator()
            for message in try await Support.next(3, &iterator) {
                let value = String(decoding: message.value, as: UTF8.self).replacingOccurrences(of: "in", with: "out")
                try await first.commit(message, publishing: [OutgoingMessage(topic: output, key: "k", value: Array(value.utf8))])
            }
            let statistics = bus.transactionStatistics
            await first.close()
            // A new member resumes after the last committed message.
            let second = try await bus.subscribe(group: group, topics: [input])
            var resumed = second.makeAsyncIterator()
            let next = try #require(try await resumed.next())
            #expect(String(decoding: next.value, as: UTF8.self) == "in-3", "resumed at offset \(next.offset)")
            await second.close()
            // The outputs are readable (read_committed), in order.
            let reader = try await bus.read(topic: output, from: .beginning)
            var outputs = reader.makeAsyncIterator()
            let values = try await Support.next(3, &outputs).map { String(decoding: $0.value, as: UTF8.self) }
            #expect(values == ["out-0", "out-1", "out-2"])
            await reader.close()
            print("transactions: \(statistics.transactions) for \(statistics.requests) commit(_:publishing:) calls")
            #expect(statistics.requests == 3 && statistics.transactions >= 1)
            await bus.shutdown()
        }

        @Test(.timeLimit(.minutes(2)))
        func concurrentCommitsLandInOrderAndAreBatched() async throws {
            let bus = try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
            let partitions = 6, perPartition = 30
            let input = Support.topicName("txn-many-in"), output = Support.topicName("txn-many-out")
            try await bus.ensureTopics([
                TopicSpec(name: input, partitions: partitions), TopicSpec(name: output, partitions: partitions),
            ])
            let keys = (0..<partitions).map { Support.key(for: $0, of: partitions) }
            for i in 0..<perPartition {
                for key in keys { try await bus.publish(OutgoingMessage(topic: input, key: key, value: Array("\(i)".utf8))) }
            }
            let group = "g-\(UUID().uuidString)"
            let sub = try await bus.subscribe(group: group, topics: [input])
            var iterator = sub.makeAsyncIterator()
            let messages = try await Support.next(partitions * perPartition, &iterator)
            let byPartition = Dictionary(grouping: messages, by: \.partition)
            #expect(byPartition.count == partitions)
            // One task per partition, each committing its messages in order: up to
            // `partitions` calls wait at once and share transactions.
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (_, list) in byPartition {
                    group.addTask {
                        for message in list {
                            let key = try #require(message.keyString)
                            try await sub.commit(message, publishing: [
                                OutgoingMessage(topic: output, key: key, value: Array("\(message.offset)".utf8)),
                            ])
                        }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - started
            let statistics = bus.transactionStatistics
            print("concurrent commit(_:publishing:): \(statistics.requests) calls in \(statistics.transactions) transactions (\(partitions) callers, \(elapsed))")
            #expect(statistics.requests == messages.count)
            #expect(statistics.transactions < statistics.requests, "concurrent calls were not batched")
            await sub.close()
            // Every output landed, in order per key.
            let reader = try await bus.read(topic: output, from: .beginning)
            var outputs = reader.makeAsyncIterator()
            let received = try await Support.next(messages.count, &outputs)
            await reader.close()
            #expect(received.count == messages.count)
            for (key, list) in Dictionary(grouping: received, by: { $0.keyString ?? "" }) {
                let offsets = list.map { Int(String(decoding: $0.value, as: UTF8.self)) ?? -1 }
                #expect(offsets == Array(0..<perPartition), "outputs of \(key) out of order or missing: \(offsets)")
            }
            // Every input is committed: a new member of the group gets only newer messages.
            for key in keys { try await bus.publish(OutgoingMessage(topic: input, key: key, value: Array("tail".utf8))) }
            let next = try await bus.subscribe(group: group, topics: [input])
            var after = next.makeAsyncIterator()
            let tails = try await Support.next(partitions, &after)
            #expect(tails.allSatisfy { $0.value == Array("tail".utf8) }, "\(tails.map(\.offset))")
            await next.close()
            await bus.shutdown()
        }

        @Test(.timeLimit(.minutes(2)))
        func commitOfRevokedPartitionIsFencedAndPublishesNothing() async throws {
            let busA = try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
            let busB = try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
            let input = Support.topicName("txn-revoke-in"), output = Support.topicName("txn-revoke-out")
            try await busA.ensureTopics([TopicSpec(name: input, partitions: 2), TopicSpec(name: output, partitions: 1)])
            for p in 0..<2 {
                for i in 0..<2 {
                    try await busA.publish(OutgoingMessage(topic: input, key: Support.key(for: p, of: 2), value: Array("\(p)-\(i)".utf8)))
                }
            }
            let group = "g-\(UUID().uuidString)"
            let a = try await busA.subscribe(group: group, topics: [input])
            var iteratorA = a.makeAsyncIterator()
            let first = try await Support.next(4, &iteratorA)
            #expect(Set(first.map(\.partition)) == [0, 1])
            let initial = await a.assignment()
            #expect(initial == [BusPartition(topic: input, partition: 0), BusPartition(topic: input, partition: 1)])
            let b = try await busB.subscribe(group: group, topics: [input])
            let split = await Support.waitUntil(.seconds(30)) {
                let (ownedA, ownedB) = (await a.assignment(), await b.assignment())
                return ownedA.count == 1 && ownedB.count == 1 && ownedA.isDisjoint(with: ownedB)
            }
            let (ownedA, ownedB) = (await a.assignment(), await b.assignment())
            try #require(split, "the group did not split the partitions: \(ownedA) / \(ownedB)")
            let kept = try #require(ownedA.first)
            let revoked = try #require(first.first { $0.partition != kept.partition })
            let error = await #expect(throws: BusError.self) {
                try await a.commit(revoked, publishing: [OutgoingMessage(topic: output, key: "k", value: Array("fenced".utf8))])
            }
            #expect(error?.kind == .fenced, "\(String(describing: error))")
            // A later successful transaction of A's own partition is the first output.
            let mine = try #require(try await iteratorA.next())
            #expect(mine.partition == kept.partition)
            try await a.commit(mine, publishing: [OutgoingMessage(topic: output, key: "k", value: Array("kept".utf8))])
            let reader = try await busA.read(topic: output, from: .beginning)
            var outputs = reader.makeAsyncIterator()
            let firstOutput = try #require(try await outputs.next())
            #expect(String(decoding: firstOutput.value, as: UTF8.self) == "kept", "the fenced commit published its output")
            await reader.close()
            await a.close()
            await b.close()
            await busA.shutdown()
            await busB.shutdown()
        }

        @Test(.timeLimit(.minutes(2)))
        func newerProducerWithTheSameInstanceIDFencesTheZombie() async throws {
            let instanceID = "zombie-\(UUID().uuidString.prefix(8))"
            var configuration = KafkaTestBroker.configuration(brokers)
            configuration.instanceID = instanceID
            let busA = try KafkaBus(configuration: configuration)
            let busB = try KafkaBus(configuration: configuration)
            let input = Support.topicName("txn-zombie-in"), output = Support.topicName("txn-zombie-out")
            try await busA.ensureTopics([TopicSpec(name: input, partitions: 2), TopicSpec(name: output, partitions: 1)])
            for p in 0..<2 {
                for i in 0..<3 {
                    try await busA.publish(OutgoingMessage(topic: input, key: Support.key(for: p, of: 2), value: Array("\(p)-\(i)".utf8)))
                }
            }
            let group = "g-\(UUID().uuidString)"
            let a = try await busA.subscribe(group: group, topics: [input])
            var iteratorA = a.makeAsyncIterator()
            let early = try #require(try await iteratorA.next())
            try await a.commit(early, publishing: [OutgoingMessage(topic: output, key: "k", value: Array("a-1".utf8))])
            // B has the same transactional.id (same group, instance id and slot).
            let b = try await busB.subscribe(group: group, topics: [input])
            let split = await Support.waitUntil(.seconds(30)) {
                let (ownedA, ownedB) = (await a.assignment(), await b.assignment())
                return ownedA.count == 1 && ownedB.count == 1
            }
            try #require(split, "the group did not split the partitions")
            var iteratorB = b.makeAsyncIterator()
            let forB = try #require(try await iteratorB.next())
            try await b.commit(forB, publishing: [OutgoingMessage(topic: output, key: "k", value: Array("b-1".utf8))])
            // A's producer is now a zombie.
            let owned = await a.assignment()
            var forA = try #require(try await iteratorA.next())
            while !owned.contains(BusPartition(topic: forA.topic, partition: forA.partition)) {
                forA = try #require(try await iteratorA.next())  // fetched before the rebalance
            }
            do {
                try await a.commit(forA, publishing: [OutgoingMessage(topic: output, key: "k", value: Array("a-zombie".utf8))])
                if Support.brokerKind == "tansu" {
                    print("skipped: Tansu 0.6.0 does not fence a producer when another one initialises the same transactional.id")
                } else {
                    Issue.record("the zombie's transaction committed after a newer producer of its transactional.id initialised")
                }
            } catch let error as BusError {
                #expect(error.kind == .fenced, "\(error)")
                print("zombie fenced: \(error)")
            }
            await a.close()
            await b.close()
            await busA.shutdown()
            await busB.shutdown()
        }

        @Test(.timeLimit(.minutes(2)))
        func abortedOutputsAreInvisibleToReadCommitted() async throws {
            if Support.brokerKind == "tansu" {
                print("skipped: Tansu 0.6.0 delivers aborted records to read_committed consumers; run with SLUICE_KAFKA_BROKERS of an Apache Kafka broker")
                return
            }
            let configuration = KafkaTestBroker.configuration(brokers)
            let bus = try KafkaBus(configuration: configuration)
            let topic = Support.topicName("txn-abort")
            try await bus.ensureTopics([TopicSpec(name: topic, partitions: 1)])
            let producer = try TransactionalProducer(
                transactionalID: "abort-test-\(UUID().uuidString)", configuration: configuration,
                owner: TransactionOwner(mayCommit: { _ in false }, groupMetadata: { nil }), logger: .init(label: "test"))
            try await DedicatedThread.run(name: "abort-test") {
                try producer.produceAndAbortForTesting([OutgoingMessage(topic: topic, key: "k", value: Array("aborted".utf8))])
            }
            await DedicatedThread.run(name: "abort-test-close") { producer.close() }
            try await bus.publish(OutgoingMessage(topic: topic, key: "k", value: Array("marker".utf8)))
            // The aborted record is in the log: a read_uncommitted reader sees it ...
            var uncommittedConfiguration = KafkaTestBroker.configuration(brokers)
            uncommittedConfiguration.consumerSettings["isolation.level"] = "read_uncommitted"
            let uncommittedBus = try KafkaBus(configuration: uncommittedConfiguration)
            let uncommitted = try await uncommittedBus.read(topic: topic, from: .beginning)
            var all = uncommitted.makeAsyncIterator()
            #expect(try await all.next()?.value == Array("aborted".utf8))
            await uncommitted.close()
            await uncommittedBus.shutdown()
            // ... and the bus's (read_committed) reader skips it.
            let reader = try await bus.read(topic: topic, from: .beginning)
            var committed = reader.makeAsyncIterator()
            #expect(try await committed.next()?.value == Array("marker".utf8))
            await reader.close()
            await bus.shutdown()
        }

        @Test(.timeLimit(.minutes(3)))
        func transactionThroughputAndLatency() async throws {
            let bus = try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
            let partitions = 8, perPartition = 60, sequential = 60
            let input = Support.topicName("txn-bench-in"), output = Support.topicName("txn-bench-out")
            try await bus.ensureTopics([
                TopicSpec(name: input, partitions: partitions), TopicSpec(name: output, partitions: partitions),
            ])
            let keys = (0..<partitions).map { Support.key(for: $0, of: partitions) }
            let value = [UInt8](repeating: 7, count: 512)
            for _ in 0..<perPartition {
                for key in keys { try await bus.publish(OutgoingMessage(topic: input, key: key, value: value)) }
            }
            let sub = try await bus.subscribe(group: "g-\(UUID().uuidString)", topics: [input])
            var iterator = sub.makeAsyncIterator()
            let messages = try await Support.next(partitions * perPartition, &iterator)
            let byPartition = Dictionary(grouping: messages, by: \.partition)
            // One caller at a time.
            let serial = Array(byPartition[byPartition.keys.min() ?? 0, default: []].prefix(sequential))
            var latencies: [Duration] = []
            let serialStart = ContinuousClock.now
            for message in serial {
                let start = ContinuousClock.now
                try await sub.commit(message, publishing: [OutgoingMessage(topic: output, key: message.key, value: value)])
                latencies.append(ContinuousClock.now - start)
            }
            let serialElapsed = ContinuousClock.now - serialStart
            let before = bus.transactionStatistics
            // One caller per partition, concurrently (the rest of each partition).
            let concurrentLatencies = LatencyLog()
            let concurrentStart = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (partition, list) in byPartition {
                    let rest = serial.first?.partition == partition ? Array(list.dropFirst(serial.count)) : list
                    group.addTask {
                        for message in rest {
                            let start = ContinuousClock.now
                            try await sub.commit(message, publishing: [OutgoingMessage(topic: output, key: message.key, value: value)])
                            await concurrentLatencies.add(ContinuousClock.now - start)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let concurrentElapsed = ContinuousClock.now - concurrentStart
            let after = bus.transactionStatistics
            let concurrentCalls = after.requests - before.requests
            let concurrentTransactions = after.transactions - before.transactions
            let all = await concurrentLatencies.values
            func perSecond(_ count: Int, _ elapsed: Duration) -> Int {
                Int(Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
            }
            print("""
                commit(_:publishing:) benchmark (1 output of 512 B each, broker \(Support.brokerKind.isEmpty ? "external" : Support.brokerKind)):
                  sequential: \(serial.count) calls, \(perSecond(serial.count, serialElapsed)) transactions/s, p50 \(Support.percentile(latencies, 0.5)), p99 \(Support.percentile(latencies, 0.99))
                  \(byPartition.count) concurrent callers: \(concurrentCalls) calls in \(concurrentTransactions) transactions, \(perSecond(concurrentCalls, concurrentElapsed)) calls/s, \(perSecond(concurrentTransactions, concurrentElapsed)) transactions/s, p50 \(Support.percentile(all, 0.5)), p99 \(Support.percentile(all, 0.99))
                """)
            #expect(after.requests == messages.count)
            await sub.close()
            await bus.shutdown()
        }

        @Test(.timeLimit(.minutes(2)))
        func readerAssignmentIsEveryPartitionAndReaderCannotCommitAtomically() async throws {
            let bus = try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
            let topic = Support.topicName("txn-reader")
            try await bus.ensureTopics([TopicSpec(name: topic, partitions: 3)])
            try await bus.publish(OutgoingMessage(topic: topic, key: "k", value: [1]))
            let reader = try await bus.read(topic: topic, from: .beginning)
            let assigned = await reader.assignment()
            #expect(assigned == Set((0..<3).map { BusPartition(topic: topic, partition: $0) }))
            var iterator = reader.makeAsyncIterator()
            let message = try #require(try await iterator.next())
            let error = await #expect(throws: BusError.self) { try await reader.commit(message, publishing: []) }
            #expect(error?.kind == .configuration)
            await reader.close()
            await bus.shutdown()
        }

        @Test(.timeLimit(.minutes(2)))
        func cooperativeAssignmentFollowsRebalances() async throws {
            var configuration = KafkaTestBroker.configuration(brokers)
            configuration.consumerSettings["partition.assignment.strategy"] = "cooperative-sticky"
            let busA = try KafkaBus(configuration: configuration)
            let busB = try KafkaBus(configuration: configuration)
            let topic = Support.topicName("txn-coop")
            try await busA.ensureTopics([TopicSpec(name: topic, partitions: 4)])
            let everything = Set((0..<4).map { BusPartition(topic: topic, partition: $0) })
            let group = "g-\(UUID().uuidString)"
            let a = try await busA.subscribe(group: group, topics: [topic])
            let alone = await Support.waitUntil(.seconds(30)) { await a.assignment() == everything }
            let first = await a.assignment()
            #expect(alone, "first member: \(first)")
            let b = try await busB.subscribe(group: group, topics: [topic])
            let split = await Support.waitUntil(.seconds(30)) {
                let (ownedA, ownedB) = (await a.assignment(), await b.assignment())
                return !ownedA.isEmpty && !ownedB.isEmpty && ownedA.isDisjoint(with: ownedB) && ownedA.union(ownedB) == everything
            }
            let (joinedA, joinedB) = (await a.assignment(), await b.assignment())
            #expect(split, "after join: \(joinedA) / \(joinedB)")
            await b.close()
            let closedB = await b.assignment()
            #expect(closedB.isEmpty)
            let back = await Support.waitUntil(.seconds(30)) { await a.assignment() == everything }
            let last = await a.assignment()
            #expect(back, "after leave: \(last)")
            await a.close()
            await busA.shutdown()
            await busB.shutdown()
        }
    }
}

/// Latencies recorded by concurrent tasks.
actor LatencyLog {
    private(set) var values: [Duration] = []
    func add(_ value: Duration) { values.append(value) }
}
