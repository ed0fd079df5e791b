import Synchronization

/// A counting bound on requests being processed at once.
///
/// Guarantees: `tryAcquire()` succeeds at most `limit` times without a matching
/// `release()`; it never blocks. Thread-safe (a `Mutex` guards the count).
final class InFlightLimiter: Sendable {
    let limit: Int
    private let count = Mutex(0)

    init(limit: Int) { self.limit = limit }

    /// Takes a slot if one is free.
    func tryAcquire() -> Bool {
        count.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    /// Gives back a slot taken with `tryAcquire()`.
    func release() {
        count.withLock { n in n = max(0, n - 1) }
    }

    /// Slots currently taken.
    var current: Int { count.withLock { $0 } }
}
