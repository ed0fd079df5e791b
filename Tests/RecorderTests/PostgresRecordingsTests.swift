import BusContract
import Foundation
import GatewayHarness
import Logging
import Pipeline
import Testing
@testable import Recorder

/// The postgres recordings store (issue 11, item 5): `recorder.store.kind: postgres` keeps the
/// recordings in a table of a real PostgreSQL (Debian's, started per test by `PostgresServer`),
/// created on start, written in one statement per batch, de-duplicated by record key, replayed,
/// kept through a database outage, trimmed by retention, and reached only over verified TLS or
/// loopback.
@Suite("Recorder: postgres recordings store", .serialized)
struct PostgresRecordingsTests {
    let now = Int64(Date().timeIntervalSince1970 * 1000)

    // MARK: - The URL (pure)

    struct URLCase: Sendable, CustomTestStringConvertible {
        var url: String
        var endpoint: PostgresTarget.Endpoint?
        var tls: PostgresTarget.TLSMode = .verifyFull
        var user = "u"
        var password: String? = nil
        var database = "rec"
        /// For a refused URL: part of the error.
        var error: String? = nil
        var testDescription: String { url }
    }

    static let urls: [URLCase] = [
        URLCase(url: "postgres://u:p@db.example:5433/rec", endpoint: .tcp(host: "db.example", port: 5433), password: "p"),
        URLCase(url: "postgresql://u@127.0.0.1/rec?sslmode=disable", endpoint: .tcp(host: "127.0.0.1", port: 5432), tls: .disable),
        URLCase(url: "postgres://u:p%40x@[::1]:6000/rec?sslmode=disable", endpoint: .tcp(host: "::1", port: 6000), tls: .disable, password: "p@x"),
        URLCase(url: "postgres://u@localhost/rec?sslmode=verify-full", endpoint: .tcp(host: "localhost", port: 5432)),
        URLCase(url: "postgres://u@/rec?host=/var/run/postgresql", endpoint: .socket(directory: "/var/run/postgresql", port: 5432)),
        URLCase(url: "mysql://u@h/rec", error: "must be a postgres:// URL"),
        URLCase(url: "postgres://h.example/rec", error: "names no user"),
        URLCase(url: "postgres://u@h.example/", error: "names no database"),
        URLCase(url: "postgres://u:hunter2@db.example/rec?sslmode=disable", error: "only for a loopback host"),
        URLCase(url: "postgres://u:hunter2@db.example/rec?sslmode=require", error: "sslmode require is not supported"),
        URLCase(url: "postgres://u@db.example/rec?application_name=x", error: "application_name is not supported"),
        URLCase(url: "postgres://u@db.example/rec?host=relative", error: "socket directory"),
        URLCase(url: "postgres://u@db.example/rec?host=/run/pg", error: "both a host and a socket directory"),
    ]

    @Test("recorder.store.url: what is accepted and what is refused (by name, never showing the password)", arguments: urls)
    func urlParsing(_ c: URLCase) throws {
        if let expected = c.error {
            do {
                _ = try PostgresTarget(url: c.url, path: "recorder.store.url")
                Issue.record("accepted \(c.url)")
            } catch let error as ConfigError {
                let text = "\(error)"
                #expect(text.contains(expected) && text.contains("recorder.store.url"), "\(text)")
                #expect(!text.contains("hunter2"))
            }
            return
        }
        let target = try PostgresTarget(url: c.url, path: "recorder.store.url")
        #expect(target.endpoint == c.endpoint && target.tls == c.tls)
        #expect(target.username == c.user && target.password == c.password && target.database == c.database)
    }

    @Test("recorder.store: the fields of each kind, a table name, a secret reference for the URL")
    func storeConfig() throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        #expect(try env.config(sinks: "[]").recorder.store == RecorderConfig.Store())
        let good = try env.config(sinks: "[]", recorder: #""store": {"kind": "postgres", "url": "env:REC_URL", "table": "audit_rec", "max_connections": 2}"#)
        #expect(good.recorder.store.kind == .postgres && good.recorder.store.table == "audit_rec" && good.recorder.store.maxConnections == 2)
        let refused: [(String, String)] = [
            (#"{"kind": "file", "url": "env:REC_URL"}"#, "recorder.store.url: only for kind postgres"),
            (#"{"kind": "postgres"}"#, "recorder.store.url: required"),
            (#"{"kind": "postgres", "url": "postgres://u:p@h/db"}"#, "recorder.store.url"),
            (#"{"kind": "postgres", "url": "env:REC_URL", "table": "Rec; DROP"}"#, "recorder.store.table"),
            (#"{"kind": "postgres", "url": "env:REC_URL", "max_connections": 0}"#, "recorder.store.max_connections"),
            (#"{"kind": "sqlite"}"#, "recorder.store.kind"),
        ]
        for (store, expected) in refused {
            do {
                _ = try env.config(sinks: "[]", recorder: #""store": "# + store)
                Issue.record("accepted \(store)")
            } catch {
                #expect("\(error)".contains(expected), "\(store): \(error)")
                #expect(!"\(error)".contains("u:p@h"), "the URL was shown")
            }
        }
    }

    // MARK: - A real PostgreSQL

    func service(_ env: RecorderTestEnv, _ server: PostgresServer, table: String = "sluice_recordings", probe: MetricsProbe? = nil) throws -> RecorderService {
        try RecorderService(
            config: env.config(sinks: "[]", recorder: #""store": {"kind": "postgres", "url": "env:REC_URL", "table": "\#(table)"}"#),
            context: env.context, extraSinks: [], retry: Backoff(initial: .milliseconds(50), maximum: .milliseconds(500)),
            environment: ["REC_URL": server.plainURL], metricsFactory: probe)
    }

    func database(_ url: String, caFile: String? = nil, table: String = "sluice_recordings", timeout: Duration = .seconds(10)) throws -> PostgresRecordings {
        try PostgresRecordings(
            store: RecorderConfig.Store(kind: .postgres, url: ConfigSecret(try SecretReference(parsing: "env:REC_URL")), caFile: caFile, table: table),
            environment: ["REC_URL": url], logger: Logger(label: "pg-test"), timeout: timeout)
    }

    func rowCount(_ server: PostgresServer, _ table: String = "sluice_recordings") -> Int {
        Int(((try? server.psql("SELECT count(*) FROM \(table)")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    @Test("events and sealed content go to the table (created on start), once each however often the bus delivers them; replay reads them back")
    func roundTrip() async throws {
        let server = try PostgresServer()
        defer { server.shutdown() }
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let visible = "plain-text-marker-9b41"
        let content = RecordingContentTests()
        try await env.bus.publish(try content.inspected(env, session: "s-1", request: "r-1", body: #"{"note":"\#(visible)"}"#))
        try await env.bus.publish(try content.reply(env, session: "s-1", request: "r-1", body: #"{"ok":"\#(visible)"}"#))
        try await env.publish(event(.requestReceived, session: "s-1", request: "r-1", time: now, id: "e-1"))
        try await env.publish(event(.inspected, session: "s-1", request: "r-1", stage: "inspector", time: now + 1, id: "e-2"))
        try await env.publish(event(.delivered, session: "s-1", request: "r-1", stage: "forwarder", time: now + 2, id: "e-3", status: 200))
        try await env.publish(event(.requestReceived, session: "s-2", request: "r-2", time: now, id: "e-4"))
        // Redelivered copies: stored once.
        try await env.publish(event(.requestReceived, session: "s-1", request: "r-1", time: now, id: "e-1"))
        try await env.bus.publish(try content.inspected(env, session: "s-1", request: "r-1", body: #"{"note":"\#(visible)"}"#))

        let service = try service(env, server)
        try await RecorderBatchTests.running(service) {
            #expect(await eventually(timeout: .seconds(30)) { rowCount(server) == 6 }, "rows: \(rowCount(server))\n\(server.serverLog())")
        }
        // Sealed at rest: the bodies' text is nowhere in the table.
        let dump = try server.psql("SELECT record_key || ' ' || kind || ' ' || line FROM sluice_recordings ORDER BY id")
        #expect(!dump.contains(visible), "\(dump)")
        #expect(dump.contains("e:e-3 delivered ") && dump.contains("c:r-1/request content ") && dump.contains("c:r-1/response content "))

        let (events, replayed) = try await database(server.plainURL).withRunning { try await SessionReplay.load(database: $0, sessionID: "s-1", sealer: env.context.codec.sealer) }
        #expect(events.map(\.eventID) == ["e-1", "e-2", "e-3"])
        #expect(replayed.map(\.part) == [.request, .response])
        let requestBody = String(decoding: replayed.first?.body ?? Data(), as: UTF8.self)
        #expect(requestBody.contains(visible))
        // Without the sealing keys: events only.
        let (onlyEvents, none) = try await database(server.plainURL).withRunning { try await SessionReplay.load(database: $0, sessionID: "s-2", sealer: nil) }
        #expect(onlyEvents.map(\.eventID) == ["e-4"] && none.isEmpty)
        await #expect(throws: ReplayError.self) {
            _ = try await database(server.plainURL).withRunning { try await SessionReplay.load(database: $0, sessionID: "nobody", sealer: nil) }
        }
    }

    @Test("the database down: nothing is taken off the bus as recorded, store_up is 0; back up: every event is in the table")
    func outageLosesNothing() async throws {
        let server = try PostgresServer()
        defer { server.shutdown() }
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let probe = MetricsProbe()
        let service = try service(env, server, probe: probe)
        try await env.publish(event(.requestReceived, session: "s-9", request: "r-0", time: now, id: "before"))
        try await RecorderBatchTests.running(service) {
            #expect(await eventually(timeout: .seconds(30)) { rowCount(server) == 1 })
            server.stop()
            for i in 1...20 { try await env.publish(event(.requestReceived, session: "s-9", request: "r-\(i)", time: now + Int64(i), id: "down-\(i)")) }
            #expect(await eventually(timeout: .seconds(30)) { probe.value("sluice_recordings_store_up") == 0 }, "no failed write seen")
            try server.start()
            #expect(await eventually(timeout: .seconds(60)) { rowCount(server) == 21 }, "rows: \(rowCount(server))")
            #expect(await eventually(timeout: .seconds(10)) { probe.value("sluice_recordings_store_up") == 1 })
        }
        let keys = try server.psql("SELECT record_key FROM sluice_recordings ORDER BY time_ms").split(separator: "\n").map(String.init)
        #expect(keys == ["e:before"] + (1...20).map { "e:down-\($0)" })
    }

    @Test("retention deletes rows older than recorder.retention, by their own event time, in chunks, and reports the table's size")
    func retention() async throws {
        let server = try PostgresServer()
        defer { server.shutdown() }
        let db = try database(server.plainURL)
        let day: Int64 = 86_400_000
        let probe = MetricsProbe()
        try await db.withRunning { db in
            try await db.prepare()
            let rows = [(now - 40 * day, "old-1"), (now - 31 * day, "old-2"), (now - 29 * day, "young-1"), (now, "young-2")].map { time, id in
                RecordingRow(event: event(.requestReceived, session: "s-r", request: id, time: time, id: id), line: Array("{\"id\":\"\(id)\"}".utf8))
            }
            try await db.write(rows)
            try await db.write(rows)  // again: no duplicates
            // One row per statement: the pass goes on until a statement deletes fewer than that.
            let janitor = PostgresRecordingsJanitor(
                database: db, retention: .seconds(30 * 86_400), logger: Logger(label: "pg-test"), metricsFactory: probe, chunk: 1, nowMillis: { now })
            #expect(await janitor.pass() == 2)
            #expect(await janitor.pass() == 0)
        }
        #expect(try server.psql("SELECT record_key FROM sluice_recordings ORDER BY time_ms").split(separator: "\n") == ["e:young-1", "e:young-2"])
        #expect(probe.value("sluice_recordings_deleted_rows_total") == 2)
        #expect((probe.value("sluice_recordings_disk_bytes") ?? 0) > 0)
    }

    @Test("verify-full: the server's certificate must chain to ca_file and name the host; a wrong password or CA fails with the reason and never the password")
    func tlsAndCredentials() async throws {
        let server = try PostgresServer()
        defer { server.shutdown() }
        // TLS, certificate checked against the test CA: works.
        try await database(server.tlsURL, caFile: server.caFile).withRunning { try await $0.prepare() }
        // The server logs each connection (log_connections), with how it was encrypted.
        #expect(server.serverLog().contains("SSL enabled"), "\(server.serverLog())")

        // Another CA: refused, and the error says why.
        do {
            try await database(server.tlsURL, caFile: server.ca.otherCAFile, timeout: .seconds(5)).withRunning { try await $0.prepare() }
            Issue.record("a server certificate from another CA was accepted")
        } catch {
            #expect("\(error)".contains("CERTIFICATE_VERIFY_FAILED") && !"\(error)".contains(server.password), "\(error)")
        }
        // A wrong password: refused with the server's reason.
        let wrong = server.plainURL.replacingOccurrences(of: server.password, with: "not-the-password")
        do {
            try await database(wrong, timeout: .seconds(5)).withRunning { try await $0.prepare() }
            Issue.record("a wrong password was accepted")
        } catch {
            #expect("\(error)".contains("28P01") && !"\(error)".contains("not-the-password"), "\(error)")
        }
        #expect(rowCount(server) == 0)
    }
}
