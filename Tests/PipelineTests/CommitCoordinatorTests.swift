import Pipeline
import Synchronization
import Testing

/// The commits a `CommitCoordinator` issues, recorded by a fake subscription control.
final class RecordingControl: BusSubscriptionControl {
    enum Call: Equatable, Sendable {
        case commit(partition: Int, offset: Int64)
        case atomic(partition: Int, offset: Int64, outputs: [String])
    }

    private let state = Mutex<(calls: [Call], failures: [BusError])>(([], []))

    /// The next atomic commits throw these errors, in order (then they succeed).
    init(failing failures: [BusError] = []) {
        state.withLock { $0.failures = failures }
    }

    var calls: [Call] { state.withLock { $0.calls } }

    func commit(_ message: BusMessage) async throws {
        state.withLock { $0.calls.append(.commit(partition: message.partition, offset: message.offset)) }
    }

    func commit(_ message: BusMessage, publishing outputs: [OutgoingMessage]) async throws {
        let failure = state.withLock { s -> BusError? in
            s.failures.isEmpty ? nil : s.failures.removeFirst()
        }
        if let failure { throw failure }
        let names = outputs.map { String(decoding: $0.value, as: UTF8.self) }
        state.withLock { $0.calls.append(.atomic(partition: message.partition, offset: message.offset, outputs: names)) }
    }

    func assignment() async -> Set<BusPartition> { [] }
    func hasJoinedGroup() async -> Bool { true }
    func close() async {}
}

@Suite("Commit coordinator: outputs published with the commit that covers them")
struct CommitCoordinatorTests {
    static func message(_ offset: Int64, partition: Int = 0) -> BusMessage {
        BusMessage(topic: "t", partition: partition, offset: offset, key: nil, headers: [], value: [], timestampMillis: 0)
    }

    static func output(_ name: String) -> OutgoingMessage {
        OutgoingMessage(topic: "out", key: name, value: Array(name.utf8))
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        /// Offsets begun, in order (partition 0).
        var begun: [Int64]
        /// Offsets finished, in this order, with their outputs.
        var finished: [(Int64, [String])]
        var expected: [RecordingControl.Call]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "in order: each commit carries its own outputs",
            begun: [0, 1], finished: [(0, ["a"]), (1, ["b"])],
            expected: [.atomic(partition: 0, offset: 0, outputs: ["a"]), .atomic(partition: 0, offset: 1, outputs: ["b"])]),
        Case(
            name: "out of order: a later message's outputs wait for the earlier one, then go in offset order",
            begun: [0, 1, 2], finished: [(2, ["c"]), (1, ["b"]), (0, ["a"])],
            expected: [.atomic(partition: 0, offset: 2, outputs: ["a", "b", "c"])]),
        Case(
            name: "no outputs: a plain commit",
            begun: [0, 1], finished: [(0, []), (1, [])],
            expected: [.commit(partition: 0, offset: 0), .commit(partition: 0, offset: 1)]),
        Case(
            name: "a plain commit that covers an earlier message's outputs publishes them",
            begun: [0, 1], finished: [(1, []), (0, ["a"])],
            expected: [.atomic(partition: 0, offset: 1, outputs: ["a"])]),
        Case(
            name: "a message left unfinished holds back every later output",
            begun: [0, 1, 2], finished: [(1, ["b"]), (2, ["c"])],
            expected: []),
    ]

    @Test(arguments: cases)
    func outputsFollowTheCommitPoint(_ c: Case) async {
        let control = RecordingControl()
        let coordinator = CommitCoordinator(subscription: BusSubscription(stream: AsyncThrowingStream { $0.finish() }, control: control)) { _, _ in }
        for offset in c.begun {
            let began = await coordinator.begin(Self.message(offset))
            #expect(began)
        }
        for (offset, outputs) in c.finished {
            await coordinator.finish(Self.message(offset), publishing: outputs.map(Self.output))
        }
        #expect(control.calls == c.expected)
    }

    @Test("a failed atomic commit is retried with the same outputs; a fenced one is given up")
    func retriesUnlessFenced() async {
        let retried = RecordingControl(failing: [BusError(.broker, "transaction aborted"), BusError(.timedOut, "slow")])
        let a = CommitCoordinator(
            subscription: BusSubscription(stream: AsyncThrowingStream { $0.finish() }, control: retried),
            initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(2)) { _, _ in }
        _ = await a.begin(Self.message(0))
        await a.finish(Self.message(0), publishing: [Self.output("a")])
        #expect(retried.calls == [.atomic(partition: 0, offset: 0, outputs: ["a"])])

        let fenced = RecordingControl(failing: [BusError(.fenced, "partition moved")])
        let b = CommitCoordinator(
            subscription: BusSubscription(stream: AsyncThrowingStream { $0.finish() }, control: fenced),
            initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(2)) { _, _ in }
        _ = await b.begin(Self.message(0))
        _ = await b.begin(Self.message(1))
        await b.finish(Self.message(0), publishing: [Self.output("a")])
        // Message 1 was in flight when the partition was fenced: it finishes without effect, so
        // no later commit covers message 0 without its outputs.
        await b.finish(Self.message(1), publishing: [])
        #expect(fenced.calls.isEmpty, "a commit after the fence covered the fenced message: \(fenced.calls)")
        // The partition comes back to this member: the redelivered messages are taken again.
        let again = await b.begin(Self.message(0))
        #expect(again)
        await b.finish(Self.message(0), publishing: [Self.output("a")])
        #expect(fenced.calls == [.atomic(partition: 0, offset: 0, outputs: ["a"])])
    }
}
