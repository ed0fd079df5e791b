import BusContract
import Foundation
import Logging
@testable import Pipeline
import Testing

/// The ledger's memory bound: outcomes past the exact window live on as fingerprints and answer
/// as before; the Recorder's ledger keeps them exact until it has moved past them.
@Suite("Outcome ledger aging", .serialized)
struct OutcomeLedgerAgingTests {
    static func outcome(_ kind: AuditEvent.Kind, _ id: String) -> AuditEvent {
        AuditEvent(kind: kind, stage: "forwarder", requestID: id, sessionID: "s", status: 200)
    }

    static func uuid() -> String { UUID().uuidString.lowercased() }

    @Test("request ids: canonical lowercase UUIDs are 16 bytes, anything else stays a string", arguments: [
        ("0f8b2c1e-7a3d-4b5e-9c6f-112233445566", true),
        ("0F8B2C1E-7A3D-4B5E-9C6F-112233445566", false),
        ("0f8b2c1e7a3d4b5e9c6f112233445566", false),
        ("0f8b2c1e-7a3d-4b5e-9c6f-11223344556", false),
        ("0f8b2c1e-7a3d-4b5e-9c6f-1122334455667", false),
        ("0f8b2c1e-7a3d-4b5e-9c6f_112233445566", false),
        ("0f8b2c1e-7a3d-4b5e-9c6g-112233445566", false),
        ("r-1", false),
        ("", false),
    ])
    func ledgerKeys(id: String, compact: Bool) {
        let key = LedgerKey(id)
        if case .uuid = key { #expect(compact) } else { #expect(!compact); #expect(key == .other(id)) }
    }

    @Test("distinct UUIDs stay distinct keys, one UUID is one key")
    func uuidKeysAreExact() {
        var seen = Set<LedgerKey>()
        for _ in 0..<10_000 { seen.insert(LedgerKey(Self.uuid())) }
        #expect(seen.count == 10_000)
        let id = Self.uuid()
        #expect(LedgerKey(id) == LedgerKey(String(id)))
        #expect(LedgerKey("00000000-0000-0000-0000-000000000001") != LedgerKey("10000000-0000-0000-0000-000000000000"))
    }

    @Test("aged outcomes: every one found with its kind, unknown ids not, runs stay few, old runs dropped")
    func agedOutcomes() {
        var aged = AgedOutcomes()
        let kinds: [AuditEvent.Kind] = [.delivered, .blocked, .expired, .failed, .denied]
        var inserted: [(LedgerKey, AuditEvent.Kind)] = []
        for batch in 0..<40 {
            var items: [(key: LedgerKey, kind: AuditEvent.Kind)] = []
            for i in 0..<2_500 {
                let key = i % 10 == 0 ? LedgerKey("other-\(batch)-\(i)") : LedgerKey(Self.uuid())
                items.append((key, kinds[(batch + i) % kinds.count]))
            }
            aged.insert(items, newestMillis: Int64(batch))
            inserted += items.map { ($0.key, $0.kind) }
        }
        #expect(aged.count == 100_000)
        #expect(aged.runCount <= 17)
        #expect(inserted.allSatisfy { aged.kind(of: $0.0) == $0.1 })
        var falsePositives = 0
        for _ in 0..<100_000 where aged.kind(of: LedgerKey(Self.uuid())) != nil { falsePositives += 1 }
        #expect(falsePositives == 0)
        aged.drop(olderThan: 40)
        #expect(aged.count == 0)
        #expect(aged.kind(of: inserted[0].0) == nil)
    }

    @Test("an aged outcome answers outcome(of:), claim and end as an exact one does; retention forgets it")
    func agedAnswersAsExact() async throws {
        let env = try OutcomeLedgerTests.Env()
        defer { Task { await env.cleanUp() } }
        let kinds: [AuditEvent.Kind] = [.delivered, .blocked, .expired, .failed, .denied]
        var ids: [(String, AuditEvent.Kind)] = []
        for i in 0..<300 {
            let id = i % 7 == 0 ? "r-\(i)" : Self.uuid()
            ids.append((id, kinds[i % kinds.count]))
            try await env.bus.publish(try env.context.codec.outcome(Self.outcome(kinds[i % kinds.count], id)))
        }
        let expected = ids
        let ledger = OutcomeLedger(context: env.context, exactWindow: .milliseconds(1))
        try await ledger.whileFollowing {
            #expect(await ledger.sizes.exact == 300)
            await ledger.prune(now: currentMillis() + 10_000)
            #expect(await ledger.sizes == (exact: 0, aged: 300))
            for (id, kind) in expected {
                #expect(await ledger.outcome(of: id) == kind)
                #expect(await ledger.claim(id) == .ended(kind))
                let ending = try await ledger.end(Self.outcome(.expired, id))
                #expect(ending == .alreadyEnded(kind))
            }
            let fresh = Self.uuid()
            #expect(await ledger.outcome(of: fresh) == nil)
            #expect(await ledger.claim(fresh) == .claimed)
            await ledger.release(fresh)
            // Past the retention (a day by default) nothing is known: the topic has deleted it too.
            await ledger.prune(now: currentMillis() + 2 * 86_400_000)
            #expect(await ledger.sizes == (exact: 0, aged: 0))
            #expect(await ledger.outcome(of: expected[1].0) == nil)
        }
    }

    @Test("the Recorder's ledger keeps an outcome exact until it has read past it, so a duplicate is still told apart")
    func recorderKeepsExactUntilChecked() async throws {
        let env = try OutcomeLedgerTests.Env()
        defer { Task { await env.cleanUp() } }
        let codec = env.context.codec
        let id = Self.uuid()
        try await env.bus.publish(try codec.outcome(Self.outcome(.delivered, id)))
        try await env.bus.publish(try codec.outcome(Self.outcome(.expired, id)))
        let ledger = OutcomeLedger(context: env.context, exactWindow: .seconds(1), decidesFirstRecords: true)
        try await ledger.whileFollowing {
            let reader = try await env.bus.read(topic: env.context.topics.outcomes, from: .beginning)
            var records: [BusMessage] = []
            for try await m in reader where !TopicFollower.isMarker(m) {
                records.append(m)
                if records.count == 2 { break }
            }
            await reader.close()
            let (first, duplicate) = (records[0], records[1])
            // The window has long passed, but the Recorder has not asked yet: still exact.
            await ledger.prune(now: currentMillis() + 10_000)
            #expect(await ledger.sizes == (exact: 1, aged: 0))
            let firstIsFirst = try await ledger.isFirst(first)
            #expect(firstIsFirst)
            // Asked about the first only (records of the same moment): the duplicate may follow.
            await ledger.prune(now: currentMillis() + 10_000)
            #expect(await ledger.sizes == (exact: 1, aged: 0))
            let duplicateIsFirst = try await ledger.isFirst(duplicate)
            #expect(duplicateIsFirst == false)
            // A record of the same partition written a window later: the Recorder is past it.
            let later = BusMessage(
                topic: duplicate.topic, partition: duplicate.partition, offset: duplicate.offset, key: Array("other".utf8),
                headers: [], value: [], timestampMillis: duplicate.timestampMillis + 1_000)
            _ = try await ledger.isFirst(later)
            await ledger.prune(now: currentMillis() + 10_000)
            #expect(await ledger.sizes == (exact: 0, aged: 1))
            #expect(await ledger.outcome(of: id) == .delivered)
        }
    }

    @Test("the Recorder's ledger ages what it never reads (another instance's partitions) after an hour")
    func recorderHorizon() async throws {
        let env = try OutcomeLedgerTests.Env()
        defer { Task { await env.cleanUp() } }
        try await env.bus.publish(try env.context.codec.outcome(Self.outcome(.blocked, "r-h")))
        let ledger = OutcomeLedger(context: env.context, exactWindow: .seconds(1), decidesFirstRecords: true)
        try await ledger.whileFollowing {
            await ledger.prune(now: currentMillis() + 600_000)
            #expect(await ledger.sizes == (exact: 1, aged: 0))
            await ledger.prune(now: currentMillis() + 3_700_000)
            #expect(await ledger.sizes == (exact: 0, aged: 1))
            #expect(await ledger.outcome(of: "r-h") == .blocked)
        }
    }

    @Test("a view that ends every request itself (sluice run's shared view, a Forwarder) still ages them as it reads them back")
    func ownOutcomesAge() async throws {
        let env = try OutcomeLedgerTests.Env()
        defer { Task { await env.cleanUp() } }
        let ledger = OutcomeLedger(context: env.context, exactWindow: .milliseconds(1))
        let total = 10_000
        try await ledger.whileFollowing {
            for batch in stride(from: 0, to: total, by: 200) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for i in batch..<(batch + 200) {
                        group.addTask { _ = try await ledger.end(Self.outcome(.delivered, "own-\(i)")) }
                    }
                    try await group.waitForAll()
                }
            }
            // Reading its own 10,000 records back triggers a prune: what is older than the
            // window and read back moves to the fingerprints. Wait for that (bounded).
            let deadline = ContinuousClock.now + .seconds(30)
            while await ledger.sizes.aged == 0, ContinuousClock.now < deadline { await Task.yield() }
            let sizes = await ledger.sizes
            #expect(sizes.aged > total / 2)
            #expect(sizes.exact + sizes.aged == total)
            #expect(await ledger.outcome(of: "own-0") == .delivered)
            #expect(await ledger.outcome(of: "own-\(total - 1)") == .delivered)
        }
    }
}
