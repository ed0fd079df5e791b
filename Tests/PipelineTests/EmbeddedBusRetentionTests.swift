import BusContract
import Foundation
@testable import Pipeline
import Synchronization
import Testing

/// A clock tests move by hand: record timestamps and retention decisions follow it.
final class TestClock: Sendable {
    private let current: Mutex<Date>
    init(_ start: Date = Date(timeIntervalSince1970: 1_700_000_000)) { current = Mutex(start) }
    var now: Date { current.withLock { $0 } }
    func advance(seconds: TimeInterval) { current.withLock { $0 += seconds } }
}

/// What the bus reported through its metrics hooks.
final class MetricsRecorder: Sendable {
    private let state = Mutex<(disk: [String: Int64], deleted: [String: Int], failures: Int)>(([:], [:], 0))
    var hooks: EmbeddedBusMetrics {
        EmbeddedBusMetrics(
            diskBytes: { topic, bytes in self.state.withLock { $0.disk[topic] = bytes } },
            segmentsDeleted: { topic, n in self.state.withLock { $0.deleted[topic, default: 0] += n } },
            maintenanceFailed: { self.state.withLock { $0.failures += 1 } })
    }
    func disk(_ topic: String) -> Int64? { state.withLock { $0.disk[topic] } }
    func deleted(_ topic: String) -> Int { state.withLock { $0.deleted[topic] ?? 0 } }
}

struct ReadTimeout: Error {}

/// A flag one task sets and another polls.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

enum RetentionFixture {
    static func tempDir() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("sluice-retention-\(UUID().uuidString)")
    }

    static func open(
        _ dir: URL, clock: TestClock, segmentBytes: Int = 4096, retention: Duration = .seconds(60), partitions: Int = 1,
        interval: Duration? = nil, metrics: EmbeddedBusMetrics = .none
    ) throws -> EmbeddedBus {
        try EmbeddedBus(
            directory: dir,
            options: EmbeddedBusOptions(
                defaultPartitions: partitions, segmentBytes: segmentBytes, retention: retention, maintenanceInterval: interval,
                now: { clock.now }, metrics: metrics))
    }

    /// The segment files of a partition, by base offset.
    static func segments(_ dir: URL, topic: String, partition: Int = 0) -> [Int64] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("topics/\(topic)/\(partition)").path)) ?? []
        return names.filter { $0.hasSuffix(".log") }.compactMap { Int64($0.dropLast(4)) }.sorted()
    }

    static func segmentPath(_ dir: URL, topic: String, partition: Int = 0, base: Int64) -> URL {
        dir.appendingPathComponent("topics/\(topic)/\(partition)/\(String(format: "%020lld", base)).log")
    }

    /// Bytes of every regular file under `dir`.
    static func diskBytes(_ dir: URL) -> Int64 {
        guard let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey]) else { return 0 }
        var total: Int64 = 0
        for case let url as URL in e {
            guard let values = try? url.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey]), values.isRegularFile == true else { continue }
            total += Int64(values.fileSize ?? 0)
        }
        return total
    }

    /// A 1,000-byte value: 4 of them fill a 4,096-byte segment (frame = 32 + key + value bytes).
    static func value(_ i: Int) -> [UInt8] { Array("v\(i)-".utf8) + Array(repeating: UInt8(ascii: "x"), count: 1000 - "v\(i)-".utf8.count) }

    /// Publishes `count` records (`key`, `value(i)`) to `topic`; returns nothing, offsets are 0..<count on a fresh 1-partition topic.
    static func publish(_ bus: EmbeddedBus, topic: String, range: Range<Int>, key: (Int) -> String = { _ in "k" }) async throws {
        for i in range { try await bus.publish(OutgoingMessage(topic: topic, key: key(i), value: value(i))) }
    }

    /// Reads `topic` from the beginning with a group-less reader until a message at `lastOffset` or later.
    static func readThrough(_ bus: EmbeddedBus, topic: String, lastOffset: Int64, timeout: Duration = .seconds(5)) async throws -> [BusMessage] {
        let sub = try await bus.read(topic: topic, from: .beginning)
        let result = try await first(of: sub, where: { $0.offset >= lastOffset }, timeout: timeout)
        await sub.close()
        return result
    }

    /// Messages of `sub` up to and including the first that matches `done`.
    static func first(of sub: BusSubscription, where done: @escaping @Sendable (BusMessage) -> Bool, timeout: Duration) async throws -> [BusMessage] {
        try await withThrowingTaskGroup(of: [BusMessage]?.self) { group in
            group.addTask {
                var out: [BusMessage] = []
                for try await m in sub {
                    out.append(m)
                    if done(m) { return out }
                }
                return out
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let first else { throw ReadTimeout() }
            return first
        }
    }
}

@Suite("EmbeddedBus retention")
struct EmbeddedBusRetentionTests {
    typealias F = RetentionFixture

    // MARK: Segments

    @Test(arguments: [
        // (records of 1,033-byte frames, segment bytes, expected segment bases)
        (3, 4096, [0] as [Int64]),
        (4, 4096, [0, 4]),  // the 4th append reaches 4,132 ≥ 4,096: rolled, a new empty active segment
        (9, 4096, [0, 4, 8]),
        (9, 8192, [0, 8]),
    ])
    func rollsAtSegmentBytes(records: Int, segmentBytes: Int, bases: [Int64]) async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock, segmentBytes: segmentBytes)
        try await F.publish(bus, topic: "t", range: 0..<records)
        #expect(F.segments(dir, topic: "t") == bases)
        let got = try await F.readThrough(bus, topic: "t", lastOffset: Int64(records - 1))
        #expect(got.map(\.offset) == (0..<Int64(records)).map { $0 })
        #expect(got.map(\.value) == (0..<records).map { F.value($0) })
        await bus.shutdown()

        // Reopened: the same records, and the next append continues the offsets.
        let reopened = try F.open(dir, clock: clock, segmentBytes: segmentBytes)
        try await reopened.publish(OutgoingMessage(topic: "t", key: "k", value: [1]))
        let again = try await F.readThrough(reopened, topic: "t", lastOffset: Int64(records))
        #expect(again.map(\.offset) == (0...Int64(records)).map { $0 })
        await reopened.shutdown()
    }

    @Test func recoveryReadsAllSegmentsAndCutsATornTailOfTheActiveOne() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await F.publish(bus, topic: "t", range: 0..<11)  // segments 0, 4, 8 (active: 8, 9, 10)
        await bus.shutdown()
        #expect(F.segments(dir, topic: "t") == [0, 4, 8])

        let active = F.segmentPath(dir, topic: "t", base: 8)
        let data = try Data(contentsOf: active)
        try data.prefix(data.count - 100).write(to: active)  // offset 10 torn in half

        let reopened = try F.open(dir, clock: clock)
        try await reopened.publish(OutgoingMessage(topic: "t", key: "k", value: F.value(99)))
        let got = try await F.readThrough(reopened, topic: "t", lastOffset: 10)
        #expect(got.map(\.offset) == Array(0...10))
        #expect(got.map(\.value) == (0..<10).map { F.value($0) } + [F.value(99)])
        await reopened.shutdown()
    }

    enum Damage: String, CaseIterable, Sendable {
        case flippedByte, tornInTheMiddle, lastRecordMissing, segmentMissing
    }

    @Test(arguments: Damage.allCases)
    func aDamagedRolledSegmentIsAnErrorNamingTheFile(damage: Damage) async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await F.publish(bus, topic: "t", range: 0..<11)
        await bus.shutdown()
        let rolled = F.segmentPath(dir, topic: "t", base: 4)
        var data = try Data(contentsOf: rolled)
        switch damage {
        case .flippedByte: data[data.count - 500] ^= 0x01
        case .tornInTheMiddle: data = data.prefix(data.count - 500)
        case .lastRecordMissing: data = data.prefix(data.count - 1033)  // a clean frame boundary: offsets 4...6 only
        case .segmentMissing: break
        }
        if damage == .segmentMissing {
            try FileManager.default.removeItem(at: rolled)
        } else {
            try data.write(to: rolled)
        }
        do {
            let reopened = try F.open(dir, clock: clock)
            await reopened.shutdown()
            Issue.record("opened a bus with a damaged rolled segment (\(damage))")
        } catch let error as BusError {
            #expect(error.kind == .corrupt)
            let named = damage == .segmentMissing ? F.segmentPath(dir, topic: "t", base: 0).path : rolled.path
            #expect(error.message.contains(named), "\(error.message)")
        }
        // Nothing was cut: the damaged file is as it was left.
        if damage != .segmentMissing { #expect(try Data(contentsOf: rolled) == data) }
    }

    // MARK: Deletion

    @Test func deletablePrefixRules() {
        typealias S = RetentionRules.SegmentFacts
        let now: Int64 = 1_000_000
        let old: Int64 = now - 61_000
        let fresh: Int64 = now - 1_000
        let three = [
            S(lastOffset: 3, newestTimestampMillis: old, isActive: false),
            S(lastOffset: 7, newestTimestampMillis: old, isActive: false),
            S(lastOffset: 9, newestTimestampMillis: old, isActive: true),
        ]
        let cases: [(String, [S], [Int64], Int)] = [
            ("no group, all old: every rolled one, never the active", three, [], 2),
            ("one group past everything", three, [10], 2),
            ("group inside the second segment", three, [5], 1),
            ("group exactly past the first segment", three, [4], 1),
            ("group at the first segment's last offset", three, [3], 0),
            ("two groups: the slowest decides", three, [10, 4], 1),
            ("a group that committed other partitions only (position 0)", three, [10, 0], 0),
            ("committed past but too young", [S(lastOffset: 3, newestTimestampMillis: fresh, isActive: false)] + three.suffix(1), [10], 0),
            ("exactly at the retention is not older than it", [S(lastOffset: 3, newestTimestampMillis: now - 60_000, isActive: false)] + three.suffix(1), [], 0),
            ("prefix only: a young first segment keeps an old second one", [S(lastOffset: 3, newestTimestampMillis: fresh, isActive: false)] + three.suffix(2), [], 0),
            ("an empty rolled segment goes", [S(lastOffset: nil, newestTimestampMillis: nil, isActive: false)] + three.suffix(1), [0], 1),
        ]
        for (name, segments, groups, expected) in cases {
            let n = RetentionRules.deletablePrefix(segments, groupPositions: groups, nowMillis: now, retentionMillis: 60_000)
            #expect(n == expected, "\(name)")
        }
    }

    @Test(arguments: [
        // (the group committed past the first two segments, their records are older than the retention, deleted)
        (false, false, false),
        (true, false, false),
        (false, true, false),
        (true, true, true),
    ])
    func deletionNeedsEveryGroupPastAndTheAge(committedPast: Bool, aged: Bool, deleted: Bool) async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let metrics = MetricsRecorder()
        let bus = try F.open(dir, clock: clock, metrics: metrics.hooks)
        try await F.publish(bus, topic: "t", range: 0..<8)  // segments 0, 4 (rolled), 8 (active)
        if aged { clock.advance(seconds: 61) }
        try await F.publish(bus, topic: "t", range: 8..<10)  // fresh records in the active segment
        let sub = try await bus.subscribe(group: "g", topics: ["t"])
        let got = try await collect(sub, count: 10, timeout: .seconds(5))
        // Committing offset 1 is a commit on the topic, so the group holds back what it has not consumed.
        try await sub.commit(committedPast ? got[7] : got[1])
        let report = try await bus.runMaintenance()
        #expect(F.segments(dir, topic: "t") == (deleted ? [8] : [0, 4, 8]))
        #expect(report.segmentsDeleted == (deleted ? 2 : 0))
        #expect(metrics.deleted("t") == (deleted ? 2 : 0))
        #expect(metrics.disk("t") == report.diskBytes)
        #expect(report.diskBytes == (deleted ? 2 * 1033 : 10 * 1033))
        await sub.close()
        await bus.shutdown()
    }

    @Test func aGroupThatCommittedBeforeARestartStillHoldsDataBack() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await F.publish(bus, topic: "t", range: 0..<8)  // segments 0, 4 and an empty active 8
        let sub = try await bus.subscribe(group: "slow", topics: ["t"])
        let got = try await collect(sub, count: 2, timeout: .seconds(5))
        try await sub.commit(got[1])
        await sub.close()
        await bus.shutdown()

        // Reopened, the group has not subscribed again: it still counts.
        clock.advance(seconds: 120)
        let reopened = try F.open(dir, clock: clock)
        try await reopened.runMaintenance()
        #expect(F.segments(dir, topic: "t") == [0, 4, 8])
        // A group with no member and no commit for the group expiry stops counting (as Kafka's offsets expire).
        await reopened.shutdown()
        clock.advance(seconds: 8 * 86_400)
        let later = try F.open(dir, clock: clock)
        try await later.runMaintenance()
        #expect(F.segments(dir, topic: "t") == [8])
        await later.shutdown()
    }

    @Test(arguments: [(false, [0, 4, 8] as [Int64]), (true, [8])])
    func aTopicNoGroupCommitsOnIsDeletedByAgeAlone(aged: Bool, remaining: [Int64]) async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await F.publish(bus, topic: "replies", range: 0..<8)
        // A group committing on another topic does not hold this one back.
        try await F.publish(bus, topic: "other", range: 0..<1)
        let sub = try await bus.subscribe(group: "g", topics: ["other"])
        let got = try await collect(sub, count: 1, timeout: .seconds(5))
        try await sub.commit(got[0])
        if aged { clock.advance(seconds: 61) }
        try await F.publish(bus, topic: "replies", range: 8..<10)
        try await bus.runMaintenance()
        #expect(F.segments(dir, topic: "replies") == remaining)
        await sub.close()
        await bus.shutdown()
    }

    @Test func readersAndMembersInADeletedRangeContinueFromTheFirstRetainedOffset() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await F.publish(bus, topic: "t", range: 0..<2)
        // A reader and a member of a group that never commits, both at offset 2. (Offsets 2…7
        // are published after both took 0 and 1: a group-less reader takes what is there in
        // chunks, and a message already in its hand is not taken back by a deletion.)
        let reader = try await bus.read(topic: "t", from: .beginning)
        let readerFirst = try await F.first(of: reader, where: { $0.offset == 1 }, timeout: .seconds(5))
        #expect(readerFirst.map(\.offset) == [0, 1])
        let lagging = try await bus.subscribe(group: "lagging", topics: ["t"])
        let laggingFirst = try await F.first(of: lagging, where: { $0.offset == 1 }, timeout: .seconds(5))
        #expect(laggingFirst.map(\.offset) == [0, 1])
        try await F.publish(bus, topic: "t", range: 2..<8)

        clock.advance(seconds: 61)
        try await F.publish(bus, topic: "t", range: 8..<10)
        try await bus.runMaintenance()
        #expect(F.segments(dir, topic: "t") == [8])

        let readerRest = try await F.first(of: reader, where: { $0.offset == 9 }, timeout: .seconds(5))
        #expect(readerRest.map(\.offset) == [8, 9])
        let laggingRest = try await F.first(of: lagging, where: { $0.offset == 9 }, timeout: .seconds(5))
        #expect(laggingRest.map(\.offset) == [8, 9])
        // A new group and a new reader start at the first retained offset too.
        let fresh = try await bus.subscribe(group: "fresh", topics: ["t"])
        let freshGot = try await F.first(of: fresh, where: { $0.offset == 9 }, timeout: .seconds(5))
        #expect(freshGot.map(\.offset) == [8, 9])
        #expect(freshGot.map(\.value) == [F.value(8), F.value(9)])
        // Commits after the gap work, and the group resumes after them when it comes back.
        try await fresh.commit(freshGot[1])
        await fresh.close()
        try await bus.publish(OutgoingMessage(topic: "t", key: "k", value: [7]))
        let back = try await bus.subscribe(group: "fresh", topics: ["t"])
        let backGot = try await collect(back, count: 1, timeout: .seconds(5))
        #expect(backGot.map(\.offset) == [10])
        await back.close()
        await reader.close()
        await lagging.close()
        await bus.shutdown()
    }

    @Test func theBackgroundLoopDeletesWithoutBeingCalled() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let metrics = MetricsRecorder()
        let bus = try F.open(dir, clock: clock, interval: .milliseconds(20), metrics: metrics.hooks)
        try await F.publish(bus, topic: "t", range: 0..<8)
        clock.advance(seconds: 61)
        let deleted = await eventually { F.segments(dir, topic: "t") == [8] }
        #expect(deleted)
        #expect(await eventually { metrics.deleted("t") == 2 })
        await bus.shutdown()
    }

    @Test func aQuietActiveSegmentRollsByAgeAndIsDeleted() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await F.publish(bus, topic: "t", range: 0..<2)  // never reaches segment_bytes
        clock.advance(seconds: 61)
        try await bus.runMaintenance()  // rolls the active segment (its records are older than the retention), deletes it
        #expect(F.segments(dir, topic: "t") == [2])
        try await bus.publish(OutgoingMessage(topic: "t", key: "k", value: [1]))
        let got = try await F.readThrough(bus, topic: "t", lastOffset: 2)
        #expect(got.map(\.offset) == [2])
        await bus.shutdown()
    }

    // MARK: Compaction

    @Test func compactionRules() {
        typealias R = RetentionRules.Record
        let now: Int64 = 1_000_000
        let records = [
            R(offset: 0, key: Array("a".utf8), timestampMillis: now - 90_000, isTombstone: false),
            R(offset: 1, key: Array("b".utf8), timestampMillis: now - 90_000, isTombstone: false),
            R(offset: 2, key: nil, timestampMillis: now - 90_000, isTombstone: false),
            R(offset: 3, key: Array("a".utf8), timestampMillis: now - 90_000, isTombstone: false),
            R(offset: 4, key: Array("b".utf8), timestampMillis: now - 90_000, isTombstone: true),
            R(offset: 5, key: Array("c".utf8), timestampMillis: now - 1_000, isTombstone: true),
        ]
        let latest = RetentionRules.latestOffsets(records)
        #expect(latest == [Array("a".utf8): 3, Array("b".utf8): 4, Array("c".utf8): 5])
        let kept = records.filter { RetentionRules.keeps($0, latest: latest, nowMillis: now, retentionMillis: 60_000) }.map(\.offset)
        // a@0 superseded, b@1 superseded, unkeyed kept, a@3 latest, b@4 an old tombstone dropped, c@5 a young tombstone kept.
        #expect(kept == [2, 3, 5])
    }

    @Test func cleanupPolicyParsing() {
        let cases: [(String, CleanupPolicy?)] = [
            ("compact", .compact), ("delete", .delete), ("compact,delete", [.compact, .delete]),
            ("delete, compact", [.compact, .delete]), ("", nil), ("compact,", nil), ("erase", nil),
        ]
        for (text, expected) in cases {
            let policy = CleanupPolicy(parsing: text)
            #expect(policy == expected, "\(text)")
            if let policy { #expect(CleanupPolicy(parsing: policy.description) == policy) }
        }
    }

    /// Publishes three versions of keys a...d (a: 0, 4, 8; b: 1, 5, 9; ...) and a sentinel; returns the last offset.
    private func publishVersions(_ bus: EmbeddedBus, topic: String, rounds: Int = 3, from start: Int = 0) async throws -> Int64 {
        let keys = ["a", "b", "c", "d"]
        var offset = Int64(start) - 1
        for round in 0..<rounds {
            for k in keys {
                try await bus.publish(OutgoingMessage(topic: topic, key: k, value: Array("\(k)\(round + start / 4)".utf8) + F.value(0)))
                offset += 1
            }
        }
        return offset
    }

    @Test func compactionKeepsTheLatestPerKeyWithItsOffsetAndSurvivesReopen() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await bus.ensureTopics([TopicSpec(name: "holds", partitions: 1, config: ["cleanup.policy": "compact"])])
        _ = try await publishVersions(bus, topic: "holds")  // offsets 0...11, segments 0, 4, 8, active 12
        try await bus.publish(OutgoingMessage(topic: "holds", key: "e", value: Array("e0".utf8)))  // offset 12, active
        let report = try await bus.runMaintenance()
        // Rolled segments 0 and 4 held only superseded versions: emptied and deleted; 8 is the latest of every key.
        #expect(report.segmentsDeleted == 2)
        #expect(F.segments(dir, topic: "holds") == [8, 12])
        let got = try await F.readThrough(bus, topic: "holds", lastOffset: 12)
        #expect(got.map(\.offset) == [8, 9, 10, 11, 12])
        #expect(got.map { String(decoding: $0.value.prefix(2), as: UTF8.self) } == ["a2", "b2", "c2", "d2", "e0"])
        // Nothing expires by age in a compact-only topic.
        clock.advance(seconds: 3600)
        try await bus.runMaintenance()
        #expect(F.segments(dir, topic: "holds").first == 8)
        await bus.shutdown()

        // Reopened without ensureTopics: still compacted.
        let reopened = try F.open(dir, clock: clock)
        // a and b again (offsets 13, 14): the versions at 8 and 9 are superseded once their new versions are in.
        try await reopened.publish(OutgoingMessage(topic: "holds", key: "a", value: Array("a3".utf8) + F.value(0)))
        try await reopened.publish(OutgoingMessage(topic: "holds", key: "b", value: Array("b3".utf8) + F.value(0)))
        try await reopened.runMaintenance()
        let after = try await F.readThrough(reopened, topic: "holds", lastOffset: 14)
        #expect(after.map(\.offset) == [10, 11, 12, 13, 14])
        #expect(after.map { String(decoding: $0.value.prefix(2), as: UTF8.self) } == ["c2", "d2", "e0", "a3", "b3"])
        await reopened.shutdown()
        // And what compaction wrote reads back after another reopen (sparse offsets recovered from the files).
        let third = try F.open(dir, clock: clock)
        let again = try await F.readThrough(third, topic: "holds", lastOffset: 14)
        #expect(again.map(\.offset) == [10, 11, 12, 13, 14])
        await third.shutdown()
    }

    @Test func groupsConsumeAndCommitAcrossCompactionGaps() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await bus.ensureTopics([TopicSpec(name: "outcomes", partitions: 1, config: ["cleanup.policy": "compact,delete"])])
        // a, b, a, b, ... so every rolled segment keeps nothing but what the active one supersedes later.
        for i in 0..<9 { try await bus.publish(OutgoingMessage(topic: "outcomes", key: i % 2 == 0 ? "a" : "b", value: F.value(i))) }
        try await bus.publish(OutgoingMessage(topic: "outcomes", key: "c", value: F.value(9)))  // offset 9
        try await bus.runMaintenance()
        // Latest: a@8, b@7, c@9 → segment 0 emptied (deleted), segment 4 keeps b@7, 8 is active.
        let sub = try await bus.subscribe(group: "recorder", topics: ["outcomes"])
        let got = try await collect(sub, count: 3, timeout: .seconds(5))
        #expect(got.map(\.offset) == [7, 8, 9])
        // The offset tracker commits across the gap.
        var tracker = OffsetTracker()
        for m in got {
            let began = tracker.begin(m)
            #expect(began)
        }
        var target: BusMessage?
        for m in [got[2], got[0], got[1]] { target = tracker.finish(m) ?? target }
        #expect(target?.offset == 9)
        try await sub.commit(target!)
        await sub.close()
        try await bus.publish(OutgoingMessage(topic: "outcomes", key: "d", value: F.value(10)))
        let back = try await bus.subscribe(group: "recorder", topics: ["outcomes"])
        let next = try await collect(back, count: 1, timeout: .seconds(5))
        #expect(next.map(\.offset) == [10])
        try await back.commit(next[0])
        await back.close()
        // compact,delete: once consumed and old, compacted segments are deleted too.
        clock.advance(seconds: 61)
        try await bus.runMaintenance()
        #expect(F.segments(dir, topic: "outcomes").count == 1)
        await bus.shutdown()
    }

    @Test(arguments: [(false, ["k": "tomb", "x": "x0", "z": "v3"]), (true, ["x": "x0", "z": "v3"])])
    func tombstonesStayUntilOlderThanTheRetention(aged: Bool, expected: [String: String]) async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await bus.ensureTopics([TopicSpec(name: "holds", partitions: 1, config: ["cleanup.policy": "compact"])])
        try await bus.publish(OutgoingMessage(topic: "holds", key: "k", value: F.value(0)))  // 0
        try await bus.publish(OutgoingMessage(topic: "holds", key: "k", value: []))  // 1: tombstone
        try await bus.publish(OutgoingMessage(topic: "holds", key: "x", value: Array("x0".utf8) + F.value(0)))  // 2
        try await bus.publish(OutgoingMessage(topic: "holds", key: "z", value: F.value(3)))  // 3
        try await bus.publish(OutgoingMessage(topic: "holds", key: "y", value: F.value(4)))  // 4: rolls
        #expect(F.segments(dir, topic: "holds") == [0, 5])
        try await bus.runMaintenance()  // k@0 goes, the young tombstone k@1 stays
        if aged { clock.advance(seconds: 61) }
        try await bus.publish(OutgoingMessage(topic: "holds", key: "y", value: []))  // 5: y gone, in the active segment
        // Aged: the kept tombstone expired, so compaction runs again without a new roll.
        try await bus.runMaintenance()
        let got = try await F.readThrough(bus, topic: "holds", lastOffset: 5)
        var state: [String: String] = [:]
        for m in got where m.keyString != "y" {
            state[m.keyString!] = m.value.isEmpty ? "tomb" : String(decoding: m.value.prefix(2), as: UTF8.self)
        }
        #expect(state == expected)
        #expect(got.map(\.offset).first == (aged ? 2 : 1))
        #expect(got.last?.offset == 5 && got.last?.value == [])  // the active segment is never compacted
        await bus.shutdown()
    }

    @Test func anUnfinishedCompactionCopyIsRemovedOnOpen() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await bus.ensureTopics([TopicSpec(name: "holds", partitions: 1, config: ["cleanup.policy": "compact"])])
        _ = try await publishVersions(bus, topic: "holds")
        await bus.shutdown()
        // A crash mid-write leaves `<segment>.cleaned`: the segment it copies is untouched and wins.
        let leftover = URL(fileURLWithPath: F.segmentPath(dir, topic: "holds", base: 4).path + ".cleaned")
        try Data([1, 2, 3]).write(to: leftover)
        let reopened = try F.open(dir, clock: clock)
        #expect(!FileManager.default.fileExists(atPath: leftover.path))
        let got = try await F.readThrough(reopened, topic: "holds", lastOffset: 11)
        #expect(got.map(\.offset) == Array(0...11))
        await reopened.shutdown()
    }

    // MARK: Old layout, group logs, building blocks

    @Test func theSingleFileLayoutOpensWithItsDataAndCommits() async throws {
        let dir = F.tempDir()
        let fm = FileManager.default
        // What the previous version wrote: topics/<t>/partitions, topics/<t>/<p>.log, groups/<g>.log.
        let topicDir = dir.appendingPathComponent("topics/sluice.audit")
        try fm.createDirectory(at: topicDir, withIntermediateDirectories: true)
        try fm.createDirectory(at: dir.appendingPathComponent("groups"), withIntermediateDirectories: true)
        try "2\n".write(to: topicDir.appendingPathComponent("partitions"), atomically: true, encoding: .utf8)
        var p0: [UInt8] = []
        for i in 0..<5 { p0 += LogRecord(timestampMillis: 1, key: Array("s".utf8), headers: [BusHeader("h", [1])], value: F.value(i)).encodedFrame() }
        p0 += Array(LogRecord(timestampMillis: 1, key: nil, headers: [], value: F.value(5)).encodedFrame().prefix(40))  // torn tail
        try Data(p0).write(to: topicDir.appendingPathComponent("0.log"))
        try Data().write(to: topicDir.appendingPathComponent("1.log"))
        var commit: [UInt8] = []
        commit.appendLE(UInt32(0))
        commit.appendLE(UInt64(3))
        try Data(LogRecord(timestampMillis: 0, key: Array("sluice.audit".utf8), headers: [], value: commit).encodedFrame())
            .write(to: dir.appendingPathComponent("groups/sluice.recorder.log"))

        let clock = TestClock()
        let bus = try F.open(dir, clock: clock, segmentBytes: 1 << 20)
        #expect(!fm.fileExists(atPath: topicDir.appendingPathComponent("0.log").path))
        #expect(F.segments(dir, topic: "sluice.audit", partition: 0) == [0])
        #expect(try await bus.partitionCount(topic: "sluice.audit") == 2)
        let all = try await F.readThrough(bus, topic: "sluice.audit", lastOffset: 4)
        #expect(all.map(\.value) == (0..<5).map { F.value($0) })
        #expect(all.first?.header("h") == [1])
        let sub = try await bus.subscribe(group: "sluice.recorder", topics: ["sluice.audit"])
        let resumed = try await collect(sub, count: 2, timeout: .seconds(5))
        #expect(resumed.map(\.offset) == [3, 4])
        await sub.close()
        let keyOnPartition0 = try #require((0..<100).map { "s\($0)" }.first { partition(forKey: Array($0.utf8), partitions: 2) == 0 })
        try await bus.publish(OutgoingMessage(topic: "sluice.audit", key: keyOnPartition0, value: [9]))
        let next = try await F.readThrough(bus, topic: "sluice.audit", lastOffset: 5)
        #expect(next.last?.offset == 5)

        // No topic config yet: kept whole, whatever the age, until ensureTopics names a policy.
        clock.advance(seconds: 86_400)
        try await bus.runMaintenance()
        #expect(F.segments(dir, topic: "sluice.audit", partition: 0) == [0])
        try await bus.ensureTopics([TopicSpec(name: "sluice.audit", partitions: 2)])
        #expect(try String(contentsOf: topicDir.appendingPathComponent("config"), encoding: .utf8) == "cleanup.policy=delete\n")
        await bus.shutdown()
    }

    @Test func aLegacyFileNextToSegmentsIsRefused() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock)
        try await F.publish(bus, topic: "t", range: 0..<2)
        await bus.shutdown()
        try Data().write(to: dir.appendingPathComponent("topics/t/0.log"))
        #expect(throws: BusError.self) { try F.open(dir, clock: clock) }
    }

    @Test func groupCommitLogsAreRewrittenToTheirLatestCommits() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock, segmentBytes: 1 << 20)
        for i in 0..<30_000 { try await bus.publish(OutgoingMessage(topic: "t", key: "k", value: [UInt8(i & 0xFF)])) }
        let sub = try await bus.subscribe(group: "g", topics: ["t"])
        let got = try await collect(sub, count: 30_000, timeout: .seconds(60))
        for m in got { try await sub.commit(m) }
        let file = dir.appendingPathComponent("groups/g.log").path
        let before = try #require(fileSize(file))
        #expect(before > 1 << 20)
        try await bus.runMaintenance()
        let after = try #require(fileSize(file))
        print("group commit log: \(before) bytes before the rewrite, \(after) after")
        #expect(after < 100)
        await sub.close()
        await bus.shutdown()
        // The rewritten log resumes the group after its last commit.
        let reopened = try F.open(dir, clock: clock, segmentBytes: 1 << 20)
        try await reopened.publish(OutgoingMessage(topic: "t", key: "k", value: [1]))
        let back = try await reopened.subscribe(group: "g", topics: ["t"])
        let next = try await collect(back, count: 1, timeout: .seconds(5))
        #expect(next.map(\.offset) == [30_000])
        await back.close()
        await reopened.shutdown()
    }

    @Test(arguments: ["sluice.inspector", ".hidden", "a b/c%d", "grüße", "%41"])
    func groupFileNamesRoundTrip(name: String) {
        let file = GroupCommitLog.fileName(for: name)
        #expect(!file.contains("/"))
        #expect(GroupCommitLog.groupName(fromFileName: file) == name)
    }

    @Test func crc32MatchesZlibAndContinues() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for split in [0, 1, 7, 8, 9, 500, 1000] {
            let whole = CRC32.checksum(bytes)
            #expect(CRC32.checksum(Array(bytes[split...]), continuing: CRC32.checksum(Array(bytes[..<split]))) == whole)
        }
    }
}

/// Figures: disk use under load with a short retention, and the cost of compacting a full segment.
@Suite("EmbeddedBus retention volume", .serialized)
struct EmbeddedBusRetentionVolumeTests {
    typealias F = RetentionFixture

    /// A stage's consume loop: commits each partition every 20 messages as it goes, and the last
    /// message of every partition once it has seen `expected` messages (caught up); returns the count.
    private static func consume(_ sub: BusSubscription, expected: Int) async throws -> Int {
        var count = 0
        var last: [Int: BusMessage] = [:]
        var sinceCommit: [Int: Int] = [:]
        for try await m in sub {
            count += 1
            last[m.partition] = m
            sinceCommit[m.partition, default: 0] += 1
            if sinceCommit[m.partition]! >= 20 {
                sinceCommit[m.partition] = 0
                try await sub.commit(m)
            }
            if count == expected {
                for m in last.values { try await sub.commit(m) }
                break
            }
        }
        return count
    }

    /// 30,000 requests in `make test` (560 MB published at ~5.6 KB a request without retention, 25
    /// retention windows); `make retention-volume` runs 100,000 (SLUICE_RETENTION_VOLUME_REQUESTS).
    @Test(.timeLimit(.minutes(5)))
    func diskStaysSmallUnderSustainedRequestsWithOneMinuteRetention() async throws {
        let requests = ProcessInfo.processInfo.environment["SLUICE_RETENTION_VOLUME_REQUESTS"].flatMap { Int($0) } ?? 30_000
        let perSimulatedSecond = 20  // ≈ 1.7 M requests a day
        let maintenanceEvery = 30  // simulated seconds, as the default interval
        let dir = F.tempDir()
        let topicsDir = dir.appendingPathComponent("topics")
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock, segmentBytes: 1 << 20, retention: .seconds(60), partitions: 6)
        let topics = Topics()
        try await bus.ensureTopics(topics.specs(partitions: 6))

        // The stages' groups, committing as they go.
        var consumers: [BusSubscription] = []
        for (group, topic) in [("sluice.inspector", topics.requests), ("sluice.forwarder", topics.inspected), ("sluice.recorder", topics.audit)] {
            consumers.append(try await bus.subscribe(group: group, topics: [topic]))
        }
        // Realistic sizes (sealed bodies are incompressible): requests 2,000 B, inspected 2,150 B,
        // a reply 330 B, the audit events 570 B, plus keys, headers and frames: ≈ 5.6 KB a request.
        var noise = SystemRandomNumberGenerator()
        let random = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &noise) }
        func body(_ n: Int, _ i: Int) -> [UInt8] { Array(random[(i % 1024)..<(i % 1024 + n)]) }

        let started = ContinuousClock.now
        var published: Int64 = 0
        var peak: Int64 = 0
        var passes = 0
        var maintenanceTime = Duration.zero
        var longestPass = Duration.zero
        try await withThrowingTaskGroup(of: Int.self) { group in
            for sub in consumers {
                group.addTask { try await Self.consume(sub, expected: requests) }
            }
            for i in 0..<requests {
                let session = "session-\(i % 500)"
                let id = "req-\(UUID().uuidString)"
                let headers = [BusHeader(MessageHeader.requestID, Array(id.utf8)), BusHeader(MessageHeader.kind, Array("request".utf8))]
                let messages = [
                    OutgoingMessage(topic: topics.requests, key: session, headers: headers, value: body(2000, i)),
                    OutgoingMessage(topic: topics.inspected, key: id, headers: headers, value: body(2150, i)),
                    OutgoingMessage(topic: topics.replies, key: "ingress-1", headers: headers, value: body(330, i)),
                    OutgoingMessage(topic: topics.audit, key: session, headers: headers, value: body(570, i)),
                ]
                for m in messages {
                    try await bus.publish(m)
                    published += Int64(32 + (m.key?.count ?? 0) + m.value.count + m.headers.reduce(0) { $0 + 6 + $1.name.utf8.count + $1.value.count })
                }
                if (i + 1) % perSimulatedSecond == 0 { clock.advance(seconds: 1) }
                if (i + 1) % (perSimulatedSecond * maintenanceEvery) == 0 {
                    peak = max(peak, F.diskBytes(topicsDir))
                    let report = try await bus.runMaintenance()
                    passes += 1
                    maintenanceTime += report.duration
                    longestPass = max(longestPass, report.duration)
                }
            }
            // Let the stages catch up (they commit their last messages then), as they do between bursts.
            for try await count in group { #expect(count == requests) }
        }
        for sub in consumers { await sub.close() }
        let publishing = ContinuousClock.now - started
        peak = max(peak, F.diskBytes(topicsDir))
        clock.advance(seconds: 61)
        let before = F.diskBytes(topicsDir)
        let final = try await bus.runMaintenance()
        let after = F.diskBytes(topicsDir)
        let groupsBytes = F.diskBytes(dir.appendingPathComponent("groups"))
        print("""
            retention volume: \(requests) requests, \(published) bytes published (\(published / Int64(requests)) B a request), \
            \(requests / perSimulatedSecond) simulated seconds at \(perSimulatedSecond)/s, retention 60 s, 1 MiB segments
            retention volume: topics on disk: peak \(peak) B, before the last pass \(before) B, after it \(after) B; group logs \(groupsBytes) B
            retention volume: \(passes + 1) maintenance passes, \(maintenanceTime + final.duration) in all, longest \(max(longestPass, final.duration)), \
            last \(final.duration) (deleted \(final.segmentsDeleted) segments, \(final.bytesFreed) B); publishing and consuming took \(publishing)
            """)
        #expect(peak < 50_000_000)
        #expect(after < 50_000_000)
        #expect(final.diskBytes == after - F.diskBytes(topicsDir, only: ["partitions", "config"]))
        #expect(final.segmentsDeleted > 0)
        await bus.shutdown()
        try? FileManager.default.removeItem(at: dir)
    }

    @Test func compactingAFull64MiBSegmentDoesNotHoldUpPublishes() async throws {
        let dir = F.tempDir()
        let clock = TestClock()
        let bus = try F.open(dir, clock: clock, segmentBytes: 64 << 20, retention: .seconds(60))
        try await bus.ensureTopics([
            TopicSpec(name: "holds", partitions: 1, config: ["cleanup.policy": "compact"]), TopicSpec(name: "requests", partitions: 1),
        ])
        let keys = 2000
        var i = 0
        var value = [UInt8](repeating: 0x61, count: 4096)
        while F.segments(dir, topic: "holds").count < 2 {
            value.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(i).littleEndian, Array.init))
            try await bus.publish(OutgoingMessage(topic: "holds", key: "hold-\(i % keys)", value: value))
            i += 1
        }
        let records = i
        let before = F.diskBytes(dir.appendingPathComponent("topics/holds"))

        // Publish to another topic the whole time the pass runs; record the slowest publish.
        let done = Flag()
        var slowest = Duration.zero
        var during = 0
        let payload = [UInt8](repeating: 1, count: 1024)
        let report = try await withThrowingTaskGroup(of: MaintenanceReport.self) { group in
            group.addTask {
                defer { done.set() }
                return try await bus.runMaintenance()
            }
            while !done.isSet {
                let t = ContinuousClock.now
                try await bus.publish(OutgoingMessage(topic: "requests", key: "k\(during)", value: payload))
                slowest = max(slowest, ContinuousClock.now - t)
                during += 1
            }
            return try await group.next()!
        }
        let after = F.diskBytes(dir.appendingPathComponent("topics/holds"))
        print("""
            compaction: a \(before) B segment (\(records) records of 4 KiB over \(keys) keys) compacted to \(after) B: \
            pass \(report.duration), file work off the actor \(report.longestCompaction); \
            \(during) publishes to another topic meanwhile, the slowest took \(slowest)
            """)
        // Every key's latest version is what is left.
        let got = try await F.readThrough(bus, topic: "holds", lastOffset: Int64(records - 1), timeout: .seconds(30))
        #expect(got.count == keys)
        for m in got {
            let version = m.value.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            #expect(Int(version) >= records - keys)
        }
        #expect(report.segmentsCompacted == 1)
        await bus.shutdown()
        try? FileManager.default.removeItem(at: dir)
    }
}

extension RetentionFixture {
    /// Bytes of the files named `only` anywhere under `dir`.
    static func diskBytes(_ dir: URL, only names: Set<String>) -> Int64 {
        guard let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.fileSizeKey]) else { return 0 }
        var total: Int64 = 0
        for case let url as URL in e where names.contains(url.lastPathComponent) {
            total += Int64((try? url.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0)
        }
        return total
    }
}
