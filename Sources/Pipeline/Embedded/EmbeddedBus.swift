import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `Bus` for one process (`sluice run`): topics are append-only, checksummed
/// log files under a data directory, and consumer groups live in this process.
///
/// Guarantees (the same as Kafka's, which `BusContract` checks):
/// - `publish` returns after the message is appended to its partition's log file,
///   so it survives a crash of the process (pass `sync: true` to also survive a
///   crash of the machine, at the cost of an `fdatasync` per message).
/// - Same key → same partition (Kafka's murmur2 placement) → publish order kept.
/// - Members of a group split partitions round-robin; when a member joins or leaves,
///   partitions are reassigned and each new owner starts after the group's last
///   committed offset, so uncommitted messages are redelivered (at least once).
/// - Committed offsets are kept in a per-group commit log in the same directory, so
///   reopening the directory resumes every group where it committed.
/// - One process at a time: the directory is locked with `flock`.
public actor EmbeddedBus: Bus {
    private let directory: URL
    private let defaultPartitions: Int
    private let sync: Bool
    private var lockFD: Int32
    private var topics: [String: [PartitionLog]] = [:]
    private var groups: [String: ConsumerGroup] = [:]
    private var readers: [UInt64: Reader] = [:]
    private var nextID: UInt64 = 1
    private var roundRobin = 0
    private var isShutDown = false

    /// Opens (or creates) the bus in `directory`, recovering every log found there.
    ///
    /// - Parameters:
    ///   - defaultPartitions: partitions of a topic created implicitly by first use.
    ///   - sync: `fdatasync` every append (machine-crash durability) instead of relying on the page cache.
    public init(directory: URL, defaultPartitions: Int = 6, sync: Bool = false) throws {
        self.directory = directory
        self.defaultPartitions = max(1, defaultPartitions)
        self.sync = sync
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: directory.appendingPathComponent("topics"), withIntermediateDirectories: true)
            try fm.createDirectory(at: directory.appendingPathComponent("groups"), withIntermediateDirectories: true)
        } catch {
            throw BusError(.io, "cannot create bus directory \(directory.path): \(error)")
        }
        let lockPath = directory.appendingPathComponent("LOCK").path
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BusError(.io, "cannot open \(lockPath): \(errnoText())") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw BusError(.io, "bus directory \(directory.path) is in use by another bus (lock \(lockPath))")
        }
        self.lockFD = fd
        do {
            let topicNames = (try? fm.contentsOfDirectory(atPath: directory.appendingPathComponent("topics").path)) ?? []
            for name in topicNames.sorted() {
                topics[name] = try Self.openTopic(directory: directory, name: name, partitions: nil, sync: sync)
            }
        } catch {
            flock(fd, LOCK_UN)
            close(fd)
            throw error
        }
    }

    // MARK: - Bus

    public func publish(_ message: OutgoingMessage) async throws {
        try checkOpen()
        let logs = try topicLogs(message.topic)
        roundRobin &+= 1
        let p = partition(forKey: message.key, partitions: logs.count, fallback: roundRobin & Int.max)
        let record = LogRecord(
            timestampMillis: Int64(Date().timeIntervalSince1970 * 1000), key: message.key,
            headers: message.headers, value: message.value)
        _ = try logs[p].append(record)
        wakeAll(topic: message.topic)
    }

    public func subscribe(group: String, topics names: [String]) async throws -> BusSubscription {
        try checkOpen()
        guard !names.isEmpty else { throw BusError(.configuration, "subscribe to group \(group) needs at least one topic") }
        for name in names { _ = try topicLogs(name) }
        if groups[group] == nil { groups[group] = try ConsumerGroup(directory: directory, name: group, sync: sync) }
        let id = takeID()
        groups[group]!.members[id] = Member(topics: Set(names))
        rebalance(group)
        let control = GroupMemberControl(bus: self, group: group, member: id)
        let stream = AsyncThrowingStream<BusMessage, any Error>(unfolding: { [self] in
            try await self.nextMessage(group: group, member: id)
        })
        return BusSubscription(stream: stream, control: control)
    }

    public func read(topic: String, from start: StartPosition) async throws -> BusSubscription {
        try checkOpen()
        let logs = try topicLogs(topic)
        let id = takeID()
        let positions = logs.map { start == .beginning ? 0 : $0.nextOffset }
        readers[id] = Reader(topic: topic, positions: positions)
        let stream = AsyncThrowingStream<BusMessage, any Error>(unfolding: { [self] in
            try await self.nextMessage(reader: id)
        })
        return BusSubscription(stream: stream, control: ReaderControl(bus: self, reader: id))
    }

    public func partitionCount(topic: String) async throws -> Int {
        try checkOpen()
        return try topicLogs(topic).count
    }

    public func ensureTopics(_ specs: [TopicSpec]) async throws {
        try checkOpen()
        for spec in specs where topics[spec.name] == nil {
            try validate(topic: spec.name)
            topics[spec.name] = try Self.openTopic(
                directory: directory, name: spec.name, partitions: max(1, spec.partitions), sync: sync)
        }
    }

    public func shutdown() async {
        guard !isShutDown else { return }
        isShutDown = true
        for name in groups.keys {
            for id in groups[name]!.members.keys { groups[name]!.members[id]!.wake() }
        }
        for id in readers.keys { readers[id]!.wake() }
        groups = [:]
        readers = [:]
        topics = [:]
        flock(lockFD, LOCK_UN)
        close(lockFD)
        lockFD = -1
    }

    // MARK: - Delivery

    /// The next message for a group member, waiting until one is available; `nil` once closed.
    fileprivate func nextMessage(group: String, member id: UInt64) async throws -> BusMessage? {
        while true {
            guard !isShutDown, !Task.isCancelled, let member = groups[group]?.members[id] else { return nil }
            if let message = try takeNext(group: group, member: member, id: id) { return message }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    groups[group]?.members[id]?.waiter = c
                    if groups[group]?.members[id] == nil { c.resume() }
                }
            } onCancel: {
                Task { await self.wake(group: group, member: id) }
            }
        }
    }

    private func takeNext(group: String, member: Member, id: UInt64) throws -> BusMessage? {
        let assignment = member.assignment
        guard !assignment.isEmpty else { return nil }
        for step in 0..<assignment.count {
            let i = (member.cursor + step) % assignment.count
            let tp = assignment[i]
            guard let logs = topics[tp.topic], tp.partition < logs.count else { continue }
            let position = member.positions[tp] ?? 0
            if position < logs[tp.partition].nextOffset {
                let record = try logs[tp.partition].read(at: position)
                groups[group]!.members[id]!.positions[tp] = position + 1
                groups[group]!.members[id]!.cursor = (i + 1) % assignment.count
                return BusMessage(
                    topic: tp.topic, partition: tp.partition, offset: position, key: record.key,
                    headers: record.headers, value: record.value, timestampMillis: record.timestampMillis)
            }
        }
        return nil
    }

    fileprivate func nextMessage(reader id: UInt64) async throws -> BusMessage? {
        while true {
            guard !isShutDown, !Task.isCancelled, let reader = readers[id] else { return nil }
            if let logs = topics[reader.topic] {
                for step in 0..<logs.count {
                    let p = (reader.cursor + step) % logs.count
                    let position = reader.positions[p]
                    if position < logs[p].nextOffset {
                        let record = try logs[p].read(at: position)
                        readers[id]!.positions[p] = position + 1
                        readers[id]!.cursor = (p + 1) % logs.count
                        return BusMessage(
                            topic: reader.topic, partition: p, offset: position, key: record.key,
                            headers: record.headers, value: record.value, timestampMillis: record.timestampMillis)
                    }
                }
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    readers[id]?.waiter = c
                    if readers[id] == nil { c.resume() }
                }
            } onCancel: {
                Task { await self.wake(reader: id) }
            }
        }
    }

    fileprivate func commit(group: String, message: BusMessage) throws {
        try checkOpen()
        guard groups[group] != nil else { throw BusError(.closed, "group \(group) has no members") }
        try groups[group]!.commit(TopicPartition(topic: message.topic, partition: message.partition), next: message.offset + 1)
    }

    fileprivate func leave(group: String, member id: UInt64) {
        groups[group]?.members[id]?.wake()
        groups[group]?.members[id] = nil
        rebalance(group)
    }

    fileprivate func closeReader(_ id: UInt64) {
        readers[id]?.wake()
        readers[id] = nil
    }

    private func wake(group: String, member id: UInt64) { groups[group]?.members[id]?.wake() }
    private func wake(reader id: UInt64) { readers[id]?.wake() }

    private func wakeAll(topic: String) {
        for name in groups.keys {
            for (id, m) in groups[name]!.members where m.topics.contains(topic) { groups[name]!.members[id]!.wake() }
        }
        for (id, r) in readers where r.topic == topic { readers[id]!.wake() }
    }

    /// Reassigns a group's partitions round-robin over its members (sorted by join order);
    /// a partition that changes owner restarts from the group's committed offset.
    private func rebalance(_ group: String) {
        guard var g = groups[group] else { return }
        let memberIDs = g.members.keys.sorted()
        let allTopics = Set(g.members.values.flatMap(\.topics)).sorted()
        var newAssignment: [UInt64: [TopicPartition]] = [:]
        var turn = 0
        for topic in allTopics {
            let subscribers = memberIDs.filter { g.members[$0]!.topics.contains(topic) }
            guard !subscribers.isEmpty else { continue }
            for p in 0..<(topics[topic]?.count ?? 0) {
                newAssignment[subscribers[turn % subscribers.count], default: []].append(TopicPartition(topic: topic, partition: p))
                turn += 1
            }
        }
        for id in memberIDs {
            let assigned = newAssignment[id] ?? []
            var positions: [TopicPartition: Int64] = [:]
            for tp in assigned { positions[tp] = g.members[id]!.positions[tp] ?? g.committed[tp] ?? 0 }
            g.members[id]!.assignment = assigned
            g.members[id]!.positions = positions
            g.members[id]!.cursor = 0
            g.members[id]!.wake()
        }
        groups[group] = g
    }

    // MARK: - Topics

    private func topicLogs(_ name: String) throws -> [PartitionLog] {
        if let logs = topics[name] { return logs }
        try validate(topic: name)
        let logs = try Self.openTopic(directory: directory, name: name, partitions: defaultPartitions, sync: sync)
        topics[name] = logs
        for group in groups.keys where groups[group]!.members.values.contains(where: { $0.topics.contains(name) }) {
            rebalance(group)
        }
        return logs
    }

    private func validate(topic: String) throws {
        let ok = !topic.isEmpty && topic.count <= 249 && topic != "." && topic != ".."
            && topic.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-".unicodeScalars.contains($0) }
        guard ok else { throw BusError(.configuration, "invalid topic name \"\(topic)\": use ASCII letters, digits, '.', '_' and '-'") }
    }

    private static func openTopic(directory: URL, name: String, partitions: Int?, sync: Bool) throws -> [PartitionLog] {
        let dir = directory.appendingPathComponent("topics").appendingPathComponent(name)
        let countFile = dir.appendingPathComponent("partitions")
        let count: Int
        if let text = try? String(contentsOf: countFile, encoding: .utf8),
           let n = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), n > 0 {
            count = n
        } else if let partitions {
            do {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try "\(partitions)\n".write(to: countFile, atomically: true, encoding: .utf8)
            } catch {
                throw BusError(.io, "cannot create topic \(name) in \(dir.path): \(error)")
            }
            count = partitions
        } else {
            throw BusError(.corrupt, "topic directory \(dir.path) has no readable partition count")
        }
        return try (0..<count).map { try PartitionLog(path: dir.appendingPathComponent("\($0).log").path, sync: sync) }
    }

    private func takeID() -> UInt64 {
        defer { nextID += 1 }
        return nextID
    }

    private func checkOpen() throws {
        if isShutDown { throw BusError(.closed, "embedded bus in \(directory.path) is shut down") }
    }
}

struct TopicPartition: Hashable, Comparable, Sendable {
    var topic: String
    var partition: Int

    static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
}

/// One member of a consumer group: what it subscribed to, owns and has been handed.
private struct Member {
    var topics: Set<String>
    var assignment: [TopicPartition] = []
    /// Next offset to hand out, per owned partition.
    var positions: [TopicPartition: Int64] = [:]
    var cursor = 0
    var waiter: CheckedContinuation<Void, Never>?

    mutating func wake() {
        waiter?.resume()
        waiter = nil
    }
}

/// A group-less reader of every partition of one topic.
private struct Reader {
    var topic: String
    var positions: [Int64]
    var cursor = 0
    var waiter: CheckedContinuation<Void, Never>?

    mutating func wake() {
        waiter?.resume()
        waiter = nil
    }
}

/// A consumer group's members and committed offsets; commits are appended to
/// `groups/<name>.log` and replayed on open.
private struct ConsumerGroup {
    var members: [UInt64: Member] = [:]
    private(set) var committed: [TopicPartition: Int64] = [:]
    private let log: PartitionLog

    init(directory: URL, name: String, sync: Bool) throws {
        let file = directory.appendingPathComponent("groups").appendingPathComponent(Self.fileName(for: name)).path
        log = try PartitionLog(path: file, sync: sync)
        for offset in 0..<log.nextOffset {
            let record = try log.read(at: offset)
            guard let topic = record.key.map({ String(decoding: $0, as: UTF8.self) }), record.value.count == 12 else { continue }
            var r = ByteReader(record.value)
            let p = Int(try r.u32())
            let next = Int64(bitPattern: try r.u64())
            committed[TopicPartition(topic: topic, partition: p)] = next
        }
    }

    mutating func commit(_ tp: TopicPartition, next: Int64) throws {
        guard next > committed[tp] ?? 0 else { return }
        var value: [UInt8] = []
        value.appendLE(UInt32(tp.partition))
        value.appendLE(UInt64(bitPattern: next))
        _ = try log.append(LogRecord(timestampMillis: 0, key: Array(tp.topic.utf8), headers: [], value: value))
        committed[tp] = next
    }

    /// Group names are free text; file names keep only safe characters and hex-encode the rest.
    static func fileName(for group: String) -> String {
        var out = ""
        for b in group.utf8 {
            let c = Character(Unicode.Scalar(b))
            if c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == ".") && !(out.isEmpty && c == ".") {
                out.append(c)
            } else {
                out += String(format: "%%%02X", b)
            }
        }
        return out + ".log"
    }
}

private struct GroupMemberControl: BusSubscriptionControl {
    let bus: EmbeddedBus
    let group: String
    let member: UInt64

    func commit(_ message: BusMessage) async throws { try await bus.commit(group: group, message: message) }
    func close() async { await bus.leave(group: group, member: member) }
}

private struct ReaderControl: BusSubscriptionControl {
    let bus: EmbeddedBus
    let reader: UInt64

    func commit(_ message: BusMessage) async throws {}
    func close() async { await bus.closeReader(reader) }
}
