// HopTrace: where the time of a Kafka-mode call goes, from the topics themselves.
//
//   HopTrace --brokers 127.0.0.1:9092 --prefix sluice. [--last 200] [--since EPOCH_MS]
//
// Reads `requests`, `inspected`, `outcomes` and `replies` of one Sluice deployment from the
// beginning (group-less, nothing committed), matches their records by the `sluice-request-id`
// header and prints, over the last `--last` requests that have all four (published at or after
// `--since`, milliseconds since 1970, when given), the p50 and p90 of
// each hop between the records' broker timestamps (the producer's create time, in ms):
//   requests → inspected   the Inspector: fetch wait, inspection, publish
//   inspected → outcomes   the Forwarder: fetch wait, upstream call, outcome publish
//   outcomes → replies     the Forwarder: the outcome's acknowledgement, the reply's publish
// The rest of a caller's latency (reading and sealing the body before `requests`, the
// Ingress's fetch of the reply, the HTTP answer) is the caller's figure minus
// requests → replies. Timestamps are milliseconds, so figures under ~2 ms are coarse.
//
//   HopTrace --brokers B --prefix P --bytes  [--since MS] [--until MS]
//   HopTrace --brokers B --prefix P --ledger [--since MS] [--until MS] [--settle GROUP]... [--audit-ids FILE]
//
// `--bytes`: records and bytes (key + value + header names and values) written to each topic
// between `--since` and `--until` (create time), in total and per accepted request (a request
// id on `requests` in the window). `--ledger`: the same, then exactly one outcome per accepted
// request (records on `outcomes` for each, at any time); exits 1 when a request has none or more
// than one. `--settle GROUP` (the group's name after the prefix, e.g. `recorder-sink-audit`)
// first waits, up to 120 s, until the group has committed everything on `audit` and `outcomes`
// (Bus.lag), so events still in flight are written before anything is counted.
// `--audit-ids FILE` writes the event ids a sink should hold, one a line: every event on
// `audit` and each request's first record on `outcomes` (the sinks skip later ones).
import Foundation
import KafkaBus
import Pipeline
import Synchronization

struct Options {
    var brokers = ""
    var prefix = "sluice."
    var last = 200
    var since: Int64 = 0
    var until: Int64 = .max
    enum Mode { case hops, bytes, ledger }
    var mode = Mode.hops
    var settle: [String] = []
    var auditIDs: String?

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var rest = arguments.dropFirst()[...]
        func value(_ flag: String) -> String {
            guard let v = rest.popFirst() else { fail("\(flag) needs a value") }
            return v
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--brokers": options.brokers = value(flag)
            case "--prefix": options.prefix = value(flag)
            case "--last":
                guard let n = Int(value(flag)), n > 0 else { fail("--last needs a positive integer") }
                options.last = n
            case "--since":
                guard let n = Int64(value(flag)), n >= 0 else { fail("--since needs milliseconds since 1970") }
                options.since = n
            case "--until":
                guard let n = Int64(value(flag)), n >= 0 else { fail("--until needs milliseconds since 1970") }
                options.until = n
            case "--bytes": options.mode = .bytes
            case "--ledger": options.mode = .ledger
            case "--settle": options.settle.append(value(flag))
            case "--audit-ids": options.auditIDs = value(flag)
            case "-h", "--help":
                print("""
                    usage: HopTrace --brokers HOST:PORT --prefix PREFIX [--last N] [--since EPOCH_MS]
                           HopTrace --brokers HOST:PORT --prefix PREFIX --bytes|--ledger [--since EPOCH_MS] [--until EPOCH_MS]
                                    [--settle GROUP]... [--audit-ids FILE]
                    """)
                exit(0)
            default: fail("unknown argument \(flag)")
            }
        }
        if options.brokers.isEmpty { fail("--brokers is required") }
        return options
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("HopTrace: \(message)\n".utf8))
    exit(2)
}

/// The create time of each request's first record on `topic`, by request id.
func timestamps(_ bus: KafkaBus, topic: String) async throws -> [String: Int64] {
    let times = Mutex<[String: Int64]>([:])
    try await scan(bus, topic: topic) { message in
        guard let id = message.header(MessageHeader.requestID).flatMap({ String(validating: $0, as: UTF8.self) }) else { return }
        times.withLock { t in
            if t[id] == nil { t[id] = message.timestampMillis }
        }
    }
    return times.withLock { $0 }
}

/// Hands every record on `topic` to `visit`, from the beginning, in partition order.
///
/// Reads until every partition has been read up to its end offset at the start and then nothing
/// more has arrived for `quiet` (the end offsets may be a little behind the log on some brokers,
/// and a count of records can be met early by a record delivered twice), or nothing has arrived
/// for `idle`: with transactions, the end offsets count commit markers that are never delivered.
func scan(
    _ bus: KafkaBus, topic: String, quiet: Duration = .milliseconds(500), idle: Duration = .seconds(2),
    _ visit: @escaping @Sendable (BusMessage) -> Void
) async throws {
    let partitions = try await bus.partitionCount(topic: topic)
    let lag = try await bus.lag(group: "hoptrace-\(UUID().uuidString.prefix(8))", topics: [topic])
    var ends: [Int: Int64] = [:]
    for p in 0..<partitions {
        guard let l = lag[BusPartition(topic: topic, partition: p)], l.endOffset > l.startOffset else { continue }
        ends[p] = l.endOffset
    }
    guard !ends.isEmpty else { return }
    let progress = ReadProgress(ends: ends)
    let reader = try await bus.read(topic: topic, from: .beginning)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            for try await message in reader {
                visit(message)
                progress.state.withLock { p in
                    if let end = p.ends[message.partition], message.offset + 1 >= end { p.ends[message.partition] = nil }
                    p.last = .now
                }
            }
        }
        group.addTask {
            while true {
                do { try await Task.sleep(for: .milliseconds(100)) } catch { return }  // the reader finished first
                let (open, last) = progress.state.withLock { ($0.ends.count, $0.last) }
                let waited = ContinuousClock.now - last
                if (open == 0 && waited > quiet) || waited > idle { return }
            }
        }
        try await group.next()
        group.cancelAll()
        await reader.close()  // ends the reading child's loop
        try await group.waitForAll()
    }
}

/// What `scan` has read so far, shared by its reading and its watching child.
final class ReadProgress: Sendable {
    struct State {
        /// The end offset of each partition not yet read up to it.
        var ends: [Int: Int64]
        var last = ContinuousClock.now
    }
    let state: Mutex<State>
    init(ends: [Int: Int64]) { state = Mutex(State(ends: ends)) }
}

func percentile(_ values: [Int64], _ q: Double) -> Int64 {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]
}

let options = Options.parse(CommandLine.arguments)
let topics = Topics(prefix: options.prefix)
let bus = try KafkaBus(configuration: KafkaBusConfiguration(
    brokers: options.brokers, clientId: "sluice-hoptrace", publishTimeout: .seconds(10), adminTimeout: .seconds(10)))
do {
    if options.mode != .hops {
        let ok = try await ledger(bus, topics: topics, options: options)
        await bus.shutdown()
        exit(ok ? 0 : 1)
    }
    let requests = try await timestamps(bus, topic: topics.requests)
    let inspected = try await timestamps(bus, topic: topics.inspected)
    let outcomes = try await timestamps(bus, topic: topics.outcomes)
    let replies = try await timestamps(bus, topic: topics.replies)
    let complete = requests.compactMap { id, t0 -> (Int64, Int64, Int64, Int64)? in
        guard t0 >= options.since, let t1 = inspected[id], let t2 = outcomes[id], let t3 = replies[id] else { return nil }
        return (t0, t1, t2, t3)
    }.sorted { $0.0 < $1.0 }.suffix(options.last)
    guard !complete.isEmpty else { fail("no request under \(options.prefix) has all four records") }
    func hop(_ name: String, _ values: [Int64]) -> String {
        "\(name) p50 \(percentile(values, 0.5)) ms, p90 \(percentile(values, 0.9)) ms"
    }
    print("hops of the last \(complete.count) calls: "
        + [
            hop("requests→inspected", complete.map { $0.1 - $0.0 }),
            hop("inspected→outcomes", complete.map { $0.2 - $0.1 }),
            hop("outcomes→replies", complete.map { $0.3 - $0.2 }),
            hop("requests→replies", complete.map { $0.3 - $0.0 }),
        ].joined(separator: "; "))
} catch {
    await bus.shutdown()
    fail("\(error)")
}
await bus.shutdown()
