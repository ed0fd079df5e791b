import Foundation
import Pipeline
import Testing
@testable import Forwarder

/// Invariant 5 at the Forwarder (the authority): persons, not identities, decide.
@Suite("Person approval rules")
struct PersonRulesTests {
    static func identity(_ id: String, person: String, groups: [String] = ["secops"]) -> CallerIdentity {
        CallerIdentity(id: id, groups: groups, method: id.hasPrefix("oidc:") ? "oidc" : "api_key", person: person)
    }

    static func held(requester: CallerIdentity, id: String = "r1") -> InspectedRequest {
        InspectedRequest(
            metadata: RequestMetadata(
                requestID: id, sessionID: "s", identity: requester, connection: "held", receivedAtMillis: 0, deadlineMillis: 1, replyTo: "i"),
            verdict: Verdict(decision: .hold), findings: [],
            request: HTTPRequestData(method: "DELETE", path: "/x", query: "", headers: [], body: Data()))
    }

    static func decision(_ by: CallerIdentity, _ vote: ApprovalDecision.Vote = .approve) -> ApprovalDecision {
        ApprovalDecision(requestID: "r1", vote: vote, approver: by, reason: "ok")
    }

    enum Expect: String, Sendable { case selfApproval, forbidden, recorded, approved, denied }

    struct Row: Sendable, CustomStringConvertible {
        var name: String
        var approver: CallerIdentity
        var vote: ApprovalDecision.Vote = .approve
        var expect: Expect
        var description: String { name }
    }

    static let requester = identity("apikey:mallory-agent", person: "mallory@example.com", groups: ["agents"])

    static let rows: [Row] = [
        Row(name: "the requester's other API key (in reviewers)", approver: identity("apikey:mallory-reviewer", person: "mallory@example.com"), expect: .selfApproval),
        Row(name: "the requester's OIDC identity", approver: identity("oidc:u-77", person: "mallory@example.com"), expect: .selfApproval),
        Row(name: "same person, other case", approver: identity("oidc:u-78", person: "Mallory@Example.COM"), expect: .selfApproval),
        Row(name: "the requester's person denying", approver: identity("apikey:mallory-reviewer", person: "mallory@example.com"), vote: .deny, expect: .selfApproval),
        Row(name: "the same identity id, whatever its person claims", approver: identity("apikey:mallory-agent", person: "someone-else"), expect: .selfApproval),
        Row(name: "another person, not an approver", approver: identity("apikey:eve", person: "eve", groups: ["agents"]), expect: .forbidden),
        Row(name: "another person, approver (1 of 2)", approver: identity("apikey:alice", person: "alice"), expect: .recorded),
        Row(name: "another person denies", approver: identity("apikey:alice", person: "alice"), vote: .deny, expect: .denied),
    ]

    @Test("one decision", arguments: rows)
    func oneDecision(row: Row) {
        var book = HoldBook()
        let policy = HoldPolicy(approvers: ["secops"], approvalsRequired: 2, holdTimeoutMillis: 10_000)
        _ = book.park(Self.held(requester: Self.requester), policy: policy, now: 0)
        let outcome = book.decide(Self.decision(row.approver, row.vote), policy: policy, now: 1)
        switch (outcome, row.expect) {
        case (.rejected(.selfApproval, _, let r), .selfApproval), (.rejected(.forbidden, _, let r), .forbidden):
            #expect(r.status == .pending && r.decisions.isEmpty)
        case (.recorded(let r), .recorded): #expect(r.approvingPersons == ["alice"])
        case (.denied(let r), .denied): #expect(r.status == .denied)
        default: Issue.record("\(row.name): got \(outcome)")
        }
    }

    @Test("N-of-M counts distinct persons: two identities of one person count once")
    func distinctPersons() {
        var book = HoldBook()
        let policy = HoldPolicy(approvers: ["secops"], approvalsRequired: 2, holdTimeoutMillis: 10_000)
        _ = book.park(Self.held(requester: Self.requester), policy: policy, now: 0)
        guard case .recorded = book.decide(Self.decision(Self.identity("apikey:alice", person: "alice")), policy: policy, now: 1) else {
            Issue.record("first approval"); return
        }
        guard case .ignored(_, let r) = book.decide(Self.decision(Self.identity("oidc:alice-sub", person: "Alice")), policy: policy, now: 2) else {
            Issue.record("alice's second identity must not count"); return
        }
        #expect(r.status == .pending && r.approvingPersons == ["alice"])
        guard case .approved(let done) = book.decide(Self.decision(Self.identity("apikey:bob", person: "bob")), policy: policy, now: 3) else {
            Issue.record("bob is the second person"); return
        }
        #expect(done.approvingPersons == ["alice", "bob"] && done.status == .approved)
    }

    @Test("a message from before persons decodes with person = id")
    func legacyIdentityDecodes() throws {
        let old = #"{"id":"ci-bot","groups":["ci"],"method":"api_key"}"#
        let identity = try JSONDecoder().decode(CallerIdentity.self, from: Data(old.utf8))
        #expect(identity.person == "ci-bot" && identity.id == "ci-bot")
        let again = try JSONDecoder().decode(CallerIdentity.self, from: try JSONEncoder().encode(Self.requester))
        #expect(again == Self.requester)
    }
}
