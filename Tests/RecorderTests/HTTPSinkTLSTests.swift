import Foundation
import GatewayHarness
import Pipeline
import Testing
@testable import Recorder

/// HEC and webhook over TLS to a receiver whose certificate a private CA signed (`ca_file`),
/// and sink labels that never carry a URL's secrets.
@Suite("HTTP sinks: ca_file and labels", .serialized)
struct HTTPSinkTLSTests {
    @Test("the label is kind:scheme://host[:port]/path: no query, no fragment, no user information", arguments: [
        ("hec", "https://splunk.example:8088/services/collector?token=s3cret#frag", "hec:https://splunk.example:8088/services/collector"),
        ("webhook", "https://user:s3cret@collector.example/in?key=s3cret", "webhook:https://collector.example/in"),
        ("webhook", "HTTPS://collector.example", "webhook:https://collector.example"),
        ("webhook", "http://[::1]:8443/in?x=s3cret", "webhook:http://[::1]:8443/in"),
        ("hec", "not a url s3cret", "hec:(unparsable url)"),
    ])
    func label(kind: String, url: String, expected: String) {
        let label = HTTPBatchSink.label(kind: kind, url: url)
        #expect(label == expected)
        #expect(!label.contains("s3cret"))
    }

    @Test("a webhook URL with a token in its query: the token is in no label, metric label or error")
    func queryTokenStaysOut() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let probe = MetricsProbe()
        let sinks = try SinkFactory.makeSinks(
            try env.config(sinks: #"[{"kind":"webhook","url":"http://127.0.0.1:1/in?token=tok-s3cret"}]"#).recorder.sinks, environment: [:])
        let built = try #require(sinks.first as? HTTPBatchSink)
        #expect(built.label == "webhook:http://127.0.0.1:1/in")
        // The same sink with a metrics probe: a failed write (nothing listens on port 1).
        let sink = HTTPBatchSink(label: built.label, url: built.url, headers: [], format: .jsonArray, timeout: .seconds(2), metricsFactory: probe)
        let e = event(.requestReceived, time: 1, id: "evt-q")
        do {
            try await sink.write(batch: [e], lines: [AuditEventLine.encode(e)])
            Issue.record("a write to a closed port succeeded")
        } catch {
            #expect(!"\(error)".contains("tok-s3cret"), "\(error)")
        }
        #expect(probe.value("sluice_sink_failures_total", [("sink", "webhook:http://127.0.0.1:1/in")]) == 1)
    }

    @Test("ca_file: HEC and webhook deliver over TLS to a receiver the CA signed; another CA or the system roots refuse it")
    func caFileTrust() async throws {
        let receiver = try HTTPSReceiver.start()
        defer { receiver.shutdown() }
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        func sinks(_ caFile: String?) throws -> [any AuditSink] {
            let ca = caFile.map { #","ca_file":"\#($0)""# } ?? ""
            return try SinkFactory.makeSinks(
                try env.config(sinks: """
                    [{"kind":"hec","url":"\(receiver.url)","token":"env:T_HEC"\(ca)},
                     {"kind":"webhook","url":"\(receiver.url)/in","headers":{"X-Key":"env:T_HOOK"}\(ca)}]
                    """).recorder.sinks,
                environment: ["T_HEC": "hec-token", "T_HOOK": "hook-key"])
        }
        let events = (0..<3).map { event(.requestReceived, request: "r-\($0)", time: 1_000 + Int64($0), id: "tls-\($0)") }
        let lines = events.map(AuditEventLine.encode)
        // Refused: the same sinks (a short timeout: the client retries a refused handshake until it).
        for caFile in [receiver.ca.otherCAFile, nil] {
            let tls = try SinkFactory.tls(caFile: caFile, path: "test.ca_file")
            let built = try sinks(caFile).compactMap { $0 as? HTTPBatchSink }
            #expect(built.count == 2 && built.allSatisfy { ($0.tlsConfiguration != nil) == (caFile != nil) })
            for sink in built {
                let short = HTTPBatchSink(
                    label: sink.label, url: sink.url, headers: sink.headers.map { ($0.name, $0.value) }, format: sink.format,
                    timeout: .seconds(2), tlsConfiguration: tls)
                await #expect(throws: (any Error).self, "\(sink.label) with \(caFile ?? "the system roots")") {
                    try await short.write(batch: events, lines: lines)
                }
            }
        }
        #expect(receiver.requests().isEmpty)
        for sink in try sinks(receiver.ca.caFile) { try await sink.write(batch: events, lines: lines) }
        let got = receiver.requests()
        #expect(got.map(\.path) == ["/services/collector/event", "/in"])
        #expect(got.first?.headers["authorization"] == "Splunk hec-token" && got.last?.headers["x-key"] == "hook-key")
        let hecIDs = String(decoding: got[0].body, as: UTF8.self).split(separator: "\n").compactMap { line in
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["event"] as? [String: Any])?["event_id"] as? String
        }
        let hookIDs = ((try? JSONSerialization.jsonObject(with: got[1].body)) as? [[String: Any]])?.compactMap { $0["event_id"] as? String }
        #expect(hecIDs == events.map(\.eventID) && hookIDs == events.map(\.eventID))
    }

    @Test("an unreadable or non-PEM ca_file fails start-up naming recorder.sinks[i].ca_file and the file", arguments: ["missing", "not-pem"])
    func badCAFile(which: String) throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let file = env.root.appendingPathComponent("\(which).pem").path
        if which == "not-pem" { try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: file)) }
        let config = try env.config(sinks: """
            [{"kind":"file","path":"\(env.sinkPath)"},
             {"kind":"webhook","url":"https://collector.example/in","ca_file":"\(file)"}]
            """)
        do {
            _ = try SinkFactory.makeSinks(config.recorder.sinks, environment: [:])
            Issue.record("a bad ca_file was accepted")
        } catch let error as ConfigError {
            #expect(error.path == "recorder.sinks[1].ca_file")
            #expect(error.message.contains(file))
        }
    }
}
