import BusContract
import Foundation
import GatewayHarness
import Logging
import Pipeline
import Testing
@testable import Recorder

/// The syslog sink against a real `rsyslogd` (`RsyslogServer`): what arrives, byte for byte,
/// over TCP, TLS and UDP; TLS verification; and the Recorder's at-least-once delivery across a
/// syslog server restart.
@Suite("Syslog sink (rsyslog)", .serialized)
struct SyslogSinkTests {
    let t = RecordingDay(millis: Int64(Date().timeIntervalSince1970 * 1000)).startMillis

    /// A batch with every severity class, ids that need escaping and a non-ASCII path.
    func batch() -> [AuditEvent] {
        var odd = event(.blocked, session: "s \"quoted\" [x] back\\slash", request: "r-2", stage: "inspector", time: t + 2, id: "e-\(UUID())")
        odd.path = "/caf\u{e9}/\u{1F600}?q=\"x\""
        return [
            event(.requestReceived, time: t + 1, id: "e-\(UUID())"), odd,
            event(.failed, request: "r-3", stage: "forwarder", time: t + 3, id: "e-\(UUID())", status: 502),
            event(.expired, request: "r-4", stage: "forwarder", time: t + 4, id: "e-\(UUID())"),
            event(.delivered, request: "r-5", stage: "forwarder", time: t + 5, id: "e-\(UUID())", status: 200),
        ]
    }

    /// The message the sink must send for `e` (built here independently of `SyslogMessage`).
    static func expected(_ e: AuditEvent, facility: Int, hostname: String = "test-host", appName: String = "sluice") -> String {
        let severity: [AuditEvent.Kind: Int] = [.requestReceived: 6, .inspected: 6, .blocked: 4, .failed: 3, .expired: 5, .delivered: 6]
        let time = ISO8601DateFormatter()
        time.formatOptions = [.withInternetDateTime]
        time.timeZone = TimeZone(identifier: "UTC")
        // Whole seconds from the formatter (exact), milliseconds added here.
        let seconds = time.string(from: Date(timeIntervalSince1970: Double(e.timeMillis / 1000))).dropLast()  // "Z"
        let stamp = seconds + "." + String(format: "%03d", Int(e.timeMillis % 1000)) + "Z"
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "]", with: "\\]")
        }
        let json = String(decoding: AuditEventLine.encode(e).dropLast(), as: UTF8.self)
        return "<\(facility * 8 + (severity[e.kind] ?? -1))>1 \(stamp) "
            + "\(hostname) \(appName) \(getpid()) \(e.kind.rawValue) [sluice@32473 request_id=\"\(escape(e.requestID))\" "
            + "session_id=\"\(escape(e.sessionID))\" event_id=\"\(escape(e.eventID))\"] \(json)"
    }

    func options(_ server: RsyslogServer, _ input: RsyslogServer.Input, host: String = "127.0.0.1") -> SyslogSink.Options {
        let transport: RecorderConfig.Sink.Transport = switch input {
        case .tcp: .tcp
        case .tls, .mtls: .tls
        case .udp: .udp
        }
        var options = SyslogSink.Options(host: host, port: server.port(input), transport: transport)
        options.hostname = "test-host"
        options.facility = 13
        if transport == .tls { options.caFile = server.caFile }
        return options
    }

    func write(_ sink: SyslogSink, _ events: [AuditEvent]) async throws {
        try await sink.write(batch: events, lines: events.map(AuditEventLine.encode))
    }

    /// Every event of a batch arrives once, as sent: PRI, header, structured data, and the JSON
    /// MSG byte for byte; rsyslog parses it as RFC 5424 with the same fields. A second batch
    /// reuses the connection.
    @Test(arguments: [
        (RsyslogServer.Input.tcp, "127.0.0.1", String?.none), (.tls, "localhost", nil), (.tls, "127.0.0.1", "localhost"), (.udp, "127.0.0.1", nil),
    ])
    func everyEventOfABatchArrivesAsSent(input: RsyslogServer.Input, host: String, serverName: String?) async throws {
        let server = try RsyslogServer()
        defer { server.shutdown() }
        let probe = MetricsProbe()
        var options = self.options(server, input, host: host)
        options.serverName = serverName
        let sink = try SyslogSink(options: options, metricsFactory: probe)
        let first = batch(), second = batch()
        try await write(sink, first)
        try await write(sink, second)
        let events = first + second
        #expect(await eventually { server.received(input).count >= events.count }, "\(server.daemonLog())")
        #expect(server.received(input) == events.map { Self.expected($0, facility: 13) })
        let parsed = server.parsed(input)
        #expect(parsed.count == events.count)
        for (fields, e) in zip(parsed, events) {
            let json = String(decoding: AuditEventLine.encode(e).dropLast(), as: UTF8.self)
            #expect(fields.count == 8)
            guard fields.count == 8 else { continue }
            #expect(Int(fields[0]) == 13 * 8 + SyslogMessage.severity(of: e.kind).rawValue)
            #expect(fields[1] == "1" && fields[2] == "test-host" && fields[3] == "sluice" && fields[4] == "\(getpid())")
            #expect(fields[5] == e.kind.rawValue)
            #expect(fields[6].hasPrefix("[sluice@32473 request_id=\"") && fields[6].contains("event_id=\"\(e.eventID)\"]"))
            #expect(fields[7] == json)
        }
        #expect(probe.value("sluice_sink_events_total", [("sink", sink.label)]) == Int64(events.count))
        #expect(probe.value("sluice_sink_failures_total", [("sink", sink.label)]) ?? 0 == 0)
        await sink.close()
    }

    /// Bytes rsyslog took on a connection that was then lost may be lost with it; the sink sends
    /// the messages of the window before its last send again, first, on the next connection
    /// (however long the outage lasted), and only then the new batch.
    @Test func theLastMessagesAreSentAgainOnTheNextConnection() async throws {
        let server = try RsyslogServer()
        defer { server.shutdown() }
        let probe = MetricsProbe()
        let sink = try SyslogSink(options: options(server, .tcp, host: "127.0.0.1"), metricsFactory: probe)
        let first = batch()
        try await write(sink, first)
        #expect(await eventually { server.received(.tcp).count >= first.count })
        server.stop()
        try server.start()
        let second = batch()
        // The first write after the restart may go to the dead connection (it throws) and is
        // retried as the Recorder would; the one that succeeds runs on the new connection.
        var attempts = 0
        while true {
            attempts += 1
            do {
                try await write(sink, second)
                break
            } catch {
                guard attempts < 3 else { throw error }
            }
        }
        let expected = (first + first + second).map { Self.expected($0, facility: 13) }
        #expect(await eventually { server.received(.tcp).count >= expected.count }, "\(server.daemonLog())")
        #expect(server.received(.tcp) == expected)
        #expect(probe.value("sluice_sink_resent_events_total", [("sink", sink.label)]) == Int64(first.count))
        await sink.close()
    }

    /// A client certificate is presented to a server that requires one.
    @Test func clientCertificateIsPresented() async throws {
        let server = try RsyslogServer()
        defer { server.shutdown() }
        var options = self.options(server, .mtls, host: "localhost")
        options.certFile = server.clientCertFile
        options.keyFile = server.clientKeyFile
        let sink = try SyslogSink(options: options)
        let events = batch()
        try await write(sink, events)
        #expect(await eventually { server.received(.mtls).count >= events.count }, "\(server.daemonLog())")
        #expect(server.received(.mtls) == events.map { Self.expected($0, facility: 13) })
        await sink.close()
    }

    /// A server certificate from another CA, or for another name (or without the IP address
    /// connected to), fails the write with the reason; nothing is delivered, and the next write
    /// with a right configuration goes through.
    @Test(arguments: ["wrong CA", "wrong name", "IP address not in the certificate"])
    func tlsVerificationFailureDeliversNothing(problem: String) async throws {
        let server = try RsyslogServer()
        defer { server.shutdown() }
        var bad = options(server, .tls, host: problem == "IP address not in the certificate" ? "127.0.0.1" : "localhost")
        if problem == "wrong CA" { bad.caFile = server.otherCAFile }
        if problem == "wrong name" { bad.serverName = "siem.example" }
        let probe = MetricsProbe()
        let badSink = try SyslogSink(options: bad, metricsFactory: probe)
        let refused = batch()
        do {
            try await write(badSink, refused)
            Issue.record("a \(problem) was accepted")
        } catch let error as RecorderError {
            #expect(error.message.hasPrefix(badSink.label))
            let reason = error.message.lowercased()
            #expect(reason.contains("certificate") || reason.contains("hostname") || reason.contains("verify"), "\(error)")
        }
        #expect(probe.value("sluice_sink_failures_total", [("sink", badSink.label)]) == 1)
        #expect(probe.value("sluice_sink_events_total", [("sink", badSink.label)]) ?? 0 == 0)
        // The same server takes a batch from a rightly configured sink: only that one arrives.
        let good = try SyslogSink(options: options(server, .tls, host: "localhost"))
        let accepted = batch()
        try await write(good, accepted)
        #expect(await eventually { server.received(.tls).count >= accepted.count })
        #expect(server.received(.tls) == accepted.map { Self.expected($0, facility: 13) })
        await good.close()
        await badSink.close()
    }

    /// A TLS client against a server that never answers the handshake (rsyslog's plain TCP port)
    /// gives up after the connect timeout instead of hanging the Recorder.
    @Test func stalledHandshakeTimesOut() async throws {
        let server = try RsyslogServer()
        defer { server.shutdown() }
        var options = self.options(server, .tcp)
        options.transport = .tls
        options.caFile = server.caFile
        options.serverName = "localhost"
        options.connectTimeout = .milliseconds(300)
        let sink = try SyslogSink(options: options)
        let started = ContinuousClock.now
        await #expect(throws: RecorderError.self) { try await write(sink, batch()) }
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    /// A server that takes the connection but never reads stalls the writes once the socket
    /// buffers are full: the batch write fails after the write timeout instead of hanging.
    @Test func stalledWriteTimesOut() async throws {
        let listener = try RsyslogServer.listenerThatNeverReads()
        defer { close(listener.fd) }
        var options = SyslogSink.Options(host: "127.0.0.1", port: listener.port, transport: .tcp)
        options.writeTimeout = .milliseconds(500)
        let probe = MetricsProbe()
        let sink = try SyslogSink(options: options, metricsFactory: probe)
        var big = event(.inspected, time: t + 1, id: "e-big")
        big.path = "/" + String(repeating: "x", count: 60_000)
        let events = Array(repeating: big, count: 400)  // 24 MB, more than loopback buffers hold
        let started = ContinuousClock.now
        do {
            try await write(sink, events)
            Issue.record("a write nobody reads completed")
        } catch let error as RecorderError {
            #expect(error.message.contains("timed out"), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(probe.value("sluice_sink_failures_total", [("sink", sink.label)]) == 1)
    }

    /// A UDP message over the datagram limit is cut (on a UTF-8 boundary) and counted.
    @Test func oversizeUDPMessageIsTruncatedVisibly() async throws {
        let server = try RsyslogServer()
        defer { server.shutdown() }
        var options = self.options(server, .udp)
        options.maxDatagramBytes = 400
        let probe = MetricsProbe()
        let sink = try SyslogSink(options: options, metricsFactory: probe)
        var big = event(.inspected, time: t + 1, id: "e-big")
        big.path = "/" + String(repeating: "\u{e9}", count: 400)
        let small = event(.delivered, time: t + 2, id: "e-small")
        try await write(sink, [big, small])
        #expect(await eventually { server.received(.udp).count >= 2 })
        let received = server.received(.udp)
        let full = Self.expected(big, facility: 13)
        #expect(received[0].utf8.count <= 400 && received[0].utf8.count >= 399)
        #expect(full.hasPrefix(received[0]))
        #expect(received[1] == Self.expected(small, facility: 13))
        #expect(probe.value("sluice_sink_truncated_total", [("sink", sink.label)]) == 1)
        await sink.close()
    }

    /// A Recorder with a syslog sink keeps every event while rsyslog is down and delivers it
    /// once rsyslog is back (at-least-once: a duplicate is only ever a second copy of an event).
    @Test func recorderDeliversEveryEventAcrossARsyslogRestart() async throws {
        let server = try RsyslogServer()
        defer { server.shutdown() }
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let config = try env.config(sinks: """
            [{"kind": "syslog", "address": "127.0.0.1:\(server.port(.tcp))", "transport": "tcp", "app_name": "sluice-test", "facility": "audit"}]
            """)
        let service = try RecorderService(
            config: config, context: env.context, extraSinks: [], retry: Backoff(initial: .milliseconds(20), maximum: .milliseconds(200)))
        let task = Task { try await service.run() }
        defer { task.cancel() }
        /// The events received, the Recorder's own sink events among them only when asked.
        func ids(withSinkEvents: Bool = false) -> [String] {
            server.parsed(.tcp).compactMap { fields in
                guard fields.count == 8, let e = try? JSONDecoder().decode(AuditEvent.self, from: Data(fields[7].utf8)) else { return nil }
                return withSinkEvents || e.stage != "recorder" ? e.eventID : nil
            }
        }
        let before = (1...3).map { event(.requestReceived, request: "r-\($0)", time: t + Int64($0), id: "before-\($0)") }
        for e in before { try await env.publish(e) }
        #expect(await eventually { Set(ids()) == Set(before.map(\.eventID)) }, "\(server.daemonLog())")

        server.stop()
        let during = (1...5).map { event(.delivered, request: "r-\($0)", time: t + 10 + Int64($0), id: "during-\($0)", status: 200) }
        for e in during { try await env.publish(e) }
        // Once the first is in the recording, the sink has been tried with it (and failed: nobody
        // listens); the Recorder retries that batch and takes no other until it succeeds.
        let recordings = SessionRecordings(dataDir: env.dataDir)
        #expect(await eventually { lines(of: recordings.path(for: during[0])).count > before.count })
        #expect(!ids().contains { $0.hasPrefix("during-") })

        try server.start()
        let all = Set((before + during).map(\.eventID))
        #expect(await eventually(timeout: .seconds(20)) { Set(ids()) == all }, "\(server.daemonLog())")
        // The Recorder's own sink_failed / sink_recovered events follow the batch it retried: wait
        // for rsyslog to have them too (reading at once raced them: CI saw 12 messages for 13 events).
        func isChainRecord(_ m: String) -> Bool { m.contains(" chain_start [") || m.contains(" checkpoint [") }
        #expect(await eventually(timeout: .seconds(20)) {
            server.received(.tcp).filter { !isChainRecord($0) }.count >= ids(withSinkEvents: true).count
        })
        // Every event message is one of the events, whole, with the audit chain's members added
        // before its closing brace; the chain's own records are messages of their own.
        let raw = server.received(.tcp)
        let chainRecords = raw.filter { $0.contains(" chain_start [") || $0.contains(" checkpoint [") }
        #expect(chainRecords.contains { $0.contains(#"{"after_offset":"#) }, "no chain_start message")
        let eventMessages = raw.filter { !$0.contains(" chain_start [") && !$0.contains(" checkpoint [") }
        let expected = Dictionary(uniqueKeysWithValues: (before + during).map { ($0.eventID, Self.expected($0, facility: 13, hostname: SyslogSink.localHostname(), appName: "sluice-test")) })
        #expect(eventMessages.count == ids(withSinkEvents: true).count)
        // The outage was reported to the SIEM once it was back: sink_failed, then sink_recovered.
        let sinkEvents = server.parsed(.tcp).compactMap { $0.count == 8 ? try? JSONDecoder().decode(AuditEvent.self, from: Data($0[7].utf8)) : nil }
            .filter { $0.stage == "recorder" }
        #expect(sinkEvents.map(\.kind).contains(.sinkFailed) && sinkEvents.map(\.kind).contains(.sinkRecovered), "\(sinkEvents.map(\.kind))")
        for (message, id) in zip(eventMessages, ids(withSinkEvents: true)) where expected[id] != nil {
            let plain = try #require(expected[id])
            #expect(message.hasPrefix(String(plain.dropLast())) && message.contains(#","chain_id":""#), "\(message)")
        }
        task.cancel()
        try await task.value
    }

    /// A TLS file that cannot be read fails start-up naming the field.
    @Test(arguments: ["ca_file", "cert_file", "key_file"])
    func unreadableTLSFileFailsStartUpNamingTheField(field: String) throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let server = try RsyslogServer()
        defer { server.shutdown() }
        var files = ["ca_file": server.caFile, "cert_file": server.clientCertFile, "key_file": server.clientKeyFile]
        files[field] = env.root.appendingPathComponent("missing.pem").path
        let config = try env.config(sinks: """
            [{"kind": "file", "path": "\(env.sinkPath)"},
             {"kind": "syslog", "address": "localhost:\(server.port(.tls))", "transport": "tls",
              "ca_file": "\(files["ca_file"] ?? "")", "cert_file": "\(files["cert_file"] ?? "")", "key_file": "\(files["key_file"] ?? "")"}]
            """)
        do {
            _ = try RecorderService(config: config, context: env.context)
            Issue.record("expected a start-up error")
        } catch let error as ConfigError {
            #expect(error.path == "recorder.sinks[1].\(field)", "\(error)")
            #expect(error.message.contains("missing.pem"))
        }
    }
}
