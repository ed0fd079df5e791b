import Foundation
import Logging
import Metrics

/// The outcome ledger (invariant 8): the compacted `outcomes` topic, keyed by request id, is the
/// single record that a request is finished; this is one process's view of it.
///
/// Every stage that ends a request (Inspector: blocked, failed, expired; Forwarder: delivered,
/// failed, expired; held requests: denied, expired, delivered, failed) ends it with ``end(_:)``,
/// and the Recorder writes each request's first outcome record — only that one — to the audit
/// sinks (``isFirst(_:)``). A stage that finds an outcome already there skips the request.
///
/// Guarantees:
/// - ``end(_:)`` publishes an outcome only when this view knows none for the request, and marks
///   the request ended in this view before it suspends, so two tasks of one process never both
///   publish one (actor reentrancy cannot interleave the check and the mark). It returns
///   `.recorded` only after the bus accepted the record (retrying with backoff meanwhile).
/// - ``claim(_:)`` serialises work on one request id within the process: a second claimant
///   waits until the first releases, then sees the outcome the first recorded (if any).
/// - ``whileFollowing(_:)`` runs its body only after every record that was in the topic when it
///   started has been read (a catch-up marker per partition, `TopicFollower`), and keeps
///   reading while the body runs, so outcomes recorded by other processes (a dead inspector, a
///   forwarder before a restart) are seen. If the reader fails, the body is cancelled and the
///   error is thrown: a stage never works on without its ledger.
/// - ``isFirst(_:)`` decides from the log itself — the first record of a key in its partition
///   wins — after the reader has read that partition through the message's offset, so every
///   Recorder instance, before or after a restart or a rebalance, makes the same decision.
/// - Memory is bounded by the rate of outcomes, not by the retention: an outcome is kept exactly
///   (request id, kind, position of its first record) for `exactWindow` after it was recorded,
///   then only as an 8-byte fingerprint with its kind (`AgedOutcomes`) until `retention` has
///   passed (the topic deletes it by age too). Queries (``outcome(of:)``, ``claim(_:)``,
///   ``end(_:)``) answer the same before and after an outcome ages, except for a fingerprint
///   collision (about 10⁻¹¹ a query). A ledger made with `decidesFirstRecords` (the Recorder's)
///   keeps an outcome exact until ``isFirst(_:)`` has been asked for a record of that partition
///   written `exactWindow` after it (so also for any duplicate racing it), for up to an hour
///   (`firstRecordHorizonMillis`): a Recorder up to an hour behind still tells a duplicate
///   outcome record from the first. Past that,
///   ``isFirst(_:)`` answers `true` when it cannot know: a rare duplicate audit record rather
///   than a lost one.
///
/// Not closed by this type: a process that delivered a request and died before its outcome was
/// accepted by the bus (the request is delivered again, with the same `Idempotency-Key`), and a
/// member that redelivers a message within the reader's lag after a rebalance (the Recorder
/// still records one outcome; the upstream may see the same `Idempotency-Key` twice).
public actor OutcomeLedger {
    /// The result of ``claim(_:)``.
    public enum Claim: Sendable, Equatable {
        /// The request already has an outcome: do nothing more for it.
        case ended(AuditEvent.Kind)
        /// This task holds the request until ``release(_:)``.
        case claimed
    }

    /// The result of ``end(_:)``.
    public enum Ending: Sendable, Equatable {
        /// This call recorded the outcome: the caller answers and reports it.
        case recorded
        /// Someone ended the request first (with this kind): the caller publishes nothing.
        case alreadyEnded(AuditEvent.Kind)
    }

    /// Kind header of the catch-up markers on `outcomes`.
    public static let markerKind = "outcomes-marker"

    /// One exact outcome, 24 bytes.
    struct Entry {
        /// Where the first record of the request is (`-1`: recorded here, not read back yet).
        var offset: Int64
        var atMillis: Int64
        var partition: Int32
        var kind: AuditEvent.Kind

        init(kind: AuditEvent.Kind, partition: Int, offset: Int64, atMillis: Int64) {
            self.kind = kind
            self.partition = Int32(truncatingIfNeeded: partition)
            self.offset = offset
            self.atMillis = atMillis
        }
    }

    private let context: StageContext
    private let retentionMillis: Int64
    private let exactWindowMillis: Int64
    private let decidesFirstRecords: Bool
    private let initialBackoff: Duration
    private let maxBackoff: Duration
    private var entries: [LedgerKey: Entry] = [:]
    private var aged = AgedOutcomes()
    /// The newest record time ``isFirst(_:)`` was asked about, per partition (`decidesFirstRecords`).
    private var checkedMillis: [Int: Int64] = [:]
    /// The last offset the reader applied, per partition.
    private var readThrough: [Int: Int64] = [:]
    private var readWaiters: [(partition: Int, offset: Int64, continuation: CheckedContinuation<Void, any Error>)] = []
    private var claimed: Set<LedgerKey> = []
    private var claimWaiters: [LedgerKey: [CheckedContinuation<Void, Never>]] = [:]
    private var caughtUp = false
    private var readerError: (any Error)?
    private var caughtUpWaiters: [CheckedContinuation<Void, any Error>] = []
    /// `sharedReader`: the reader is ``follow()``, run by the owner beside the stages.
    private let sharedReader: Bool
    private var readerEndWaiters: [OneShot<(any Error)?>] = []
    private var appliedSincePrune = 0

    /// - Parameters:
    ///   - retention: how long outcomes are known at all (the topic's retention).
    ///   - exactWindow: how long an outcome is kept exactly before only its fingerprint is.
    ///   - decidesFirstRecords: `true` for the Recorder, which asks ``isFirst(_:)`` of every
    ///     record: outcomes stay exact until it has.
    ///   - sharedReader: `true` for one view shared by several stages of a process: the owner
    ///     runs ``follow()`` beside them, and ``whileFollowing(_:)`` does not read itself.
    public init(
        context: StageContext, retention: Duration = .seconds(86_400), exactWindow: Duration = .seconds(60),
        decidesFirstRecords: Bool = false, sharedReader: Bool = false,
        initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(5)
    ) {
        self.sharedReader = sharedReader
        self.context = context
        self.retentionMillis = max(1, retention.totalMilliseconds)
        self.exactWindowMillis = max(1, exactWindow.totalMilliseconds)
        self.decidesFirstRecords = decidesFirstRecords
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    // MARK: - Following the topic

    /// Reads `outcomes` up to date, then runs `body` while it keeps reading; stops reading when
    /// `body` returns. Throws what `body` throws, or the reader's error (then `body` is cancelled).
    ///
    /// A ledger made with `sharedReader` does not read here: ``follow()`` reads for every stage
    /// of the process, and this waits until it has read up to date, then runs `body`, which is
    /// cancelled (and the reader's error thrown) if ``follow()`` ends first.
    public nonisolated func whileFollowing<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                if self.sharedReader {
                    try await self.waitReaderEnded()
                } else {
                    try await self.follow()
                }
                return nil
            }
            try await self.waitCaughtUp()
            group.addTask { try await body() }
            while let result = try await group.next() {
                if let value = result {
                    group.cancelAll()
                    return value
                }
            }
            throw BusError(.closed, "the outcomes ledger stopped before its stage")
        }
    }

    /// Reads `outcomes` until cancelled or the bus fails, applying every record; the stages'
    /// ``whileFollowing(_:)`` wait for it to read up to date. Run it once per ledger: by
    /// ``whileFollowing(_:)`` itself, or — for a ledger made with `sharedReader`, one view
    /// for all the stages of a process — beside the stages, stopping after them. When it ends,
    /// every query waiting on the reader fails and every ``whileFollowing(_:)`` body is cancelled.
    public nonisolated func follow() async throws {
        let follower = TopicFollower(context: context, topic: context.topics.outcomes, markerKind: Self.markerKind)
        do {
            try await follower.follow(apply: { await self.apply($0) }, onCaughtUp: { await self.markCaughtUp() })
        } catch {
            await readerEnded(error)
            throw error
        }
        await readerEnded(BusError(.closed, "the outcomes reader ended"))
    }

    /// Returns when the task is cancelled; throws the reader's error when ``follow()`` ends.
    private func waitReaderEnded() async throws {
        if let readerError { throw readerError }
        let waiter = OneShot<(any Error)?>()
        readerEndWaiters.append(waiter)
        let error = await withTaskCancellationHandler {
            await waiter.value()
        } onCancel: {
            waiter.resume(with: nil)
        }
        readerEndWaiters.removeAll { $0 === waiter }
        if let error { throw error }
    }

    private func markCaughtUp() {
        caughtUp = true
        for waiter in caughtUpWaiters { waiter.resume() }
        caughtUpWaiters.removeAll()
        context.logger.info("outcome ledger read up to date", metadata: ["requests": "\(entries.count)"])
    }

    private func readerEnded(_ error: any Error) {
        readerError = error
        for waiter in caughtUpWaiters { waiter.resume(throwing: error) }
        caughtUpWaiters.removeAll()
        for waiter in readWaiters { waiter.continuation.resume(throwing: error) }
        readWaiters.removeAll()
        for waiter in readerEndWaiters { waiter.resume(with: error) }
        readerEndWaiters.removeAll()
    }

    private func waitCaughtUp() async throws {
        if caughtUp { return }
        if let readerError { throw readerError }
        try await withCheckedThrowingContinuation { caughtUpWaiters.append($0) }
    }

    /// Applies one record read from `outcomes`: the first record of a request is its outcome.
    func apply(_ message: BusMessage) {
        readThrough[message.partition] = max(readThrough[message.partition] ?? -1, message.offset)
        defer { resumeReadWaiters(partition: message.partition) }
        guard let idString = message.keyString, !message.value.isEmpty else { return }
        // Every outcome record read counts toward the next prune, this view's own included: a
        // process whose stages end every request (`sluice run`, or a Forwarder that delivers
        // everything) only ever reads its own outcomes back.
        appliedSincePrune += 1
        if appliedSincePrune >= 10_000 { prune(now: currentMillis()) }
        let id = LedgerKey(idString)
        if var known = entries[id] {
            if known.offset < 0 {
                // Recorded by this process: now we know where.
                known.partition = Int32(truncatingIfNeeded: message.partition)
                known.offset = message.offset
                entries[id] = known
            } else if Int(known.partition) == message.partition && message.offset != known.offset {
                Counter(label: "sluice_outcome_ledger_duplicates_total").increment()
            }
            return
        }
        // The kind header spares decoding the event (every stage reads every outcome); the
        // record's bus timestamp stands in for the event time (both are taken when it is written;
        // a record without a timestamp is decoded, so retention never drops an entry too early).
        let kind: AuditEvent.Kind
        let atMillis: Int64
        if let fromHeader = MessageCodec.outcomeKind(of: message), message.timestampMillis > 0 {
            kind = fromHeader
            atMillis = message.timestampMillis
        } else {
            do {
                let event = try context.codec.decodeAudit(message)
                (kind, atMillis) = (event.kind, event.timeMillis)
            } catch {
                context.logger.error("unreadable outcome record skipped", metadata: [
                    "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
                ])
                return
            }
        }
        entries[id] = Entry(kind: kind, partition: message.partition, offset: message.offset, atMillis: atMillis)
    }

    private func resumeReadWaiters(partition: Int) {
        let through = readThrough[partition] ?? -1
        var still: [(partition: Int, offset: Int64, continuation: CheckedContinuation<Void, any Error>)] = []
        for waiter in readWaiters {
            if waiter.partition == partition && waiter.offset <= through {
                waiter.continuation.resume()
            } else {
                still.append(waiter)
            }
        }
        readWaiters = still
    }

    /// Moves outcomes older than the exact window to the fingerprints, and forgets fingerprints
    /// older than the retention.
    func prune(now: Int64) {
        appliedSincePrune = 0
        let cutoff = now - exactWindowMillis
        var moved: [(key: LedgerKey, kind: AuditEvent.Kind)] = []
        var newest = Int64.min
        var kept: [LedgerKey: Entry] = [:]
        kept.reserveCapacity(entries.count)
        for (key, entry) in entries {
            let waitsForRecorder = !firstChecked(entry) && entry.atMillis >= now - Self.firstRecordHorizonMillis
            if entry.atMillis >= cutoff || entry.offset < 0 || waitsForRecorder {
                kept[key] = entry
            } else if entry.atMillis >= now - retentionMillis {
                moved.append((key, entry.kind))
                newest = max(newest, entry.atMillis)
            }
        }
        entries = kept
        aged.insert(moved, newestMillis: newest)
        aged.drop(olderThan: now - retentionMillis)
        Gauge(label: "sluice_outcome_ledger_entries").record(entries.count)
        Gauge(label: "sluice_outcome_ledger_aged").record(aged.count)
    }

    /// How long a `decidesFirstRecords` ledger waits for ``isFirst(_:)`` before it ages an outcome.
    static let firstRecordHorizonMillis: Int64 = 3_600_000

    private func firstChecked(_ entry: Entry) -> Bool {
        guard decidesFirstRecords else { return true }
        guard let checked = checkedMillis[Int(entry.partition)] else { return false }
        return checked >= entry.atMillis + exactWindowMillis
    }

    /// The outcome of `key`: exact, or from the fingerprints of aged outcomes.
    private func known(_ key: LedgerKey) -> AuditEvent.Kind? {
        if let entry = entries[key] { return entry.kind }
        return aged.kind(of: key)
    }

    /// Exact and aged outcomes held (tests and metrics).
    public var sizes: (exact: Int, aged: Int) { (entries.count, aged.count) }

    // MARK: - Queries

    /// The request's outcome, if this view knows one.
    public func outcome(of requestID: String) -> AuditEvent.Kind? { known(LedgerKey(requestID)) }

    /// Whether `message` (a record of `outcomes`) is its request's first outcome record. Waits
    /// until the reader has read the message's partition through its offset.
    public func isFirst(_ message: BusMessage) async throws -> Bool {
        if (readThrough[message.partition] ?? -1) < message.offset {
            if let readerError { throw readerError }
            try await withCheckedThrowingContinuation { continuation in
                readWaiters.append((message.partition, message.offset, continuation))
            }
        }
        if decidesFirstRecords { checkedMillis[message.partition] = max(checkedMillis[message.partition] ?? .min, message.timestampMillis) }
        guard let idString = message.keyString else { return true }
        let id = LedgerKey(idString)
        // No exact entry: a record the reader could not read, or one more than an hour behind
        // (see the type's guarantees). Recording it is the safe side.
        guard let entry = entries[id] else { return true }
        return Int(entry.partition) == message.partition && entry.offset == message.offset
    }

    // MARK: - Ending requests

    /// Holds `requestID` for this task: waits while another task of this process holds it.
    /// Call ``release(_:)`` when done (`.claimed` only).
    public func claim(_ requestID: String) async -> Claim {
        let id = LedgerKey(requestID)
        while true {
            if let kind = known(id) { return .ended(kind) }
            if claimed.insert(id).inserted { return .claimed }
            await withCheckedContinuation { claimWaiters[id, default: []].append($0) }
        }
    }

    /// Lets the next claimant of `requestID` proceed.
    public func release(_ requestID: String) {
        let id = LedgerKey(requestID)
        claimed.remove(id)
        for waiter in claimWaiters.removeValue(forKey: id) ?? [] { waiter.resume() }
    }

    /// Ends the request with `event` (an outcome kind) unless it already has an outcome, and
    /// returns only once the bus has accepted the record.
    ///
    /// - Throws: `CancellationError` when cancelled before the bus accepted it (the request is
    ///   then not ended in this view); `MessageCodecError` when the event cannot be encoded.
    public func end(_ event: AuditEvent) async throws -> Ending {
        let id = LedgerKey(event.requestID)
        if let kind = known(id) { return .alreadyEnded(kind) }
        let message = try context.codec.outcome(event)
        entries[id] = Entry(kind: event.kind, partition: -1, offset: -1, atMillis: event.timeMillis)
        var delay = initialBackoff
        while true {
            do {
                try await context.bus.publish(message)
                Counter(label: "sluice_outcomes_total", dimensions: [("outcome", event.kind.rawValue), ("stage", event.stage)]).increment()
                return .recorded
            } catch is CancellationError {
                forgetUnconfirmed(id)
                throw CancellationError()
            } catch {
                context.logger.error("outcome publish failed; retrying", metadata: [
                    "request_id": "\(event.requestID)", "outcome": "\(event.kind.rawValue)", "error": "\(error)",
                ])
            }
            do { try await Task.sleep(for: delay) } catch {
                forgetUnconfirmed(id)
                throw CancellationError()
            }
            delay = min(delay * 2, maxBackoff)
        }
    }

    private func forgetUnconfirmed(_ id: LedgerKey) {
        if let entry = entries[id], entry.offset < 0 { entries[id] = nil }
    }
}

extension AuditEvent.Kind {
    /// Whether an event of this kind ends a request (and so goes through the `OutcomeLedger`).
    public var isOutcome: Bool {
        switch self {
        case .delivered, .blocked, .denied, .expired, .failed: true
        default: false
        }
    }
}
