import Crypto
import Foundation
import Pipeline
import Synchronization

/// A reviewer signed in to the console: who, and the token every form must carry.
struct ConsoleSession: Sendable {
    let identity: CallerIdentity
    /// The CSRF token of this session's forms (`csrf` field), compared in constant time.
    let csrf: String
    let createdMillis: Int64
    var lastSeenMillis: Int64
}

/// The console's sessions, in this Ingress's memory.
///
/// Guarantees:
/// - A session token and a CSRF token are 32 bytes from the system's secure generator
///   (`SystemRandomNumberGenerator`: `getrandom` on Linux), base64url; the store keeps only the
///   SHA-256 of the session token, so a memory dump does not hand out live cookies.
/// - ``session(token:now:)`` returns a session only within `ttl` of its login and `idle` of its
///   last request, and each hit renews the idle clock; expired sessions are removed when seen
///   and swept on every login.
/// - At most `maxSessions` live at once: a login beyond it evicts the session idle longest.
/// - Sessions do not survive a restart and are not shared between Ingress instances: behind a
///   load balancer, the console needs sticky sessions (docs/console.md).
final class ConsoleSessions: Sendable {
    private let ttlMillis: Int64
    private let idleMillis: Int64
    private let maxSessions: Int
    private let sessions = Mutex<[String: ConsoleSession]>([:])

    init(ttl: Duration, idle: Duration, maxSessions: Int = 10_000) {
        ttlMillis = Self.millis(ttl)
        idleMillis = Self.millis(idle)
        self.maxSessions = max(1, maxSessions)
    }

    /// How long a new session's cookie may live (its `Max-Age`).
    var ttlSeconds: Int64 { ttlMillis / 1000 }

    /// Starts a session for `identity`; returns its cookie token and the session.
    func create(for identity: CallerIdentity, now: Int64 = currentMillis()) -> (token: String, session: ConsoleSession) {
        let token = Self.randomToken()
        let session = ConsoleSession(identity: identity, csrf: Self.randomToken(), createdMillis: now, lastSeenMillis: now)
        let key = Self.key(token)
        sessions.withLock { all in
            all = all.filter { live($0.value, now: now) }
            if all.count >= maxSessions, let oldest = all.min(by: { $0.value.lastSeenMillis < $1.value.lastSeenMillis }) {
                all[oldest.key] = nil
            }
            all[key] = session
        }
        return (token, session)
    }

    /// The live session of `token`, its idle clock renewed unless `renew` is false (the live
    /// inbox checks its session without counting as the reviewer's activity); `nil` when
    /// unknown or expired.
    func session(token: String, renew: Bool = true, now: Int64 = currentMillis()) -> ConsoleSession? {
        let key = Self.key(token)
        return sessions.withLock { all -> ConsoleSession? in
            guard var session = all[key] else { return nil }
            guard live(session, now: now) else {
                all[key] = nil
                return nil
            }
            if renew {
                session.lastSeenMillis = now
                all[key] = session
            }
            return session
        }
    }

    /// Ends the session of `token` (logout).
    func remove(token: String) {
        let key = Self.key(token)
        _ = sessions.withLock { $0.removeValue(forKey: key) }
    }

    var count: Int { sessions.withLock { $0.count } }

    private func live(_ s: ConsoleSession, now: Int64) -> Bool {
        now - s.createdMillis < ttlMillis && now - s.lastSeenMillis < idleMillis
    }

    /// 32 random bytes, base64url without padding.
    static func randomToken() -> String { URLText.randomToken() }

    /// Whether two tokens are equal, in time that depends only on their lengths.
    static func sameToken(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count, !x.isEmpty else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    private static func key(_ token: String) -> String {
        Data(SHA256.hash(data: Array(token.utf8))).base64EncodedString()
    }

    private static func millis(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}

/// The live-inbox streams open at once, per session and in all.
///
/// Guarantees: ``acquire(_:)`` admits at most `perSession` streams of one session and `total`
/// streams in all; every admitted stream is counted until its ``release(_:)``.
final class StreamSlots: Sendable {
    let perSession: Int
    let total: Int
    private let open = Mutex<(bySession: [String: Int], all: Int)>(([:], 0))

    init(perSession: Int = 4, total: Int = 512) {
        self.perSession = perSession
        self.total = total
    }

    func acquire(_ session: String) -> Bool {
        open.withLock { o in
            guard o.all < total, o.bySession[session, default: 0] < perSession else { return false }
            o.bySession[session, default: 0] += 1
            o.all += 1
            return true
        }
    }

    func release(_ session: String) {
        open.withLock { o in
            let n = o.bySession[session, default: 0] - 1
            o.bySession[session] = n > 0 ? n : nil
            o.all = max(0, o.all - 1)
        }
    }

    var count: Int { open.withLock { $0.all } }
}
