import Foundation
import Pipeline
import Testing
@testable import Forwarder

@Suite("Hold book")
struct HoldBookTests {
    static let policy = HoldPolicy(approvers: ["secops"], approvalsRequired: 2, holdTimeoutMillis: 1000)

    static func held(_ id: String = "r1", requester: String = "carol") -> InspectedRequest {
        InspectedRequest(
            metadata: RequestMetadata(
                requestID: id, sessionID: "s", identity: CallerIdentity(id: requester, groups: ["ci", "secops"], method: "api_key"),
                connection: "held", receivedAtMillis: 0, deadlineMillis: 1, replyTo: "i"),
            verdict: Verdict(decision: .hold, reasons: ["method DELETE"]), findings: [],
            request: HTTPRequestData(method: "DELETE", path: "/x", query: "", headers: [], body: Data()))
    }

    static func vote(_ who: String, _ vote: ApprovalDecision.Vote = .approve, groups: [String] = ["secops"], id: String = "r1") -> ApprovalDecision {
        ApprovalDecision(requestID: id, vote: vote, approver: CallerIdentity(id: who, groups: groups, method: "api_key"), reason: "r")
    }

    @Test("two distinct approvers release; the same approver twice counts once")
    func twoOfM() {
        var book = HoldBook()
        guard case .parked = book.park(Self.held(), policy: Self.policy, now: 0) else { Issue.record("not parked"); return }
        guard case .recorded(let r1) = book.decide(Self.vote("alice"), policy: Self.policy, now: 1) else { Issue.record("first"); return }
        #expect(r1.status == .pending && r1.approvers == ["alice"])
        guard case .ignored = book.decide(Self.vote("alice"), policy: Self.policy, now: 2) else { Issue.record("dup"); return }
        guard case .approved(let r2) = book.decide(Self.vote("bob"), policy: Self.policy, now: 3) else { Issue.record("second"); return }
        #expect(r2.approvers == ["alice", "bob"])
        guard case .ignored = book.decide(Self.vote("dan", .deny), policy: Self.policy, now: 4) else { Issue.record("after"); return }
        #expect(book.finish("r1", status: .delivered, response: nil, now: 5)?.status == .delivered)
    }

    @Test("self-approval and non-approvers are rejected; one deny denies")
    func rejections() {
        var book = HoldBook()
        _ = book.park(Self.held(requester: "carol"), policy: Self.policy, now: 0)
        guard case .rejected = book.decide(Self.vote("carol"), policy: Self.policy, now: 1) else { Issue.record("self"); return }
        guard case .rejected = book.decide(Self.vote("eve", groups: ["ci"]), policy: Self.policy, now: 1) else { Issue.record("non"); return }
        guard case .denied(let r) = book.decide(Self.vote("bob", .deny), policy: Self.policy, now: 2) else { Issue.record("deny"); return }
        #expect(r.response?.status == 403)
        #expect(book.expire(now: 10_000).isEmpty)
    }

    @Test("a decision before its request is kept and applied at park")
    func early() {
        var book = HoldBook()
        let single = HoldPolicy(approvers: ["secops"], approvalsRequired: 1, holdTimeoutMillis: 1000)
        guard case .early = book.decide(Self.vote("alice"), policy: nil, now: 0) else { Issue.record("early"); return }
        guard case .decided(let r) = book.park(Self.held(), policy: single, now: 1) else { Issue.record("park"); return }
        #expect(r.status == .approved)
        guard case .known = book.park(Self.held(), policy: single, now: 2) else { Issue.record("redelivery"); return }
    }

    @Test("expiry at hold_timeout; restore from the changelog; prune after retention")
    func expiryRestorePrune() {
        var book = HoldBook()
        _ = book.park(Self.held(), policy: Self.policy, now: 0)
        #expect(book.expire(now: 999).isEmpty)
        let expired = book.expire(now: 1000)
        #expect(expired.map(\.status) == [.expired])
        #expect(expired.first?.response?.status == 410)
        guard case .ignored = book.decide(Self.vote("alice"), policy: Self.policy, now: 1001) else { Issue.record("late"); return }
        var restored = HoldBook()
        restored.merge(.record(expired[0]))
        #expect(restored.record("r1")?.status == .expired)
        #expect(restored.prune(before: 1000).isEmpty)
        #expect(restored.prune(before: 1001) == ["r1"])
        #expect(restored.record("r1") == nil)
    }

    /// How a held request leaves the pending state.
    enum Ending: String, CaseIterable, Sendable { case denied, expired, delivered, failed }

    @Test("only pending and approved records keep the whole body; a final one keeps the preview", arguments: Ending.allCases)
    func finalRecordsKeepOnlyThePreview(_ ending: Ending) throws {
        var book = HoldBook()
        let single = HoldPolicy(approvers: ["secops"], approvalsRequired: 1, holdTimeoutMillis: 1000)
        var held = Self.held()
        held.request.body = Data(repeating: 0x62, count: 64 * 1024)
        guard case .parked(let parked) = book.park(held, policy: single, now: 0) else { Issue.record("not parked"); return }
        #expect(parked.request?.request.body.count == 64 * 1024)
        let final: HoldRecord?
        switch ending {
        case .denied:
            guard case .denied(let r) = book.decide(Self.vote("bob", .deny), policy: single, now: 1) else { Issue.record("deny"); return }
            final = r
        case .expired:
            final = book.expire(now: 10_000).first
        case .delivered, .failed:
            guard case .approved(let r) = book.decide(Self.vote("bob"), policy: single, now: 1) else { Issue.record("approve"); return }
            #expect(r.request?.request.body.count == 64 * 1024, "an approved request keeps its body for delivery")
            final = book.finish("r1", status: ending == .delivered ? .delivered : .failed, response: nil, now: 2)
        }
        let record = try #require(final)
        #expect(record.status.rawValue == ending.rawValue)
        #expect(record.request?.request.body.count == HoldRecord.previewBytes + 1, "the record returned for the changelog")
        #expect(book.record("r1")?.request?.request.body.count == HoldRecord.previewBytes + 1, "the record kept in memory")
        // A final record restored from an older changelog is cut too.
        var restored = HoldBook()
        var old = record
        old.request?.request.body = Data(repeating: 0x62, count: 64 * 1024)
        restored.merge(.record(old))
        #expect(restored.record("r1")?.request?.request.body.count == HoldRecord.previewBytes + 1)
    }
}
