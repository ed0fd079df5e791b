// Requests per second and latency through a real Sluice deployment, for 1 KiB JSON bodies.
//
// Usage: GatewayBench [--requests N] [--concurrency C] [--mode embedded|kafka|both]
// The sluice binary is found next to this one (or $SLUICE_BIN); Kafka mode needs
// $SLUICE_KAFKA_BROKERS (make bench starts a broker and sets it).
import Foundation
import GatewayHarness
import NIOHTTP1

func argument(_ name: String, default value: String) -> String {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count { return args[i + 1] }
    return value
}

let total = Int(argument("--requests", default: "3000")) ?? 3000
let concurrency = Int(argument("--concurrency", default: "32")) ?? 32
let modeArg = argument("--mode", default: "both")
var modes: [GatewayMode] = []
if modeArg == "embedded" || modeArg == "both" { modes.append(.embedded) }
if (modeArg == "kafka" || modeArg == "both") {
    if GatewayMode.kafkaBrokers != nil { modes.append(.kafka) } else { print("gateway/kafka: skipped (SLUICE_KAFKA_BROKERS not set)") }
}

/// A 1 KiB JSON body like an agent's tool call, with nothing secret in it.
func body(_ i: Int) -> Data {
    var text = "{\"tool\":\"search\",\"request\":\(i),\"arguments\":{\"query\":\"quarterly revenue by region\",\"filters\":["
    var n = 0
    while text.utf8.count < 980 {
        text += (n == 0 ? "" : ",") + "{\"field\":\"region\",\"op\":\"eq\",\"value\":\"eu-west-\(n)\"}"
        n += 1
    }
    text += "]}}"
    return Data(text.utf8)
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

for mode in modes {
    let gw = try await Gateway(mode: mode, requestTimeout: "30s")
    do {
        try await gw.start(inspectors: 1, logLevel: "warning")
        // Warm up: connections, consumer groups, JIT-free but caches and allocators.
        for i in 0..<50 { _ = try await gw.call(connection: "billing", headers: [("Content-Type", "application/json")], body: body(i)) }
        let clock = ContinuousClock()
        let started = clock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            let perWorker = total / concurrency
            for w in 0..<concurrency {
                group.addTask {
                    var mine: [Double] = []
                    for i in 0..<perWorker {
                        let t0 = clock.now
                        let r = try await gw.call(connection: "billing", headers: [("Content-Type", "application/json"), ("X-Sluice-Session", "bench-\(w)")], body: body(w * perWorker + i))
                        guard r.status == 200 else { throw GatewayError("status \(r.status): \(r.text)") }
                        let d = clock.now - t0
                        mine.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
                    }
                    return mine
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all.sorted()
        }
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(String(format: "gateway/%@: %d requests of 1 KiB JSON, concurrency %d: %.0f req/s, p50 %.2f ms, p99 %.2f ms",
                     mode.rawValue, latencies.count, concurrency, Double(latencies.count) / seconds,
                     percentile(latencies, 0.50), percentile(latencies, 0.99)))
    } catch {
        print("gateway/\(mode.rawValue): failed: \(error)")
        print(gw.processLogs.suffix(3000))
    }
    await gw.stop()
}
