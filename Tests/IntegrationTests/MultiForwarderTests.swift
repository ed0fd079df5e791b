import Foundation
import GatewayHarness
import NIOHTTP1
import Pipeline
import Testing

/// Kafka only: two `sluice forwarder` processes in one group share the held requests; each is
/// expired once, by the Forwarder that owns its partition.
@Suite("Several Forwarders on Kafka", .serialized, .enabled(if: GatewayMode.kafkaBrokers != nil, "set SLUICE_KAFKA_BROKERS (make test does)"))
struct MultiForwarderTests {
    /// The Gateway's bus partitions (`partitions: 3`).
    static let partitions = 3
    static let onTansu = ProcessInfo.processInfo.environment["SLUICE_KAFKA_BROKER_KIND"] == "tansu"

    /// The `request_id`s of the "held request expired" lines in a process's output.
    static func expiredIDs(_ output: String) -> [String] {
        output.split(separator: "\n").filter { $0.contains("held request expired") }.compactMap { line in
            guard let r = line.range(of: "request_id=") else { return nil }
            return String(line[r.upperBound...].prefix { !$0.isWhitespace })
        }
    }

    /// The partitions a Forwarder last logged as owned (`held-request partitions owned`).
    static func owned(_ output: String) -> Set<Int> {
        guard let line = output.split(separator: "\n").last(where: { $0.contains("held-request partitions owned") }),
              let start = line.range(of: "partitions=[")
        else { return [] }
        let list = line[start.upperBound...].prefix { $0 != "]" }
        return Set(list.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) })
    }

    static func partition(_ id: String) -> Int { Pipeline.partition(forKey: Array(id.utf8), partitions: partitions) }

    /// Holds `count` requests (DELETE on `held`); returns their ids.
    static func hold(_ gw: Gateway, count: Int, tag: String) async throws -> [String] {
        var ids: [String] = []
        for i in 0..<count {
            let r = try await gw.call(.DELETE, connection: "held", path: "/\(tag)/\(i)")
            try #require(r.status == 202, "expected 202, got \(r.status) \(r.text)")
            ids.append(try #require(r.json?["request_id"] as? String))
        }
        return ids
    }

    /// Polls until `condition` holds or `timeout` passes.
    static func poll(_ timeout: Duration, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return try await condition()
    }

    /// Starts `forwarder-b` beside the gateway's Forwarder and waits until the two split the
    /// partitions. `false` (after stopping the gateway) when they never do: on Tansu a skip,
    /// printed; elsewhere a recorded issue.
    static func launchSecondForwarder(_ gw: Gateway, case name: String) async throws -> Bool {
        try gw.launch("forwarder-b", command: "forwarder")
        func output(_ name: String) -> String { gw.process(name)?.output ?? "" }
        let split = await Self.poll(.seconds(60)) {
            let (a, b) = (Self.owned(output("forwarder")), Self.owned(output("forwarder-b")))
            return !a.isEmpty && !b.isEmpty && a.isDisjoint(with: b) && a.union(b).count == Self.partitions
        }
        guard split else {
            if Self.onTansu {
                print("SKIPPED \(name) case: the group did not split the partitions between the two forwarders within 60 s on Tansu 0.6.0 (rebalance did not complete)")
                await gw.stop()
                return false
            }
            Issue.record("the two forwarders never split the partitions: \(Self.owned(output("forwarder"))) / \(Self.owned(output("forwarder-b")))")
            await gw.stop()
            return false
        }
        return true
    }

    @Test("two forwarder processes: a scoped approval for 3 calls releases exactly 3 of 8 matching calls, whichever Forwarder holds them")
    func scopedApprovalCountsExactly() async throws {
        let gw = try await Gateway(mode: .kafka, holdWait: "100ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        guard try await Self.launchSecondForwarder(gw, case: "scoped-approval") else { return }
        let pattern = try #require(try await Self.hold(gw, count: 1, tag: "db").first)
        try await gw.waitPending(pattern)
        let approved = try await gw.api(.POST, "/v1/approvals/\(pattern)/approve", key: Gateway.aliceKey,
                                        json: ["reason": "batch", "grant": ["for": "1h", "calls": 3, "path_glob": "/rows/*"]])
        let grantID = try #require((approved.json?["decision"] as? [String: Any])?["grant_id"] as? String, "\(approved.text)")
        let made = await Self.poll(.seconds(20)) {
            let r = try? await gw.api(.GET, "/v1/grants", key: Gateway.aliceKey)
            return (r?.json?["grants"] as? [[String: Any]])?.contains { $0["grant_id"] as? String == grantID } == true
        }
        try #require(made)
        // Eight matching calls at once: their ids hash over both Forwarders' partitions.
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<8 {
                group.addTask {
                    let r = try await gw.call(.DELETE, connection: "held", path: "/rows/\(i)")
                    return try #require(r.header("X-Sluice-Request-Id"))
                }
            }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(Set(ids.map(Self.partition)).count > 1, "the calls landed on one partition only")
        let exhausted = await Self.poll(.seconds(30)) {
            let r = try? await gw.api(.GET, "/v1/grants?status=all", key: Gateway.aliceKey)
            let grant = (r?.json?["grants"] as? [[String: Any]])?.first { $0["grant_id"] as? String == grantID }
            return grant?["uses"] as? Int == 3
        }
        #expect(exhausted)
        var finals = 0
        let threeFinal = await Self.poll(.seconds(30)) {
            finals = 0
            for id in ids where (try? await gw.poll(id).status) == 200 { finals += 1 }
            return finals == 3
        }
        #expect(threeFinal, "\(finals) of 8 released")
        let pending = try await gw.approvalIDs()
        #expect(ids.filter(pending.contains).count == 5, "the other five wait for a reviewer")
        let deletes = await gw.upstream.requests.filter { $0.method == "DELETE" && $0.path.hasPrefix("/rows/") }
        #expect(deletes.count == 3)
    }

    @Test("two forwarder processes: each held request expires exactly once, by its partition's owner; after one leaves, the other expires its holds")
    func twoForwarders() async throws {
        let gw = try await Gateway(mode: .kafka, holdWait: "100ms", holdTimeout: "5s")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let names = ["forwarder", "forwarder-b"]
        func output(_ name: String) -> String { gw.process(name)?.output ?? "" }
        guard try await Self.launchSecondForwarder(gw, case: "two-forwarder") else { return }
        let ownedBy = ["forwarder": Self.owned(output("forwarder")), "forwarder-b": Self.owned(output("forwarder-b"))]

        // Phase 1: both running.
        let ids = try await Self.hold(gw, count: 12, tag: "both")
        for id in ids { #expect(try await gw.waitFinal(id, timeout: .seconds(60)).status == 410) }
        let expiredOnce = await Self.poll(.seconds(20)) {
            names.flatMap { Self.expiredIDs(output($0)) }.filter(ids.contains).count >= ids.count
        }
        #expect(expiredOnce)
        // Duplicates would come from the same 250 ms expiry round; give them time to show.
        try await Task.sleep(for: .seconds(2))
        var byProcess: [String: Int] = [:]
        for name in names {
            for id in Self.expiredIDs(output(name)) where ids.contains(id) {
                byProcess[name, default: 0] += 1
                #expect(ownedBy[name]?.contains(Self.partition(id)) == true, "\(id) (partition \(Self.partition(id))) expired by \(name), owner of \(ownedBy[name]?.sorted() ?? [])")
            }
        }
        let phase1 = names.flatMap { Self.expiredIDs(output($0)) }.filter(ids.contains)
        #expect(phase1.count == ids.count && Set(phase1) == Set(ids), "each held request expired once: \(phase1.count) expiries for \(ids.count) requests")
        print("two forwarder processes: \(ids.count) held requests, \(phase1.count) expiries; forwarder \(byProcess["forwarder", default: 0]) (partitions \(ownedBy["forwarder"]!.sorted())), forwarder-b \(byProcess["forwarder-b", default: 0]) (partitions \(ownedBy["forwarder-b"]!.sorted()))")

        // Phase 2: forwarder-b leaves while its holds wait; the other takes them over.
        let later = try await Self.hold(gw, count: 6, tag: "takeover")
        let termination = try await gw.terminate("forwarder-b", timeout: .seconds(15))
        #expect(termination.exitedInTime, "forwarder-b: \(termination)")
        var finals = 0
        for id in later { if (try? await gw.waitFinal(id, timeout: .seconds(60)))?.status == 410 { finals += 1 } }
        if finals < later.count, Self.onTansu {
            print("SKIPPED takeover case: \(later.count - finals) of \(later.count) held requests did not expire within 60 s after forwarder-b left; Tansu 0.6.0 did not complete the rebalance")
            await gw.stop()
            return
        }
        #expect(finals == later.count)
        try await Task.sleep(for: .seconds(2))
        let phase2 = names.flatMap { Self.expiredIDs(output($0)) }.filter(later.contains)
        #expect(phase2.count == later.count && Set(phase2) == Set(later), "each expired once after the takeover: \(phase2.count) expiries for \(later.count)")
        let takenOver = later.filter { ownedBy["forwarder-b"]!.contains(Self.partition($0)) }
        #expect(Set(Self.expiredIDs(output("forwarder"))).isSuperset(of: takenOver), "forwarder-b's former holds expired by forwarder")
        print("takeover: \(later.count) held requests (\(takenOver.count) on forwarder-b's former partitions), \(phase2.count) expiries, all by the remaining forwarder: \(Set(Self.expiredIDs(output("forwarder"))).isSuperset(of: later))")
        #expect(await gw.upstream.requests.isEmpty, "no held request was delivered")
        await gw.stop()
    }
}
