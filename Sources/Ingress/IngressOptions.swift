import Foundation
import Pipeline

/// Per-process settings of an Ingress instance that are not in the configuration file (the
/// limits — `max_in_flight`, `max_in_flight_per_identity`, `body_read_timeout`,
/// `header_read_timeout`, `max_held_per_identity` — are).
///
/// `instanceID` is the key of this instance's messages on `replies`; it must be unique
/// among running Ingress instances (the default is a fresh lowercase UUID with an `ingress-` prefix).
public struct IngressOptions: Sendable {
    /// The `replies` key this instance reads; also the `replyTo` of every request it publishes.
    public var instanceID: String
    /// How long after a request's deadline the Ingress still waits for its reply before answering 504.
    public var replyGrace: Duration
    /// The least time between two JWKS fetches triggered by an unknown `kid`.
    public var jwksMinRefreshInterval: Duration
    /// The time limit of one JWKS fetch.
    public var jwksFetchTimeout: Duration
    /// How long `POST /v1/approvals/<id>/approve|deny` waits for the Forwarder to record the
    /// decision in `holds` before answering with the state it knows.
    public var decisionEcho: Duration = .seconds(5)
    /// The key that derives the upstream's `Idempotency-Key` from a caller's own (HMAC-SHA256;
    /// `sluice` passes `sealing.fingerprint_key`). Empty: a random key per process.
    public var idempotencySecret: [UInt8] = []
    /// Callers' `Idempotency-Key`s remembered at most at once (the oldest finished are forgotten first).
    public var idempotencyMaxEntries: Int = 100_000

    public init(
        instanceID: String = "ingress-" + UUID().uuidString.lowercased(),
        replyGrace: Duration = .seconds(2),
        jwksMinRefreshInterval: Duration = .seconds(10),
        jwksFetchTimeout: Duration = .seconds(5)
    ) {
        self.instanceID = instanceID
        self.replyGrace = replyGrace
        self.jwksMinRefreshInterval = jwksMinRefreshInterval
        self.jwksFetchTimeout = jwksFetchTimeout
    }
}

extension IngressOptions {
    /// The `replies` key for an Ingress process, chosen so its replies partition (the one the
    /// Forwarder's murmur2 placement sends them to, and the only one this Ingress reads) is known
    /// from the instance id.
    ///
    /// Guarantees:
    /// - The key is `ingress-<instance>-<unique>-<n>` (`ingress-<unique>-<n>` without an instance
    ///   id): `unique` (a fresh random part per process) keeps two processes from ever sharing a
    ///   key, even when they were given the same instance id by mistake.
    /// - Its partition among `partitions` is `N % partitions` when the instance id ends with a
    ///   number N (`ingress-0`, `sluice-ingress-2`: StatefulSet pods, numbered instances), so
    ///   instances numbered 0 ..< `partitions` never share a replies partition and a restarted
    ///   instance reads the same one; otherwise the instance id's own murmur2 partition (stable
    ///   across restarts); without an instance id, the key's own (random) partition.
    /// - `n` is the first suffix that lands there (about `partitions` tries on average). If none
    ///   does within `100 × partitions` tries the last key is returned: still correct — the
    ///   Ingress reads whatever partition its key maps to — only not the chosen one.
    /// - `partitions` is the configured `bus.partitions`; when the live topic has another count
    ///   the Ingress still reads its key's partition, so replies are never missed.
    public static func replyKey(instance: String?, unique: String, partitions: Int) -> String {
        let base = instance.map { "ingress-\($0)-\(unique)" } ?? "ingress-\(unique)"
        guard let instance, partitions > 1 else { return base + "-0" }
        let target: Int
        let digits = String(instance.reversed().prefix(while: { $0.isASCII && $0.isNumber }).reversed())
        if !digits.isEmpty, let ordinal = Int(digits.suffix(18)) {
            target = ordinal % partitions
        } else {
            target = partition(forKey: Array(instance.utf8), partitions: partitions)
        }
        var key = base + "-0"
        for n in 0..<(100 * partitions) {
            key = "\(base)-\(n)"
            if partition(forKey: Array(key.utf8), partitions: partitions) == target { return key }
        }
        return key
    }
}

