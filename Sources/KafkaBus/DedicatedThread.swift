import Foundation

/// Runs blocking work (librdkafka calls that wait on the network) on threads of
/// their own, never on Swift's cooperative pool, which has only as many threads
/// as cores and must not be blocked.
enum DedicatedThread {
    /// Starts a new thread named `name` that runs `body`.
    @discardableResult
    static func start(name: String, _ body: @escaping @Sendable () -> Void) -> Thread {
        let thread = Thread(block: body)
        thread.name = name
        thread.start()
        return thread
    }

    /// Runs `body` on a new thread and returns its result without blocking the caller's thread.
    static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            start(name: name) { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Runs `body` on a new thread and waits for it without blocking the caller's thread.
    static func run(name: String, _ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            start(name: name) {
                body()
                continuation.resume()
            }
        }
    }
}

/// A one-shot signal that tasks (``wait()``) and threads (``waitBlocking()``) can
/// wait for; used to learn that a poll thread has finished.
///
/// `@unchecked Sendable`: `done` and `waiters` are only touched with `condition` locked.
final class Completion: @unchecked Sendable {
    private let condition = NSCondition()
    private var done = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Wakes all current and future waiters. Later calls do nothing.
    func signal() {
        condition.lock()
        guard !done else {
            condition.unlock()
            return
        }
        done = true
        let waiting = waiters
        waiters = []
        condition.broadcast()
        condition.unlock()
        for waiter in waiting { waiter.resume() }
    }

    /// Suspends the calling task until ``signal()`` has been called.
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            if done {
                condition.unlock()
                continuation.resume()
            } else {
                waiters.append(continuation)
                condition.unlock()
            }
        }
    }

    /// Blocks the calling thread until ``signal()`` has been called. Never call it
    /// from Swift concurrency's cooperative pool.
    func waitBlocking() {
        condition.lock()
        while !done { condition.wait() }
        condition.unlock()
    }
}
