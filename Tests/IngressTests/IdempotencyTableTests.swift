import Crypto
import Foundation
import Pipeline
import Synchronization
import Testing

@testable import Ingress

/// A settable clock for TTL tests.
final class TestClock: Sendable {
    private let value = Mutex<Int64>(1_000_000)
    var now: Int64 { value.withLock { $0 } }
    func advance(_ ms: Int64) { value.withLock { $0 += ms } }
}

@Suite("Idempotency table")
struct IdempotencyTableTests {
    static let secret = Array(repeating: UInt8(9), count: 32)
    static let fp = IdempotencyTable.fingerprint(method: "POST", connection: "billing", path: "/charges", query: "", body: Data("{}".utf8))

    static func reply(_ id: String, status: Int = 201, body: String = "{\"id\":\"ch_1\"}", pending: Bool = false) -> Reply {
        var headers = [HTTPField("Content-Type", "application/json")]
        if pending { headers.append(HTTPField("X-Sluice-Status", "pending_approval")) }
        return Reply(requestID: id, sessionID: "s", response: HTTPResponseData(status: pending ? 202 : status, headers: headers, body: Data(body.utf8)))
    }

    static func claim(
        _ table: IdempotencyTable, identity: String = "apikey:ci-bot", key: String = "k-1", fp: [UInt8] = fp, id: String,
        deadline: Int64 = currentMillis() + 60_000, wait: Duration = .seconds(5)
    ) async -> IdempotencyTable.Claim {
        await table.claim(identity: identity, callerKey: key, fingerprint: fp, requestID: id, replyDeadlineMillis: deadline, wait: wait)
    }

    @Test("first claim proceeds with HMAC(secret, identity ‖ 0 ‖ key); a retry replays the first outcome")
    func firstThenReplay() async throws {
        let table = IdempotencyTable(secret: Self.secret)
        let first = await Self.claim(table, id: "r-1")
        let expected = HMAC<SHA256>.authenticationCode(for: Array("apikey:ci-bot".utf8) + [0] + Array("k-1".utf8), using: SymmetricKey(data: Self.secret))
            .map { String(format: "%02x", $0) }.joined()
        #expect(first == .proceed(upstreamKey: expected))
        #expect(await table.record(Self.reply("r-1")))
        let retry = await Self.claim(table, id: "r-2")
        #expect(retry == .replay(requestID: "r-1", response: Self.reply("r-1").response))
        #expect(!(await table.record(Self.reply("r-2"))), "the retry was never claimed")
    }

    @Test("the same key with another body, path or connection is refused; the outcome is not revealed")
    func reused() async {
        let table = IdempotencyTable(secret: Self.secret)
        _ = await Self.claim(table, id: "r-1")
        await table.record(Self.reply("r-1"))
        for other in [
            IdempotencyTable.fingerprint(method: "POST", connection: "billing", path: "/charges", query: "", body: Data("{\"x\":1}".utf8)),
            IdempotencyTable.fingerprint(method: "POST", connection: "billing", path: "/refunds", query: "", body: Data("{}".utf8)),
            IdempotencyTable.fingerprint(method: "POST", connection: "other", path: "/charges", query: "", body: Data("{}".utf8)),
            IdempotencyTable.fingerprint(method: "PUT", connection: "billing", path: "/charges", query: "", body: Data("{}".utf8)),
            IdempotencyTable.fingerprint(method: "POST", connection: "billing", path: "/charges", query: "a=1", body: Data("{}".utf8)),
        ] {
            #expect(await Self.claim(table, fp: other, id: "r-x") == .reused(requestID: "r-1"))
        }
    }

    @Test("identities never share a key: same caller key, two identities, two first requests, two upstream keys")
    func perIdentity() async {
        let table = IdempotencyTable(secret: Self.secret)
        guard case .proceed(let a) = await Self.claim(table, identity: "apikey:a", id: "r-a"),
              case .proceed(let b) = await Self.claim(table, identity: "oidc:a", id: "r-b")
        else { Issue.record("both must proceed"); return }
        #expect(a != b && a.count == 64 && !a.contains("k-1"))
    }

    @Test("a retry while the first is in flight waits for its reply")
    func waitsForInFlight() async throws {
        let table = IdempotencyTable(secret: Self.secret)
        _ = await Self.claim(table, id: "r-1")
        let retry = Task { await Self.claim(table, id: "r-2") }
        // The retry must really be waiting before the first request's reply arrives.
        let deadline = ContinuousClock.now + .seconds(5)
        while await table.waitingRetries == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        try #require(await table.waitingRetries == 1)
        await table.record(Self.reply("r-1", status: 200, body: "late"))
        let answer = await retry.value
        #expect(answer == .replay(requestID: "r-1", response: Self.reply("r-1", status: 200, body: "late").response))
    }

    @Test("pending approval is provisional; the final reply replaces it; nothing replaces a final one")
    func pendingThenFinal() async {
        let table = IdempotencyTable(secret: Self.secret)
        _ = await Self.claim(table, id: "r-1")
        await table.record(Self.reply("r-1", pending: true))
        #expect(await Self.claim(table, id: "r-2") == .replay(requestID: "r-1", response: Self.reply("r-1", pending: true).response))
        #expect(await table.record(Self.reply("r-1", status: 200, body: "done")))
        #expect(!(await table.record(Self.reply("r-1", status: 500, body: "again"))))
        #expect(await Self.claim(table, id: "r-3") == .replay(requestID: "r-1", response: Self.reply("r-1", status: 200, body: "done").response))
    }

    @Test("no reply by the first request's deadline: 504 for the first request, and still no second delivery")
    func noOutcome() async {
        let table = IdempotencyTable(secret: Self.secret)
        _ = await Self.claim(table, id: "r-1", deadline: currentMillis() + 150)
        guard case .replay(let id, let response) = await Self.claim(table, id: "r-2") else { Issue.record("must replay"); return }
        #expect(id == "r-1" && response.status == 504)
        // A late reply still becomes the outcome.
        await table.record(Self.reply("r-1"))
        #expect(await Self.claim(table, id: "r-3") == .replay(requestID: "r-1", response: Self.reply("r-1").response))
    }

    @Test("a released claim (never published) lets the retry through")
    func release() async {
        let table = IdempotencyTable(secret: Self.secret)
        _ = await Self.claim(table, id: "r-1")
        await table.release(requestID: "r-1")
        guard case .proceed = await Self.claim(table, id: "r-2") else { Issue.record("must proceed"); return }
    }

    @Test("entries expire after the ttl")
    func ttl() async {
        let clock = TestClock()
        let table = IdempotencyTable(limits: .init(ttl: .seconds(60)), secret: Self.secret, now: { clock.now })
        _ = await Self.claim(table, id: "r-1", deadline: clock.now + 10_000)
        await table.record(Self.reply("r-1"))
        clock.advance(59_000)
        guard case .replay = await Self.claim(table, id: "r-2", deadline: clock.now + 10_000) else { Issue.record("within ttl"); return }
        clock.advance(2_000)
        guard case .proceed = await Self.claim(table, id: "r-3", deadline: clock.now + 10_000) else { Issue.record("after ttl"); return }
    }

    @Test("bounded: the oldest finished entry is forgotten first; in-flight entries never are")
    func bounded() async {
        let table = IdempotencyTable(limits: .init(maxEntries: 2), secret: Self.secret)
        _ = await Self.claim(table, key: "a", id: "r-a")
        _ = await Self.claim(table, key: "b", id: "r-b")
        #expect(await Self.claim(table, key: "c", id: "r-c") == .full, "both in flight")
        await table.record(Self.reply("r-a"))
        guard case .proceed = await Self.claim(table, key: "c", id: "r-c") else { Issue.record("a is evictable"); return }
        #expect(await table.count == 2)
        await table.record(Self.reply("r-b"))
        guard case .proceed = await Self.claim(table, key: "a", id: "r-a2") else { Issue.record("a was forgotten"); return }
    }

    @Test("caller keys: 1 to 255 visible ASCII characters", arguments: [
        ("k", true), (String(repeating: "x", count: 255), true), ("a-b_c.d~e:f/g", true),
        ("", false), (String(repeating: "x", count: 256), false), ("has space", false), ("tab\t", false), ("é", false),
    ])
    func validKeys(key: String, valid: Bool) {
        #expect(IdempotencyTable.isValid(callerKey: key) == valid)
    }
}
