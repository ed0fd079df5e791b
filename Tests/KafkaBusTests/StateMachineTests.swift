@testable import KafkaBus
import Testing

/// The client lifecycles as pure state machines: no broker, no librdkafka handle.
@Suite("KafkaBus state machines")
struct StateMachineTests {
    // MARK: Producer

    enum ProducerEvent: CustomStringConvertible {
        case shutdown, flushed
        var description: String { self == .shutdown ? "shutdown" : "flushed" }
    }

    struct ProducerCase: CustomTestStringConvertible, Sendable {
        var events: [ProducerEvent]
        var state: Producer.StateMachine.State
        var enqueue: Producer.StateMachine.EnqueueAction
        var poll: Producer.StateMachine.PollLoopAction
        var testDescription: String { events.isEmpty ? "initial" : events.map(\.description).joined(separator: "→") }
    }

    static let producerCases: [ProducerCase] = [
        .init(events: [], state: .running, enqueue: .enqueue, poll: .poll),
        .init(events: [.shutdown], state: .flushing, enqueue: .rejectClosed, poll: .poll),
        .init(events: [.shutdown, .flushed], state: .finished, enqueue: .rejectClosed, poll: .stop),
        .init(events: [.shutdown, .shutdown], state: .flushing, enqueue: .rejectClosed, poll: .poll),
    ]

    @Test(arguments: producerCases)
    func producer(_ row: ProducerCase) {
        var machine = Producer.StateMachine()
        var shutdowns: [Producer.StateMachine.ShutdownAction] = []
        for event in row.events {
            switch event {
            case .shutdown: shutdowns.append(machine.shutdown())
            case .flushed: machine.flushed()
            }
        }
        #expect(machine.state == row.state)
        #expect(machine.enqueueAction() == row.enqueue)
        #expect(machine.nextPollLoopAction() == row.poll)
        // Only the first shutdown flushes.
        #expect(shutdowns == Array([.flush, .none, .none].prefix(shutdowns.count)))
    }

    // MARK: Consumer

    enum ConsumerEvent: String {
        case setUpOK, setUpFailed, stop, closing, closed
    }

    struct ConsumerCase: CustomTestStringConvertible, Sendable {
        var events: [ConsumerEvent]
        var state: Consumer.StateMachine.State
        var poll: Consumer.StateMachine.PollLoopAction
        var handleUsable: Bool
        var firstStop: Bool?
        var testDescription: String { events.isEmpty ? "initial" : events.map(\.rawValue).joined(separator: "→") }
    }

    static let consumerCases: [ConsumerCase] = [
        .init(events: [], state: .starting, poll: .poll, handleUsable: true),
        .init(events: [.setUpOK], state: .running, poll: .poll, handleUsable: true),
        .init(events: [.setUpFailed], state: .stopping, poll: .stop, handleUsable: true),
        .init(events: [.setUpOK, .stop], state: .stopping, poll: .stop, handleUsable: true, firstStop: true),
        .init(events: [.stop], state: .stopping, poll: .stop, handleUsable: true, firstStop: true),
        .init(events: [.stop, .setUpOK], state: .stopping, poll: .stop, handleUsable: true, firstStop: true),
        .init(events: [.setUpOK, .stop, .stop], state: .stopping, poll: .stop, handleUsable: true, firstStop: false),
        .init(events: [.setUpOK, .stop, .closing], state: .closing, poll: .stop, handleUsable: false),
        .init(events: [.setUpOK, .stop, .closing, .closed], state: .closed, poll: .stop, handleUsable: false),
        .init(events: [.setUpOK, .stop, .closing, .closed, .stop], state: .closed, poll: .stop, handleUsable: false, firstStop: false),
    ]

    @Test(arguments: consumerCases)
    func consumer(_ row: ConsumerCase) {
        var machine = Consumer.StateMachine()
        var lastStop: Bool?
        for event in row.events {
            switch event {
            case .setUpOK: machine.setUpFinished(succeeded: true)
            case .setUpFailed: machine.setUpFinished(succeeded: false)
            case .stop: lastStop = machine.stop()
            case .closing: machine.handleClosing()
            case .closed: machine.handleClosed()
            }
        }
        #expect(machine.state == row.state)
        #expect(machine.nextPollLoopAction() == row.poll)
        #expect(machine.handleUsable == row.handleUsable)
        if let firstStop = row.firstStop { #expect(lastStop == firstStop) }
    }

    // MARK: Transactional producer

    typealias Machine = TransactionalProducer.StateMachine<Int>

    enum TransactionEvent: CustomStringConvertible, Sendable {
        case submit(Int)
        case next
        case initOK, initRetriable, initFatal
        case finished(carryOver: [Int], fatal: Bool)
        case close

        var description: String {
            switch self {
            case .submit(let n): "submit(\(n))"
            case .next: "next"
            case .initOK: "initOK"
            case .initRetriable: "initRetriable"
            case .initFatal: "initFatal"
            case .finished(let carryOver, let fatal): "finished(\(carryOver)\(fatal ? ", fatal" : ""))"
            case .close: "close"
            }
        }
    }

    /// What the machine returned, flattened for comparison.
    enum Output: Equatable, Sendable {
        case accepted, rejected
        case idle, initialize, transact([Int]), shutDown([Int])
        case failed([Int])
        case closeStarted(Bool)
    }

    struct TransactionCase: CustomTestStringConvertible, Sendable {
        var name: String
        var events: [TransactionEvent]
        var outputs: [Output]
        var state: Machine.State
        var testDescription: String { name }
    }

    static let transactionCases: [TransactionCase] = [
        .init(name: "idle until a request comes", events: [.next], outputs: [.idle], state: .uninitialized),
        .init(
            name: "first request initializes, then runs",
            events: [.submit(1), .next, .initOK, .next, .next],
            outputs: [.accepted, .initialize, .failed([]), .transact([1]), .idle], state: .ready),
        .init(
            name: "requests queued during a transaction form the next batch, in order",
            events: [.submit(1), .next, .initOK, .next, .submit(2), .submit(3), .submit(4), .finished(carryOver: [], fatal: false), .next],
            outputs: [.accepted, .initialize, .failed([]), .transact([1]), .accepted, .accepted, .accepted, .transact([2, 3, 4])],
            state: .ready),
        .init(
            name: "carried-over requests go first",
            events: [.submit(1), .next, .initOK, .submit(2), .submit(3), .next, .submit(4), .finished(carryOver: [3], fatal: false), .next],
            outputs: [.accepted, .initialize, .failed([]), .accepted, .accepted, .transact([1, 2, 3]), .accepted, .transact([3, 4])],
            state: .ready),
        .init(
            name: "retriable init failure fails the queue and retries with the next request",
            events: [.submit(1), .submit(2), .next, .initRetriable, .next, .submit(3), .next, .initOK, .next],
            outputs: [.accepted, .accepted, .initialize, .failed([1, 2]), .idle, .accepted, .initialize, .failed([]), .transact([3])],
            state: .ready),
        .init(
            name: "fatal init failure stops the producer",
            events: [.submit(1), .next, .initFatal, .submit(2), .next, .next],
            outputs: [.accepted, .initialize, .failed([1]), .rejected, .shutDown([]), .shutDown([])],
            state: .stopped),
        .init(
            name: "fatal transaction error rejects new requests and shuts down with the queued ones",
            events: [.submit(1), .next, .initOK, .next, .submit(2), .finished(carryOver: [], fatal: true), .submit(3), .next],
            outputs: [.accepted, .initialize, .failed([]), .transact([1]), .accepted, .rejected, .shutDown([2])],
            state: .stopped),
        .init(
            name: "close fails queued requests and is idempotent",
            events: [.submit(1), .close, .submit(2), .close, .next],
            outputs: [.accepted, .closeStarted(true), .rejected, .closeStarted(false), .shutDown([1])],
            state: .stopped),
        .init(
            name: "close during a transaction lets it finish, then shuts down",
            events: [.submit(1), .next, .initOK, .next, .close, .finished(carryOver: [], fatal: false), .next],
            outputs: [.accepted, .initialize, .failed([]), .transact([1]), .closeStarted(true), .shutDown([])],
            state: .stopped),
        .init(
            name: "close after a fatal error still shuts down once",
            events: [.submit(1), .next, .initFatal, .close, .next],
            outputs: [.accepted, .initialize, .failed([1]), .closeStarted(true), .shutDown([])],
            state: .stopped),
    ]

    @Test(arguments: transactionCases)
    func transactionalProducer(_ row: TransactionCase) {
        var machine = Machine()
        var outputs: [Output] = []
        for event in row.events {
            switch event {
            case .submit(let n):
                outputs.append(machine.submit(n) == .wakeWorker ? .accepted : .rejected)
            case .next:
                switch machine.nextWorkerAction() {
                case .idle: outputs.append(.idle)
                case .initialize: outputs.append(.initialize)
                case .transact(let batch): outputs.append(.transact(batch))
                case .shutDown(let left): outputs.append(.shutDown(left))
                }
            case .initOK: outputs.append(.failed(machine.initialization(succeeded: true, fatal: false)))
            case .initRetriable: outputs.append(.failed(machine.initialization(succeeded: false, fatal: false)))
            case .initFatal: outputs.append(.failed(machine.initialization(succeeded: false, fatal: true)))
            case .finished(let carryOver, let fatal): machine.transactionFinished(carryOver: carryOver, fatal: fatal)
            case .close: outputs.append(.closeStarted(machine.close()))
            }
        }
        #expect(outputs == row.outputs)
        #expect(machine.state == row.state)
        #expect(machine.isUsable == (row.state == .uninitialized || row.state == .ready))
    }
}
