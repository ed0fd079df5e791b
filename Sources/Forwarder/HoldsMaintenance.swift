import Foundation
import Logging
import Metrics
import Pipeline
import Synchronization

/// Which held requests one Forwarder owns now: those whose request id maps (the same murmur2
/// placement as publishing, `Pipeline.partition(forKey:partitions:)`) to a partition of
/// `inspected` assigned to it in the consumer group. `holds`, `inspected` and `approvals` are
/// co-partitioned (same key, same partition count), so this is also its share of `holds`.
///
/// Guarantees:
/// - `owns` is true only for a request whose partition is in `partitions`; with no partitions
///   (not joined yet, or left) it owns nothing.
struct HoldOwnership: Sendable, Equatable {
    /// Partitions of `inspected` assigned to this member.
    var partitions: Set<Int>
    /// Partitions of `inspected` (and of `holds`).
    var partitionCount: Int

    static let none = HoldOwnership(partitions: [], partitionCount: 0)

    /// The partition `requestID` is placed in.
    static func partition(of requestID: String, partitionCount: Int) -> Int {
        Pipeline.partition(forKey: Array(requestID.utf8), partitions: partitionCount)
    }

    func owns(_ requestID: String) -> Bool {
        guard partitionCount > 0, !partitions.isEmpty else { return false }
        return partitions.contains(Self.partition(of: requestID, partitionCount: partitionCount))
    }
}

/// Request ids whose resumed delivery is running in this process (so a sweep does not start a
/// second one while the first waits on the upstream).
///
/// Guarantees: `insert` returns `true` for one caller per id until that caller `remove`s it.
final class RunningResumes: Sendable {
    private let ids = Mutex<Set<String>>([])
    func insert(_ id: String) -> Bool { ids.withLock { $0.insert(id).inserted } }
    func remove(_ id: String) { _ = ids.withLock { $0.remove(id) } }
}

/// Following `holds`, and the work on held requests that no message triggers: expiry, resumed
/// deliveries, recovered outcomes, pruning. With any number of Forwarders in the group, each
/// does this work only for the held requests it owns (`HoldOwnership`).
///
/// Guarantees:
/// - Every Forwarder reads `holds` up to date before it consumes anything and keeps following
///   it while it runs, merging every change forward-only (`HoldBook.merge`): decisions recorded
///   through another Forwarder are known here, and a Forwarder that gains a partition in a
///   rebalance works from an up-to-date book. If the reader fails, the stage stops with the
///   error (it never works on a stale book).
/// - Only the owner of a request's partition expires it, resumes its approved delivery,
///   records a missing outcome for it and prunes it; ownership is re-read every 250 ms, and
///   a newly gained partition is swept at once (not only at start).
/// - An approved request whose delivery has not been recorded is resumed only once its
///   delivery budget (the connection's `timeout`, else `request_timeout`, plus
///   `resumeMargin`) has passed since it was approved: a previous owner that is still alive
///   stops sending at that deadline and records the result, so a rebalance does not deliver it
///   twice; one that died mid-call is the documented exception (same `Idempotency-Key`).
/// - A final record without an outcome in the ledger (a Forwarder stopped between recording it
///   in `holds` and recording its outcome) gets its outcome from its owner once it has been
///   final for `repairGrace`, so the writer's own outcome, still in flight, is not doubled.
extension ForwarderService {
    /// Added to a connection's delivery budget before another Forwarder resumes an approved
    /// request (time for the previous owner's `delivered`/`failed` record to arrive).
    static let resumeMargin: Duration = .seconds(2)
    /// How long a final record may lack its outcome before its owner records one.
    static let repairGrace: Duration = .seconds(10)
    /// How often approved requests are checked for resuming.
    static let resumeInterval: Duration = .seconds(1)
    /// How often final records are checked for a missing outcome.
    static let repairInterval: Duration = .seconds(10)
    /// How often final records past `holds_retention` are pruned.
    static let pruneInterval: Duration = .seconds(30)

    /// Reads `holds` from the beginning into the book, calls `onCaughtUp` once it is up to date,
    /// then keeps merging every change until cancelled. Throws when the reader fails.
    func followHolds(onCaughtUp: @escaping @Sendable () async -> Void) async throws {
        let store = holds
        try await HoldsChangelog(context: context).follow(
            apply: { change in _ = await store.merge(change) },
            onCaughtUp: onCaughtUp)
    }

    /// The held requests this member owns now (see `HoldOwnership`).
    func holdOwnership(partitionCount: Int) async -> HoldOwnership {
        let inspected = context.topics.inspected
        let owned = await consumer.assignment().filter { $0.topic == inspected }.map(\.partition)
        return HoldOwnership(partitions: Set(owned), partitionCount: partitionCount)
    }

    /// Partitions of `inspected` this member owns now (for tests and logs).
    func ownedHoldPartitions() async -> Set<Int> {
        let inspected = context.topics.inspected
        return Set(await consumer.assignment().filter { $0.topic == inspected }.map(\.partition))
    }

    /// The partition count of `inspected`, retried with backoff until the bus answers; `nil`
    /// when cancelled first.
    private func inspectedPartitionCount() async -> Int? {
        var delay = options.initialBackoff
        while !Task.isCancelled {
            do {
                return try await context.bus.partitionCount(topic: context.topics.inspected)
            } catch {
                logger.error("cannot read the partition count of inspected; retrying", metadata: ["error": "\(error)"])
            }
            do { try await Task.sleep(for: delay) } catch { return nil }
            delay = min(delay * 2, options.maxBackoff)
        }
        return nil
    }

    /// Expires, resumes, repairs and prunes the held requests this member owns, until
    /// cancelled (resumed deliveries in flight are then abandoned; the next owner resumes them).
    func maintainHolds() async {
        guard let partitionCount = await inspectedPartitionCount() else { return }
        let running = RunningResumes()
        let waitingGauge = Gauge(label: "sluice_holds_waiting")
        await withDiscardingTaskGroup { deliveries in
            var owned: Set<Int> = []
            var lastResume: ContinuousClock.Instant?, lastRepair: ContinuousClock.Instant?
            var lastPrune = ContinuousClock.now
            func due(_ last: ContinuousClock.Instant?, every interval: Duration, now: ContinuousClock.Instant) -> Bool {
                last.map { now - $0 >= interval } ?? true
            }
            while !Task.isCancelled {
                let ownership = await holdOwnership(partitionCount: partitionCount)
                let gained = ownership.partitions.subtracting(owned)
                if ownership.partitions != owned {
                    logger.info("held-request partitions owned", metadata: [
                        "partitions": "\(ownership.partitions.sorted())", "gained": "\(gained.sorted())",
                    ])
                    owned = ownership.partitions
                }
                await expireDue(ownership)
                // Scoped approvals read from `holds` (made here or by another Forwarder) release
                // the matching requests this member holds.
                await sendClaims(await holds.claimsDue(ownership), log: logger)
                // Summed over the Forwarders of a group: each counts the partitions it owns.
                waitingGauge.record(await holds.waiting(ownership))
                let now = ContinuousClock.now
                if !gained.isEmpty || due(lastRepair, every: Self.repairInterval, now: now) {
                    lastRepair = now
                    await repairFinalHolds(ownership)
                }
                if !gained.isEmpty || due(lastResume, every: Self.resumeInterval, now: now) {
                    lastResume = now
                    for record in await resumable(ownership) where running.insert(record.requestID) {
                        deliveries.addTask {
                            defer { running.remove(record.requestID) }
                            logger.info("resuming delivery of approved request", metadata: ["request_id": "\(record.requestID)"])
                            _ = await self.release(record, claimed: false)
                        }
                    }
                }
                if now - lastPrune >= Self.pruneInterval {
                    lastPrune = now
                    let cutoff = currentMillis() - holdsRetention.milliseconds
                    let pruned = await holds.prune(before: cutoff, ownership)
                    if pruned > 0 { logger.info("pruned final held requests", metadata: ["count": "\(pruned)"]) }
                }
                do { try await Task.sleep(for: .milliseconds(250)) } catch { return }
            }
        }
    }

    /// Expires the owned held requests whose `hold_timeout` has passed and records their outcome.
    private func expireDue(_ ownership: HoldOwnership) async {
        for record in await holds.expireDue(ownership) {
            guard let inspected = record.request else { continue }
            var log = logger
            log[metadataKey: "request_id"] = "\(record.requestID)"
            log.info("held request expired")
            let event = outcomeEvent(.expired, inspected, status: 410, details: ["reason": "hold_timeout"])
            let reply = record.response.map { Reply(requestID: record.requestID, sessionID: inspected.metadata.sessionID, response: $0) }
            _ = await publish(reply: reply, audit: event, meta: inspected.metadata, log: log)
        }
    }

    /// Owned approved requests whose delivery is not recorded and whose delivery budget (plus
    /// `resumeMargin`) has passed since they were approved.
    func resumable(_ ownership: HoldOwnership, now: Int64 = currentMillis()) async -> [HoldRecord] {
        await holds.approvedUndelivered.filter { record in
            guard ownership.owns(record.requestID), let connection = record.request?.metadata.connection else { return false }
            let budget = (targets[connection]?.timeout ?? requestTimeout) + Self.resumeMargin
            return record.updatedAtMillis + budget.milliseconds <= now
        }
    }

    /// Gives every owned final held request its outcome when the ledger has none and it has
    /// been final for `repairGrace`: a Forwarder persisted the final record (`denied`,
    /// `expired`, `delivered`, `failed`) and stopped before its outcome was accepted. The
    /// stored reply is sent again (an Ingress still waiting gets it; others ignore it).
    func repairFinalHolds(_ ownership: HoldOwnership, now: Int64 = currentMillis()) async {
        var repaired = 0
        let before = now - Self.repairGrace.milliseconds
        // Older than the ledger's memory: it could not tell whether an outcome was recorded.
        let forgotten = now - outcomeRetention.milliseconds
        for record in await holds.finalRecords
        where ownership.owns(record.requestID) && record.updatedAtMillis <= before && record.updatedAtMillis > forgotten {
            guard let inspected = record.request, await ledger.outcome(of: record.requestID) == nil else { continue }
            let kind: AuditEvent.Kind
            switch record.status {
            case .denied: kind = .denied
            case .expired: kind = .expired
            case .delivered: kind = .delivered
            case .failed: kind = .failed
            case .pending, .approved: continue
            }
            var log = logger
            log[metadataKey: "request_id"] = "\(record.requestID)"
            log.warning("final held request had no outcome; recording it now", metadata: ["status": "\(record.status.rawValue)"])
            let event = outcomeEvent(kind, inspected, status: record.response?.status, details: ["reason": "recovered_from_holds"])
            let reply = record.response.map { Reply(requestID: record.requestID, sessionID: inspected.metadata.sessionID, response: $0) }
            guard await publish(reply: reply, audit: event, meta: inspected.metadata, log: log) else { return }
            repaired += 1
        }
        if repaired > 0 { logger.info("outcomes recovered for final held requests", metadata: ["count": "\(repaired)"]) }
    }
}
