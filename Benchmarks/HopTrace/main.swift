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
import Foundation
import KafkaBus
import Pipeline
import Synchronization

struct Options {
    var brokers = ""
    var prefix = "sluice."
    var last = 200
    var since: Int64 = 0

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
            case "-h", "--help":
                print("usage: HopTrace --brokers HOST:PORT --prefix PREFIX [--last N] [--since EPOCH_MS]")
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
///
/// Reads from the beginning until every record that was there at the start has arrived, or
/// nothing has arrived for `idle`: with transactions, the end offsets count commit markers that
/// are never delivered, so the count alone would wait forever.
func timestamps(_ bus: KafkaBus, topic: String, idle: Duration = .seconds(2)) async throws -> [String: Int64] {
    let partitions = try await bus.partitionCount(topic: topic)
    let lag = try await bus.lag(group: "hoptrace-\(UUID().uuidString.prefix(8))", topics: [topic])
    var remaining = 0
    for p in 0..<partitions {
        guard let l = lag[BusPartition(topic: topic, partition: p)] else { continue }
        remaining += Int(l.endOffset - l.startOffset)
    }
    guard remaining > 0 else { return [:] }
    let progress = ReadProgress(remaining: remaining)
    let reader = try await bus.read(topic: topic, from: .beginning)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            for try await message in reader {
                let id = message.header(MessageHeader.requestID).flatMap { String(validating: $0, as: UTF8.self) }
                let done = progress.state.withLock { p -> Bool in
                    if let id, p.times[id] == nil { p.times[id] = message.timestampMillis }
                    p.remaining -= 1
                    p.last = .now
                    return p.remaining <= 0
                }
                if done { return }
            }
        }
        group.addTask {
            while true {
                do { try await Task.sleep(for: .milliseconds(100)) } catch { return }  // the reader finished first
                let (left, last) = progress.state.withLock { ($0.remaining, $0.last) }
                if left <= 0 || ContinuousClock.now - last > idle { return }
            }
        }
        try await group.next()
        group.cancelAll()
        await reader.close()  // ends the reading child's loop
        try await group.waitForAll()
    }
    return progress.state.withLock { $0.times }
}

/// What `timestamps` has read so far, shared by its reading and its watching child.
final class ReadProgress: Sendable {
    struct State {
        var times: [String: Int64] = [:]
        var remaining: Int
        var last = ContinuousClock.now
    }
    let state: Mutex<State>
    init(remaining: Int) { state = Mutex(State(remaining: remaining)) }
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
