import Foundation
import Pipeline

/// Makes buses that share one backing store (one data directory, one broker),
/// so that a second bus can see what the first one published and committed.
public protocol BusFactory: Sendable {
    /// A new, independent bus client over the shared store.
    func makeBus() async throws -> any Bus
    /// How long a consumer group may take to rebalance on this bus.
    var rebalanceTimeout: Duration { get }
}

/// The behaviour every `Bus` implementation must show. Each check creates its own
/// uniquely named topics, so checks can share one store. Run it from a test target
/// with that implementation's factory; a failed expectation throws `ContractFailure`.
public struct BusContractSuite: Sendable {
    public let factory: any BusFactory
    public let partitions: Int

    public init(factory: any BusFactory, partitions: Int = 4) {
        self.factory = factory
        self.partitions = partitions
    }

    // MARK: - Checks

    /// Messages with one key come back in publish order, all in one partition.
    public func orderPerKey() async throws {
        try await withBus { bus in
            let topic = try await newTopic(bus)
            let keys = ["alpha", "beta", "gamma"]
            for i in 0..<30 {
                let key = keys[i % keys.count]
                try await bus.publish(OutgoingMessage(topic: topic, key: key, value: Array("\(key)-\(i)".utf8)))
            }
            let sub = try await bus.subscribe(group: "g-\(UUID().uuidString)", topics: [topic])
            let got = try await collect(sub, count: 30, timeout: factory.rebalanceTimeout + .seconds(20))
            await sub.close()
            for key in keys {
                let mine = got.filter { $0.keyString == key }
                try expect(Set(mine.map(\.partition)).count == 1, "key \(key) spread over partitions \(Set(mine.map(\.partition)))")
                let numbers = mine.map { Int(String(decoding: $0.value, as: UTF8.self).split(separator: "-")[1])! }
                try expect(numbers == numbers.sorted(), "key \(key) out of order: \(numbers)")
                try expect(numbers.count == 10, "key \(key): \(numbers.count) of 10 messages")
            }
        }
    }

    /// Two members of one group split the partitions; together they see every message once.
    public func groupSplitsPartitions() async throws {
        try await withBus { bus in
            let topic = try await newTopic(bus)
            let group = "g-\(UUID().uuidString)"
            let a = try await bus.subscribe(group: group, topics: [topic])
            let b = try await bus.subscribe(group: group, topics: [topic])
            try await Task.sleep(for: factory.rebalanceTimeout)
            let total = 80
            for i in 0..<total {
                try await bus.publish(OutgoingMessage(topic: topic, key: "k\(i)", value: Array("m\(i)".utf8)))
            }
            let seen = Tally()
            async let ra: Void = drain(a, into: seen, member: "a")
            async let rb: Void = drain(b, into: seen, member: "b")
            let ok = await seen.wait(until: { $0.count >= total }, timeout: factory.rebalanceTimeout + .seconds(30))
            try await Task.sleep(for: .milliseconds(500))  // let duplicates, if any, arrive
            await a.close()
            await b.close()
            _ = try await (ra, rb)
            let snapshot = await seen.snapshot()
            try expect(ok, "only \(snapshot.count) of \(total) messages seen")
            try expect(snapshot.count == total, "\(snapshot.count) deliveries for \(total) messages: duplicates")
            try expect(Set(snapshot.map(\.value)).count == total, "some message missing")
            let byMember = Dictionary(grouping: snapshot, by: \.member)
            try expect(byMember.count == 2, "one member got everything: \(byMember.mapValues(\.count))")
            let pa = Set(byMember["a"]!.map(\.partition))
            let pb = Set(byMember["b"]!.map(\.partition))
            try expect(pa.isDisjoint(with: pb), "members share partitions \(pa) / \(pb)")
        }
    }

    /// When one member leaves, the other takes over its partitions; nothing is lost.
    public func memberLeavesOtherTakesOver() async throws {
        try await withBus { bus in
            let topic = try await newTopic(bus)
            let group = "g-\(UUID().uuidString)"
            let a = try await bus.subscribe(group: group, topics: [topic])
            let b = try await bus.subscribe(group: group, topics: [topic])
            try await Task.sleep(for: factory.rebalanceTimeout)
            let first = 40
            for i in 0..<first {
                try await bus.publish(OutgoingMessage(topic: topic, key: "k\(i)", value: Array("m\(i)".utf8)))
            }
            let seen = Tally()
            async let ra: Void = drain(a, into: seen, member: "a")
            async let rb: Void = drain(b, into: seen, member: "b")
            let firstOK = await seen.wait(until: { $0.count >= first }, timeout: factory.rebalanceTimeout + .seconds(30))
            let firstCount = await seen.count()
            try expect(firstOK, "first batch incomplete: \(firstCount) of \(first)")
            await b.close()
            _ = try await rb
            try await Task.sleep(for: factory.rebalanceTimeout)
            for i in first..<(2 * first) {
                try await bus.publish(OutgoingMessage(topic: topic, key: "k\(i)", value: Array("m\(i)".utf8)))
            }
            let secondOK = await seen.wait(
                until: { Set($0.map(\.value)).count >= 2 * first }, timeout: factory.rebalanceTimeout + .seconds(30))
            await a.close()
            _ = try await ra
            let snapshot = await seen.snapshot()
            try expect(secondOK, "after b left only \(Set(snapshot.map(\.value)).count) of \(2 * first) distinct messages seen")
            let late = snapshot.filter { $0.index >= first }
            try expect(late.allSatisfy { $0.member == "a" }, "messages after b left went to b")
            try expect(Set(late.map(\.partition)).count == partitions, "a did not take over all partitions")
        }
    }

    /// Uncommitted messages are redelivered to a restarted consumer; committed ones are not.
    public func uncommittedAreRedelivered() async throws {
        let group = "g-\(UUID().uuidString)"
        let bus1 = try await factory.makeBus()
        let topic = try await newTopic(bus1)
        for i in 0..<20 {
            try await bus1.publish(OutgoingMessage(topic: topic, key: "k\(i % 5)", value: Array("m\(i)".utf8)))
        }
        let sub1 = try await bus1.subscribe(group: group, topics: [topic])
        let got1 = try await collect(sub1, count: 20, timeout: factory.rebalanceTimeout + .seconds(20))
        // Commit the first half of each partition's messages.
        var committed = Set<String>()
        for (_, msgs) in Dictionary(grouping: got1, by: \.partition) {
            let sorted = msgs.sorted { $0.offset < $1.offset }
            let half = sorted.prefix(sorted.count / 2)
            if let last = half.last { try await sub1.commit(last) }
            committed.formUnion(half.map { String(decoding: $0.value, as: UTF8.self) })
        }
        await sub1.close()
        await bus1.shutdown()

        try await withBus { bus2 in
            let sub2 = try await bus2.subscribe(group: group, topics: [topic])
            let expected = 20 - committed.count
            let got2 = try await collect(sub2, count: expected, timeout: factory.rebalanceTimeout + .seconds(20))
            let extra = try await collect(sub2, count: 1, timeout: .seconds(2), allowFewer: true)
            await sub2.close()
            let values = Set((got2 + extra).map { String(decoding: $0.value, as: UTF8.self) })
            try expect(values.isDisjoint(with: committed), "committed messages redelivered: \(values.intersection(committed))")
            try expect(values.count == expected && got2.count + extra.count == expected,
                       "expected \(expected) uncommitted messages, got \(got2.count + extra.count)")
        }
    }

    /// Headers and arbitrary binary values (all 256 byte values, empty) survive the trip.
    public func headersAndBinaryRoundTrip() async throws {
        try await withBus { bus in
            let topic = try await newTopic(bus)
            let binary = (0..<512).map { UInt8($0 % 256) }
            let headers = [BusHeader("sluice-key-id", "k1"), BusHeader("bin", [0, 255, 10, 13, 0]), BusHeader("empty", [UInt8]())]
            try await bus.publish(OutgoingMessage(topic: topic, key: [0, 1, 2, 255], headers: headers, value: binary))
            try await bus.publish(OutgoingMessage(topic: topic, key: nil, headers: [], value: []))
            let sub = try await bus.subscribe(group: "g-\(UUID().uuidString)", topics: [topic])
            let got = try await collect(sub, count: 2, timeout: factory.rebalanceTimeout + .seconds(20))
            await sub.close()
            guard let first = got.first(where: { !$0.value.isEmpty }) else { throw ContractFailure("binary message missing") }
            try expect(first.value == binary, "binary value changed")
            try expect(first.key == [0, 1, 2, 255], "key changed: \(String(describing: first.key))")
            try expect(first.headers == headers, "headers changed: \(first.headers)")
            try expect(got.contains { $0.value.isEmpty && $0.key == nil }, "empty message without key missing")
        }
    }

    /// A 1 MiB value is published and consumed intact.
    public func largeValues() async throws {
        try await withBus { bus in
            let topic = try await newTopic(bus)
            var big = [UInt8](repeating: 0, count: 1 << 20)
            for i in big.indices { big[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 8) }
            try await bus.publish(OutgoingMessage(topic: topic, key: "big", value: big))
            let sub = try await bus.subscribe(group: "g-\(UUID().uuidString)", topics: [topic])
            let got = try await collect(sub, count: 1, timeout: factory.rebalanceTimeout + .seconds(20))
            await sub.close()
            try expect(got[0].value == big, "1 MiB value changed (\(got[0].value.count) bytes back)")
        }
    }

    /// A group-less reader sees every partition from the beginning, and new messages after.
    public func readAllPartitions() async throws {
        try await withBus { bus in
            let topic = try await newTopic(bus)
            for i in 0..<24 {
                try await bus.publish(OutgoingMessage(topic: topic, key: "k\(i)", value: Array("m\(i)".utf8)))
            }
            let reader = try await bus.read(topic: topic, from: .beginning)
            let seen = Tally()
            async let r: Void = drain(reader, into: seen, member: "r", commit: false)
            let ok1 = await seen.wait(until: { $0.count >= 24 }, timeout: .seconds(20))
            for i in 24..<30 {
                try await bus.publish(OutgoingMessage(topic: topic, key: "k\(i)", value: Array("m\(i)".utf8)))
            }
            let ok2 = await seen.wait(until: { $0.count >= 30 }, timeout: .seconds(20))
            await reader.close()
            _ = try await r
            let snapshot = await seen.snapshot()
            try expect(ok1 && ok2, "reader saw \(snapshot.count) of 30")
            try expect(Set(snapshot.map(\.partition)).count == partitions, "reader did not cover every partition")
            try expect(Set(snapshot.map(\.value)).count == 30, "reader missed or duplicated messages")
            try expect(try await bus.partitionCount(topic: topic) == partitions, "partition count")
        }
    }

    /// A backlog larger than any read-ahead chunk (500 messages, 20 keys) comes back whole,
    /// once, in publish order per key, to a background member of a group and to a group-less
    /// background reader; a second member of the group, after the first committed everything
    /// and left, gets nothing again.
    public func backlogReadInChunks() async throws {
        try await withBus { bus in
            let topic = try await newTopic(bus)
            let count = 500
            try await publishNumbered(count, to: topic, on: bus) { "k\($0 % 20)" }
            func check(_ got: [BusMessage], _ who: String) throws {
                try expect(got.count == count, "\(who): \(got.count) of \(count) messages")
                let numbers = got.map { Int(String(decoding: $0.value, as: UTF8.self).dropFirst())! }
                try expect(Set(numbers).count == count, "\(who): duplicated or missing messages")
                for key in 0..<20 {
                    let mine = numbers.filter { $0 % 20 == key }
                    try expect(mine == mine.sorted(), "\(who): key k\(key) out of order: \(mine)")
                }
                for p in Set(got.map(\.partition)) {
                    let offsets = got.filter { $0.partition == p }.map(\.offset)
                    try expect(offsets == offsets.sorted() && Set(offsets).count == offsets.count, "\(who): partition \(p) offsets out of order")
                }
            }
            let reader = try await bus.read(topic: topic, partitions: nil, from: .beginning, pace: .background)
            try check(try await collect(reader, count: count, timeout: .seconds(30)), "group-less reader")
            await reader.close()

            let group = "g-\(UUID().uuidString)"
            let member = try await bus.subscribe(group: group, topics: [topic], pace: .background)
            let tally = Tally()
            async let drained: Void = drain(member, into: tally, member: "a")
            let all = await tally.wait(until: { $0.count >= count }, timeout: factory.rebalanceTimeout + .seconds(30))
            // Past the last message handed out on every partition (end offsets may also count
            // transaction markers, so they are not the mark).
            var last: [Int: Int64] = [:]
            for m in await tally.snapshot().map(\.message) { last[m.partition] = max(last[m.partition] ?? -1, m.offset) }
            let lagged = try await eventually(timeout: .seconds(20)) {
                try await bus.lag(group: group, topics: [topic]).allSatisfy { partition, lag in
                    (lag.committedOffset ?? 0) > (last[partition.partition] ?? -1)
                }
            }
            await member.close()
            try await drained
            let seen = await tally.count()
            try expect(all, "background member saw \(seen) of \(count)")
            try check(await tally.snapshot().map(\.message), "background member")
            try expect(lagged, "the group did not commit everything it was handed")
            let second = try await bus.subscribe(group: group, topics: [topic], pace: .background)
            try await bus.publish(OutgoingMessage(topic: topic, key: "k0", value: Array("m\(count)".utf8)))
            let after = try await collect(second, count: 1, timeout: factory.rebalanceTimeout + .seconds(20))
            await second.close()
            try expect(after.map(\.value) == [Array("m\(count)".utf8)], "after a full commit the group got \(after.count) old messages again")
        }
    }

    /// A reader of chosen partitions sees exactly the messages of those partitions (from the
    /// beginning and new ones after), reports only them as its assignment, and a partition the
    /// topic does not have is refused with `configuration`.
    public func readChosenPartitions() async throws {
        try await withBus { bus in
            let topic = try await newTopic(bus)
            let chosen = [1, partitions - 1]
            let keys = (0..<40).map { "k\($0)" }
            let expected = Set(keys.filter { chosen.contains(partition(forKey: Array($0.utf8), partitions: partitions)) })
            for key in keys.prefix(30) { try await bus.publish(OutgoingMessage(topic: topic, key: key, value: Array(key.utf8))) }
            let reader = try await bus.read(topic: topic, partitions: chosen, from: .beginning, pace: .requestPath)
            let assigned = await reader.assignment()
            let seen = Tally()
            async let r: Void = drain(reader, into: seen, member: "r", commit: false)
            for key in keys.suffix(10) { try await bus.publish(OutgoingMessage(topic: topic, key: key, value: Array(key.utf8))) }
            let ok = await seen.wait(until: { $0.count >= expected.count }, timeout: .seconds(20))
            // A message of another partition published last: if the reader took it, it shows now.
            guard let other = keys.first(where: { !expected.contains($0) }), let marker = expected.first else {
                throw ContractFailure("the keys do not cover both chosen and other partitions")
            }
            try await bus.publish(OutgoingMessage(topic: topic, key: other, value: Array("late".utf8)))
            try await bus.publish(OutgoingMessage(topic: topic, key: marker, value: Array("marker".utf8)))
            _ = await seen.wait(
                until: { deliveries in deliveries.contains { String(decoding: $0.value, as: UTF8.self) == "marker" } },
                timeout: .seconds(20))
            await reader.close()
            _ = try await r
            let snapshot = await seen.snapshot()
            try expect(ok, "reader saw \(snapshot.count) of \(expected.count)")
            try expect(Set(snapshot.map(\.partition)).isSubset(of: Set(chosen)), "reader saw partitions \(Set(snapshot.map(\.partition)))")
            let values = snapshot.map { String(decoding: $0.value, as: UTF8.self) }
            try expect(Set(values.filter { $0 != "marker" }) == expected, "reader saw \(values.sorted()), expected \(expected.sorted())")
            try expect(
                assigned == Set(chosen.map { BusPartition(topic: topic, partition: $0) }),
                "assignment \(assigned.sorted()) is not the chosen partitions")
            do {
                _ = try await bus.read(topic: topic, partitions: [partitions], from: .end, pace: .requestPath)
                try expect(false, "reading partition \(partitions) of a \(partitions)-partition topic was accepted")
            } catch let error as BusError {
                try expect(error.kind == .configuration, "a missing partition threw \(error), not configuration")
            }
        }
    }

    /// `commit(_:publishing:)` publishes its outputs and commits its input: a reader sees every
    /// output exactly once, and a new member of the group resumes after the committed inputs
    /// (it gets exactly the inputs left uncommitted).
    public func commitWithOutputs() async throws {
        try await withBus { bus in
            let input = try await newTopic(bus)
            let output = try await newTopic(bus)
            let group = "g-\(UUID().uuidString)"
            let total = 16
            try await publishNumbered(total, to: input, on: bus) { "k\($0)" }
            let a = try await bus.subscribe(group: group, topics: [input])
            let got = try await collect(a, count: total, timeout: factory.rebalanceTimeout + .seconds(20))
            // Commit every input but the last of each partition, each with two outputs.
            var expectedOutputs: [String] = []
            var uncommitted: Set<String> = []
            for (_, messages) in Dictionary(grouping: got, by: \.partition) {
                let sorted = messages.sorted { $0.offset < $1.offset }
                for m in sorted.dropLast() {
                    let value = String(decoding: m.value, as: UTF8.self)
                    let outs = (1...2).map { OutgoingMessage(topic: output, key: "o-\(value)", value: Array("\(value)-out\($0)".utf8)) }
                    try await a.commit(m, publishing: outs)
                    expectedOutputs += outs.map { String(decoding: $0.value, as: UTF8.self) }
                }
                uncommitted.insert(String(decoding: sorted.last!.value, as: UTF8.self))
            }
            await a.close()

            let reader = try await bus.read(topic: output, from: .beginning)
            let outputs = Tally()
            async let r: Void = drain(reader, into: outputs, member: "r", commit: false)
            let outputCount = expectedOutputs.count
            let allOutputs = await outputs.wait(until: { $0.count >= outputCount }, timeout: .seconds(20))
            let moreOutputs = await outputs.wait(until: { $0.count > outputCount }, timeout: .seconds(1))
            await reader.close()
            _ = try await r
            let seenOutputs = await outputs.snapshot().map { String(decoding: $0.value, as: UTF8.self) }
            try expect(allOutputs && !moreOutputs, "reader saw \(seenOutputs.count) outputs, expected \(expectedOutputs.count)")
            try expect(seenOutputs.sorted() == expectedOutputs.sorted(), "outputs differ: \(seenOutputs.sorted()) vs \(expectedOutputs.sorted())")

            let b = try await bus.subscribe(group: group, topics: [input])
            let resumed = Tally()
            async let rb: Void = drain(b, into: resumed, member: "b", commit: false)
            let inputCount = uncommitted.count
            let allResumed = await resumed.wait(until: { $0.count >= inputCount }, timeout: factory.rebalanceTimeout + .seconds(20))
            let moreResumed = await resumed.wait(until: { $0.count > inputCount }, timeout: .seconds(1))
            await b.close()
            _ = try await rb
            let seenInputs = await resumed.snapshot().map { String(decoding: $0.value, as: UTF8.self) }
            try expect(allResumed && !moreResumed, "new member got \(seenInputs.count) inputs, expected the \(uncommitted.count) uncommitted")
            try expect(Set(seenInputs) == uncommitted, "new member got \(seenInputs.sorted()), expected \(uncommitted.sorted())")
        }
    }

    /// `assignment()` follows the group: one member owns every partition; with a second member
    /// the two own disjoint, non-empty sets that cover every partition; when the second leaves,
    /// the first owns every partition again (each within the rebalance timeout).
    public func assignmentFollowsMembers() async throws {
        try await withBus { bus in
            let topic = try await newTopic(bus)
            let all = Set((0..<partitions).map { BusPartition(topic: topic, partition: $0) })
            let group = "g-\(UUID().uuidString)"
            let timeout = factory.rebalanceTimeout + .seconds(20)
            let a = try await bus.subscribe(group: group, topics: [topic])
            let alone = await eventually(timeout: timeout) { await a.assignment() == all }
            let first = await a.assignment()
            try expect(alone, "a single member owns \(first.sorted()) of \(all.sorted())")

            let b = try await bus.subscribe(group: group, topics: [topic])
            let split = await eventually(timeout: timeout) {
                let (x, y) = (await a.assignment(), await b.assignment())
                return !x.isEmpty && !y.isEmpty && x.isDisjoint(with: y) && x.union(y) == all
            }
            let (sa, sb) = (await a.assignment(), await b.assignment())
            try expect(split, "two members own \(sa.sorted()) and \(sb.sorted()): not a split of \(all.sorted())")

            await b.close()
            let back = await eventually(timeout: timeout) { await a.assignment() == all }
            let after = await a.assignment()
            await a.close()
            try expect(back, "after the second member left, the first owns \(after.sorted()) of \(all.sorted())")
        }
    }

    /// `lag` counts, per partition, what the group has not committed past: everything for a group
    /// that never committed; N − k after k of N messages are committed; an unknown topic is an error.
    public func lagCountsUncommitted() async throws {
        try await withBus { bus in
            let topic = try await newTopic(bus)
            let group = "g-\(UUID().uuidString)"
            let total = 24
            try await publishNumbered(total, to: topic, on: bus) { "k\($0 % 7)" }
            let before = try await bus.lag(group: group, topics: [topic])
            try expect(Set(before.keys) == Set((0..<partitions).map { BusPartition(topic: topic, partition: $0) }),
                       "lag covers \(before.keys.sorted()), not the \(partitions) partitions of \(topic)")
            try expect(before.values.allSatisfy { $0.committedOffset == nil }, "a new group has committed offsets: \(before)")
            try expect(before.values.map(\.events).reduce(0, +) == Int64(total), "a new group lags by \(before), not by all \(total)")

            let sub = try await bus.subscribe(group: group, topics: [topic])
            let got = try await collect(sub, count: total, timeout: factory.rebalanceTimeout + .seconds(20))
            // Commit the first k messages of each partition (k = a third, rounded down).
            var expected: [BusPartition: Int64] = [:]
            for (p, msgs) in Dictionary(grouping: got, by: \.partition) {
                let sorted = msgs.sorted { $0.offset < $1.offset }
                let k = sorted.count / 3
                if k > 0 { try await sub.commit(sorted[k - 1]) }
                expected[BusPartition(topic: topic, partition: p)] = Int64(sorted.count - k)
            }
            for p in before.keys where expected[p] == nil { expected[p] = 0 }
            let settled = try await eventually(timeout: .seconds(20)) {
                try await bus.lag(group: group, topics: [topic]).mapValues(\.events) == expected
            }
            let after = try await bus.lag(group: group, topics: [topic])
            await sub.close()
            try expect(settled, "lag after committing a third is \(after.mapValues(\.events)), expected \(expected)")
            for (p, lag) in after {
                try expect(lag.endOffset - lag.startOffset == Int64(got.filter { $0.partition == p.partition }.count),
                           "\(p): end \(lag.endOffset) − start \(lag.startOffset) is not the messages published there")
            }
            do {
                _ = try await bus.lag(group: group, topics: ["contract-missing-\(UUID().uuidString.prefix(8).lowercased())"])
                throw ContractFailure("lag of a topic that does not exist did not throw")
            } catch let error as BusError {
                try expect(error.kind == .unknownTopic, "lag of a missing topic threw \(error), not unknownTopic")
            }
        }
    }

    /// Every check, in order.
    public func runAll() async throws {
        try await orderPerKey()
        try await groupSplitsPartitions()
        try await memberLeavesOtherTakesOver()
        try await uncommittedAreRedelivered()
        try await headersAndBinaryRoundTrip()
        try await largeValues()
        try await readAllPartitions()
        try await readChosenPartitions()
        try await backlogReadInChunks()
        try await commitWithOutputs()
        try await assignmentFollowsMembers()
        try await lagCountsUncommitted()
    }

    // MARK: - Helpers

    private func withBus(_ body: (any Bus) async throws -> Void) async throws {
        let bus = try await factory.makeBus()
        do {
            try await body(bus)
        } catch {
            await bus.shutdown()
            throw error
        }
        await bus.shutdown()
    }

    /// Publishes `m0` … `m<count-1>` to `topic`, message i with key `key(i)`.
    private func publishNumbered(_ count: Int, to topic: String, on bus: any Bus, key: (Int) -> String) async throws {
        for i in 0..<count {
            try await bus.publish(OutgoingMessage(topic: topic, key: key(i), value: Array("m\(i)".utf8)))
        }
    }

    private func newTopic(_ bus: any Bus) async throws -> String {
        let name = "contract-\(UUID().uuidString.prefix(8).lowercased())"
        try await bus.ensureTopics([TopicSpec(name: name, partitions: partitions)])
        return name
    }
}

/// A failed contract expectation.
public struct ContractFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ContractFailure(message()) }
}

/// Collects `count` messages (committing none) or fails after `timeout`.
public func collect(
    _ sub: BusSubscription, count: Int, timeout: Duration, allowFewer: Bool = false
) async throws -> [BusMessage] {
    let box = Tally()
    let task = Task {
        for try await m in sub {
            await box.add(.init(member: "", partition: m.partition, value: m.value, index: 0, message: m))
            if await box.count() >= count { break }
        }
    }
    let ok = await box.wait(until: { $0.count >= count }, timeout: timeout)
    task.cancel()
    let got = await box.snapshot().map(\.message)
    if !ok && !allowFewer { throw ContractFailure("collected \(got.count) of \(count) messages in \(timeout)") }
    return Array(got.prefix(count))
}

/// Reads a subscription until it finishes, recording (and committing) every message.
func drain(_ sub: BusSubscription, into tally: Tally, member: String, commit: Bool = true) async throws {
    for try await m in sub {
        let text = String(decoding: m.value, as: UTF8.self)
        let index = Int(text.dropFirst()) ?? -1
        await tally.add(.init(member: member, partition: m.partition, value: m.value, index: index, message: m))
        if commit { try await sub.commit(m) }
    }
}

/// A thread-safe record of deliveries that tests can wait on.
actor Tally {
    struct Delivery: Sendable {
        var member: String
        var partition: Int
        var value: [UInt8]
        var index: Int
        var message: BusMessage
    }

    private var items: [Delivery] = []

    func add(_ d: Delivery) { items.append(d) }
    func count() -> Int { items.count }
    func snapshot() -> [Delivery] { items }

    /// Polls until `condition` holds or `timeout` passes; returns whether it held.
    func wait(until condition: @Sendable ([Delivery]) -> Bool, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(items) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(items)
    }
}
