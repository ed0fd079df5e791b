// HopTrace --bytes / --ledger: bytes per topic per accepted request, one outcome per accepted
// request, and the audit event ids a sink should hold (see main.swift for the usage).
import Foundation
import KafkaBus
import Pipeline
import Synchronization

/// What one topic's scan counted.
final class TopicTally: Sendable {
    struct State {
        var records = 0
        var bytes = 0
        /// `requests`: the request ids in the window.
        var accepted: Set<String> = []
        /// `requests`: where and when each request was published; other topics: the ids seen.
        var placed: [String: (partition: Int, millis: Int64)] = [:]
        var ids: Set<String> = []
        /// `outcomes`: records per request id (any time) and the first record's event id.
        var outcomeRecords: [String: Int] = [:]
        var firstOutcome: [String: (offset: Int64, eventID: String)] = [:]
        /// `audit`: every event id.
        var eventIDs: Set<String> = []
        var undecodable = 0
        /// Records whose key maps (murmur2) to another partition than the one they are in.
        var misplaced = 0
        var keysPerPartition: [Int: [String: Int]] = [:]
    }
    let state = Mutex(State())
}

/// Waits until `group` has committed everything on `audit` and `outcomes`; `false` after `timeout`.
func settle(_ bus: KafkaBus, group: String, topics: Topics, timeout: Duration = .seconds(120)) async throws -> Bool {
    let start = ContinuousClock.now
    while true {
        let lag = try await bus.lag(group: group, topics: [topics.audit, topics.outcomes])
        let behind = lag.values.reduce(Int64(0)) { $0 + $1.events }
        if behind == 0 {
            print("settled: \(group) has committed everything (waited \(ContinuousClock.now - start))")
            return true
        }
        if ContinuousClock.now - start > timeout {
            print("settle: \(group) still \(behind) events behind after \(timeout)")
            return false
        }
        try await Task.sleep(for: .milliseconds(250))  // polling the condition, bounded above
    }
}

/// Prints bytes per topic and, for `--ledger`, the outcome count per accepted request;
/// `false` when the ledger check (or a settle) failed.
func ledger(_ bus: KafkaBus, topics: Topics, options: Options) async throws -> Bool {
    var ok = true
    for group in options.settle {
        if try await !settle(bus, group: topics.consumerGroup(group), topics: topics) { ok = false }
    }
    let since = options.since, until = options.until
    let names = [topics.requests, topics.inspected, topics.approvals, topics.replies, topics.holds, topics.outcomes, topics.audit, topics.deadletter]
    var tallies: [String: TopicTally] = [:]
    for topic in names {
        let tally = TopicTally()
        tallies[topic] = tally
        let kind = topic
        let count: Int
        do { count = try await bus.partitionCount(topic: topic) } catch let error as BusError where error.kind == .unknownTopic { continue }
        do {
            try await scan(bus, topic: topic) { message in
                let inWindow = message.timestampMillis >= since && message.timestampMillis <= until
                let size = (message.key?.count ?? 0) + message.value.count + message.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.count }
                let id = message.header(MessageHeader.requestID).flatMap { String(validating: $0, as: UTF8.self) }
                tally.state.withLock { t in
                    if let key = message.key, partition(forKey: key, partitions: count) != message.partition { t.misplaced += 1 }
                    if kind == topics.replies, let key = message.keyString {
                        t.keysPerPartition[message.partition, default: [:]][key, default: 0] += 1
                    }
                    if inWindow {
                        t.records += 1
                        t.bytes += size
                    }
                    if kind == topics.requests, inWindow, let id {
                        t.accepted.insert(id)
                        t.placed[id] = (message.partition, message.timestampMillis)
                    }
                    if kind == topics.inspected || kind == topics.replies, let id { t.ids.insert(id) }
                    if kind == topics.outcomes || kind == topics.audit {
                        // Only outcome records count on `outcomes` (the stages' catch-up markers do not).
                        if kind == topics.outcomes, message.header(MessageHeader.kind).map({ String(decoding: $0, as: UTF8.self) }) != "outcome" { return }
                        guard let event = AuditEventJSON.decodeCanonical(message.value) else {
                            t.undecodable += 1
                            return
                        }
                        if kind == topics.audit {
                            t.eventIDs.insert(event.eventID)
                        } else {
                            let request = id ?? event.requestID
                            t.outcomeRecords[request, default: 0] += 1
                            if let first = t.firstOutcome[request], first.offset <= message.offset { return }
                            t.firstOutcome[request] = (message.offset, event.eventID)
                        }
                    }
                }
            }
        } catch let error as BusError where error.kind == .unknownTopic {
            continue  // a topic nobody created (e.g. deadletter with nothing dead): nothing written
        }
    }
    let accepted = tallies[topics.requests]?.state.withLock { $0.accepted } ?? []
    let perRequest = Double(max(accepted.count, 1))
    print("bytes written per topic between \(since) and \(until == .max ? "now" : String(until)) ms, \(accepted.count) accepted requests:")
    for topic in names {
        let (records, bytes) = tallies[topic]?.state.withLock { ($0.records, $0.bytes) } ?? (0, 0)
        let perRecords = String(format: "%.2f", Double(records) / perRequest)
        let perBytes = String(format: "%.0f", Double(bytes) / perRequest)
        print("  topic \(topic) records \(records) bytes \(bytes) per_request_records \(perRecords) per_request_bytes \(perBytes)")
    }
    for topic in names {
        let misplaced = tallies[topic]?.state.withLock { $0.misplaced } ?? 0
        if misplaced > 0 { print("  misplaced: \(topic) has \(misplaced) records in another partition than their key maps to") }
    }
    if let keys = tallies[topics.replies]?.state.withLock({ $0.keysPerPartition }) {
        let text = keys.keys.sorted().map { p in "\(p): " + (keys[p] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
        print("  replies by partition and key: " + text.joined(separator: "; "))
    }
    guard options.mode == .ledger else { return ok }

    let (outcomeRecords, firstOutcome, badOutcomes) = tallies[topics.outcomes]?.state.withLock { ($0.outcomeRecords, $0.firstOutcome, $0.undecodable) } ?? ([:], [:], 0)
    var none = 0, several = 0, records = 0
    for id in accepted {
        let n = outcomeRecords[id] ?? 0
        records += n
        if n == 0 { none += 1 }
        if n > 1 { several += 1 }
    }
    print("outcomes: \(accepted.count) accepted requests, \(records) outcome records for them; with 0 outcomes: \(none); with >1: \(several)"
        + (badOutcomes > 0 ? "; \(badOutcomes) undecodable outcome records" : ""))
    if none > 0 || several > 0 || accepted.isEmpty { ok = false }
    if none > 0 {
        // Where the requests without an outcome stopped: published when, on which partition,
        // inspected or not, answered or not.
        let placed = tallies[topics.requests]?.state.withLock { $0.placed } ?? [:]
        let inspected = tallies[topics.inspected]?.state.withLock { $0.ids } ?? []
        let replied = tallies[topics.replies]?.state.withLock { $0.ids } ?? []
        let first = placed.values.map(\.millis).min() ?? 0
        let last = placed.values.map(\.millis).max() ?? 0
        for id in accepted.filter({ outcomeRecords[$0] == nil }).sorted().prefix(20) {
            let p = placed[id]
            print("  no outcome: \(id) on requests partition \(p?.partition ?? -1), published \((p?.millis ?? 0) - first) ms after the first request "
                + "(the last at \(last - first) ms); inspected: \(inspected.contains(id)), replied: \(replied.contains(id))")
        }
    }

    if let path = options.auditIDs {
        let (events, badAudit) = tallies[topics.audit]?.state.withLock { ($0.eventIDs, $0.undecodable) } ?? ([], 0)
        let expected = events.union(firstOutcome.values.map(\.eventID))
        let text = expected.sorted().joined(separator: "\n") + (expected.isEmpty ? "" : "\n")
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) } catch {
            fail("cannot write the audit ids to \(path): \(error)")
        }
        print("audit ids: \(events.count) events on audit, \(firstOutcome.count) first outcomes, \(expected.count) distinct ids written to \(path)"
            + (badAudit > 0 ? "; \(badAudit) undecodable audit records" : ""))
    }
    return ok
}
