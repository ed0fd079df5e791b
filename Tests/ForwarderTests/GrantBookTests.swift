import Foundation
import Pipeline
import Testing
@testable import Forwarder

/// `GrantBook`: which calls a scoped approval releases, and how often.
@Suite("Grant book")
struct GrantBookTests {
    static let policy = HoldPolicy(approvers: ["secops"], approvalsRequired: 1, holdTimeoutMillis: 60_000)
    static let alice = CallerIdentity(id: "apikey:alice", groups: ["secops"], method: "api_key")

    static func held(
        _ id: String = "r1", person: String = "carol", method: String = "DELETE", path: String = "/db/1",
        body: String = "", findings: [FindingSummary] = []
    ) -> HoldRecord {
        let inspected = InspectedRequest(
            metadata: RequestMetadata(
                requestID: id, sessionID: "s", identity: CallerIdentity(id: "apikey:\(person)", groups: ["ci"], method: "api_key", person: person),
                connection: "held", receivedAtMillis: 0, deadlineMillis: 1, replyTo: "i"),
            verdict: Verdict(decision: .hold, reasons: ["method DELETE"]), findings: findings,
            request: HTTPRequestData(method: method, path: path, query: "", headers: [], body: Data(body.utf8)))
        return HoldRecord(requestID: id, request: inspected, approvalsRequired: 1, createdAtMillis: 0, expiresAtMillis: 60_000)
    }

    static func decision(_ request: GrantRequest, id: String = "g1") -> ApprovalDecision {
        ApprovalDecision(requestID: "r1", vote: .approve, approver: alice, reason: "cleanup", decisionID: id, grant: request)
    }

    static let secret = FindingSummary(rule: "github-pat", ruleClass: "credential", severity: "critical", location: "body", start: 0, end: 4, fingerprint: "ab")
    static let email = FindingSummary(rule: "email", ruleClass: "pii", severity: "low", location: "body", start: 0, end: 4, fingerprint: "cd")

    struct MakeRow: Sendable, CustomStringConvertible {
        var name: String
        var request: GrantRequest
        var findings: [FindingSummary] = []
        var approvalsRequired = 1
        var refusal: GrantRefusal?
        var description: String { name }
    }

    static let makeRows: [MakeRow] = [
        MakeRow(name: "an hour, any number", request: .init(windowMillis: 3_600_000, maxCalls: nil, pathGlob: nil, sameBodyShape: false)),
        MakeRow(name: "a PII finding does not prevent it", request: .init(windowMillis: 60_000, maxCalls: 3, pathGlob: nil, sameBodyShape: false),
                findings: [email]),
        MakeRow(name: "a credential finding: never", request: .init(windowMillis: 60_000, maxCalls: 3, pathGlob: nil, sameBodyShape: false),
                findings: [email, secret], refusal: .credential),
        MakeRow(name: "two approvals required: never", request: .init(windowMillis: 60_000, maxCalls: 3, pathGlob: nil, sameBodyShape: false),
                approvalsRequired: 2, refusal: .severalApprovalsRequired(2)),
        MakeRow(name: "over a day", request: .init(windowMillis: 24 * 3_600_000 + 1, maxCalls: nil, pathGlob: nil, sameBodyShape: false), refusal: .window),
        MakeRow(name: "under a second", request: .init(windowMillis: 999, maxCalls: nil, pathGlob: nil, sameBodyShape: false), refusal: .window),
        MakeRow(name: "zero calls", request: .init(windowMillis: 60_000, maxCalls: 0, pathGlob: nil, sameBodyShape: false), refusal: .calls),
        MakeRow(name: "1001 calls", request: .init(windowMillis: 60_000, maxCalls: 1001, pathGlob: nil, sameBodyShape: false), refusal: .calls),
        MakeRow(name: "a glob not starting with /", request: .init(windowMillis: 60_000, maxCalls: nil, pathGlob: "db/*", sameBodyShape: false),
                refusal: .glob("db/*")),
    ]

    @Test(arguments: makeRows)
    func make(_ row: MakeRow) {
        let policy = HoldPolicy(approvers: ["secops"], approvalsRequired: row.approvalsRequired, holdTimeoutMillis: 60_000)
        let result = GrantBook.make(Self.decision(row.request), request: row.request, record: Self.held(findings: row.findings), policy: policy, now: 1000)
        switch result {
        case .success(let grant):
            #expect(row.refusal == nil)
            #expect(grant.grantID == "g1" && grant.fromRequestID == "r1" && grant.approver == Self.alice)
            #expect(grant.expiresAtMillis == 1000 + row.request.windowMillis)
            #expect(grant.scope.person == "carol" && grant.scope.connection == "held" && grant.scope.method == "DELETE")
        case .failure(let refusal):
            #expect(refusal == row.refusal)
        }
    }

    struct MatchRow: Sendable, CustomStringConvertible {
        var name: String
        var request: GrantRequest
        /// The grant is made from `held(body: fromBody)`.
        var fromBody = ""
        var call: GrantFacts
        var matches: Bool
        var description: String { name }
    }

    static func facts(
        person: String = "carol", connection: String = "held", method: String = "DELETE", path: String = "/db/1",
        body: String = "", credential: Bool = false
    ) -> GrantFacts {
        GrantFacts(connection: connection, person: person, method: method, path: path, bodyKeys: GrantFacts.bodyKeys(Data(body.utf8)), credential: credential)
    }

    static let exact = GrantRequest(windowMillis: 60_000, maxCalls: nil, pathGlob: nil, sameBodyShape: false)
    static let glob = GrantRequest(windowMillis: 60_000, maxCalls: nil, pathGlob: "/db/*", sameBodyShape: false)
    static let shaped = GrantRequest(windowMillis: 60_000, maxCalls: nil, pathGlob: "/db/*", sameBodyShape: true)

    static let matchRows: [MatchRow] = [
        MatchRow(name: "the same call", request: exact, call: facts(), matches: true),
        MatchRow(name: "another person", request: exact, call: facts(person: "dave"), matches: false),
        MatchRow(name: "another connection", request: exact, call: facts(connection: "held2"), matches: false),
        MatchRow(name: "another method", request: exact, call: facts(method: "POST"), matches: false),
        MatchRow(name: "another path, exact scope", request: exact, call: facts(path: "/db/2"), matches: false),
        MatchRow(name: "the path in another case", request: exact, call: facts(path: "/DB/1"), matches: false),
        MatchRow(name: "a glob: another row", request: glob, call: facts(path: "/db/2"), matches: true),
        MatchRow(name: "a glob: not across segments", request: glob, call: facts(path: "/db/2/x"), matches: false),
        MatchRow(name: "a glob: not above", request: glob, call: facts(path: "/db"), matches: false),
        MatchRow(name: "a credential finding is never released", request: glob, call: facts(credential: true), matches: false),
        MatchRow(name: "same body keys", request: shaped, fromBody: #"{"a":1,"b":2}"#, call: facts(path: "/db/9", body: #"{"b":3,"a":4}"#), matches: true),
        MatchRow(name: "another key", request: shaped, fromBody: #"{"a":1,"b":2}"#, call: facts(body: #"{"a":1,"c":2}"#), matches: false),
        MatchRow(name: "an extra key", request: shaped, fromBody: #"{"a":1}"#, call: facts(body: #"{"a":1,"c":2}"#), matches: false),
        MatchRow(name: "not JSON", request: shaped, fromBody: #"{"a":1}"#, call: facts(body: "a=1"), matches: false),
        MatchRow(name: "shape asked, no body either", request: shaped, call: facts(), matches: false),
    ]

    @Test(arguments: matchRows)
    func matching(_ row: MatchRow) throws {
        var book = GrantBook()
        let grant = try GrantBook.make(Self.decision(row.request), request: row.request, record: Self.held(body: row.fromBody), policy: Self.policy, now: 0).get()
        book.add(grant)
        #expect(!book.matching(row.call, now: 1).isEmpty == row.matches)
    }

    @Test("uses are counted up to maxCalls, each request once; expiry and revocation stop it")
    func claims() throws {
        var book = GrantBook()
        let request = GrantRequest(windowMillis: 10_000, maxCalls: 2, pathGlob: "/db/*", sameBodyShape: false)
        book.add(try GrantBook.make(Self.decision(request), request: request, record: Self.held(), policy: Self.policy, now: 0).get())
        func claim(_ id: String, path: String = "/db/2", credential: Bool = false, at now: Int64 = 1) -> GrantBook.ClaimOutcome {
            book.claim(GrantClaim(grantID: "g1", requestID: id, facts: Self.facts(path: path, credential: credential)), now: now)
        }
        guard case .accepted(let first) = claim("x1") else { Issue.record("first claim refused"); return }
        #expect(first.uses == 1 && first.released == ["x1"])
        guard case .repeated(let again) = claim("x1") else { Issue.record("a repeated claim was not recognised"); return }
        #expect(again.uses == 1)
        #expect(claim("x2", path: "/other") == .refused("outside the grant's scope"))
        #expect(claim("x3", credential: true) == .refused("the request has a credential finding"))
        guard case .accepted(let second) = claim("x4") else { Issue.record("second claim refused"); return }
        #expect(second.uses == 2)
        #expect(claim("x5") == .refused("grant exhausted"))
        #expect(book.matching(Self.facts(path: "/db/5"), now: 1).isEmpty, "an exhausted grant matches nothing")

        var timed = GrantBook()
        let window = GrantRequest(windowMillis: 10_000, maxCalls: nil, pathGlob: nil, sameBodyShape: false)
        timed.add(try GrantBook.make(Self.decision(window, id: "g2"), request: window, record: Self.held(), policy: Self.policy, now: 0).get())
        var outcome = timed.claim(GrantClaim(grantID: "g2", requestID: "y1", facts: Self.facts()), now: 10_000)
        #expect(outcome == .refused("grant expired"))
        guard case .accepted = timed.claim(GrantClaim(grantID: "g2", requestID: "y2", facts: Self.facts()), now: 9_999) else {
            Issue.record("claim within the window refused"); return
        }
        let revocation = timed.revoke(GrantRevocation(grantID: "g2", by: Self.alice, atMillis: 5), now: 5)
        let revoked = try #require(revocation)
        #expect(revoked.state(now: 6) == .revoked && revoked.revokedBy == Self.alice)
        let twice = timed.revoke(GrantRevocation(grantID: "g2", by: Self.alice), now: 6)
        #expect(twice == nil, "revoked once")
        outcome = timed.claim(GrantClaim(grantID: "g2", requestID: "y3", facts: Self.facts()), now: 7)
        #expect(outcome == .refused("grant revoked"))
        outcome = timed.claim(GrantClaim(grantID: "nope", requestID: "y4", facts: Self.facts()), now: 7)
        #expect(outcome == .refused("unknown grant"))
    }

    @Test("grants read from holds merge forward-only")
    func merge() throws {
        var book = GrantBook()
        let request = GrantRequest(windowMillis: 10_000, maxCalls: 5, pathGlob: nil, sameBodyShape: false)
        var grant = try GrantBook.make(Self.decision(request), request: request, record: Self.held(), policy: Self.policy, now: 0).get()
        var merged = book.merge(grant)
        #expect(merged)
        var used = grant
        used.uses = 2
        used.updatedAtMillis = 5
        merged = book.merge(used)
        #expect(merged)
        merged = book.merge(grant)
        #expect(!merged, "an older state does not win")
        grant.revokedAtMillis = 3
        grant.updatedAtMillis = 3
        merged = book.merge(grant)
        #expect(merged, "a revocation wins over more uses")
        #expect(book.grant("g1")?.revokedAtMillis == 3)
    }
}
