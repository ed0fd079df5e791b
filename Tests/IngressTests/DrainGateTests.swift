import Synchronization
import Testing

@testable import Ingress

@Suite("Ingress: drain gate")
struct DrainGateTests {
    @Test("admits calls until the drain starts, refuses every call after it")
    func refusesAfterDrain() {
        let gate = DrainGate()
        #expect(gate.enter())
        #expect(gate.enter())
        #expect(gate.inProgress == 2)
        gate.startDraining()
        #expect(gate.isDraining)
        #expect(!gate.enter())
        #expect(gate.inProgress == 2, "a refused call is not counted")
        gate.leave()
        gate.leave()
        #expect(gate.inProgress == 0)
    }

    @Test("waitUntilIdle returns only once draining and the last admitted call has left")
    func waitsForTheLastCall() async {
        let gate = DrainGate()
        #expect(gate.enter())
        let idle = Flag()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await gate.waitUntilIdle()
                idle.set()
            }
            // Not idle while not draining, even with no call: nothing is in progress only after `leave`.
            gate.startDraining()
            await Task.yield()
            #expect(!idle.isSet, "returned while a call was still in progress")
            gate.leave()
            await group.waitForAll()
        }
        #expect(idle.isSet)
    }

    @Test("waitUntilIdle returns at once when draining with nothing in progress")
    func idleAtOnce() async {
        let gate = DrainGate()
        gate.startDraining()
        await gate.waitUntilIdle()
        #expect(gate.inProgress == 0)
    }
}

/// A flag set once, read from any task.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

@Suite("Ingress: drain gate timeout")
struct DrainGateTimeoutTests {
    @Test("waitUntilIdle(timeout:) gives up while a call is still in progress, and returns promptly", .timeLimit(.minutes(1)))
    func timesOut() async {
        let gate = DrainGate()
        #expect(gate.enter())
        gate.startDraining()
        let idle = await gate.waitUntilIdle(timeout: .milliseconds(50))
        #expect(!idle)
        gate.leave()
        let nowIdle = await gate.waitUntilIdle(timeout: .seconds(30))
        #expect(nowIdle)
    }
}
