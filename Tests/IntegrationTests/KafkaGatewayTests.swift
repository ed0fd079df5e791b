import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// Kafka mode only: one process per stage, scaled and crashed independently.
@Suite("Gateway on Kafka", .serialized, .enabled(if: GatewayMode.kafkaBrokers != nil, "set SLUICE_KAFKA_BROKERS (make test does)"))
struct KafkaGatewayTests {
    @Test("fail closed: no inspector means 504 at the deadline, and a late inspector never delivers it")
    func failClosed() async throws {
        let gw = try await Gateway(mode: .kafka, requestTimeout: "3s")
        defer { Task { await gw.stop() } }
        try await gw.start(inspectors: 0)
        let started = ContinuousClock.now
        let r = try await gw.call(connection: "billing", headers: [("Content-Type", "application/json")], body: Data("{\"a\":1}".utf8))
        let waited = ContinuousClock.now - started
        #expect(r.status == 504)
        #expect(r.json?["error"] as? String == "timeout")
        #expect(waited >= .seconds(3))
        try gw.launch("inspector-late", command: "inspector")
        try await Task.sleep(for: .seconds(12))  // group join, inspection, forwarder
        #expect(await gw.upstream.requests.isEmpty, "a request past its deadline was delivered")
        let recording = String(decoding: gw.dataDirectoryBytes(), as: UTF8.self)
        #expect(recording.contains("\"expired\""), "the late request has no expired outcome")
        await gw.stop()
    }

    @Test("two inspector processes share the work: 200 requests all answered, each delivered once")
    func twoInspectors() async throws {
        let gw = try await Gateway(mode: .kafka)
        defer { Task { await gw.stop() } }
        try await gw.start(inspectors: 2)
        try await Task.sleep(for: .seconds(3))  // both inspectors in the group
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for i in 0..<200 {
                group.addTask {
                    let r = try await gw.call(connection: "billing", path: "/item/\(i)",
                                              headers: [("Content-Type", "application/json"), ("X-Sluice-Session", "s\(i % 17)")],
                                              body: Data("{\"i\":\(i)}".utf8))
                    return (i, r.status)
                }
            }
            var out: [(Int, Int)] = []
            for try await r in group { out.append(r) }
            return out
        }
        #expect(results.count == 200)
        #expect(results.allSatisfy { $0.1 == 200 }, "statuses: \(Dictionary(grouping: results, by: \.1).mapValues(\.count))")
        let got = await gw.upstream.requests
        #expect(got.count == 200)
        #expect(Set(got.map(\.path)).count == 200)
        for name in ["inspector-0", "inspector-1"] {
            let lines = gw.process(name)?.output.components(separatedBy: "request inspected").count ?? 1
            #expect(lines - 1 > 0, "\(name) inspected nothing")
        }
        await gw.stop()
    }
}
