import BusContract
import Foundation
import Pipeline
import Testing

@Suite("EmbeddedBus durability")
struct EmbeddedBusDurabilityTests {
    func tempDir() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("sluice-durable-\(UUID().uuidString)")
    }

    @Test func uncommittedMessagesSurviveReopen() async throws {
        let dir = tempDir()
        let bus = try EmbeddedBus(directory: dir, defaultPartitions: 3)
        try await bus.ensureTopics([TopicSpec(name: "requests", partitions: 3)])
        for i in 0..<50 {
            try await bus.publish(OutgoingMessage(topic: "requests", key: "s\(i % 7)", value: Array("body-\(i)".utf8)))
        }
        await bus.shutdown()

        let reopened = try EmbeddedBus(directory: dir, defaultPartitions: 9)
        #expect(try await reopened.partitionCount(topic: "requests") == 3)
        let sub = try await reopened.subscribe(group: "inspectors", topics: ["requests"])
        let got = try await collect(sub, count: 50, timeout: .seconds(5))
        #expect(Set(got.map { String(decoding: $0.value, as: UTF8.self) }) == Set((0..<50).map { "body-\($0)" }))
        await sub.close()
        await reopened.shutdown()
    }

    @Test func tornTailIsDroppedNotRead() async throws {
        let dir = tempDir()
        let bus = try EmbeddedBus(directory: dir, defaultPartitions: 1)
        try await bus.ensureTopics([TopicSpec(name: "audit", partitions: 1)])
        for i in 0..<10 {
            try await bus.publish(OutgoingMessage(topic: "audit", key: "k", value: Array(repeating: UInt8(i), count: 100)))
        }
        await bus.shutdown()

        // Cut the last record in half, as a crash mid-write would.
        let log = dir.appendingPathComponent("topics/audit/0/00000000000000000000.log")  // the active segment
        let data = try Data(contentsOf: log)
        try data.prefix(data.count - 60).write(to: log)

        let reopened = try EmbeddedBus(directory: dir)
        let reader = try await reopened.read(topic: "audit", from: .beginning)
        let got = try await collect(reader, count: 10, timeout: .milliseconds(500), allowFewer: true)
        #expect(got.count == 9)
        #expect(got.map(\.value) == (0..<9).map { Array(repeating: UInt8($0), count: 100) })
        // Appends after recovery land after the last complete record and read back intact.
        try await reopened.publish(OutgoingMessage(topic: "audit", key: "k", value: [42]))
        await reader.close()
        let again = try await reopened.read(topic: "audit", from: .beginning)
        let all = try await collect(again, count: 10, timeout: .seconds(2))
        #expect(all.last?.value == [42])
        #expect(all.last?.offset == 9)
        await again.close()
        await reopened.shutdown()
    }

    @Test func corruptByteStopsTheLogThere() async throws {
        let dir = tempDir()
        let bus = try EmbeddedBus(directory: dir, defaultPartitions: 1)
        for i in 0..<5 {
            try await bus.publish(OutgoingMessage(topic: "t", key: nil, value: Array("record-\(i)".utf8)))
        }
        await bus.shutdown()
        let log = dir.appendingPathComponent("topics/t/0/00000000000000000000.log")  // the active segment
        var data = try Data(contentsOf: log)
        data[data.count - 3] ^= 0xFF  // flip a byte in the last record's value
        try data.write(to: log)
        let reopened = try EmbeddedBus(directory: dir)
        let reader = try await reopened.read(topic: "t", from: .beginning)
        let got = try await collect(reader, count: 5, timeout: .milliseconds(500), allowFewer: true)
        #expect(got.map { String(decoding: $0.value, as: UTF8.self) } == (0..<4).map { "record-\($0)" })
        await reader.close()
        await reopened.shutdown()
    }

    @Test func committedOffsetsSurviveReopen() async throws {
        let dir = tempDir()
        let bus = try EmbeddedBus(directory: dir, defaultPartitions: 1)
        for i in 0..<6 { try await bus.publish(OutgoingMessage(topic: "t", key: "k", value: [UInt8(i)])) }
        let sub = try await bus.subscribe(group: "g", topics: ["t"])
        let got = try await collect(sub, count: 4, timeout: .seconds(2))
        try await sub.commit(got[3])
        await sub.close()
        await bus.shutdown()
        let reopened = try EmbeddedBus(directory: dir)
        let sub2 = try await reopened.subscribe(group: "g", topics: ["t"])
        let rest = try await collect(sub2, count: 2, timeout: .seconds(2))
        #expect(rest.map(\.value) == [[4], [5]])
        await sub2.close()
        await reopened.shutdown()
    }

    @Test func secondBusOnSameDirectoryIsRefused() async throws {
        let dir = tempDir()
        let bus = try EmbeddedBus(directory: dir)
        #expect(throws: BusError.self) { try EmbeddedBus(directory: dir) }
        await bus.shutdown()
        let again = try EmbeddedBus(directory: dir)
        await again.shutdown()
    }

    @Test func invalidTopicNameIsAClearError() async throws {
        let bus = try EmbeddedBus(directory: tempDir())
        await #expect(throws: BusError.self) {
            try await bus.publish(OutgoingMessage(topic: "../escape", key: nil, value: []))
        }
        await bus.shutdown()
    }
}

@Suite("Key placement")
struct PartitionerTests {
    /// Kafka's own murmur2 test vectors (clients UtilsTest): placement matches Kafka's default partitioner.
    @Test(arguments: [
        ("21", -973_932_308), ("foobar", -790_332_482), ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829), ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107),
    ])
    func murmur2MatchesKafka(key: String, expected: Int32) {
        let positive = Int(UInt32(bitPattern: expected) & 0x7fff_ffff)
        #expect(partition(forKey: Array(key.utf8), partitions: 1_000_003) == positive % 1_000_003)
    }

    @Test func sameKeySamePartition() {
        for n in [1, 3, 6, 12] {
            let p = partition(forKey: Array("session-42".utf8), partitions: n)
            #expect(p == partition(forKey: Array("session-42".utf8), partitions: n))
            #expect((0..<n).contains(p))
        }
    }
}
