import Synchronization

/// Counting bounds on function calls being processed at once: in total and per identity.
///
/// Guarantees: `tryAcquire(identity:)` succeeds at most `limit` times in total, and at most
/// `perIdentity` times for one identity, without a matching `release(identity:)`; a refused
/// acquire takes nothing; it never blocks. Thread-safe (one `Mutex` guards both counts, so the
/// two bounds are checked and taken atomically).
final class InFlightLimiter: Sendable {
    /// Why `tryAcquire` refused.
    enum Refusal: Sendable, Equatable {
        /// Every slot of the process is taken.
        case total
        /// This identity holds its share of the slots.
        case identity
    }

    private struct Counts {
        var total = 0
        var byIdentity: [String: Int] = [:]
    }

    let limit: Int
    let perIdentity: Int
    private let counts = Mutex(Counts())

    init(limit: Int, perIdentity: Int) {
        self.limit = limit
        self.perIdentity = perIdentity
    }

    /// Takes a slot for `identity` if one is free; `nil` when taken, else why not.
    func tryAcquire(identity: String) -> Refusal? {
        counts.withLock { c in
            let mine = c.byIdentity[identity, default: 0]
            if mine >= perIdentity { return .identity }
            if c.total >= limit { return .total }
            c.total += 1
            c.byIdentity[identity] = mine + 1
            return nil
        }
    }

    /// Gives back a slot taken with `tryAcquire(identity:)`.
    func release(identity: String) {
        counts.withLock { c in
            c.total = max(0, c.total - 1)
            let mine = c.byIdentity[identity, default: 0] - 1
            c.byIdentity[identity] = mine > 0 ? mine : nil
        }
    }

    /// Slots currently taken.
    var current: Int { counts.withLock { $0.total } }

    /// Slots currently taken by `identity`.
    func current(identity: String) -> Int { counts.withLock { $0.byIdentity[identity, default: 0] } }
}
