import Foundation
import Pipeline
import Testing
@testable import Forwarder

/// The forward-only merge rule every Forwarder applies to changes read from `holds`
/// (`HoldBook.merge`, `HoldBook.isAhead`).
@Suite("Hold book merge")
struct HoldMergeTests {
    /// A record of request `r1` at a given standing.
    static func record(_ status: HoldStatus, parked: Bool = true, decisions: Int = 0, updated: Int64 = 0) -> HoldRecord {
        HoldRecord(
            requestID: "r1", request: parked ? HoldBookTests.held() : nil, status: status,
            decisions: (0..<decisions).map { HoldBookTests.vote("approver-\($0)") },
            approvalsRequired: 2, createdAtMillis: 0, expiresAtMillis: 1000, updatedAtMillis: updated)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        /// The book's record before the change (nil: the book does not know the request).
        var current: HoldRecord?
        var change: HoldsChange
        var outcome: HoldBook.MergeOutcome
        /// The book's record after the change (nil: none).
        var after: HoldRecord?
        var testDescription: String { name }
    }

    static let cases: [Case] = {
        let pending0 = record(.pending)
        let pending1 = record(.pending, decisions: 1, updated: 5)
        let pending2 = record(.pending, decisions: 2, updated: 6)
        let approved = record(.approved, decisions: 2, updated: 7)
        let delivered = record(.delivered, decisions: 2, updated: 8)
        let failed = record(.failed, decisions: 2, updated: 8)
        let expired = record(.expired, updated: 9)
        let denied = record(.denied, decisions: 1, updated: 9)
        let early1 = record(.pending, parked: false, decisions: 1)
        let early2 = record(.pending, parked: false, decisions: 2)
        return [
            Case(name: "unknown request: any record is taken", current: nil, change: .record(pending0), outcome: .applied, after: pending0),
            Case(name: "unknown request: a final record is taken", current: nil, change: .record(expired), outcome: .applied, after: expired),
            Case(name: "own write echoed back: unchanged", current: pending1, change: .record(pending1), outcome: .kept, after: pending1),
            Case(name: "pending: one more decision moves forward", current: pending0, change: .record(pending1), outcome: .applied, after: pending1),
            Case(name: "pending: an older write with fewer decisions is ignored", current: pending2, change: .record(pending1), outcome: .kept, after: pending2),
            Case(name: "pending → approved", current: pending1, change: .record(approved), outcome: .applied, after: approved),
            Case(name: "approved never goes back to pending", current: approved, change: .record(pending2), outcome: .kept, after: approved),
            Case(name: "approved → delivered", current: approved, change: .record(delivered), outcome: .applied, after: delivered),
            Case(name: "approved → failed", current: approved, change: .record(failed), outcome: .applied, after: failed),
            Case(name: "delivered never goes back to approved (own newer write echoed after an older one)", current: delivered, change: .record(approved), outcome: .kept, after: delivered),
            Case(name: "pending → expired", current: pending1, change: .record(expired), outcome: .applied, after: expired),
            Case(name: "pending → denied", current: pending0, change: .record(denied), outcome: .applied, after: denied),
            Case(name: "expired never goes back to pending", current: expired, change: .record(pending2), outcome: .kept, after: expired),
            Case(name: "a final record never changes: expired stays, denied ignored", current: expired, change: .record(denied), outcome: .kept, after: expired),
            Case(name: "a final record never changes: delivered stays, expired ignored", current: delivered, change: .record(expired), outcome: .kept, after: delivered),
            Case(name: "final beats approved (another Forwarder expired it first)", current: approved, change: .record(expired), outcome: .applied, after: expired),
            Case(name: "early decisions → parked", current: early2, change: .record(pending0), outcome: .applied, after: pending0),
            Case(name: "parked never goes back to early decisions only", current: pending0, change: .record(early2), outcome: .kept, after: pending0),
            Case(name: "early decisions: one more moves forward", current: early1, change: .record(early2), outcome: .applied, after: early2),
            Case(name: "tombstone removes a final record", current: delivered, change: .removed(requestID: "r1"), outcome: .removed, after: nil),
            Case(name: "tombstone removes a pending record", current: pending1, change: .removed(requestID: "r1"), outcome: .removed, after: nil),
            Case(name: "tombstone of an unknown request: nothing", current: nil, change: .removed(requestID: "r1"), outcome: .kept, after: nil),
        ]
    }()

    @Test("merge is forward-only", arguments: HoldMergeTests.cases)
    func mergeRule(_ c: Case) {
        var book = HoldBook()
        if let current = c.current { book.merge(.record(current)) }
        #expect(book.merge(c.change) == c.outcome)
        #expect(book.record("r1") == c.after)
    }

    /// One writer's history of one request, as the book's own transitions produce it.
    static func history() -> [HoldRecord] {
        let policy = HoldPolicy(approvers: ["secops"], approvalsRequired: 3, holdTimeoutMillis: 1000)
        var book = HoldBook()
        var out: [HoldRecord] = []
        if case .early(let r) = book.decide(HoldBookTests.vote("alice"), policy: nil, now: 1) { out.append(r) }
        if case .parked(let r) = book.park(HoldBookTests.held(), policy: policy, now: 2) { out.append(r) }
        if case .recorded(let r) = book.decide(HoldBookTests.vote("bob"), policy: policy, now: 3) { out.append(r) }
        if case .approved(let r) = book.decide(HoldBookTests.vote("dan"), policy: policy, now: 4) { out.append(r) }
        if let r = book.finish("r1", status: .delivered, response: nil, now: 5) { out.append(r) }
        return out
    }

    @Test("one writer's records in any order leave the last one")
    func anyOrderEndsAtTheLast() throws {
        let records = Self.history()
        try #require(records.map(\.status) == [.pending, .pending, .pending, .approved, .delivered])
        // Each transition raises the standing: replaying in order applies every record.
        var inOrder = HoldBook()
        for r in records { #expect(inOrder.merge(.record(r)) == .applied) }
        var orders = 0
        for order in permutations(Array(records.indices)) {
            var book = HoldBook()
            for i in order { book.merge(.record(records[i])) }
            #expect(book.record("r1")?.status == .delivered, "order \(order)")
            #expect(book.record("r1")?.decisions.count == 3, "order \(order)")
            orders += 1
        }
        #expect(orders == 120)
    }

    @Test("expiry and pruning touch only owned requests")
    func ownership() {
        let count = 4
        let ids = (0..<40).map { "own-\($0)" }
        let mine = HoldOwnership(partitions: [1, 3], partitionCount: count)
        var book = HoldBook()
        let policy = HoldPolicy(approvers: ["secops"], approvalsRequired: 1, holdTimeoutMillis: 10)
        for id in ids { _ = book.park(HoldBookTests.held(id), policy: policy, now: 0) }
        let expired = book.expire(now: 100, owns: mine.owns)
        let owned = ids.filter { [1, 3].contains(HoldOwnership.partition(of: $0, partitionCount: count)) }
        #expect(!owned.isEmpty && owned.count < ids.count, "the ids spread over owned and other partitions")
        #expect(Set(expired.map(\.requestID)) == Set(owned))
        #expect(book.records.values.filter { $0.status == .pending }.count == ids.count - owned.count)
        #expect(Set(book.prune(before: 1000, owns: mine.owns)) == Set(owned))
        #expect(book.records.count == ids.count - owned.count)
        #expect(!HoldOwnership.none.owns(ids[0]))
    }
}

/// Every ordering of `items` (Heap's algorithm).
func permutations<T>(_ items: [T]) -> [[T]] {
    var a = items
    var out: [[T]] = []
    func generate(_ k: Int) {
        if k <= 1 {
            out.append(a)
            return
        }
        generate(k - 1)
        for i in 0..<(k - 1) {
            a.swapAt(k % 2 == 0 ? i : 0, k - 1)
            generate(k - 1)
        }
    }
    generate(a.count)
    return out
}
