// RecorderBench: how fast the Recorder drains a backlog of `audit` on the embedded bus.
//
//   swift run -c release RecorderBench [--events 20000] [--sessions 200] [--partitions 6]
//       [--dir /tmp/recorder-bench] [--runs 3] [--postgres URL] [--content]
//
// Per run: a fresh embedded bus and data directory; publishes `--events` audit events spread
// over `--sessions` sessions (every 10th event sessionless, so the day's shared file is hot
// too), then starts one `RecorderService` (session recordings plus one `file` sink, as a
// typical deployment) and times it until the sink holds every event and the recordings hold
// every event (`sluice_recorder_events_total`). Prints the time to the first recorded event
// (group join, ledger start) and the rate from the first to the last, for the sink and for the
// recordings. With `--postgres URL` the recordings go to a PostgreSQL table (a fresh table per
// run, dropped after it) instead of files. With `--content` each request (every 3 events) also
// has an `inspected` request and a `replies` response of 1 KiB of agent JSON each, which the
// recordings' reader opens, seals again and records (`recorder.content`).
import Foundation
import Logging
import Metrics
import Pipeline
import Recorder
import Synchronization

/// Counts `sluice_recorder_events_total` (events written to the recordings); every other metric
/// is dropped.
final class RecordedEvents: MetricsFactory, CounterHandler, RecorderHandler, TimerHandler {
    let total = Atomic<Int64>(0)
    func increment(by amount: Int64) { total.add(amount, ordering: .relaxed) }
    func reset() {}
    func record(_ value: Int64) {}
    func record(_ value: Double) {}
    func recordNanoseconds(_ duration: Int64) {}
    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        label == "sluice_recorder_events_total" ? self : NOOPMetricsHandler.instance
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { NOOPMetricsHandler.instance }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { NOOPMetricsHandler.instance }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

struct Options {
    var events = 20_000
    var sessions = 200
    var partitions = 6
    var runs = 3
    var dir = FileManager.default.temporaryDirectory.appendingPathComponent("recorder-bench").path
    var postgres: String?
    var content = false

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var rest = arguments.dropFirst()[...]
        while let flag = rest.popFirst() {
            if flag == "-h" || flag == "--help" {
                print("usage: RecorderBench [--events N] [--sessions N] [--partitions N] [--runs N] [--dir PATH] [--postgres URL] [--content]")
                exit(0)
            }
            if flag == "--content" {
                options.content = true
                continue
            }
            guard let value = rest.popFirst() else { fail("\(flag) needs a value") }
            if flag == "--postgres" {
                options.postgres = value
                continue
            }
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
    /// The recordings' reader: all events recorded after, and its rate from the first to the last.
    var recordingsSeconds: Double
    var recordingsPerSecond: Double
}

let recorded = RecordedEvents()
MetricsSystem.bootstrap(recorded)

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
    let table = "bench_\(index)_\(UUID().uuidString.prefix(8).lowercased())"
    var environment = ProcessInfo.processInfo.environment
    var store = ""
    if let url = options.postgres {
        environment["RECORDER_BENCH_URL"] = url
        setenv("RECORDER_BENCH_URL", url, 1)
        store = #", "store": {"kind": "postgres", "url": "env:RECORDER_BENCH_URL", "table": "\#(table)"}"#
    }
    let json = """
    {"data_dir": "\(root.appendingPathComponent("data").path)",
     "sealing": {"keys": [{"id": "bench", "secret": "env:UNUSED"}], "fingerprint_key": "env:UNUSED"},
     "recorder": {"sinks": [{"kind": "file", "path": "\(sinkPath)"}], "chain_key": "file:\(chainKeyPath)"\(store)}}
    """
    let config = try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))

    // 1 KiB of tool-call JSON (escaped nested JSON, as agents send), for --content.
    let note = String(repeating: "refund for order 1234; ", count: 38)
    let toolCall = #"{"model":"gpt-4.1","tool_calls":[{"type":"function","function":{"name":"create_charge","arguments":"{\"amount\":1200,\"note\":\""#
        + note + #"\"}"}}]}"#
    let contentBody = Data(toolCall.utf8.prefix(1024))
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
            var messages = [try context.codec.audit(event)]
            if options.content, i % 3 == 1 {
                let meta = RequestMetadata(
                    requestID: request, sessionID: session, identity: CallerIdentity(id: "ci-bot", groups: ["ci"], method: "api_key"),
                    connection: "billing", receivedAtMillis: now, deadlineMillis: now + 30_000, replyTo: "ingress-bench")
                let http = HTTPRequestData(
                    method: "POST", path: "/v1/charges", query: "", headers: [HTTPField("Content-Type", "application/json")], body: contentBody)
                messages.append(try context.codec.inspected(InspectedRequest(metadata: meta, verdict: Verdict(decision: .allow), findings: [], request: http)))
                messages.append(try context.codec.reply(
                    Reply(requestID: request, sessionID: session, response: HTTPResponseData(status: 200, headers: [HTTPField("Content-Type", "application/json")], body: contentBody)),
                    to: "ingress-bench"))
            }
            group.addTask { for message in messages { try await bus.publish(message) } }
        }
        try await group.waitForAll()
    }

    let service = try RecorderService(config: config, context: context)
    let counter = LineCounter(path: sinkPath)
    let clock = ContinuousClock()
    let recordedBefore = recorded.total.load(ordering: .relaxed)
    let started = clock.now
    let task = Task { try await service.run() }
    var first: ContinuousClock.Instant?, ended: ContinuousClock.Instant?
    var firstRecorded: ContinuousClock.Instant?, allRecorded: ContinuousClock.Instant?
    while ended == nil || allRecorded == nil {
        let n = recorded.total.load(ordering: .relaxed) - recordedBefore
        if firstRecorded == nil, n > 0 { firstRecorded = clock.now }
        if allRecorded == nil, n >= Int64(options.events) { allRecorded = clock.now }
        if ended == nil {
            if first == nil, counter.poll() > 0 { first = clock.now }
            if counter.poll() >= options.events { ended = clock.now }
        }
        try await Task.sleep(for: .milliseconds(2))
    }
    task.cancel()
    try await task.value
    await bus.shutdown()
    if options.postgres != nil {
        // Drop the run's table.
        let database = try PostgresRecordings(
            store: RecorderConfig.Store(kind: .postgres, url: ConfigSecret(try SecretReference(parsing: "env:RECORDER_BENCH_URL")), table: table),
            environment: environment, logger: logger)
        try await database.withRunning { try await $0.drop() }
    }
    let seconds = { (d: Duration) in Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    let rate = { (from: ContinuousClock.Instant, to: ContinuousClock.Instant) in
        seconds(to - from) > 0 ? Double(options.events - 1) / seconds(to - from) : .infinity
    }
    let end = ended ?? clock.now, recordedEnd = allRecorded ?? clock.now
    return RunResult(
        firstSeconds: seconds((first ?? end) - started), totalSeconds: seconds(end - started), eventsPerSecond: rate(first ?? end, end),
        recordingsSeconds: seconds(recordedEnd - started), recordingsPerSecond: rate(firstRecorded ?? recordedEnd, recordedEnd))
}

let options = Options.parse(CommandLine.arguments)
let storeName = options.postgres == nil ? "files" : "postgres"
print("RecorderBench: \(options.events) audit events\(options.content ? " (+ \(options.events / 3) requests and responses of 1 KiB)" : ""), \(options.sessions) sessions, \(options.partitions) partitions, embedded bus, 1 file sink, recordings in \(storeName)")
var rates: [Double] = [], recordingRates: [Double] = []
for i in 0..<options.runs {
    let r = try await run(options, index: i)
    rates.append(r.eventsPerSecond)
    recordingRates.append(r.recordingsPerSecond)
    print(String(
        format: "run %d: sink: first event after %.3f s, all after %.3f s, %.0f events/s; recordings (\(storeName)): all after %.3f s, %.0f events/s (first to last)",
        i + 1, r.firstSeconds, r.totalSeconds, r.eventsPerSecond, r.recordingsSeconds, r.recordingsPerSecond))
}
let sorted = rates.sorted(), sortedRecordings = recordingRates.sorted()
print(String(format: "median: sink %.0f events/s, recordings (\(storeName)) %.0f events/s", sorted[sorted.count / 2], sortedRecordings[sortedRecordings.count / 2]))
