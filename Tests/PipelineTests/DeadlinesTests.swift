import Foundation
@testable import Pipeline
import Synchronization
import Testing

/// Timers that end when cancelled (`Deadlines`) and the one-shot hand-over they are built on.
@Suite("Deadlines and OneShot")
struct DeadlinesTests {
    @Test("a sleep lasts until its deadline")
    func sleepsUntilDeadline() async throws {
        let start = ContinuousClock.now
        try await Deadlines.sleep(for: .milliseconds(30))
        #expect(ContinuousClock.now - start >= .milliseconds(30))
        // A deadline in the past returns at once, without throwing.
        try await Deadlines.sleep(until: start)
    }

    @Test("a cancelled sleep throws CancellationError at once, long before its deadline")
    // Two-minute sleeps: a cancellation that did not work fails these tests in bounded time.
    func cancelledSleepEndsNow() async {
        let started = OneShot<Void>()
        let sleeper = Task {
            started.resume(with: ())
            let start = ContinuousClock.now
            do {
                try await Deadlines.sleep(for: .seconds(120))
                return (false, ContinuousClock.now - start)
            } catch {
                return (error is CancellationError, ContinuousClock.now - start)
            }
        }
        await started.value()
        sleeper.cancel()
        let (cancelled, slept) = await sleeper.value
        #expect(cancelled)
        #expect(slept < .seconds(60))
    }

    @Test("a sleep in an already cancelled task throws without waiting")
    func alreadyCancelled() async {
        let result = await withTaskGroup(of: Bool.self) { group in
            group.cancelAll()
            group.addTask {
                do { try await Deadlines.sleep(for: .seconds(120)); return false } catch { return error is CancellationError }
            }
            return await group.next() ?? false
        }
        #expect(result)
    }

    @Test("a sleep racing work in a task group is cancelled with the group and frees the group at once")
    func raceEndsWithWork() async {
        let start = ContinuousClock.now
        let winner = await withTaskGroup(of: String.self) { group in
            group.addTask { "work" }
            group.addTask {
                do { try await Deadlines.sleep(for: .seconds(120)) } catch { return "cancelled" }
                return "timer"
            }
            let first = await group.next() ?? ""
            group.cancelAll()
            // The group only returns once the sleeping child has ended: it must not wait the two minutes.
            return first
        }
        #expect(winner == "work")
        #expect(ContinuousClock.now - start < .seconds(60))
    }

    @Test("a scheduled action runs once at its time; a cancelled one never runs")
    func scheduleAndCancel() async {
        let ran = Mutex(0)
        let cancelled = Deadlines.schedule(after: .milliseconds(10)) { ran.withLock { $0 += 1 } }
        cancelled.cancel()
        let fired = OneShot<ContinuousClock.Instant>()
        let start = ContinuousClock.now
        _ = Deadlines.schedule(after: .milliseconds(20)) { fired.resume(with: .now) }
        let at = await fired.value()
        #expect(at - start >= .milliseconds(20))
        // Both timers are on NIO loops; the cancelled one was due 10 ms before the one that fired.
        // Wait for one more timer on every loop so a (wrongly) surviving action would have run.
        for _ in 0..<ProcessInfo.processInfo.activeProcessorCount * 2 {
            let tick = OneShot<Void>()
            _ = Deadlines.schedule(after: .milliseconds(1)) { tick.resume(with: ()) }
            await tick.value()
        }
        #expect(ran.withLock { $0 } == 0)
    }

    @Test("OneShot: the first value wins, before or after the wait begins")
    func oneShot() async {
        let early = OneShot<Int>()
        #expect(early.resume(with: 1))
        #expect(early.resume(with: 2) == false)
        #expect(await early.value() == 1)

        let late = OneShot<Int>()
        async let waited = late.value()
        #expect(late.resume(with: 7))
        #expect(await waited == 7)
        #expect(late.resume(with: 8) == false)
    }

    @Test("durations in whole nanoseconds, saturating", arguments: [
        (Duration.zero, Int64(0)),
        (.nanoseconds(1), 1),
        (.milliseconds(1500), 1_500_000_000),
        (.seconds(-2), -2_000_000_000),
        (.seconds(Int64.max), Int64.max),
        (.seconds(Int64.min), Int64.min),
        (.seconds(-1) - .nanoseconds(500), -1_000_000_500),
    ])
    func nanoseconds(duration: Duration, expected: Int64) {
        #expect(duration.totalNanoseconds == expected)
    }
}
