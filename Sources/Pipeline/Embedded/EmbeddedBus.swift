import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `Bus` for one process (`sluice run`): topics are checksummed, segmented log files
/// under a data directory, and consumer groups live in this process.
///
/// Guarantees (the same as Kafka's, which `BusContract` checks):
/// - `publish` returns after the message is appended to its partition's active segment, so it
///   survives a crash of the process (pass `sync: true` to also survive a crash of the machine,
///   at the cost of an `fdatasync` per message).
/// - Same key → same partition (Kafka's murmur2 placement) → publish order kept.
/// - Members of a group split partitions round-robin; when a member joins or leaves,
///   partitions are reassigned and each new owner starts after the group's last
///   committed offset, so uncommitted messages are redelivered (at least once).
/// - Committed offsets are kept in a per-group commit log in the same directory, so
///   reopening the directory resumes every group where it committed.
/// - One process at a time: the directory is locked with `flock`.
/// - `commit(_:publishing:)` is atomic across crashes (kill -9 at any byte; power loss with
///   `sync`): the outputs and the group commit are first written as one checksummed record to
///   the transaction journal (`TransactionJournal`), then applied. On open, a journal record
///   whose effects are missing is applied (each output exactly once, also when that recovery is
///   itself interrupted); a torn one is dropped. So either every output is visible and the
///   group's position is past the input, or no output is visible and the position is unchanged.
///   A commit for a partition the member no longer owns (rebalanced away, or the member left),
///   or for an input the group has already committed past, throws `BusError.Kind.fenced` and
///   publishes nothing.
///
/// Retention (see `EmbeddedBusOptions`, `PartitionLog`, `RetentionRules`):
/// - A partition's log rolls to a new segment at `segmentBytes`; offsets stay global and monotonic.
/// - Maintenance (every `maintenanceInterval`, or `runMaintenance()`) deletes a rolled segment of a
///   `delete` topic once every group that commits on the topic has committed past it and its newest
///   record is older than `retention` (age alone for topics no group commits on), and compacts
///   `compact` topics (`TopicSpec.config["cleanup.policy"]`): rolled segments keep the latest record
///   per key, offsets preserved; tombstones (empty values) go once older than `retention`.
/// - A reader or member positioned before the first retained offset continues from it (Kafka's
///   `auto.offset.reset=earliest`); offsets can have gaps after compaction.
/// - Compaction rewrites files off the actor: publishes and deliveries go on during a pass.
public actor EmbeddedBus: Bus {
    private let directory: URL
    private let options: EmbeddedBusOptions
    private var lockFD: Int32
    private let journal: TransactionJournal
    /// Set when a failed atomic commit could not be undone: the bus refuses all work until it is
    /// reopened (whose journal replay then completes that commit).
    private var failure: BusError?
    private var topics: [String: TopicLog] = [:]
    private var groups: [String: ConsumerGroup] = [:]
    private var readers: [UInt64: Reader] = [:]
    private var nextID: UInt64 = 1
    private var roundRobin = 0
    private var isShutDown = false
    /// The background maintenance loop, started by the first use of the bus.
    private var maintenanceTask: Task<Void, Never>?
    private var maintenanceRunning = false
    private var maintenanceWaiters: [CheckedContinuation<Void, Never>] = []
    /// Topics already reported as having no cleanup policy (logged once).
    private var reportedUnknownPolicy: Set<String> = []

    private var logger: Logger { options.logger }
    private var topicsDirectory: URL { directory.appendingPathComponent("topics") }

    /// Opens (or creates) the bus in `directory`, recovering every log found there, with default retention.
    ///
    /// - Parameters:
    ///   - defaultPartitions: partitions of a topic created implicitly by first use.
    ///   - sync: `fdatasync` every append (machine-crash durability) instead of relying on the page cache.
    public init(directory: URL, defaultPartitions: Int = 6, sync: Bool = false) throws {
        try self.init(directory: directory, options: EmbeddedBusOptions(defaultPartitions: defaultPartitions, sync: sync))
    }

    /// Opens (or creates) the bus in `directory`, recovering every log and group found there.
    public init(directory: URL, options: EmbeddedBusOptions) throws {
        self.directory = directory
        var options = options
        options.defaultPartitions = max(1, options.defaultPartitions)
        options.segmentBytes = max(4096, options.segmentBytes)
        self.options = options
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
            var topics: [String: TopicLog] = [:]
            var groups: [String: ConsumerGroup] = [:]
            let topicNames = (try? fm.contentsOfDirectory(atPath: directory.appendingPathComponent("topics").path)) ?? []
            for name in topicNames.sorted() {
                topics[name] = try TopicLog.open(
                    topicsDirectory: directory.appendingPathComponent("topics"), name: name, partitions: nil, policy: .delete,
                    settings: Self.settings(options))
            }
            // Every group that ever committed here holds back deletion, also before it subscribes again.
            for log in try GroupCommitLog.loadAll(
                groupsDirectory: directory.appendingPathComponent("groups"), sync: options.sync, crash: options.crash)
            {
                groups[log.name] = ConsumerGroup(log: log)
            }
            let journal = try TransactionJournal(directory: directory, sync: options.sync, crash: options.crash)
            try Self.recover(journal, directory: directory, options: options, topics: &topics, groups: &groups)
            self.journal = journal
            self.topics = topics
            self.groups = groups
        } catch {
            flock(fd, LOCK_UN)
            close(fd)
            throw error
        }
    }

    /// Completes the transaction a crash left in the journal (its last record; see
    /// `TransactionJournal`), then empties the journal.
    ///
    /// Guarantees: each output is appended iff its partition's next offset has not passed the
    /// offset the journal recorded for it, so an output already appended (before the crash, or by
    /// an earlier, interrupted recovery) is not appended again; group commits only move forward.
    /// The journal is emptied only after its last transaction is applied.
    private static func recover(
        _ journal: TransactionJournal, directory: URL, options: EmbeddedBusOptions,
        topics: inout [String: TopicLog], groups: inout [String: ConsumerGroup]
    ) throws {
        let logger = options.logger
        if journal.truncatedBytes > 0 {
            logger.notice(
                "bus transaction journal: torn record dropped (a crash during an atomic commit; nothing of it was published)",
                metadata: ["journal": "\(journal.path)", "bytes": "\(journal.truncatedBytes)"])
        }
        guard let txn = try journal.last() else { return }
        var appended = 0
        for output in txn.outputs {
            if topics[output.partition.topic] == nil {
                // Created when the transaction was written; gone only if the machine crashed before it was synced.
                topics[output.partition.topic] = try TopicLog.open(
                    topicsDirectory: directory.appendingPathComponent("topics"), name: output.partition.topic,
                    partitions: options.defaultPartitions, policy: .delete, settings: settings(options))
            }
            let logs = topics[output.partition.topic]!.partitions
            guard output.partition.partition < logs.count else {
                throw BusError(
                    .corrupt,
                    "transaction journal \(journal.path) publishes to \(output.partition.topic) partition \(output.partition.partition), but the topic has \(logs.count) partitions; move the journal away to open the bus without it")
            }
            let log = logs[output.partition.partition]
            if log.nextOffset > output.offset { continue }  // appended before the crash
            if log.nextOffset < output.offset {
                logger.warning(
                    "bus partition lost records before a journaled output (a machine crash without bus.sync); the output is appended at the partition's end",
                    metadata: [
                        "topic": "\(log.topic)", "partition": "\(log.partition)", "expected_offset": "\(output.offset)",
                        "next_offset": "\(log.nextOffset)",
                    ])
            }
            _ = try log.append(output.record)
            appended += 1
        }
        if groups[txn.group] == nil {
            groups[txn.group] = ConsumerGroup(
                log: try GroupCommitLog(
                    groupsDirectory: directory.appendingPathComponent("groups"), name: txn.group, sync: options.sync,
                    crash: options.crash))
        }
        let before = groups[txn.group]!.log.committed[txn.commit] ?? 0
        let timestamp = txn.outputs.first?.record.timestampMillis ?? 0
        try groups[txn.group]!.log.commit(txn.commit, next: txn.next, nowMillis: timestamp)
        // The last record is normally one that was applied before the bus stopped: say nothing then.
        if appended > 0 || before < txn.next {
            logger.notice(
                "bus transaction recovered",
                metadata: [
                    "group": "\(txn.group)", "topic": "\(txn.commit.topic)", "partition": "\(txn.commit.partition)",
                    "next_offset": "\(txn.next)", "outputs": "\(txn.outputs.count)", "outputs_appended": "\(appended)",
                    "commit_applied": "\(before < txn.next)",
                ])
        }
        try journal.truncate(toCount: 0)
    }

    private static func settings(_ options: EmbeddedBusOptions) -> TopicLog.Settings {
        TopicLog.Settings(segmentBytes: options.segmentBytes, sync: options.sync, logger: options.logger, crash: options.crash)
    }

    private var nowMillis: Int64 { Int64((options.now().timeIntervalSince1970 * 1000).rounded(.down)) }

    // MARK: - Bus

    public func publish(_ message: OutgoingMessage) async throws {
        try checkOpen()
        startMaintenanceIfNeeded()
        let logs = try topicLogs(message.topic)
        roundRobin &+= 1
        let p = partition(forKey: message.key, partitions: logs.count, fallback: roundRobin & Int.max)
        let record = LogRecord(timestampMillis: nowMillis, key: message.key, headers: message.headers, value: message.value)
        _ = try logs[p].append(record)
        wakeAll(topic: message.topic)
    }

    public func subscribe(group: String, topics names: [String], pace: ReadPace) async throws -> BusSubscription {
        try checkOpen()
        startMaintenanceIfNeeded()
        guard !names.isEmpty else { throw BusError(.configuration, "subscribe to group \(group) needs at least one topic") }
        for name in names { _ = try topicLogs(name) }
        if groups[group] == nil {
            groups[group] = ConsumerGroup(
                log: try GroupCommitLog(
                    groupsDirectory: directory.appendingPathComponent("groups"), name: group, sync: options.sync, crash: options.crash))
        }
        let id = takeID()
        groups[group]!.members[id] = Member(topics: Set(names))
        rebalance(group)
        let control = GroupMemberControl(bus: self, group: group, member: id)
        // A request-path member takes one message per turn of the actor, so a rebalance never
        // leaves more than the message in hand with the old owner; a background member (the
        // Recorder's readers, which read ahead anyway) takes what is there in chunks.
        let limit = pace == .background ? Self.deliveryChunk : 1
        let chunk = DeliveryChunk()
        let stream = AsyncThrowingStream<BusMessage, any Error>(unfolding: { [self] in
            try await chunk.next { try await self.nextMessages(group: group, member: id, limit: limit) }
        })
        return BusSubscription(stream: stream, control: control)
    }

    public func read(topic: String, partitions: [Int]?, from start: StartPosition, pace: ReadPace) async throws -> BusSubscription {
        try checkOpen()
        startMaintenanceIfNeeded()
        let logs = try topicLogs(topic)
        if let bad = partitions?.first(where: { !logs.indices.contains($0) }) {
            throw BusError(.configuration, "read of \(topic): no partition \(bad) (the topic has \(logs.count))")
        }
        let id = takeID()
        // A partition not read stays at Int64.max: never behind its log, so never read.
        let positions = logs.indices.map { p -> Int64 in
            guard partitions?.contains(p) ?? true else { return .max }
            return start == .beginning ? 0 : logs[p].nextOffset
        }
        readers[id] = Reader(topic: topic, positions: positions)
        // A group-less reader is never rebalanced: it takes what is there in chunks.
        let chunk = DeliveryChunk()
        let stream = AsyncThrowingStream<BusMessage, any Error>(unfolding: { [self] in
            try await chunk.next { try await self.nextMessages(reader: id, limit: Self.deliveryChunk) }
        })
        return BusSubscription(stream: stream, control: ReaderControl(bus: self, reader: id))
    }

    public func partitionCount(topic: String) async throws -> Int {
        try checkOpen()
        return try topicLogs(topic).count
    }

    /// Read from the bus's state in one turn of the actor: each partition's next offset and first
    /// retained offset (`PartitionLog`), and the group's commit log (also for a group with no member
    /// in this process, or one known only from disk). Creates nothing.
    public func lag(group: String, topics names: [String]) async throws -> [BusPartition: PartitionLag] {
        try checkOpen()
        var result: [BusPartition: PartitionLag] = [:]
        for name in names {
            guard let topic = topics[name] else {
                throw BusError(.unknownTopic, "lag of group \(group): topic \(name) does not exist")
            }
            for log in topic.partitions {
                result[BusPartition(topic: name, partition: log.partition)] = PartitionLag(
                    endOffset: log.nextOffset, startOffset: log.startOffset,
                    committedOffset: groups[group]?.log.committed[TopicPartition(topic: name, partition: log.partition)])
            }
        }
        return result
    }

    /// Creates the missing topics with their partition count and cleanup policy
    /// (`config["cleanup.policy"]`: `delete`, the default, `compact` or `compact,delete`). For a
    /// topic that exists, a policy the spec names replaces the recorded one; a spec naming none
    /// leaves it as it is (a topic from before topic configs then gets `delete`).
    public func ensureTopics(_ specs: [TopicSpec]) async throws {
        try checkOpen()
        startMaintenanceIfNeeded()
        for spec in specs {
            let requested = try TopicLog.policy(of: spec)
            if let topic = topics[spec.name] {
                if let requested {
                    try topic.setPolicy(requested)
                } else if topic.policy == nil {
                    try topic.setPolicy(.delete)
                }
                continue
            }
            try validate(topic: spec.name)
            topics[spec.name] = try TopicLog.open(
                topicsDirectory: topicsDirectory, name: spec.name, partitions: max(1, spec.partitions),
                policy: requested ?? .delete, settings: Self.settings(options))
        }
    }

    public func shutdown() async {
        guard !isShutDown else { return }
        isShutDown = true
        maintenanceTask?.cancel()
        for name in groups.keys {
            for id in groups[name]!.members.keys { groups[name]!.members[id]!.wake() }
        }
        for id in readers.keys { readers[id]!.wake() }
        // A pass in progress stops at its next step; wait so no file work outlives the lock.
        while maintenanceRunning { await withCheckedContinuation { maintenanceWaiters.append($0) } }
        groups = [:]
        readers = [:]
        topics = [:]
        flock(lockFD, LOCK_UN)
        close(lockFD)
        lockFD = -1
    }

    // MARK: - Inspection (tests and tooling)

    /// The next offset of each partition of `topic` (what the next append there gets).
    func endOffsets(topic: String) throws -> [Int64] {
        try checkOpen()
        guard let topic = topics[topic] else { throw BusError(.unknownTopic, "no topic \(topic) in \(directory.path)") }
        return topic.partitions.map(\.nextOffset)
    }

    /// The offset `group` resumes `topic`'s `partition` from (`nil`: it never committed there).
    func committedOffset(group: String, topic: String, partition: Int) -> Int64? {
        groups[group]?.log.committed[TopicPartition(topic: topic, partition: partition)]
    }

    /// Transactions in the journal (applied ones, until it is emptied).
    var journalCount: Int { journal.count }

    /// Bytes of the transaction journal.
    var journalBytes: Int64 { journal.bytes }

    // MARK: - Maintenance

    /// Runs one maintenance pass now (after any pass in progress): rolls active segments that hold
    /// records older than the retention, compacts `compact` topics, deletes what `delete` topics
    /// no longer need, rewrites large group commit logs, and reports disk use.
    ///
    /// Guarantees: one pass at a time; errors name the topic, partition and file; the file work of
    /// compaction runs off the actor, so publishes are not held up by it.
    @discardableResult
    public func runMaintenance() async throws -> MaintenanceReport {
        try checkOpen()
        while maintenanceRunning { await withCheckedContinuation { maintenanceWaiters.append($0) } }
        try checkOpen()
        maintenanceRunning = true
        defer {
            maintenanceRunning = false
            let waiters = maintenanceWaiters
            maintenanceWaiters = []
            for w in waiters { w.resume() }
        }
        return try await maintenancePass()
    }

    private func maintenancePass() async throws -> MaintenanceReport {
        let started = ContinuousClock.now
        var report = MaintenanceReport()
        let retentionMillis = Self.millis(options.retention)
        for name in topics.keys.sorted() {
            guard let topic = topics[name] else { continue }
            guard let policy = topic.policy else {
                if reportedUnknownPolicy.insert(name).inserted {
                    logger.warning(
                        "bus topic has no cleanup policy yet (written by an older version): kept whole until ensureTopics names it",
                        metadata: ["topic": "\(name)"])
                }
                continue
            }
            for log in topic.partitions {
                if RetentionRules.shouldRollByAge(
                    oldestTimestampMillis: log.active.index.oldestTimestampMillis, nowMillis: nowMillis, retentionMillis: retentionMillis) {
                    try log.roll()
                }
                if policy.contains(.compact) {
                    try await compact(log, retentionMillis: retentionMillis, report: &report)
                    try checkOpen()
                }
                if policy.contains(.delete) {
                    try await deleteExpired(log, retentionMillis: retentionMillis, report: &report)
                }
            }
        }
        try rewriteGroupLogs(report: &report)
        for name in topics.keys.sorted() {
            let bytes = topics[name]!.diskBytes
            report.diskBytes += bytes
            options.metrics.diskBytes(name, bytes)
        }
        report.duration = ContinuousClock.now - started
        logger.debug(
            "bus maintenance pass",
            metadata: [
                "duration_ms": "\(Self.millis(report.duration))", "segments_deleted": "\(report.segmentsDeleted)",
                "segments_compacted": "\(report.segmentsCompacted)", "bytes_freed": "\(report.bytesFreed)",
                "disk_bytes": "\(report.diskBytes)",
            ])
        return report
    }

    /// Deletes the rolled segments at the start of `log` that every group has consumed and that are older than the retention.
    private func deleteExpired(_ log: PartitionLog, retentionMillis: Int64, report: inout MaintenanceReport) async throws {
        let now = nowMillis
        let expiryMillis = max(Self.millis(options.groupExpiry), retentionMillis)
        let tp = TopicPartition(topic: log.topic, partition: log.partition)
        var positions: [Int64] = []
        for group in groups.values where group.log.commits(on: log.topic) {
            // A group gone for good (no member here, no commit for the expiry) stops holding data back.
            if group.members.isEmpty && now - group.log.lastCommitMillis > expiryMillis { continue }
            positions.append(group.log.committed[tp] ?? 0)
        }
        let count = RetentionRules.deletablePrefix(
            log.segmentFacts, groupPositions: positions, nowMillis: now, retentionMillis: retentionMillis)
        guard count > 0 else { return }
        let deleted = try log.deleteLeading(count)
        try await Self.release(deleted.map(\.holder), syncing: options.sync ? [log.directory] : [])
        for d in deleted {
            logger.info(
                "bus segment deleted",
                metadata: [
                    "topic": "\(log.topic)", "partition": "\(log.partition)", "segment": "\(d.path)", "bytes_freed": "\(d.bytes)",
                    "reason": "retention",
                ])
            report.bytesFreed += d.bytes
        }
        report.segmentsDeleted += deleted.count
        options.metrics.segmentsDeleted(log.topic, deleted.count)
    }

    /// Compacts the rolled segments of `log` when a segment rolled since the last time or a kept tombstone expired.
    private func compact(_ log: PartitionLog, retentionMillis: Int64, report: inout MaintenanceReport) async throws {
        let now = nowMillis
        let tombstoneDue = log.oldestKeptTombstoneMillis.map { now - $0 > retentionMillis } ?? false
        guard log.segments.count > 1, log.needsCompaction || tombstoneDue else { return }
        let job = CompactionJob(
            rolled: log.segments.dropLast().map {
                CompactionJob.Input(path: $0.path, base: $0.baseOffset, isSparse: $0.isSparse, bytes: $0.size)
            },
            activePath: log.active.path, activeBase: log.active.baseOffset, activeLimit: log.active.size,
            nowMillis: now, retentionMillis: retentionMillis)
        // Segments are marked clean before the file work: a roll during it marks them again.
        log.needsCompaction = false
        let started = ContinuousClock.now
        let outcome: CompactionJob.Outcome
        do {
            outcome = try await Self.runOffActor(job)
        } catch {
            log.needsCompaction = true
            throw BusError(.io, "compaction of \(log.topic) partition \(log.partition) failed: \(error)")
        }
        report.longestCompaction = max(report.longestCompaction, ContinuousClock.now - started)
        var pending = outcome.outputs
        var holders: [Int32] = []
        defer {
            // Whatever was not installed (shutdown, an error) leaves no copy behind.
            for case .rewritten(let temporary, _) in pending.map(\.result) { unlink(temporary) }
            for fd in holders where fd >= 0 { close(fd) }
        }
        guard !isShutDown else { return }
        while !pending.isEmpty {
            let output = pending[0]
            guard log.rolledSegment(base: output.base) != nil else {
                pending.removeFirst()
                continue
            }
            switch output.result {
            case .unchanged:
                break
            case .rewritten(let temporary, let index):
                do {
                    holders.append(try log.install(base: output.base, compacted: temporary, index: index))
                } catch {
                    log.needsCompaction = true
                    throw error
                }
                let freed = output.bytesBefore - index.size
                report.bytesFreed += freed
                report.segmentsCompacted += 1
                report.recordsRemoved += output.recordsRemoved
                logger.info(
                    "bus segment compacted",
                    metadata: [
                        "topic": "\(log.topic)", "partition": "\(log.partition)", "segment": "\(output.path)",
                        "bytes_freed": "\(freed)", "records_removed": "\(output.recordsRemoved)",
                    ])
            case .emptied:
                holders.append(try log.removeRolled(base: output.base))
                report.bytesFreed += output.bytesBefore
                report.segmentsDeleted += 1
                report.recordsRemoved += output.recordsRemoved
                options.metrics.segmentsDeleted(log.topic, 1)
                logger.info(
                    "bus segment deleted",
                    metadata: [
                        "topic": "\(log.topic)", "partition": "\(log.partition)", "segment": "\(output.path)",
                        "bytes_freed": "\(output.bytesBefore)", "reason": "compaction",
                    ])
            }
            pending.removeFirst()
        }
        // The renames are durable once the directory is synced; until then a crash keeps the old segments (also valid).
        let toRelease = holders
        holders = []
        try await Self.release(toRelease, syncing: [log.directory])
        log.oldestKeptTombstoneMillis = outcome.oldestKeptTombstoneMillis
    }

    /// Closes the descriptors that keep replaced or deleted segment files alive (freeing their
    /// blocks) and syncs directories, on the global executor: that can take tens of milliseconds
    /// for large files, which publishes must not wait for.
    @concurrent
    private static func release(_ holders: [Int32], syncing directories: [String]) async throws {
        for fd in holders where fd >= 0 { close(fd) }
        for directory in directories { try syncDirectory(directory) }
    }

    /// The file work of a compaction, on the global executor (never on this actor).
    @concurrent
    private static func runOffActor(_ job: CompactionJob) async throws -> CompactionJob.Outcome {
        try job.run()
    }

    /// Group commit logs grow by a record per commit: past 1 MiB, rewrite each to its latest commits.
    private func rewriteGroupLogs(report: inout MaintenanceReport) throws {
        for name in groups.keys.sorted() {
            guard let log = groups[name]?.log, log.bytes > Self.groupLogRewriteBytes,
                  log.recordCount > 2 * log.committed.count else { continue }
            let freed = try log.rewrite()
            report.bytesFreed += freed
            logger.debug("bus group commit log rewritten", metadata: ["group": "\(name)", "bytes_freed": "\(freed)"])
        }
    }

    private static let groupLogRewriteBytes: Int64 = 1 << 20

    /// Starts the background maintenance loop once (the first time the bus is used). Its first
    /// pass runs at once: what expired while the process was down goes at start, and the disk
    /// gauge (`sluice_bus_disk_bytes`) is there from the start, not one interval later.
    ///
    /// The loop is an unstructured task on purpose: it is background upkeep with no caller to
    /// return to; it holds the bus weakly, `shutdown()` cancels it and waits for a pass in progress.
    private func startMaintenanceIfNeeded() {
        guard maintenanceTask == nil, !isShutDown, let interval = options.maintenanceInterval else { return }
        maintenanceTask = Task { [weak self] in
            while !Task.isCancelled {
                do {  // the bus is held only for the pass, never across the sleep
                    guard let bus = self else { return }
                    await bus.periodicMaintenance()
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    private func periodicMaintenance() async {
        guard !isShutDown else { return }
        do {
            try await runMaintenance()
        } catch {
            guard !isShutDown else { return }
            options.metrics.maintenanceFailed()
            logger.error("bus maintenance failed", metadata: ["directory": "\(directory.path)", "error": "\(error)"])
        }
    }

    private static func millis(_ d: Duration) -> Int64 { d.totalMilliseconds }

    // MARK: - Delivery

    /// The most messages a background member or a group-less reader takes in one turn of the
    /// actor. Under load the actor is busy with every stage's appends and commits, and each turn
    /// is a wait in its queue: one message per turn let the Recorder read ~1,000 messages a second
    /// while `sluice run` appended three times as many. 64 reads (a `pread` and a CRC each) keep a
    /// turn well under a millisecond, so appends do not wait long behind one.
    static let deliveryChunk = 64

    /// The next messages for a group member (at least one, at most `limit`, in partition order),
    /// waiting until one is available; `nil` once closed. A read error after some messages were
    /// taken returns those; the next call meets the error again.
    fileprivate func nextMessages(group: String, member id: UInt64, limit: Int) async throws -> [BusMessage]? {
        while true {
            guard !isShutDown, !Task.isCancelled, groups[group]?.members[id] != nil else { return nil }
            var taken: [BusMessage] = []
            do {
                while taken.count < limit, let message = try takeNext(group: group, member: id) { taken.append(message) }
            } catch {
                guard !taken.isEmpty else { throw error }
            }
            if !taken.isEmpty { return taken }
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

    /// The member's next message, round-robin over its partitions; `nil` when it is caught up.
    /// (Reads the member in place: a copy of it would copy its positions on every write below.)
    private func takeNext(group: String, member id: UInt64) throws -> BusMessage? {
        guard let assignment = groups[group]?.members[id]?.assignment, !assignment.isEmpty else { return nil }
        let cursor = groups[group]!.members[id]!.cursor
        for step in 0..<assignment.count {
            let i = (cursor + step) % assignment.count
            let tp = assignment[i]
            guard let logs = topics[tp.topic]?.partitions, tp.partition < logs.count else { continue }
            let position = groups[group]!.members[id]!.positions[tp] ?? 0
            guard position < logs[tp.partition].nextOffset else { continue }
            // Before the first retained offset (deleted) or in a gap (compacted): the next record there is.
            guard let (offset, record) = try logs[tp.partition].read(atOrAfter: position) else {
                groups[group]!.members[id]!.positions[tp] = logs[tp.partition].nextOffset
                continue
            }
            groups[group]!.members[id]!.positions[tp] = offset + 1
            groups[group]!.members[id]!.cursor = (i + 1) % assignment.count
            return BusMessage(
                topic: tp.topic, partition: tp.partition, offset: offset, key: record.key,
                headers: record.headers, value: record.value, timestampMillis: record.timestampMillis)
        }
        return nil
    }

    /// The next messages for a group-less reader (at least one, at most `limit`), waiting until one
    /// is available; `nil` once closed. A read error after some messages were taken returns those.
    /// The reader's next message, round-robin over its partitions; `nil` when it is caught up.
    private func takeNext(reader id: UInt64) throws -> BusMessage? {
        guard let reader = readers[id], let logs = topics[reader.topic]?.partitions else { return nil }
        for step in 0..<logs.count {
            let p = (reader.cursor + step) % logs.count
            let position = reader.positions[p]
            guard position < logs[p].nextOffset else { continue }
            guard let (offset, record) = try logs[p].read(atOrAfter: position) else {
                readers[id]!.positions[p] = logs[p].nextOffset
                continue
            }
            readers[id]!.positions[p] = offset + 1
            readers[id]!.cursor = (p + 1) % logs.count
            return BusMessage(
                topic: reader.topic, partition: p, offset: offset, key: record.key,
                headers: record.headers, value: record.value, timestampMillis: record.timestampMillis)
        }
        return nil
    }

    fileprivate func nextMessages(reader id: UInt64, limit: Int) async throws -> [BusMessage]? {
        while true {
            guard !isShutDown, !Task.isCancelled, readers[id] != nil else { return nil }
            var taken: [BusMessage] = []
            do {
                while taken.count < limit, let message = try takeNext(reader: id) { taken.append(message) }
            } catch {
                guard !taken.isEmpty else { throw error }
            }
            if !taken.isEmpty { return taken }
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
        try groups[group]!.log.commit(
            TopicPartition(topic: message.topic, partition: message.partition), next: message.offset + 1, nowMillis: nowMillis)
    }

    /// Publishes `outputs` and commits `message` for `group` atomically (see the type's
    /// guarantees and `TransactionJournal`).
    ///
    /// Steps, all in one turn of the actor (no reader sees a step half done): check ownership;
    /// write the transaction to the journal; append each output to its partition (no roll in
    /// between); append the group commit; roll full segments; empty the journal if it is large. If a step after
    /// the journal write fails, the outputs are cut off their partitions again and the journal
    /// record removed (in that order: a crash in between leaves the record, and reopening
    /// completes the transaction), so the error means nothing was published nor committed. If
    /// even that undo fails, the bus refuses all further work until it is reopened.
    fileprivate func commit(group: String, member id: UInt64, message: BusMessage, publishing outputs: [OutgoingMessage]) throws {
        try checkOpen()
        let input = TopicPartition(topic: message.topic, partition: message.partition)
        // Place the outputs first: creating an output topic can rebalance a group, and ownership is checked after that.
        let now = nowMillis
        var placed: [(log: PartitionLog, output: BusTransaction.Output)] = []
        var pendingPerPartition: [TopicPartition: Int64] = [:]
        for output in outputs {
            let logs = try topicLogs(output.topic)
            roundRobin &+= 1
            let p = partition(forKey: output.key, partitions: logs.count, fallback: roundRobin & Int.max)
            let tp = TopicPartition(topic: output.topic, partition: p)
            let offset = logs[p].nextOffset + pendingPerPartition[tp, default: 0]
            pendingPerPartition[tp, default: 0] += 1
            let record = LogRecord(timestampMillis: now, key: output.key, headers: output.headers, value: output.value)
            placed.append((logs[p], BusTransaction.Output(partition: tp, offset: offset, record: record)))
        }
        let what = "\(input.topic)[\(input.partition)]@\(message.offset)"
        guard let g = groups[group], let member = g.members[id] else {
            throw BusError(.fenced, "group \(group): this member has left the group; \(what) was not committed, nothing published")
        }
        guard member.assignment.contains(input) else {
            throw BusError(
                .fenced, "group \(group): partition \(input.topic)[\(input.partition)] moved to another member; \(what) was not committed, nothing published")
        }
        let committed = g.log.committed[input] ?? 0
        guard message.offset >= committed else {
            throw BusError(
                .fenced,
                "group \(group): \(what) is already committed (the group is at offset \(committed)); its outputs were published by whoever committed it, nothing published now")
        }
        guard !placed.isEmpty else {
            try g.log.commit(input, next: message.offset + 1, nowMillis: now)
            return
        }
        let transaction = BusTransaction(group: group, commit: input, next: message.offset + 1, outputs: placed.map(\.output))
        let record = try TransactionJournal.record(transaction, timestampMillis: now)
        let journalCount = journal.count
        try journal.append(record)
        // Where each touched partition ended before the transaction, to undo a half-done one.
        var starts: [(log: PartitionLog, next: Int64)] = []
        for (log, _) in placed where !starts.contains(where: { $0.log === log }) { starts.append((log, log.nextOffset)) }
        do {
            for (log, output) in placed {
                let offset = try log.appendWithoutRolling(output.record)
                guard offset == output.offset else {
                    throw BusError(.io, "output of \(what) landed at \(log.topic)[\(log.partition)]@\(offset), not at \(output.offset) as journaled")
                }
            }
            try g.log.commit(input, next: message.offset + 1, nowMillis: now)
        } catch {
            throw undo(starts: starts, journalCount: journalCount, cause: error, what: what)
        }
        for (log, _) in starts { log.rollIfFull() }
        if journal.bytes >= TransactionJournal.truncateBytes {
            do {
                try journal.truncate(toCount: 0)
            } catch {
                // Everything is applied; the journal is tried again after the next commit.
                logger.warning("bus transaction journal not emptied", metadata: ["journal": "\(journal.path)", "error": "\(error)"])
            }
        }
        for topic in Set(placed.map(\.output.partition.topic)) { wakeAll(topic: topic) }
    }

    /// Undoes a transaction whose journal record is written but whose effects are not all applied;
    /// returns the error to report.
    private func undo(starts: [(log: PartitionLog, next: Int64)], journalCount: Int, cause: any Error, what: String) -> BusError {
        do {
            for (log, next) in starts { try log.truncate(toNextOffset: next) }
            try journal.truncate(toCount: journalCount)
            return BusError((cause as? BusError)?.kind ?? .io, "atomic commit of \(what) failed, nothing published nor committed: \(cause)")
        } catch {
            let broken = BusError(
                .io,
                "atomic commit of \(what) failed (\(cause)) and could not be undone (\(error)); the bus refuses work until it is reopened, which completes the commit from \(journal.path)")
            failure = broken
            logger.critical("bus atomic commit could not be undone", metadata: ["error": "\(broken)"])
            return broken
        }
    }

    fileprivate func assignment(group: String, member id: UInt64) -> Set<BusPartition> {
        Set((groups[group]?.members[id]?.assignment ?? []).map { BusPartition(topic: $0.topic, partition: Int($0.partition)) })
    }

    fileprivate func assignment(reader id: UInt64) -> Set<BusPartition> {
        guard let reader = readers[id] else { return [] }
        return Set(reader.positions.indices.filter { reader.positions[$0] != .max }.map { BusPartition(topic: reader.topic, partition: $0) })
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

    /// Reassigns a group's partitions over its members (sorted by join order): partition p of
    /// each topic to subscriber p mod n, so partition p of co-partitioned topics has one owner;
    /// a partition that changes owner restarts from the group's committed offset.
    private func rebalance(_ group: String) {
        guard var g = groups[group] else { return }
        let memberIDs = g.members.keys.sorted()
        let allTopics = Set(g.members.values.flatMap(\.topics)).sorted()
        var newAssignment: [UInt64: [TopicPartition]] = [:]
        for topic in allTopics {
            let subscribers = memberIDs.filter { g.members[$0]!.topics.contains(topic) }
            guard !subscribers.isEmpty else { continue }
            for p in 0..<(topics[topic]?.partitions.count ?? 0) {
                // Partition p of every topic goes to the same member, so co-partitioned topics
                // (`inspected`, `approvals`) stay together, as Kafka's range assignor keeps them.
                newAssignment[subscribers[p % subscribers.count], default: []].append(TopicPartition(topic: topic, partition: p))
            }
        }
        for id in memberIDs {
            let assigned = newAssignment[id] ?? []
            var positions: [TopicPartition: Int64] = [:]
            for tp in assigned { positions[tp] = g.members[id]!.positions[tp] ?? g.log.committed[tp] ?? 0 }
            g.members[id]!.assignment = assigned
            g.members[id]!.positions = positions
            g.members[id]!.cursor = 0
            g.members[id]!.wake()
        }
        groups[group] = g
    }

    // MARK: - Topics

    private func topicLogs(_ name: String) throws -> [PartitionLog] {
        if let topic = topics[name] { return topic.partitions }
        try validate(topic: name)
        let topic = try TopicLog.open(
            topicsDirectory: topicsDirectory, name: name, partitions: options.defaultPartitions, policy: .delete,
            settings: Self.settings(options))
        topics[name] = topic
        for group in groups.keys where groups[group]!.members.values.contains(where: { $0.topics.contains(name) }) {
            rebalance(group)
        }
        return topic.partitions
    }

    private func validate(topic: String) throws {
        let ok = !topic.isEmpty && topic.count <= 249 && topic != "." && topic != ".."
            && topic.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-".unicodeScalars.contains($0) }
        guard ok else { throw BusError(.configuration, "invalid topic name \"\(topic)\": use ASCII letters, digits, '.', '_' and '-'") }
    }

    private func takeID() -> UInt64 {
        defer { nextID += 1 }
        return nextID
    }

    private func checkOpen() throws {
        if let failure { throw failure }
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

/// A consumer group: its members in this process and its commit log.
private struct ConsumerGroup {
    var members: [UInt64: Member] = [:]
    let log: GroupCommitLog
}

private struct GroupMemberControl: BusSubscriptionControl {
    let bus: EmbeddedBus
    let group: String
    let member: UInt64

    func commit(_ message: BusMessage) async throws { try await bus.commit(group: group, message: message) }
    /// Atomic: see `EmbeddedBus`'s guarantees and `TransactionJournal`.
    func commit(_ message: BusMessage, publishing outputs: [OutgoingMessage]) async throws {
        try await bus.commit(group: group, member: member, message: message, publishing: outputs)
    }
    func assignment() async -> Set<BusPartition> { await bus.assignment(group: group, member: member) }
    /// Joining is synchronous here: the member got its partitions when it subscribed.
    func hasJoinedGroup() async -> Bool { true }
    func close() async { await bus.leave(group: group, member: member) }
}

private struct ReaderControl: BusSubscriptionControl {
    let bus: EmbeddedBus
    let reader: UInt64

    func commit(_ message: BusMessage) async throws {}
    func commit(_ message: BusMessage, publishing outputs: [OutgoingMessage]) async throws {
        throw BusError(.configuration, "a group-less reader cannot commit (\(message.topic)[\(message.partition)]@\(message.offset))")
    }
    func assignment() async -> Set<BusPartition> { await bus.assignment(reader: reader) }
    func hasJoinedGroup() async -> Bool { true }
    func close() async { await bus.closeReader(reader) }
}
