import BusContract
import Foundation
import Logging
@testable import Pipeline
import Testing

/// A directory where a member of group `g` has handled `in`[0]@0 (committed with two outputs)
/// and is about to commit `in`[0]@1 with three outputs (two of them to one partition of `out`).
enum TransactionFixture {
    static let group = "g"
    static let baseline = ["o0-a", "o0-b"]
    static let outputs = ["o1-0", "o1-1", "o1-2"]

    static func tempDir() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("sluice-txn-\(UUID().uuidString)")
    }

    static func options(crash: SimulatedCrash? = nil) -> EmbeddedBusOptions {
        // Quiet: the crash tests make the bus log an error (or a recovery) hundreds of times.
        var options = EmbeddedBusOptions(
            defaultPartitions: 1, maintenanceInterval: nil, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            metrics: .none)
        options.crash = crash
        return options
    }

    static func outgoing(_ values: [String]) -> [OutgoingMessage] {
        // Keys x, y, x: two outputs share a partition, in order.
        values.enumerated().map { i, v in
            OutgoingMessage(topic: "out", key: i % 2 == 0 ? "x" : "y", headers: [BusHeader("n", "\(i)")], value: Array(v.utf8))
        }
    }

    /// Prepares the directory described above.
    static func prepare() async throws -> URL {
        let dir = tempDir()
        let bus = try EmbeddedBus(directory: dir, options: options())
        try await bus.ensureTopics([TopicSpec(name: "in", partitions: 1), TopicSpec(name: "out", partitions: 3)])
        for i in 0..<3 { try await bus.publish(OutgoingMessage(topic: "in", key: "k", value: Array("m\(i)".utf8))) }
        let sub = try await bus.subscribe(group: group, topics: ["in"])
        let got = try await take(sub, count: 1)
        try await sub.commit(got[0], publishing: [
            OutgoingMessage(topic: "out", key: "a", value: Array(baseline[0].utf8)),
            OutgoingMessage(topic: "out", key: "b", value: Array(baseline[1].utf8)),
        ])
        await sub.close()
        await bus.shutdown()
        // Opening empties the journal (it still holds that applied commit), so the copies start
        // with an empty one and every write a test counts is the commit's own.
        await EmbeddedBus.openAndShutDown(dir, options: options())
        try #require(fileSize(dir.appendingPathComponent(TransactionJournal.fileName).path) == 0)
        return dir
    }

    static func copy(_ dir: URL) throws -> URL {
        let target = tempDir()
        try FileManager.default.copyItem(at: dir, to: target)
        return target
    }

    /// Opens the directory with `crash` and commits `in`[0]@1 with `outputs`; returns the error, if any.
    @discardableResult
    static func commit(in dir: URL, crash: SimulatedCrash?) async throws -> (any Error)? {
        let bus = try EmbeddedBus(directory: dir, options: options(crash: crash))
        let sub = try await bus.subscribe(group: group, topics: ["in"])
        let got = try await take(sub, count: 1)
        try #require(got[0].offset == 1)
        var failure: (any Error)?
        do { try await sub.commit(got[0], publishing: outgoing(outputs)) } catch { failure = error }
        await sub.close()
        await bus.shutdown()
        return failure
    }

    /// What a reopened bus shows: the outputs in `out` (values, in partition then offset order),
    /// where group `g` resumes `in`[0], and the journal's size.
    struct Visible: Equatable {
        var outputs: [String]
        var committed: Int64?
        var resumesAt: Int64
        var journal: Int
    }

    static func visible(_ dir: URL) async throws -> Visible {
        let bus = try EmbeddedBus(directory: dir, options: options())
        let ends = try await bus.endOffsets(topic: "out")
        var outputs: [String] = []
        let reader = try await bus.read(topic: "out", from: .beginning)
        let all = try await take(reader, count: Int(ends.reduce(0, +)))
        await reader.close()
        for p in ends.indices {
            outputs += all.filter { $0.partition == p }.sorted { $0.offset < $1.offset }.map { String(decoding: $0.value, as: UTF8.self) }
        }
        let committed = await bus.committedOffset(group: group, topic: "in", partition: 0)
        let sub = try await bus.subscribe(group: group, topics: ["in"])
        let next = try await take(sub, count: 1)
        await sub.close()
        let journal = await bus.journalCount
        await bus.shutdown()
        return Visible(outputs: outputs, committed: committed, resumesAt: next[0].offset, journal: journal)
    }

    /// The outputs of `values` as `visible` lists them (partition order, then publish order).
    static func expected(_ values: [(key: String, value: String)]) -> [String] {
        (0..<3).flatMap { p in values.filter { partition(forKey: Array($0.key.utf8), partitions: 3) == p }.map(\.value) }
    }

    static let before = Visible(
        outputs: expected([("a", baseline[0]), ("b", baseline[1])]), committed: 1, resumesAt: 1, journal: 0)
    static let after = Visible(
        outputs: expected([("a", baseline[0]), ("b", baseline[1]), ("x", outputs[0]), ("y", outputs[1]), ("x", outputs[2])]),
        committed: 2, resumesAt: 2, journal: 0)

    /// The first `count` messages of `sub`; throws `ReadTimeout` after `timeout`.
    static func take(_ sub: BusSubscription, count: Int, timeout: Duration = .seconds(5)) async throws -> [BusMessage] {
        guard count > 0 else { return [] }
        return try await withThrowingTaskGroup(of: [BusMessage]?.self) { group in
            group.addTask {
                var out: [BusMessage] = []
                for try await m in sub {
                    out.append(m)
                    if out.count == count { break }
                }
                return out
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let first, first.count == count else { throw ReadTimeout() }
            return first
        }
    }
}

@Suite("EmbeddedBus atomic commit")
struct EmbeddedBusTransactionTests {
    typealias F = TransactionFixture

    @Test func theFixtureDistinguishesBeforeFromAfter() async throws {
        let prepared = try await F.prepare()
        #expect(try await F.visible(F.copy(prepared)) == F.before)
        let dir = try F.copy(prepared)
        let error = try await F.commit(in: dir, crash: nil)
        #expect(error == nil)
        #expect(try await F.visible(dir) == F.after)
        #expect(F.before.outputs.count == 2 && F.after.outputs.count == 5)
    }

    /// A crash at every byte of the commit's writes (journal record, three outputs, group
    /// commit): reopened, the bus shows all of the commit or none of it, and all of it exactly
    /// when the journal record was written whole.
    @Test func aCrashAtEveryByteLeavesAllOrNothing() async throws {
        let prepared = try await F.prepare()
        let probe = SimulatedCrash(afterBytes: Int.max)
        try await F.commit(in: F.copy(prepared), crash: probe)
        let writes = probe.writes
        // Journal record, 3 outputs, group commit (the journal is emptied only once it is large).
        try #require(writes.count == 5, "writes: \(writes)")
        let total = writes.reduce(0, +)
        var outcomes: [Bool: Int] = [:]
        for cut in 0...total {
            let dir = try F.copy(prepared)
            let crash = SimulatedCrash(afterBytes: cut)
            let error = try await F.commit(in: dir, crash: crash)
            #expect((error != nil) == (cut < total), "cut at \(cut): error \(String(describing: error))")
            let seen = try await F.visible(dir)
            let journaled = cut >= writes[0]
            #expect(seen == (journaled ? F.after : F.before), "cut at \(cut) of \(total) (writes \(writes))")
            outcomes[seen == F.after, default: 0] += 1
            try? FileManager.default.removeItem(at: dir)
        }
        print("atomic commit crash points: \(total + 1) (\(outcomes[false] ?? 0) showed nothing, \(outcomes[true] ?? 0) showed everything); writes \(writes)")
    }

    /// A crash after the journal record, then crashes during recovery (twice, at every byte of
    /// what recovery writes): every output is appended exactly once and the commit applied.
    @Test(arguments: [0, 1, 2, 3])
    func anInterruptedRecoveryAppliesTheCommitOnce(outputsBeforeCrash: Int) async throws {
        let prepared = try await F.prepare()
        let probe = SimulatedCrash(afterBytes: Int.max)
        try await F.commit(in: F.copy(prepared), crash: probe)
        let writes = probe.writes
        let crashed = try F.copy(prepared)
        // The journal record and the first `outputsBeforeCrash` outputs are written.
        try await F.commit(in: crashed, crash: SimulatedCrash(afterBytes: writes[0...outputsBeforeCrash].reduce(0, +)))

        let recoveryProbe = SimulatedCrash(afterBytes: Int.max)
        let probed = try F.copy(crashed)
        await EmbeddedBus.openAndShutDown(probed, options: F.options(crash: recoveryProbe))
        let recoveryBytes = recoveryProbe.writes.reduce(0, +)
        // The remaining outputs, the group commit and the journal truncation.
        #expect(recoveryProbe.writes.count == 3 - outputsBeforeCrash + 2, "recovery writes \(recoveryProbe.writes)")
        for cut in 0...recoveryBytes {
            let dir = try F.copy(crashed)
            for _ in 0..<2 {
                let crash = SimulatedCrash(afterBytes: cut)
                await EmbeddedBus.openAndShutDown(dir, options: F.options(crash: crash))
            }
            #expect(try await F.visible(dir) == F.after, "recovery cut at \(cut) of \(recoveryBytes)")
            try? FileManager.default.removeItem(at: dir)
        }
    }

    /// Records of applied commits stay in the journal until it is large; reopening replays only
    /// the last one, which changes nothing, and empties the journal.
    @Test func appliedJournalRecordsAreNotAppliedAgain() async throws {
        let dir = try await F.prepare()
        let bus = try EmbeddedBus(directory: dir, options: F.options())
        let sub = try await bus.subscribe(group: F.group, topics: ["in"])
        let got = try await F.take(sub, count: 2)
        try await sub.commit(got[0], publishing: F.outgoing(F.outputs))
        try await sub.commit(got[1], publishing: F.outgoing(["o2-0"]))
        #expect(await bus.journalCount == 2)
        #expect(try await bus.endOffsets(topic: "out").reduce(0, +) == 6)
        await sub.close()
        await bus.shutdown()
        let reopened = try EmbeddedBus(directory: dir, options: F.options())
        #expect(await reopened.journalCount == 0)
        #expect(try await reopened.endOffsets(topic: "out").reduce(0, +) == 6)
        #expect(await reopened.committedOffset(group: F.group, topic: "in", partition: 0) == 3)
        await reopened.shutdown()
    }

    /// A torn journal record followed by garbage (what a power loss can leave) is dropped.
    @Test func aJournalWithGarbageAfterATornRecordIsDropped() async throws {
        let prepared = try await F.prepare()
        let probe = SimulatedCrash(afterBytes: Int.max)
        try await F.commit(in: F.copy(prepared), crash: probe)
        let dir = try F.copy(prepared)
        try await F.commit(in: dir, crash: SimulatedCrash(afterBytes: probe.writes[0] - 5))
        let journal = dir.appendingPathComponent(TransactionJournal.fileName)
        var bytes = try Data(contentsOf: journal)
        #expect(bytes.count == probe.writes[0] - 5)
        bytes.append(Data(repeating: 0, count: 4096))
        try bytes.write(to: journal)
        #expect(try await F.visible(dir) == F.before)
        #expect(fileSize(journal.path) == 0)
    }

    /// An I/O error after the journal record (a full disk) undoes the outputs already appended and
    /// the record: nothing published, nothing committed, and a retry publishes once.
    @Test(arguments: [1, 2, 3, 4])
    func aFailedStepIsUndoneAndARetryPublishesOnce(failingWrite: Int) async throws {
        let prepared = try await F.prepare()
        let probe = SimulatedCrash(afterBytes: Int.max)
        try await F.commit(in: F.copy(prepared), crash: probe)
        let dir = try F.copy(prepared)
        let failure = SimulatedCrash(afterBytes: probe.writes[0..<failingWrite].reduce(0, +), mode: .failOnce)
        let bus = try EmbeddedBus(directory: dir, options: F.options(crash: failure))
        let sub = try await bus.subscribe(group: F.group, topics: ["in"])
        let got = try await F.take(sub, count: 1)
        await #expect(throws: BusError.self) { try await sub.commit(got[0], publishing: F.outgoing(F.outputs)) }
        #expect(failure.hasTripped)
        #expect(try await bus.endOffsets(topic: "out").reduce(0, +) == 2)
        #expect(await bus.committedOffset(group: F.group, topic: "in", partition: 0) == 1)
        #expect(await bus.journalCount == 0)
        try await sub.commit(got[0], publishing: F.outgoing(F.outputs))
        await sub.close()
        await bus.shutdown()
        #expect(try await F.visible(dir) == F.after)
    }

    /// A partition rebalanced away: its commit is fenced and publishes nothing; `assignment()`
    /// follows each join and leave; the new owner's commit goes through.
    @Test func aCommitForAPartitionMovedAwayIsFenced() async throws {
        let dir = F.tempDir()
        let bus = try EmbeddedBus(directory: dir, options: F.options())
        try await bus.ensureTopics([TopicSpec(name: "in", partitions: 2), TopicSpec(name: "out", partitions: 1)])
        // One message on each partition (keys chosen by the bus's own placement).
        for p in 0..<2 {
            let key = (0...).lazy.map { "k\($0)" }.first { partition(forKey: Array($0.utf8), partitions: 2) == p }!
            try await bus.publish(OutgoingMessage(topic: "in", key: key, value: Array("m\(p)".utf8)))
        }
        let p0 = BusPartition(topic: "in", partition: 0)
        let p1 = BusPartition(topic: "in", partition: 1)
        let a = try await bus.subscribe(group: "g", topics: ["in"])
        #expect(await a.assignment() == [p0, p1])
        let got = try await F.take(a, count: 2)
        let onP1 = try #require(got.first { $0.partition == 1 })
        let onP0 = try #require(got.first { $0.partition == 0 })

        let b = try await bus.subscribe(group: "g", topics: ["in"])
        #expect(await a.assignment() == [p0])
        #expect(await b.assignment() == [p1])
        #expect(await throwsFenced {
            try await a.commit(onP1, publishing: [OutgoingMessage(topic: "out", key: nil, value: [1])])
        })
        #expect(try await bus.endOffsets(topic: "out") == [0])
        #expect(await bus.committedOffset(group: "g", topic: "in", partition: 1) == nil)
        try await a.commit(onP0, publishing: [OutgoingMessage(topic: "out", key: nil, value: [0])])

        // The new owner gets the message again and commits it with its outputs.
        let again = try await F.take(b, count: 1)
        #expect(again[0].partition == 1 && again[0].offset == onP1.offset)
        try await b.commit(again[0], publishing: [OutgoingMessage(topic: "out", key: nil, value: [2])])
        #expect(try await bus.endOffsets(topic: "out") == [2])
        // Committing it again (a stale handler) is fenced: its outputs are already published.
        #expect(await throwsFenced {
            try await b.commit(again[0], publishing: [OutgoingMessage(topic: "out", key: nil, value: [3])])
        })

        await b.close()
        #expect(await a.assignment() == [p0, p1])
        // A member that left owns nothing and is fenced.
        await a.close()
        #expect(await a.assignment() == [])
        #expect(await throwsFenced {
            try await a.commit(onP0, publishing: [OutgoingMessage(topic: "out", key: nil, value: [4])])
        })
        #expect(try await bus.endOffsets(topic: "out") == [2])
        await bus.shutdown()
    }

    /// Outputs to a topic that does not exist yet create it, as `publish` does; an empty output
    /// list is a plain commit (no journal record).
    @Test func outputsCreateTheirTopicAndNoOutputsIsAPlainCommit() async throws {
        let dir = F.tempDir()
        let crash = SimulatedCrash(afterBytes: Int.max)
        let bus = try EmbeddedBus(directory: dir, options: F.options(crash: crash))
        for i in 0..<2 { try await bus.publish(OutgoingMessage(topic: "in", key: "k", value: [UInt8(i)])) }
        let sub = try await bus.subscribe(group: "g", topics: ["in"])
        let got = try await F.take(sub, count: 2)
        let writesBefore = crash.writes.count
        try await sub.commit(got[0], publishing: [])
        #expect(crash.writes.count == writesBefore + 1)  // the group commit only
        try await sub.commit(got[1], publishing: [OutgoingMessage(topic: "fresh", key: "z", value: [9])])
        #expect(try await bus.endOffsets(topic: "fresh") == [1])
        #expect(await bus.committedOffset(group: "g", topic: "in", partition: 0) == 2)
        await sub.close()
        await bus.shutdown()
    }
}

/// Whether `body` throws `BusError.Kind.fenced`.
func throwsFenced(_ body: () async throws -> Void) async -> Bool {
    do {
        try await body()
        return false
    } catch {
        return (error as? BusError)?.kind == .fenced
    }
}

extension EmbeddedBus {
    /// Opens the directory (running recovery) and shuts the bus down; an error opening it (a
    /// simulated crash during recovery) is expected by the callers and ignored.
    static func openAndShutDown(_ dir: URL, options: EmbeddedBusOptions) async {
        guard let bus = try? EmbeddedBus(directory: dir, options: options) else { return }
        await bus.shutdown()
    }
}
