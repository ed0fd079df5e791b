import BusContract
import Foundation
import Logging
import Pipeline
import Synchronization
import Testing
@testable import Forwarder

/// Log lines of several in-process Forwarders, each tagged with its instance.
final class CapturedLogs: Sendable {
    struct Line: Sendable {
        var instance: String
        var message: String
        var requestID: String?
    }
    private let lines = Mutex<[Line]>([])

    func append(_ line: Line) { lines.withLock { $0.append(line) } }
    func lines(_ message: String) -> [Line] { lines.withLock { $0.filter { $0.message == message } } }
}

/// Records every log line (info and above) of one Forwarder instance into `CapturedLogs`.
struct CapturingLogHandler: LogHandler {
    let instance: String
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        sink.append(.init(instance: instance, message: event.message.description, requestID: merged["request_id"].map { "\($0)" }))
    }
}

/// Two `ForwarderService`s in one consumer group on one embedded bus (4 partitions, so the
/// group's round-robin gives each member the same partitions of `inspected` and `approvals`).
@Suite("Several Forwarders and held requests", .serialized)
struct MultiForwarderHoldsTests {
    static let partitions = 4
    static func approver(_ name: String) -> CallerIdentity {
        CallerIdentity(id: "oidc:\(name)", groups: ["secops"], method: "oidc", person: name)
    }

    /// A Forwarder named `instance` whose connection `billing` holds for 2 approvals from
    /// `secops`, expires holds after `holdTimeout` and delivers to `upstream` within `timeout`.
    static func forwarder(
        _ env: ForwarderTestEnv, instance: String, logs: CapturedLogs, upstream: String, holdTimeout: String, timeout: String = "3s"
    ) throws -> ForwarderService {
        let json = """
        {"data_dir": "\(env.root.path)/data",
         "sealing": {"keys": [{"id": "test", "secret": "env:UNUSED"}], "fingerprint_key": "env:UNUSED"},
         "connections": [{"name": "billing", "upstream": "\(upstream)", "allow_groups": ["ci"], "timeout": "\(timeout)",
                          "credentials": {"header": "Authorization", "value": "Bearer env:BILLING_TOKEN"},
                          "policy": {"approvers": ["secops"], "approvals_required": 2, "hold_timeout": "\(holdTimeout)"}}]}
        """
        let config = try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))
        let logger = Logger(label: "forwarder-\(instance)") { _ in CapturingLogHandler(instance: instance, sink: logs) }
        let context = StageContext(bus: env.bus, codec: env.context.codec, logger: logger)
        return try ForwarderService(
            config: config, context: context, engine: try ForwarderTestEnv.engine(), httpClient: env.http,
            options: ForwarderOptions(
                initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200), environment: ["BILLING_TOKEN": ForwarderTestEnv.token]))
    }

    static func partition(_ id: String) -> Int { HoldOwnership.partition(of: id, partitionCount: partitions) }

    /// Ids spread over every partition, at least `perPartition` in each.
    static func ids(_ prefix: String, perPartition: Int) -> [String] {
        var counts = [Int](repeating: 0, count: partitions)
        var out: [String] = []
        var i = 0
        while counts.min()! < perPartition {
            let id = "\(prefix)-\(i)"
            i += 1
            guard counts[partition(id)] < perPartition else { continue }
            counts[partition(id)] += 1
            out.append(id)
        }
        return out
    }

    /// The first id with `prefix` placed in one of `partitions`.
    static func id(_ prefix: String, in partitions: Set<Int>) -> String {
        var i = 0
        while !partitions.contains(partition("\(prefix)-\(i)")) { i += 1 }
        return "\(prefix)-\(i)"
    }

    /// Every outcome record on `outcomes` (markers left out), in log order.
    static func outcomes(_ env: ForwarderTestEnv) async throws -> [AuditEvent] {
        try await env.drain(env.context.topics.outcomes).filter { !TopicFollower.isMarker($0) }.map { try env.context.codec.decodeAudit($0) }
    }

    static func held(_ env: ForwarderTestEnv, _ id: String) -> InspectedRequest {
        env.inspected(id: id, decision: .hold, method: "DELETE", path: "/v1/charges/\(id)", deadlineIn: 60_000)
    }

    static func approve(_ env: ForwarderTestEnv, _ id: String, by name: String) async throws {
        try await env.bus.publish(env.context.codec.decision(ApprovalDecision(requestID: id, vote: .approve, approver: approver(name), reason: "ok")))
    }

    /// The statuses `forwarder`'s book has for `ids` (nil: unknown or not parked yet).
    static func statuses(_ forwarder: ForwarderService, _ ids: [String]) async -> [HoldStatus?] {
        var out: [HoldStatus?] = []
        for id in ids {
            let record = await forwarder.holds.record(id)
            out.append(record?.request == nil ? nil : record?.status)
        }
        return out
    }

    /// Waits until the two members split the partitions between them.
    static func bothAssigned(_ a: ForwarderService, _ b: ForwarderService) async -> Bool {
        await eventually(timeout: .seconds(10)) {
            let (pa, pb) = (await a.ownedHoldPartitions(), await b.ownedHoldPartitions())
            return !pa.isEmpty && !pb.isEmpty && pa.isDisjoint(with: pb) && pa.union(pb).count == partitions
        }
    }

    @Test("two Forwarders: every held request expires exactly once, by the owner of its partition")
    func eachHoldExpiresOnceByItsOwner() async throws {
        let env = try ForwarderTestEnv(partitions: Self.partitions)
        let upstream = try await TestUpstream.start()
        let logs = CapturedLogs()
        let url = "http://127.0.0.1:\(upstream.port)"
        let a = try Self.forwarder(env, instance: "A", logs: logs, upstream: url, holdTimeout: "1500ms")
        let b = try Self.forwarder(env, instance: "B", logs: logs, upstream: url, holdTimeout: "1500ms")
        let runA = Task { try await a.run() }
        let runB = Task { try await b.run() }
        #expect(await Self.bothAssigned(a, b), "each member owns some partitions")
        let (ownedA, ownedB) = (await a.ownedHoldPartitions(), await b.ownedHoldPartitions())

        let ids = Self.ids("exp", perPartition: 6)
        for id in ids { try await env.publish(Self.held(env, id)) }
        // Every request expired, and both books know it (each merged the other's records), so
        // neither Forwarder can still start an expiry.
        let expiredEverywhere = try await eventually(timeout: .seconds(30)) {
            for id in ids {
                guard await a.holds.record(id)?.status == .expired, await b.holds.record(id)?.status == .expired else { return false }
            }
            return Set(try await Self.outcomes(env).filter { $0.kind == .expired }.map(\.requestID)) == Set(ids)
        }
        #expect(expiredEverywhere)
        let (nowA, nowB) = (await a.ownedHoldPartitions(), await b.ownedHoldPartitions())
        #expect(nowA == ownedA && nowB == ownedB, "no rebalance during the test")
        runA.cancel()
        runB.cancel()
        try await runA.value
        try await runB.value

        let outcomes = try await Self.outcomes(env)
        let expired = outcomes.filter { $0.kind == .expired }
        #expect(expired.count == ids.count, "exactly one expired outcome per held request")
        #expect(outcomes.count == ids.count, "no other outcome")
        let expiries = logs.lines("held request expired")
        #expect(expiries.count == ids.count, "each request expired once, by one Forwarder")
        var byInstance: [String: Int] = [:]
        for line in expiries {
            let id = try #require(line.requestID)
            let owner = line.instance == "A" ? ownedA : ownedB
            #expect(owner.contains(Self.partition(id)), "\(id) (partition \(Self.partition(id))) expired by \(line.instance), which owns \(owner.sorted())")
            byInstance[line.instance, default: 0] += 1
        }
        #expect(byInstance["A", default: 0] > 0 && byInstance["B", default: 0] > 0)
        print("two forwarders: \(ids.count) held requests over \(Self.partitions) partitions; expired outcomes \(expired.count); expired by A \(byInstance["A", default: 0]) (partitions \(ownedA.sorted())), by B \(byInstance["B", default: 0]) (partitions \(ownedB.sorted()))")
        await upstream.stop()
        await env.cleanUp()
    }

    @Test("stopping one Forwarder: the other takes its partitions with an up-to-date book, expires and resumes there")
    func takeoverAfterStop() async throws {
        let env = try ForwarderTestEnv(partitions: Self.partitions)
        // A's upstream never answers in time (A is stopped mid-call); B's answers at once.
        let slow = try await TestUpstream.start(response: CannedResponse(delay: .seconds(30)))
        let fast = try await TestUpstream.start()
        let logs = CapturedLogs()
        let a = try Self.forwarder(env, instance: "A", logs: logs, upstream: "http://127.0.0.1:\(slow.port)", holdTimeout: "8s")
        let b = try Self.forwarder(env, instance: "B", logs: logs, upstream: "http://127.0.0.1:\(fast.port)", holdTimeout: "8s")
        let runA = Task { try await a.run() }
        let runB = Task { try await b.run() }
        #expect(await Self.bothAssigned(a, b))
        let ownedA = await a.ownedHoldPartitions()

        // On A's partitions: x gets one approval through A, y just waits, z is approved through
        // A and A is stopped while delivering it.
        let (x, y, z) = (Self.id("x", in: ownedA), Self.id("y", in: ownedA), Self.id("z", in: ownedA))
        for id in [x, y, z] { try await env.publish(Self.held(env, id)) }
        #expect(await eventually { await Self.statuses(b, [x, y, z]) == [.pending, .pending, .pending] }, "B's book knows the requests A parked")
        try await Self.approve(env, x, by: "alice")
        try await Self.approve(env, z, by: "alice")
        try await Self.approve(env, z, by: "bob")
        #expect(await eventually { await b.holds.record(x)?.decisions.count == 1 }, "B's book knows the approval A recorded")
        #expect(await eventually { slow.received.count == 1 }, "A is delivering z")
        #expect(await b.holds.record(z)?.status == .approved)
        #expect(await b.holds.record(y)?.status == .pending, "y must still be pending when A stops (hold_timeout 8s)")

        runA.cancel()
        try await runA.value
        #expect(await eventually { await b.ownedHoldPartitions().count == Self.partitions }, "B owns every partition")

        // The second approval of x reaches B, which counts the first one A recorded.
        try await Self.approve(env, x, by: "bob")
        let settled = await eventually(timeout: .seconds(30)) {
            let outcomes = (try? await Self.outcomes(env)) ?? []
            return Set(outcomes.map(\.requestID)) == [x, y, z]
        }
        #expect(settled, "x, y and z have their outcomes")
        // Nothing more is pending or approved anywhere.
        #expect(await eventually { await Self.statuses(b, [x, y, z]).allSatisfy { $0?.isFinal == true } })
        runB.cancel()
        try await runB.value

        let outcomes = try await Self.outcomes(env)
        #expect(outcomes.count == 3, "exactly one outcome each: \(outcomes.map { "\($0.requestID)=\($0.kind.rawValue)" })")
        #expect(outcomes.first { $0.requestID == x }?.kind == .delivered)
        #expect(outcomes.first { $0.requestID == y }?.kind == .expired)
        #expect(outcomes.first { $0.requestID == z }?.kind == .delivered)
        #expect(logs.lines("held request expired").map { "\($0.instance):\($0.requestID ?? "")" } == ["B:\(y)"])
        #expect(logs.lines("resuming delivery of approved request").map { "\($0.instance):\($0.requestID ?? "")" } == ["B:\(z)"])
        // z: A died mid-call, B delivered it again with the same Idempotency-Key (invariant 8's one exception).
        let zCalls = slow.received.filter { $0.uri.hasSuffix("/\(z)") } + fast.received.filter { $0.uri.hasSuffix("/\(z)") }
        #expect(zCalls.count == 2 && Set(zCalls.flatMap { $0.values("Idempotency-Key") }) == [z])
        #expect(fast.received.filter { $0.uri.hasSuffix("/\(x)") }.count == 1, "x delivered once")
        print("takeover: x delivered once by B with A's approval counted; y expired by B; z resumed by B after A stopped mid-call (upstream calls for z: \(zCalls.count), one Idempotency-Key); outcomes \(outcomes.count)")
        await slow.stop()
        await fast.stop()
        await env.cleanUp()
    }
}
