import BusContract
import Foundation
import GatewayHarness
import Pipeline
import Synchronization
import Testing
@testable import Recorder

/// A SIEM that goes away under load (issue 11): a real rsyslog is stopped for
/// `SLUICE_OUTAGE_SECONDS` (default 30) while events keep coming, then started again.
@Suite("Recorder: a syslog outage under load", .serialized)
struct SinkOutageTests {
    static var outage: Duration { .seconds(Int(ProcessInfo.processInfo.environment["SLUICE_OUTAGE_SECONDS"] ?? "") ?? 30) }

    /// The events rsyslog stored, in order: (event id or nil for a chain record, the MSG bytes).
    static func received(_ server: RsyslogServer) -> [(id: String?, kind: String?, line: String)] {
        server.parsed(.tcp).compactMap { fields in
            guard fields.count == 8 else { return nil }
            var msg = fields[7]
            if msg.hasPrefix(" ") { msg.removeFirst() }
            let object = try? JSONSerialization.jsonObject(with: Data(msg.utf8)) as? [String: Any]
            return (object?["event_id"] as? String, object?["kind"] as? String, msg)
        }
    }

    @Test("rsyslog down under load: the file sink keeps up; afterwards rsyslog has every event, duplicates are whole copies, both chains verify")
    func rsyslogOutageUnderLoad() async throws {
        let server = try RsyslogServer()
        defer { server.shutdown() }
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let config = try env.config(sinks: """
            [{"kind": "file", "path": "\(env.sinkPath)"},
             {"kind": "syslog", "address": "127.0.0.1:\(server.port(.tcp))", "transport": "tcp", "app_name": "sluice-outage"}]
            """)
        let service = try RecorderService(
            config: config, context: env.context, extraSinks: [], retry: Backoff(initial: .milliseconds(20), maximum: .milliseconds(500)))
        let published = PublishedIDs()
        let stopLoad = PublishedIDs()
        let rate = 200  // events a second, in bursts of 10 every 50 ms
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            // The load: a steady stream of events over 8 sessions.
            group.addTask {
                let clock = ContinuousClock()
                var next = clock.now
                var i = 0
                while !stopLoad.isSet {
                    for _ in 0..<10 {
                        let e = event(.inspected, session: "s-\(i % 8)", request: "r-\(i)", time: currentMillis(), id: "load-\(i)")
                        try await env.publish(e)
                        published.add(e.eventID)
                        i += 1
                    }
                    next = next.advanced(by: .milliseconds(1000 * 10 / rate))
                    try await clock.sleep(until: next)  // pacing the load, not waiting for a condition
                }
            }
            func syslogIDs() -> Set<String> { Set(Self.received(server).compactMap(\.id)) }
            func fileIDs() -> Set<String> {
                Set(eventLines(of: env.sinkPath).compactMap { try? JSONDecoder().decode(AuditEvent.self, from: Data($0.utf8)).eventID })
            }
            #expect(await eventually { syslogIDs().count >= 200 }, "\(server.daemonLog())")

            server.stop()
            let downAt = ContinuousClock.now
            let sentBeforeOutage = published.count
            // Throughout the outage the file sink keeps up with the load.
            try await Task.sleep(for: Self.outage)  // the outage under test
            let duringOutage = published.snapshot
            #expect(duringOutage.count > sentBeforeOutage + rate * Int(Self.outage.components.seconds) / 2, "the load stalled")
            #expect(await eventually { fileIDs().isSuperset(of: duringOutage) }, "the file sink was held back by the syslog outage")
            #expect(!syslogIDs().isSuperset(of: duringOutage), "rsyslog was not down")
            try server.start()
            let downFor = ContinuousClock.now - downAt

            // A few more seconds of load with rsyslog back, then stop the load.
            #expect(await eventually { syslogIDs().contains(where: { id in !duringOutage.contains(id) && id.hasPrefix("load-") }) })
            stopLoad.add("stop")
            let all = published.snapshot
            #expect(await eventually(timeout: .seconds(90)) { syslogIDs().isSuperset(of: all) }, "missing at rsyslog: \(all.subtracting(syslogIDs()).count)")
            print("syslog outage: \(all.count) events, rsyslog down \(downFor), \(Self.received(server).count) messages at rsyslog")
            group.cancelAll()
        }

        // Nothing beyond at-least-once: every message at rsyslog is one that was sent (an event,
        // the Recorder's sink events, the chain's records), and a repeated event id is a whole
        // copy of the same line.
        let received = Self.received(server)
        var lineOf: [String: String] = [:]
        for r in received {
            guard let id = r.id else { continue }
            if let earlier = lineOf[id] { #expect(earlier == r.line, "event \(id) came twice, different") }
            lineOf[id] = r.line
        }
        let kinds = Set(received.compactMap(\.kind))
        #expect(kinds.contains("sink_failed") && kinds.contains("sink_recovered"), "\(kinds)")
        // Both copies verify as one chain per partition (duplicates counted, never a gap).
        let syslogCopy = Array(received.map { $0.line + "\n" }.joined().utf8)
        let fromSyslog = AuditChainVerifier.verify(sources: [syslogCopy], key: env.chainKey)
        #expect(fromSyslog.verified, "\(String(describing: fromSyslog.failure))")
        let fromFile = AuditChainVerifier.verify(sources: [Array(FileManager.default.contents(atPath: env.sinkPath) ?? Data())], key: env.chainKey)
        #expect(fromFile.verified, "\(String(describing: fromFile.failure))")
        #expect(fromSyslog.events == Int64(lineOf.count))
        print("syslog outage: rsyslog copy verified, \(fromSyslog.events) events, \(fromSyslog.duplicates) duplicates; file copy \(fromFile.events) events")
    }
}

/// Ids published so far, shared between the load task and the test.
final class PublishedIDs: Sendable {
    private let ids = Mutex<[String]>([])
    func add(_ id: String) { ids.withLock { $0.append(id) } }
    var count: Int { ids.withLock { $0.count } }
    var isSet: Bool { count > 0 }
    var snapshot: Set<String> { Set(ids.withLock { $0 }) }
}
