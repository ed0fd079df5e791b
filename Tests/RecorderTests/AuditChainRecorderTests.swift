import BusContract
import Foundation
import Pipeline
import Testing
@testable import Recorder

@Suite("Recorder: the hash-chained sink lines", .serialized)
struct AuditChainRecorderTests {
    let t = RecordingDay(millis: Int64(Date().timeIntervalSince1970 * 1000)).startMillis

    func verifyFile(_ path: String, _ env: RecorderTestEnv) -> AuditChainVerifier.Report {
        AuditChainVerifier.verify(sources: [Array(FileManager.default.contents(atPath: path) ?? Data())], key: env.chainKey)
    }

    func verifyLines(_ lines: [String], _ env: RecorderTestEnv) -> AuditChainVerifier.Report {
        AuditChainVerifier.verify(sources: [Array(lines.map { $0 + "\n" }.joined().utf8)], key: env.chainKey)
    }

    @Test("events recorded through a file sink verify; an edited, a deleted and two swapped lines are each reported at their line")
    func recordedFileVerifiesAndTamperingIsFound() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let service = try RecorderService(config: env.config(), context: env.context)
        // One session: one partition, one chain.
        for i in 0..<8 { try await env.publish(event(.requestReceived, request: "r-\(i)", time: t + Int64(i))) }
        let task = Task { try await service.run() }
        #expect(await eventually { eventLines(of: env.sinkPath).count == 8 })
        task.cancel()
        try await task.value

        let report = verifyFile(env.sinkPath, env)
        #expect(report.verified)
        #expect(report.events == 8)
        #expect(report.chains == 1)
        #expect(report.segmentStarts.count == 1)
        let lines = lines(of: env.sinkPath)
        #expect(lines.count == 9)  // chain_start + 8 events
        #expect(lines[0].contains(#""kind":"chain_start""#))

        var edited = lines
        edited[3] = edited[3].replacingOccurrences(of: "ci-bot", with: "ci-bod")
        #expect(verifyLines(edited, env).failure?.location.line == 4)
        #expect(verifyLines(edited, env).failure?.reason == .edited)

        var deleted = lines
        deleted.remove(at: 4)
        #expect(verifyLines(deleted, env).failure?.location.line == 5)
        #expect(verifyLines(deleted, env).failure?.reason == .missingLineBefore)

        var swapped = lines
        swapped.swapAt(5, 6)
        #expect(verifyLines(swapped, env).failure?.location.line == 6)
        #expect(verifyLines(swapped, env).failure?.reason == .reordered)
    }

    /// Audit messages of `events` at offsets `from…` of one partition, as the bus delivers them.
    func messages(_ env: RecorderTestEnv, _ events: [AuditEvent], partition: Int = 0, from offset: Int64) throws -> [BusMessage] {
        try events.enumerated().map { i, e in
            let out = try env.context.codec.audit(e)
            return BusMessage(
                topic: out.topic, partition: partition, offset: offset + Int64(i), key: out.key, headers: out.headers, value: out.value,
                timestampMillis: e.timeMillis)
        }
    }

    @Test("restarts: with the state kept the chain continues and redelivered batches are exact duplicates; with it lost a segment starts")
    func restartsAndRedelivery() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let events = (0..<11).map { event(.requestReceived, request: "r-\($0)", time: t + Int64($0), id: "evt-\($0)") }
        let a = try messages(env, Array(events[0...3]), from: 0)
        let b = try messages(env, Array(events[4...6]), from: 4)
        let c = try messages(env, Array(events[7...8]), from: 7)
        let d = try messages(env, Array(events[9...10]), from: 9)

        let first = try RecorderService(config: env.config(), context: env.context)
        #expect(await first.handle(batch: a))
        #expect(await first.handle(batch: b))
        // Redelivered to the same instance (its sink appends it again): exact duplicates.
        #expect(await first.handle(batch: b))
        #expect(lines(of: env.sinkPath).count == 11)  // chain_start, a (4), b (3), b again (3)

        // A restart with the state kept; the last batch was not committed and comes again.
        let second = try RecorderService(config: env.config(), context: env.context)
        #expect(await second.handle(batch: b))
        #expect(await second.handle(batch: c))
        var report = verifyFile(env.sinkPath, env)
        #expect(report.verified)
        #expect(report.events == 9)
        #expect(report.duplicates == 3)
        #expect(report.segmentStarts.map(\.afterOffset) == [-1])

        // The state is lost and `c` was not committed: `c` and `d` come to a Recorder without a
        // saved position. A new segment starts after offset 6; `c`'s events are chained anew
        // (the file sink writes them again, since their lines differ).
        try FileManager.default.removeItem(atPath: URL(fileURLWithPath: env.dataDir).appendingPathComponent("recorder/chains").path)
        let third = try RecorderService(config: env.config(), context: env.context)
        #expect(await third.handle(batch: c + d))
        report = verifyFile(env.sinkPath, env)
        #expect(report.verified)
        #expect(report.segmentStarts.map(\.afterOffset) == [-1, 6])
        #expect(report.events == 13)
        let all = lines(of: env.sinkPath)
        #expect(all.filter { $0.contains(#""event_id":"evt-8""#) }.count == 2)
    }

    @Test("several partitions make several chains, each with its own chain_start and state file")
    func chainPerPartition() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let service = try RecorderService(config: env.config(recorder: #""checkpoint_every": 2"#), context: env.context)
        let x = try messages(env, [event(.requestReceived, session: "s-x", time: t), event(.inspected, session: "s-x", time: t + 1)], partition: 0, from: 10)
        let y = try messages(env, [event(.requestReceived, session: "s-y", time: t + 2)], partition: 2, from: 5)
        #expect(await service.handle(batch: [x[0], y[0], x[1]]))
        let report = verifyFile(env.sinkPath, env)
        #expect(report.verified)
        #expect(report.chains == 2)
        #expect(Set(report.segmentStarts.map(\.chainID)) == ["sluice.audit/0", "sluice.audit/2"])
        #expect(Set(report.segmentStarts.map(\.afterOffset)) == [9, 4])
        // checkpoint_every 2: a checkpoint after the second event of partition 0 only.
        #expect(lines(of: env.sinkPath).filter { $0.hasPrefix(#"{"count":2,"kind":"checkpoint""#) }.count == 1)
        // The sink's own state directory: recorder/chains/<sink id>.
        let chains = try #require(service.lanes.first).chainer.store.directory
        #expect(chains.hasSuffix("/recorder/chains/" + SinkIdentity.id(of: try env.config().recorder.sinks[0])))
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: chains)) == ["sluice.audit-0", "sluice.audit-2"])
    }

    @Test("a configured chain key that cannot be read fails start-up naming recorder.chain_key")
    func unreadableKeyFailsStartUp() throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        try FileManager.default.removeItem(atPath: env.chainKeyPath)
        do {
            _ = try RecorderService(config: env.config(), context: env.context)
            Issue.record("expected a start-up error")
        } catch let error as ConfigError {
            #expect(error.path == "recorder.chain_key")
        }
    }
}
