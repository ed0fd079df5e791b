import Foundation
import Pipeline
import Testing
@testable import Ingress

/// `ConsoleSessions`: when a console session ends, and what it keeps.
@Suite struct ConsoleSessionsTests {
    static let alice = CallerIdentity(id: "apikey:alice", groups: ["secops"], method: "api_key")

    @Test("a session ends idle_timeout after its last request and session_ttl after sign-in; the live inbox does not keep it alive")
    func lifetimes() {
        let sessions = ConsoleSessions(ttl: .seconds(100), idle: .seconds(10))
        let (token, created) = sessions.create(for: Self.alice, now: 0)
        #expect(created.csrf != token && created.csrf.count == 43 && token.count == 43)
        #expect(sessions.session(token: token, now: 9_000) != nil)
        #expect(sessions.session(token: token, renew: false, now: 18_000) != nil, "within 10 s of the last renewing request")
        #expect(sessions.session(token: token, renew: false, now: 19_500) == nil, "the stream's checks did not renew it")
        #expect(sessions.count == 0, "an expired session is removed when seen")

        let (long, _) = sessions.create(for: Self.alice, now: 0)
        var now: Int64 = 0
        while now < 99_000 {
            now += 9_000
            #expect(sessions.session(token: long, now: now) != nil)
        }
        #expect(sessions.session(token: long, now: 100_000) == nil, "session_ttl ends it whatever the activity")
        #expect(sessions.session(token: "not-a-token", now: 0) == nil)
    }

    @Test("sign-out ends a session; beyond the limit the session idle longest goes")
    func removeAndEvict() {
        let sessions = ConsoleSessions(ttl: .seconds(1000), idle: .seconds(1000), maxSessions: 2)
        let (a, _) = sessions.create(for: Self.alice, now: 0)
        let (b, _) = sessions.create(for: Self.alice, now: 1)
        _ = sessions.session(token: a, now: 2)
        let (c, _) = sessions.create(for: Self.alice, now: 3)
        #expect(sessions.session(token: b, now: 4) == nil, "b was idle longest")
        #expect(sessions.session(token: a, now: 4) != nil && sessions.session(token: c, now: 4) != nil)
        sessions.remove(token: a)
        #expect(sessions.session(token: a, now: 5) == nil)
    }

    @Test(arguments: [("abc", "abc", true), ("abc", "abd", false), ("abc", "ab", false), ("", "", false)])
    func sameToken(a: String, b: String, same: Bool) {
        #expect(ConsoleSessions.sameToken(a, b) == same)
    }

    @Test("live streams: a limit per session and one for everyone, released when they end")
    func streamSlots() {
        let slots = StreamSlots(perSession: 2, total: 3)
        #expect(slots.acquire("a") && slots.acquire("a"))
        #expect(!slots.acquire("a"))
        #expect(slots.acquire("b"))
        #expect(!slots.acquire("c"), "the total")
        slots.release("a")
        #expect(slots.acquire("c"))
        #expect(slots.count == 3)
    }
}
