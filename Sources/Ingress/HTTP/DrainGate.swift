import Synchronization

/// The caller port's calls in progress, and whether the port is draining.
///
/// Graceful shutdown keeps the caller listener open while the calls in progress finish, so
/// that a connection the kernel has already accepted is answered, never reset: new calls get
/// 503 `shutting_down` with `Connection: close` and `Retry-After`, answers to calls in progress
/// carry `Connection: close`. The listener closes only once ``waitUntilIdle()`` returns.
///
/// Guarantees: ``enter()`` refuses every call once ``startDraining()`` was called; the count
/// never misses a call that ``enter()`` admitted; ``waitUntilIdle()`` returns once the drain
/// has started and no admitted call is in progress.
final class DrainGate: Sendable {
    private struct State {
        var draining = false
        var inProgress = 0
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    var isDraining: Bool { state.withLock { $0.draining } }
    var inProgress: Int { state.withLock { $0.inProgress } }

    /// Admits a call (`true`), or refuses it because the port is draining (`false`). Pair an
    /// admitted call with ``leave()``.
    func enter() -> Bool {
        state.withLock { s in
            guard !s.draining else { return false }
            s.inProgress += 1
            return true
        }
    }

    /// Ends an admitted call.
    func leave() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.inProgress -= 1
            guard s.draining, s.inProgress == 0 else { return [] }
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    /// From now on every call is refused.
    func startDraining() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.draining = true
            guard s.inProgress == 0 else { return [] }
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    /// Returns once draining and no admitted call is in progress, or when the task is cancelled.
    func waitUntilIdle() async {
        let id = state.withLock { s -> Int in
            defer { s.nextWaiter += 1 }
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { s -> Bool in
                    if s.draining, s.inProgress == 0 { return true }
                    if Task.isCancelled { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    /// Returns `true` once draining and idle, `false` when `timeout` passed first.
    func waitUntilIdle(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { race in
            race.addTask {
                await self.waitUntilIdle()
                return !Task.isCancelled
            }
            race.addTask {
                do { try await Task.sleep(for: timeout) } catch { return true }
                return false
            }
            let first = await race.next() ?? false
            race.cancelAll()
            return first
        }
    }
}
