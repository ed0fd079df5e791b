// BusBench: publish → consume throughput and latency of a Sluice bus.
//
//   swift run -c release BusBench --kafka 127.0.0.1:9092 [--embedded /tmp/bench-data]
//       [--messages 20000] [--size 1024] [--in-flight 64] [--partitions 4] [--commit-every 100]
//       [--set LIBRDKAFKA_KEY=VALUE]...   (Kafka only: passed through to librdkafka)
//
// For each bus: creates a fresh topic, starts one consumer-group member reading
// it, waits until that member receives a warm-up message (so group join is not
// measured), then publishes `--messages` values of `--size` bytes with up to
// `--in-flight` publishes awaiting their acknowledgement at once, while the member
// consumes (committing every `--commit-every`th message, awaited). Each value
// carries its send time; the consumer records publish-to-consume latency.
import Foundation
import KafkaBus
import Pipeline

struct Options {
    var kafka: String?
    var embedded: String?
    var messages = 20_000
    var size = 1024
    var inFlight = 64
    var partitions = 4
    var commitEvery = 100
    var settings: [String: String] = [:]

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var rest = arguments.dropFirst()[...]
        func value(_ flag: String) -> String {
            guard let v = rest.popFirst() else { fail("\(flag) needs a value") }
            return v
        }
        func number(_ flag: String) -> Int {
            guard let n = Int(value(flag)), n > 0 else { fail("\(flag) needs a positive integer") }
            return n
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--kafka": options.kafka = value(flag)
            case "--embedded": options.embedded = value(flag)
            case "--messages": options.messages = number(flag)
            case "--size": options.size = max(number(flag), 16)
            case "--in-flight": options.inFlight = number(flag)
            case "--partitions": options.partitions = number(flag)
            case "--commit-every": options.commitEvery = number(flag)
            case "--set":
                let pair = value(flag).split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2 else { fail("--set needs KEY=VALUE") }
                options.settings[pair[0]] = pair[1]
            case "-h", "--help": usage(0)
            default: fail("unknown argument \(flag)")
            }
        }
        if options.kafka == nil && options.embedded == nil { usage(2) }
        return options
    }
}

func usage(_ code: Int32) -> Never {
    print("""
        usage: BusBench [--kafka BROKERS] [--embedded DATA_DIR] [--messages N] [--size BYTES]
                        [--in-flight N] [--partitions N] [--commit-every N] [--set LIBRDKAFKA_KEY=VALUE]...
        """)
    exit(code)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("BusBench: \(message)\n".utf8))
    exit(2)
}

/// Monotonic nanoseconds (same clock in producer and consumer: one process).
func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Latencies and arrival count, shared by the consumer and the reporter.
actor Recorder {
    private(set) var latencies: [UInt64] = []
    private(set) var lastArrival: UInt64 = 0

    func record(sentAt: UInt64) {
        let t = now()
        latencies.append(t &- sentAt)
        lastArrival = t
    }

    var count: Int { latencies.count }

    func waitFor(_ target: Int, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while latencies.count < target {
            if ContinuousClock.now > deadline { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }
}

func percentile(_ sorted: [UInt64], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let index = min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)
    return Double(sorted[max(index, 0)]) / 1_000_000
}

func run(name: String, bus: any Bus, options: Options) async throws {
    let topic = "busbench-\(UUID().uuidString.prefix(8).lowercased())"
    try await bus.ensureTopics([TopicSpec(name: topic, partitions: options.partitions)])
    let subscription = try await bus.subscribe(group: "busbench-\(UUID().uuidString.prefix(8))", topics: [topic])
    let recorder = Recorder()
    let warmup = Recorder()

    let consumer = Task {
        var received = 0
        for try await message in subscription {
            guard message.value.count >= 9 else { continue }
            let sentAt = message.value.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 1, as: UInt64.self)) }
            if message.value[0] == 0 {
                await warmup.record(sentAt: sentAt)
            } else {
                await recorder.record(sentAt: sentAt)
                received += 1
            }
            if received % options.commitEvery == 0 { try await subscription.commit(message) }
        }
    }

    func payload(kind: UInt8) -> [UInt8] {
        var value = [UInt8](repeating: 0x61, count: options.size)
        value[0] = kind
        withUnsafeBytes(of: now().littleEndian) { value.replaceSubrange(1..<9, with: $0) }
        return value
    }

    // Warm-up: wait until the member has joined and receives.
    try await bus.publish(OutgoingMessage(topic: topic, key: "warmup", value: payload(kind: 0)))
    guard await warmup.waitFor(1, timeout: .seconds(60)) else { fail("\(name): warm-up message never arrived") }

    var publishLatencies: [UInt64] = []
    publishLatencies.reserveCapacity(options.messages)
    let started = now()
    try await withThrowingTaskGroup(of: UInt64.self) { group in
        var next = 0
        func add() {
            let i = next
            next += 1
            group.addTask {
                let value = payload(kind: 1)
                let t0 = now()
                try await bus.publish(OutgoingMessage(topic: topic, key: "key-\(i % 1000)", value: value))
                return now() - t0
            }
        }
        while next < min(options.inFlight, options.messages) { add() }
        while let latency = try await group.next() {
            publishLatencies.append(latency)
            if next < options.messages { add() }
        }
    }
    let published = now()
    let complete = await recorder.waitFor(options.messages, timeout: .seconds(120))
    let finished = await recorder.lastArrival
    consumer.cancel()
    await subscription.close()
    _ = try? await consumer.value

    let latencies = await recorder.latencies.sorted()
    publishLatencies.sort()
    let seconds = Double(finished - started) / 1e9
    let rate = Double(latencies.count) / seconds
    let mib = rate * Double(options.size) / 1_048_576
    print("""
        \(name): \(latencies.count)/\(options.messages) messages of \(options.size) B, \(options.partitions) partitions, \
        \(options.inFlight) in flight\(complete ? "" : " (INCOMPLETE)")
          publish→consume: \(String(format: "%.0f", rate)) msg/s, \(String(format: "%.2f", mib)) MiB/s over \(String(format: "%.2f", seconds)) s \
        (publishing took \(String(format: "%.2f", Double(published - started) / 1e9)) s)
          latency publish→consume: p50 \(String(format: "%.2f", percentile(latencies, 0.5))) ms, \
        p99 \(String(format: "%.2f", percentile(latencies, 0.99))) ms, max \(String(format: "%.2f", percentile(latencies, 1.0))) ms
          latency publish→ack:     p50 \(String(format: "%.2f", percentile(publishLatencies, 0.5))) ms, \
        p99 \(String(format: "%.2f", percentile(publishLatencies, 0.99))) ms
        """)
}

let options = Options.parse(CommandLine.arguments)
if let brokers = options.kafka {
    let bus = try KafkaBus(configuration: KafkaBusConfiguration(brokers: brokers, clientId: "busbench", librdkafka: options.settings))
    try await run(name: "kafka (\(brokers), librdkafka \(KafkaBus.libraryVersion))", bus: bus, options: options)
    await bus.shutdown()
}
if let directory = options.embedded {
    let bus = try EmbeddedBus(directory: URL(fileURLWithPath: directory), defaultPartitions: options.partitions)
    try await run(name: "embedded (\(directory))", bus: bus, options: options)
    await bus.shutdown()
}
