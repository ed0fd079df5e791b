import Foundation
@testable import KafkaBus
import Logging
import Pipeline
import Testing

/// KafkaBus behaviour that needs no broker.
@Suite("KafkaBus without a broker")
struct KafkaBusOfflineTests {
    @Test func libraryVersionIsChecked() throws {
        try KafkaBus.checkLibrary()
        #expect(KafkaBus.libraryVersion.hasPrefix("2."))
        // 2.8.0 final, compiled against 2.8.0: fine; newer at run time: fine.
        try KafkaBus.checkLibrary(runtime: 0x0208_00ff, compiled: 0x0208_00ff)
        try KafkaBus.checkLibrary(runtime: 0x020a_01ff, compiled: 0x0208_00ff)
        // Debian bookworm's 2.0.2: too old.
        let old = #expect(throws: BusError.self) { try KafkaBus.checkLibrary(runtime: 0x0200_02ff, compiled: 0x0200_02ff) }
        #expect(old?.kind == .configuration)
        #expect(old?.message.contains("2.0.2") == true && old?.message.contains("2.8.0") == true)
        // Older at run time than the headers used for the build.
        let skew = #expect(throws: BusError.self) { try KafkaBus.checkLibrary(runtime: 0x0208_00ff, compiled: 0x0209_00ff) }
        #expect(skew?.message.contains("compiled against 2.9.0") == true)
    }

    @Test func badSettingKeyIsNamed() throws {
        let configuration = KafkaBusConfiguration(
            brokers: "127.0.0.1:1", librdkafka: ["sluice.no.such.setting": "1"])
        let error = #expect(throws: BusError.self) { try KafkaBus(configuration: configuration) }
        #expect(error?.kind == .configuration)
        #expect(error?.message.contains("sluice.no.such.setting") == true, "\(String(describing: error))")
    }

    @Test func badSettingValueIsNamed() throws {
        let configuration = KafkaBusConfiguration(brokers: "127.0.0.1:1", producerSettings: ["acks": "sometimes"])
        let error = #expect(throws: BusError.self) { try KafkaBus(configuration: configuration) }
        #expect(error?.message.contains("acks") == true, "\(String(describing: error))")
    }

    @Test func callerSettingsOverrideDefaultsButNotCommitMode() {
        let configuration = KafkaBusConfiguration(
            brokers: "b:9092", librdkafka: ["session.timeout.ms": "10000", "enable.auto.commit": "true"],
            publishTimeout: .milliseconds(2500))
        let defaults = configuration.defaultSettings(for: .producer)
        #expect(defaults["message.timeout.ms"] == "2500")
        #expect(defaults["enable.idempotence"] == "true" && defaults["acks"] == "all")
        #expect(configuration.defaultSettings(for: .consumer)["session.timeout.ms"] == "6000")
    }

    @Test func consumersReadCommittedAndTransactionsGetShortTimeouts() {
        var configuration = KafkaBusConfiguration(brokers: "b:9092", publishTimeout: .seconds(30))
        #expect(configuration.defaultSettings(for: .consumer)["isolation.level"] == "read_committed")
        #expect(configuration.instanceID == nil)
        #expect(configuration.transactionTimeout == .seconds(10))
        let settings = configuration.transactionalSettings(transactionalID: "g/i/0")
        #expect(settings["transactional.id"] == "g/i/0")
        #expect(settings["transaction.timeout.ms"] == "10000")
        // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        #expect(settings["message.timeout.ms"] == "10000")
        configuration.publishTimeout = .seconds(2)
        #expect(configuration.transactionalSettings(transactionalID: "x")["message.timeout.ms"] == "2000")
    }

    /// Background readers poll with their own wait (never shorter than the request path's); the
    /// request path keeps librdkafka's (or the caller's) `fetch.wait.max.ms`; producers have none.
    @Test(arguments: [
        (nil, ReadPace.requestPath, "10"), (nil, .background, "100"),
        ("3", .requestPath, "3"), ("3", .background, "100"),
        ("500", .requestPath, "500"), ("500", .background, "500"),
    ] as [(String?, ReadPace, String)])
    func fetchWaitFollowsThePace(configured: String?, pace: ReadPace, expected: String) {
        var configuration = KafkaBusConfiguration(
            brokers: "b:9092", librdkafka: configured.map { ["fetch.wait.max.ms": $0] } ?? [:])
        #expect(configuration.settings(for: .consumer, groupID: "g", pace: pace)["fetch.wait.max.ms"] == expected)
        configuration.backgroundFetchWait = .milliseconds(250)
        let background = configuration.settings(for: .consumer, pace: .background)["fetch.wait.max.ms"]
        #expect(background == (configured == "500" ? "500" : "250"))
        #expect(configuration.settings(for: .producer)["fetch.wait.max.ms"] == configured)
    }

    @Test(.timeLimit(.minutes(1)))
    func publishToUnreachableBrokerFailsWithinTimeout() async throws {
        // Port 1 on loopback: nothing listens there.
        let bus = try KafkaBus(configuration: KafkaBusConfiguration(
            brokers: "127.0.0.1:1", publishTimeout: .seconds(2), adminTimeout: .seconds(2)))
        let started = ContinuousClock.now
        let error = await #expect(throws: BusError.self) {
            try await bus.publish(OutgoingMessage(topic: "nowhere", key: "k", value: [1, 2, 3]))
        }
        let elapsed = ContinuousClock.now - started
        #expect(error?.kind == .timedOut, "\(String(describing: error))")
        #expect(error?.message.contains("_MSG_TIMED_OUT") == true, "\(String(describing: error))")
        #expect(elapsed < .seconds(5), "took \(elapsed)")
        // Admin calls fail within their timeout too.
        await #expect(throws: BusError.self) { _ = try await bus.partitionCount(topic: "nowhere") }
        let shutdownStarted = ContinuousClock.now
        await bus.shutdown()
        await bus.shutdown()  // idempotent
        #expect(ContinuousClock.now - shutdownStarted < .seconds(5))
        await #expect(throws: BusError.self) { try await bus.publish(OutgoingMessage(topic: "t", key: "k", value: [])) }
    }

    /// A batch that cannot be delivered fails as a whole, with the delivery error, within the
    /// publish timeout; an empty batch returns at once.
    @Test(.timeLimit(.minutes(1)))
    func batchToUnreachableBrokerFailsWithinTimeout() async throws {
        let producer = try Producer(
            configuration: KafkaBusConfiguration(brokers: "127.0.0.1:1", publishTimeout: .seconds(2), adminTimeout: .seconds(2)),
            logger: Logger(label: "test"))
        try await producer.publish([OutgoingMessage]())
        let started = ContinuousClock.now
        let error = await #expect(throws: BusError.self) {
            try await producer.publish((0..<5).map { OutgoingMessage(topic: "nowhere", key: "k\($0)", value: [UInt8($0)]) })
        }
        #expect(error?.kind == .timedOut, "\(String(describing: error))")
        #expect(ContinuousClock.now - started < .seconds(5))
        await DedicatedThread.run(name: "test-producer-shutdown") { producer.shutdown(flushTimeout: .seconds(1)) }
        let closed = await #expect(throws: BusError.self) {
            try await producer.publish([OutgoingMessage(topic: "t", key: "k", value: [])])
        }
        #expect(closed?.kind == .closed)
    }
}

extension KafkaBrokerTests {
    /// KafkaBus behaviour beyond the contract.
    @Suite("behaviour")
    struct Behaviour {
        let brokers = KafkaTestBroker.brokers ?? ""

        @Test func ensureTopicsIsIdempotentAndPartitionCountReadsMetadata() async throws {
            let bus = try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
            let name = "kafkabus-topics-\(UUID().uuidString.prefix(8).lowercased())"
            try await bus.ensureTopics([TopicSpec(name: name, partitions: 3)])
            try await bus.ensureTopics([TopicSpec(name: name, partitions: 3)])  // already exists: fine
            #expect(try await bus.partitionCount(topic: name) == 3)
            let missing = await #expect(throws: BusError.self) { _ = try await bus.partitionCount(topic: "\(name)-missing") }
            #expect(missing?.kind == .unknownTopic)
            await bus.shutdown()
        }

        @Test func keysLandWherePipelinePartitionSaysSo() async throws {
            let bus = try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
            let name = "kafkabus-murmur-\(UUID().uuidString.prefix(8).lowercased())"
            try await bus.ensureTopics([TopicSpec(name: name, partitions: 6)])
            let keys = (0..<24).map { "session-\($0)" }
            for key in keys { try await bus.publish(OutgoingMessage(topic: name, key: key, value: Array(key.utf8))) }
            let reader = try await bus.read(topic: name, from: .beginning)
            var seen = 0
            for try await message in reader {
                let key = try #require(message.key)
                #expect(message.partition == partition(forKey: key, partitions: 6), "\(message.keyString ?? "")")
                seen += 1
                if seen == keys.count { break }
            }
            await reader.close()
            await bus.shutdown()
        }

        @Test func readFromEndSeesOnlyNewMessages() async throws {
            let bus = try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
            let name = "kafkabus-end-\(UUID().uuidString.prefix(8).lowercased())"
            try await bus.ensureTopics([TopicSpec(name: name, partitions: 2)])
            try await bus.publish(OutgoingMessage(topic: name, key: "old", value: Array("old".utf8)))
            let reader = try await bus.read(topic: name, from: .end)
            try await bus.publish(OutgoingMessage(topic: name, key: "new", value: Array("new".utf8)))
            var iterator = reader.makeAsyncIterator()
            let first = try await iterator.next()
            #expect(first?.keyString == "new")
            await reader.close()
            #expect(try await iterator.next() == nil, "the stream finishes after close")
            await bus.shutdown()
        }

        @Test func closedSubscriptionRejectsCommitsAndShutdownClosesSubscriptions() async throws {
            let bus = try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
            let name = "kafkabus-close-\(UUID().uuidString.prefix(8).lowercased())"
            try await bus.ensureTopics([TopicSpec(name: name, partitions: 1)])
            try await bus.publish(OutgoingMessage(topic: name, key: "k", value: [42]))
            let sub = try await bus.subscribe(group: "g-\(UUID().uuidString)", topics: [name])
            var iterator = sub.makeAsyncIterator()
            let message = try #require(try await iterator.next())
            try await sub.commit(message)
            await bus.shutdown()  // closes the subscription too
            #expect(try await iterator.next() == nil)
            await #expect(throws: BusError.self) { try await sub.commit(message) }
            await #expect(throws: BusError.self) { _ = try await bus.subscribe(group: "g", topics: [name]) }
        }

        /// Without transactions, a commit's outputs are enqueued back to back and acknowledged
        /// together; they must still arrive in order per partition, all of them, before the commit.
        @Test func plainCommitPublishesOutputsInOrderBeforeCommitting() async throws {
            var configuration = KafkaTestBroker.configuration(brokers)
            configuration.transactions = false
            let bus = try KafkaBus(configuration: configuration)
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let input = "kafkabus-plain-in-\(suffix)", output = "kafkabus-plain-out-\(suffix)"
            try await bus.ensureTopics([TopicSpec(name: input, partitions: 1), TopicSpec(name: output, partitions: 3)])
            try await bus.publish(OutgoingMessage(topic: input, key: "k", value: [1]))
            let group = "g-\(suffix)"
            let sub = try await bus.subscribe(group: group, topics: [input])
            var iterator = sub.makeAsyncIterator()
            let message = try #require(try await iterator.next())
            let outputs = (0..<300).map { i in
                OutgoingMessage(topic: output, key: "key-\(i % 5)", value: Array("\(i)".utf8))
            }
            try await sub.commit(message, publishing: outputs)
            // Committed: the group's offset is past the input.
            let lag = try await bus.lag(group: group, topics: [input])
            #expect(lag[BusPartition(topic: input, partition: 0)]?.committedOffset == 1)
            await sub.close()
            // Every output is there, in publish order within each key (so within each partition).
            let reader = try await bus.read(topic: output, from: .beginning, pace: .background)
            var byKey: [String: [Int]] = [:]
            var count = 0
            for try await received in reader {
                let n = try #require(Int(String(decoding: received.value, as: UTF8.self)))
                byKey[received.keyString ?? "", default: []].append(n)
                count += 1
                if count == outputs.count { break }
            }
            await reader.close()
            #expect(count == outputs.count)
            for (key, numbers) in byKey {
                #expect(numbers == numbers.sorted(), "\(key) arrived out of order")
                #expect(numbers.count == 60, "\(key)")
            }
            await bus.shutdown()
        }

        @Test func smallBufferPausesFetchingWithoutLosingMessages() async throws {
            var configuration = KafkaTestBroker.configuration(brokers)
            configuration.consumerBufferLimit = 4
            let bus = try KafkaBus(configuration: configuration)
            let name = "kafkabus-pause-\(UUID().uuidString.prefix(8).lowercased())"
            try await bus.ensureTopics([TopicSpec(name: name, partitions: 2)])
            let total = 60
            for i in 0..<total { try await bus.publish(OutgoingMessage(topic: name, key: "k\(i % 7)", value: Array("\(i)".utf8))) }
            let sub = try await bus.subscribe(group: "g-\(UUID().uuidString)", topics: [name])
            var seen: [Int: [Int64]] = [:]
            var count = 0
            for try await message in sub {
                seen[message.partition, default: []].append(message.offset)
                count += 1
                if count % 10 == 0 { try await Task.sleep(for: .milliseconds(200)) }  // a slow consumer
                if count == total { break }
            }
            await sub.close()
            #expect(count == total)
            for (_, offsets) in seen { #expect(offsets == offsets.sorted() && Set(offsets).count == offsets.count) }
            await bus.shutdown()
        }
    }
}
