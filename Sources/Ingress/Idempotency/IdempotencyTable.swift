import Crypto
import Foundation
import Pipeline

/// A caller's `Idempotency-Key`, per identity, mapped to the FIRST request made with it and to
/// that request's outcome, for `ttl` (`idempotency_ttl`, default 24h).
///
/// Guarantees:
/// - Per (identity id, caller key) exactly one request is ever let through (`claim` returns
///   `.proceed` once); every later claim with the same key and the same request fingerprint is
///   answered from the first request: its outcome once known (`.replay`), after waiting for it
///   while it is in flight. A retry is never published, so never delivered again.
/// - The same key with a different fingerprint (method, connection, path, query, body) is
///   `.reused` (422 `idempotency_key_reused`); the first request's outcome is never revealed.
/// - Identities never share an entry: the key is (identity id, caller key). The key the upstream
///   receives (``upstreamKey(identity:callerKey:)``) is hex HMAC-SHA256(secret, identity id ‖
///   0x00 ‖ caller key): two identities' keys never collide and the raw key never leaves.
/// - Outcomes come from the `replies` stream (``record(_:)``), so a reply that arrives after the
///   first caller gave up (504) still becomes the outcome; a "pending approval" reply is a
///   provisional outcome that the final reply replaces. A first request whose reply deadline
///   passed without any reply is answered 504 (never delivered again either).
/// - Bounded: at most `maxEntries` entries and `maxStoredBytes` of stored response bodies;
///   entries expire `ttl` after the first request. Past a bound the oldest finished entries are
///   forgotten first (their keys then act as new; see docs/ingress.md); entries in flight are
///   never forgotten early, and when only they remain, a new key is refused (`.full`, 429).
/// - The table is per Ingress instance (not shared between instances).
public actor IdempotencyTable {
    public struct Limits: Sendable {
        public var ttl: Duration
        public var maxEntries: Int
        public var maxStoredBytes: Int

        public init(ttl: Duration = .seconds(86_400), maxEntries: Int = 100_000, maxStoredBytes: Int = 256 << 20) {
            self.ttl = ttl
            self.maxEntries = max(1, maxEntries)
            self.maxStoredBytes = max(0, maxStoredBytes)
        }
    }

    /// What a claim decided.
    public enum Claim: Sendable, Equatable {
        /// The first request with this key: go on; deliver with this `Idempotency-Key`.
        case proceed(upstreamKey: String)
        /// A retry: answer with the first request's outcome (`requestID` is the first request's).
        case replay(requestID: String, response: HTTPResponseData)
        /// The key was used for a different request.
        case reused(requestID: String)
        /// The table is full of requests in flight.
        case full
    }

    struct Key: Hashable {
        var identity: String
        var callerKey: String
    }

    struct Entry {
        var requestID: String
        var fingerprint: [UInt8]
        var createdAtMillis: Int64
        /// When the first request's caller stops waiting for its reply (deadline + grace).
        var replyDeadlineMillis: Int64
        var response: HTTPResponseData?
        /// The response is final (not a "pending approval" notice).
        var final: Bool = false
        var waiters: [ObjectIdentifier: OneShot<Void>] = [:]

        var storedBytes: Int { response?.body.count ?? 0 }
    }

    private let limits: Limits
    private let secret: SymmetricKey
    private var entries: [Key: Entry] = [:]
    private var byRequest: [String: Key] = [:]
    private var storedBytes = 0
    private var lastPruneMillis: Int64 = 0
    private let now: @Sendable () -> Int64

    /// - Parameter secret: the fingerprint key bytes (`sealing.fingerprint_key`); when empty, a
    ///   random per-process key (derived keys then differ across restarts).
    public init(limits: Limits = Limits(), secret: [UInt8], now: @escaping @Sendable () -> Int64 = { currentMillis() }) {
        self.limits = limits
        self.secret = secret.isEmpty ? SymmetricKey(size: .bits256) : SymmetricKey(data: secret)
        self.now = now
    }

    /// Entries held (for tests and metrics).
    public var count: Int { entries.count }

    /// Retries currently waiting for a first request's outcome.
    var waitingRetries: Int { entries.values.reduce(0) { $0 + $1.waiters.count } }

    // MARK: pure helpers

    /// Whether `key` is usable: 1 to 255 visible ASCII characters.
    public nonisolated static func isValid(callerKey key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= 255 && key.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }

    /// SHA-256 over the request's method, connection, path, query and body (each length-prefixed).
    public nonisolated static func fingerprint(method: String, connection: String, path: String, query: String, body: Data) -> [UInt8] {
        var hasher = SHA256()
        for part in [Data(method.utf8), Data(connection.utf8), Data(path.utf8), Data(query.utf8), body] {
            var length = UInt64(part.count).bigEndian
            withUnsafeBytes(of: &length) { hasher.update(bufferPointer: $0) }
            hasher.update(data: part)
        }
        return Array(hasher.finalize())
    }

    /// The `Idempotency-Key` the upstream receives: hex HMAC-SHA256(secret, identity ‖ 0x00 ‖ caller key).
    public nonisolated func upstreamKey(identity: String, callerKey: String) -> String {
        Self.upstreamKey(secret: secret, identity: identity, callerKey: callerKey)
    }

    static func upstreamKey(secret: SymmetricKey, identity: String, callerKey: String) -> String {
        let message = Array(identity.utf8) + [0] + Array(callerKey.utf8)
        return HMAC<SHA256>.authenticationCode(for: message, using: secret).map { String(format: "%02x", $0) }.joined()
    }

    // MARK: claims

    /// Claims `callerKey` for `requestID` (see the type's guarantees). A retry of a request in
    /// flight waits up to `wait` (and no longer than the first request's reply deadline) for its
    /// outcome; if none comes, it is answered 504 for the first request.
    public func claim(
        identity: String, callerKey: String, fingerprint: [UInt8], requestID: String, replyDeadlineMillis: Int64, wait: Duration
    ) async -> Claim {
        let current = now()
        pruneIfDue(current)
        let key = Key(identity: identity, callerKey: callerKey)
        if var existing = entries[key], existing.createdAtMillis + millis(limits.ttl) <= current {
            existing.waiters.values.forEach { $0.resume(with: ()) }
            existing.waiters = [:]
            entries[key] = existing
            forget(key)
        }
        guard let existing = entries[key] else {
            guard makeRoom() else { return .full }
            entries[key] = Entry(
                requestID: requestID, fingerprint: fingerprint, createdAtMillis: current, replyDeadlineMillis: replyDeadlineMillis)
            byRequest[requestID] = key
            return .proceed(upstreamKey: upstreamKey(identity: identity, callerKey: callerKey))
        }
        guard existing.fingerprint == fingerprint else { return .reused(requestID: existing.requestID) }
        if let response = existing.response { return .replay(requestID: existing.requestID, response: response) }

        // In flight: wait for its outcome.
        let untilMillis = min(current + millis(wait), existing.replyDeadlineMillis)
        if untilMillis > current {
            await waitForOutcome(key, timeout: .milliseconds(untilMillis - current))
        }
        guard let entry = entries[key], entry.requestID == existing.requestID else {
            // Forgotten meanwhile (expired or evicted): the first request's outcome is unknown.
            return .replay(requestID: existing.requestID, response: Self.noOutcome(existing.requestID))
        }
        return .replay(requestID: entry.requestID, response: entry.response ?? Self.noOutcome(entry.requestID))
    }

    /// Gives up a claim whose request was never published (publishing failed): a retry may go through.
    public func release(requestID: String) {
        guard let key = byRequest[requestID], let entry = entries[key], entry.response == nil else { return }
        entry.waiters.values.forEach { $0.resume(with: ()) }
        forget(key)
    }

    /// Records a reply read from `replies` when it belongs to a claimed request: a final reply
    /// becomes the outcome; a "pending approval" reply a provisional one. Returns whether it did.
    @discardableResult
    public func record(_ reply: Reply) -> Bool {
        guard let key = byRequest[reply.requestID], var entry = entries[key], !entry.final else { return false }
        storedBytes -= entry.storedBytes
        entry.response = reply.response
        entry.final = !reply.isPendingApproval
        storedBytes += entry.storedBytes
        let waiters = entry.waiters
        entry.waiters = [:]
        entries[key] = entry
        waiters.values.forEach { $0.resume(with: ()) }
        trimStoredBytes(keeping: key)
        return true
    }

    // MARK: internals

    /// The answer for a retry when the first request has no outcome (yet).
    static func noOutcome(_ requestID: String) -> HTTPResponseData {
        .jsonError(
            status: 504, error: "timeout",
            message: "The first request with this Idempotency-Key has no outcome yet; it is never sent twice.",
            extra: ["request_id": requestID])
    }

    private func waitForOutcome(_ key: Key, timeout: Duration) async {
        guard var entry = entries[key], entry.response == nil else { return }
        // The timer and a cancellation wake the waiter directly; a NIO timer, unlike
        // `Task.sleep`, frees its memory when cancelled.
        let waiter = OneShot<Void>()
        entry.waiters[ObjectIdentifier(waiter)] = waiter
        entries[key] = entry
        let timer = Deadlines.schedule(after: timeout) { waiter.resume(with: ()) }
        await withTaskCancellationHandler {
            await waiter.value()
        } onCancel: {
            waiter.resume(with: ())
        }
        timer.cancel()
        forget(key, ObjectIdentifier(waiter))
    }

    /// Drops a waiter that woke by its timer or by cancellation.
    private func forget(_ key: Key, _ token: ObjectIdentifier) {
        guard var entry = entries[key], entry.waiters.removeValue(forKey: token) != nil else { return }
        entries[key] = entry
    }

    private func forget(_ key: Key) {
        guard let entry = entries.removeValue(forKey: key) else { return }
        storedBytes -= entry.storedBytes
        if byRequest[entry.requestID] == key { byRequest[entry.requestID] = nil }
    }

    private func pruneIfDue(_ current: Int64) {
        guard current - lastPruneMillis >= 1000 || entries.count >= limits.maxEntries else { return }
        lastPruneMillis = current
        let ttl = millis(limits.ttl)
        for (key, entry) in entries where entry.createdAtMillis + ttl <= current && entry.waiters.isEmpty {
            forget(key)
        }
    }

    /// Makes room for one more entry: forgets the oldest entries that have an outcome. `false`
    /// when every entry is still in flight.
    private func makeRoom() -> Bool {
        guard entries.count >= limits.maxEntries else { return true }
        let excess = entries.count - limits.maxEntries + 1
        let victims = entries.filter { $0.value.response != nil && $0.value.waiters.isEmpty }
            .sorted { $0.value.createdAtMillis < $1.value.createdAtMillis }
            .prefix(excess)
        for (key, _) in victims { forget(key) }
        return entries.count < limits.maxEntries
    }

    private func trimStoredBytes(keeping kept: Key) {
        guard storedBytes > limits.maxStoredBytes else { return }
        let candidates = entries.filter { $0.key != kept && $0.value.response != nil && $0.value.waiters.isEmpty }
            .sorted { $0.value.createdAtMillis < $1.value.createdAtMillis }
        for (key, _) in candidates {
            guard storedBytes > limits.maxStoredBytes else { return }
            forget(key)
        }
    }
}

/// Whole milliseconds of `d`.
private func millis(_ d: Duration) -> Int64 {
    let (s, atto) = d.components
    return s * 1000 + atto / 1_000_000_000_000_000
}
