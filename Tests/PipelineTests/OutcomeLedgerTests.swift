import BusContract
import Foundation
import Logging
import Pipeline
import Testing

@Suite("Outcome ledger", .serialized)
struct OutcomeLedgerTests {
    struct Env {
        let root: URL
        let bus: EmbeddedBus
        let context: StageContext

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-ledger-\(UUID().uuidString)")
            bus = try EmbeddedBus(directory: root.appendingPathComponent("bus"), defaultPartitions: 3)
            let sealer = try PayloadSealer(keys: [PayloadSealer.Key(id: "test", bytes: Array(repeating: 7, count: 32))])
            context = StageContext(bus: bus, codec: MessageCodec(sealer: sealer, topics: Topics()), logger: Logger(label: "ledger-test"))
        }

        func cleanUp() async {
            await bus.shutdown()
            try? FileManager.default.removeItem(at: root)
        }
    }

    static func outcome(_ kind: AuditEvent.Kind, _ id: String) -> AuditEvent {
        AuditEvent(kind: kind, stage: "forwarder", requestID: id, sessionID: "s", status: 200)
    }

    @Test("end records once; a second end of the same request records nothing")
    func endIsOnce() async throws {
        let env = try Env()
        defer { Task { await env.cleanUp() } }
        let ledger = OutcomeLedger(context: env.context)
        try await ledger.whileFollowing {
            let first = try await ledger.end(Self.outcome(.delivered, "r-1"))
            let second = try await ledger.end(Self.outcome(.expired, "r-1"))
            #expect(first == .recorded)
            #expect(second == .alreadyEnded(.delivered))
            #expect(await ledger.outcome(of: "r-1") == .delivered)
        }
        // A new process's view, read from the topic, knows it too.
        let fresh = OutcomeLedger(context: env.context)
        try await fresh.whileFollowing {
            #expect(await fresh.outcome(of: "r-1") == .delivered)
            let again = try await fresh.end(Self.outcome(.failed, "r-1"))
            #expect(again == .alreadyEnded(.delivered))
            #expect(await fresh.claim("r-1") == .ended(.delivered))
        }
    }

    @Test("concurrent ends of one request: exactly one is recorded")
    func concurrentEnds() async throws {
        let env = try Env()
        defer { Task { await env.cleanUp() } }
        let ledger = OutcomeLedger(context: env.context)
        let results = try await ledger.whileFollowing {
            try await withThrowingTaskGroup(of: OutcomeLedger.Ending.self) { group in
                for kind in [AuditEvent.Kind.delivered, .failed, .expired, .delivered, .failed, .expired] {
                    group.addTask { try await ledger.end(Self.outcome(kind, "r-7")) }
                }
                var all: [OutcomeLedger.Ending] = []
                for try await r in group { all.append(r) }
                return all
            }
        }
        #expect(results.filter { $0 == .recorded }.count == 1)
        #expect(results.count == 6)
    }

    @Test("claim serialises one request: the second claimant waits, then sees the outcome")
    func claimSerialises() async throws {
        let env = try Env()
        defer { Task { await env.cleanUp() } }
        let ledger = OutcomeLedger(context: env.context)
        try await ledger.whileFollowing {
            #expect(await ledger.claim("r-9") == .claimed)
            let second = Task { await ledger.claim("r-9") }
            // The second claimant is parked until the first releases; end first, then release.
            let ended = try await ledger.end(Self.outcome(.delivered, "r-9"))
            #expect(ended == .recorded)
            await ledger.release("r-9")
            #expect(await second.value == .ended(.delivered))
            // A request without an outcome is handed to the next claimant after a release.
            #expect(await ledger.claim("r-10") == .claimed)
            let next = Task { await ledger.claim("r-10") }
            await ledger.release("r-10")
            #expect(await next.value == .claimed)
        }
    }

    @Test("isFirst: only the first record of a request in its partition")
    func isFirstDecidesFromTheLog() async throws {
        let env = try Env()
        defer { Task { await env.cleanUp() } }
        let codec = env.context.codec
        for (kind, id) in [(AuditEvent.Kind.delivered, "a"), (.expired, "a"), (.blocked, "b"), (.failed, "a")] {
            try await env.bus.publish(try codec.outcome(Self.outcome(kind, id)))
        }
        let ledger = OutcomeLedger(context: env.context)
        let decisions = try await ledger.whileFollowing { () -> [String] in
            let reader = try await env.bus.read(topic: env.context.topics.outcomes, from: .beginning)
            var firsts: [String] = []
            var seen = 0
            for try await m in reader where !TopicFollower.isMarker(m) {
                seen += 1
                if try await ledger.isFirst(m) { firsts.append("\(m.keyString ?? "")=\(try codec.decodeAudit(m).kind.rawValue)") }
                if seen == 4 { break }
            }
            await reader.close()
            return firsts
        }
        #expect(Set(decisions) == ["a=delivered", "b=blocked"])
    }

    @Test("a reader takes the outcome from its header, and decodes records written without one")
    func kindFromHeaderOrBody() async throws {
        let env = try Env()
        defer { Task { await env.cleanUp() } }
        let codec = env.context.codec
        let withHeader = try codec.outcome(Self.outcome(.blocked, "h-1"))
        #expect(MessageCodec.outcomeKind(of: BusMessage(
            topic: withHeader.topic, partition: 0, offset: 0, key: withHeader.key, headers: withHeader.headers,
            value: withHeader.value, timestampMillis: 1)) == .blocked)
        // The header is what readers use: a record whose body is not an event is still known by it.
        var headerOnly = withHeader
        headerOnly.value = Array("not json".utf8)
        try await env.bus.publish(headerOnly)
        // A record from before the header existed: decoded.
        var legacy = try codec.outcome(Self.outcome(.expired, "l-1"))
        legacy.headers.removeAll { $0.name == MessageHeader.outcome }
        try await env.bus.publish(legacy)
        // No header and no readable body: skipped (never guessed).
        var unreadable = legacy
        unreadable.key = Array("u-1".utf8)
        unreadable.value = Array("{".utf8)
        try await env.bus.publish(unreadable)
        let ledger = OutcomeLedger(context: env.context)
        try await ledger.whileFollowing {
            #expect(await ledger.outcome(of: "h-1") == .blocked)
            #expect(await ledger.outcome(of: "l-1") == .expired)
            #expect(await ledger.outcome(of: "u-1") == nil)
        }
    }

    @Test("a shared ledger: one reader (follow) serves several stages; they see each other's outcomes and stop when it ends")
    func sharedReader() async throws {
        let env = try Env()
        defer { Task { await env.cleanUp() } }
        // An outcome already in the topic before the shared view starts.
        let earlier = OutcomeLedger(context: env.context)
        try await earlier.whileFollowing { _ = try await earlier.end(Self.outcome(.blocked, "r-old")) }

        let shared = OutcomeLedger(context: env.context, decidesFirstRecords: true, sharedReader: true)
        let reader = Task { try await shared.follow() }
        // Two stages of the process: each runs only once the shared reader is up to date.
        let first: OutcomeLedger.Ending = try await shared.whileFollowing { () async throws -> OutcomeLedger.Ending in
            #expect(await shared.outcome(of: "r-old") == .blocked)
            return try await shared.end(Self.outcome(.delivered, "r-1"))
        }
        #expect(first == .recorded)
        let working = OneShot<Void>()
        let second = Task { () async -> String in
            do {
                return try await shared.whileFollowing { () async throws -> String in
                    // The other stage's outcome, recorded through the same view.
                    let again = try await shared.end(Self.outcome(.failed, "r-1"))
                    #expect(again == .alreadyEnded(.delivered))
                    working.resume(with: ())
                    // Works on until the reader stops: then it is cancelled.
                    while !Task.isCancelled { await Task.yield() }
                    return "cancelled body returned"
                }
            } catch {
                return "stopped with \(type(of: error))"
            }
        }
        await working.value()
        // `sluice run` stops the reader last; a stage still running then is stopped with the error.
        reader.cancel()
        try await reader.value
        #expect(await second.value == "stopped with BusError")
    }
}
