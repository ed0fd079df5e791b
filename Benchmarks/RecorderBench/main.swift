// RecorderBench: how fast the Recorder drains a backlog of `audit` on the embedded bus.
//
//   swift run -c release RecorderBench [--events 20000] [--sessions 200] [--partitions 6]
//       [--dir /tmp/recorder-bench] [--runs 3]
//
// Per run: a fresh embedded bus and data directory; publishes `--events` audit events spread
// over `--sessions` sessions (every 10th event sessionless, so the day's shared file is hot
// too), then starts one `RecorderService` (session recordings plus one `file` sink, as a
// typical deployment) and times it until the sink holds every event. Prints the time to the
// first recorded event (group join, ledger start) and the rate from the first to the last.
import Foundation
import Logging
import Pipeline
import Recorder

struct Options {
    var events = 20_000
    var sessions = 200
    var partitions = 6
    var runs = 3
    var dir = FileManager.default.temporaryDirectory.appendingPathComponent("recorder-bench").path

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var rest = arguments.dropFirst()[...]
        while let flag = rest.popFirst() {
            if flag == "-h" || flag == "--help" {
                print("usage: RecorderBench [--events N] [--sessions N] [--partitions N] [--runs N] [--dir PATH]")
                exit(0)
            }
            guard let value = rest.popFirst() else { fail("\(flag) needs a value") }
            if flag == "--dir" {
                options.dir = value
                continue
            }
            guard let n = Int(value), n > 0 else { fail("\(flag) needs a positive integer, not \(value)") }
            switch flag {
            case "--events": options.events = n
            case "--sessions": options.sessions = n
            case "--partitions": options.partitions = n
            case "--runs": options.runs = n
            default: fail("unknown argument \(flag)")
            }
        }
        return options
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("RecorderBench: \(message)\n".utf8))
    exit(2)
}

/// Counts the lines appended to a file since the last call (reads only what is new).
final class LineCounter {
    let path: String
    private var offset: UInt64 = 0
    private(set) var lines = 0

    init(path: String) { self.path = path }

    func poll() -> Int {
        guard let handle = FileHandle(forReadingAtPath: path) else { return lines }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.readToEnd() else { return lines }
        offset += UInt64(data.count)
        lines += data.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        return lines
    }
}

struct RunResult {
    var firstSeconds: Double
    var totalSeconds: Double
    var eventsPerSecond: Double
}

func run(_ options: Options, index: Int) async throws -> RunResult {
    let root = URL(fileURLWithPath: options.dir).appendingPathComponent("run-\(index)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: root) }
    let bus = try EmbeddedBus(directory: root.appendingPathComponent("bus"), defaultPartitions: options.partitions)
    let sealer = try PayloadSealer(keys: [PayloadSealer.Key(id: "bench", bytes: Array(repeating: 7, count: 32))])
    var logger = Logger(label: "recorder-bench")
    logger.logLevel = .warning
    let context = StageContext(bus: bus, codec: MessageCodec(sealer: sealer, topics: Topics()), logger: logger)
    let sinkPath = root.appendingPathComponent("audit.jsonl").path
    // The sink's lines are hash-chained (docs/audit-chain.md): a chain key is required.
    let chainKeyPath = root.appendingPathComponent("chain.key").path
    try Data("bench-chain-key-0123456789".utf8).write(to: URL(fileURLWithPath: chainKeyPath))
    let json = """
    {"data_dir": "\(root.appendingPathComponent("data").path)",
     "sealing": {"keys": [{"id": "bench", "secret": "env:UNUSED"}], "fingerprint_key": "env:UNUSED"},
     "recorder": {"sinks": [{"kind": "file", "path": "\(sinkPath)"}], "chain_key": "file:\(chainKeyPath)"}}
    """
    let config = try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))

    // Pre-fill `audit`, 64 publishes in flight.
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    let kinds: [AuditEvent.Kind] = [.requestReceived, .inspected, .delivered]
    try await withThrowingTaskGroup(of: Void.self) { group in
        for i in 0..<options.events {
            if i >= 64 { try await group.next() }
            let request = "r-\(i / 3)"
            let session = i % 10 == 0 ? request : "s-\(i % options.sessions)"
            let event = AuditEvent(
                kind: kinds[i % 3], stage: "bench", requestID: request, sessionID: session, connection: "billing",
                identity: "ci-bot", method: "POST", path: "/v1/charges", decision: nil, rules: nil, findings: nil,
                status: i % 3 == 2 ? 200 : nil, timeMillis: now + Int64(i), eventID: "e-\(index)-\(i)")
            let message = try context.codec.audit(event)
            group.addTask { try await bus.publish(message) }
        }
        try await group.waitForAll()
    }

    let service = try RecorderService(config: config, context: context)
    let counter = LineCounter(path: sinkPath)
    let clock = ContinuousClock()
    let started = clock.now
    let task = Task { try await service.run() }
    var first: ContinuousClock.Instant?
    while counter.poll() < options.events {
        if first == nil, counter.lines > 0 { first = clock.now }
        try await Task.sleep(for: .milliseconds(2))
    }
    let ended = clock.now
    task.cancel()
    try await task.value
    await bus.shutdown()
    let firstAt = first ?? ended
    let steady = ended - firstAt
    let seconds = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    return RunResult(
        firstSeconds: seconds(firstAt - started), totalSeconds: seconds(ended - started),
        eventsPerSecond: seconds(steady) > 0 ? Double(options.events - 1) / seconds(steady) : .infinity)
}

let options = Options.parse(CommandLine.arguments)
print("RecorderBench: \(options.events) audit events, \(options.sessions) sessions, \(options.partitions) partitions, embedded bus, 1 file sink")
var rates: [Double] = []
for i in 0..<options.runs {
    let r = try await run(options, index: i)
    rates.append(r.eventsPerSecond)
    print(String(format: "run %d: first event after %.3f s, all after %.3f s, %.0f events/s (first to last)", i + 1, r.firstSeconds, r.totalSeconds, r.eventsPerSecond))
}
let sorted = rates.sorted()
print(String(format: "median: %.0f events/s", sorted[sorted.count / 2]))
