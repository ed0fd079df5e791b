import BusContract
import Foundation
import GatewayHarness
import Testing

/// Recordings in PostgreSQL end to end (issue 11, item 5): `sluice run` with
/// `recorder.store.kind: postgres` against a private Debian PostgreSQL keeps every session's
/// events and sealed content in the table and none under `data_dir/recordings`, and `sluice replay
/// --config` prints a masked call and a blocked call from it; no canary secret reaches the table;
/// with the database down, replay fails and says why.
@Suite("Recordings in PostgreSQL, end to end", .serialized)
struct PostgresRecordingsE2ETests {
    @Test("sluice run → postgres table → sluice replay: masked and blocked calls, content opened with the config's keys, no secret in the table")
    func recordAndReplayThroughPostgres() async throws {
        let server = try PostgresServer()
        defer { server.shutdown() }
        let urlFile = server.directory.appendingPathComponent("recordings-url").path
        try server.plainURL.write(toFile: urlFile, atomically: true, encoding: .utf8)
        let gw = try await Gateway(
            mode: .embedded, recorderOptions: "  store: { kind: postgres, url: \"file:\(urlFile)\", table: e2e_recordings }")
        defer { Task { await gw.stop() } }
        try await gw.start()

        let canaries = Canaries.make()
        var body: [String: Any] = ["visible_note": "pg-replay-4e7a"]
        for c in canaries { body[c.field] = c.secret }
        let masked = try await gw.call(connection: "billing", path: "/charges", headers: [("Content-Type", "application/json")], body: gw.json(body))
        #expect(masked.status == 200, "\(masked.text)")
        let blocked = try await gw.call(connection: "strict", path: "/charges", headers: [("Content-Type", "application/json")], body: gw.json(body))
        #expect(blocked.status == 403, "\(blocked.text)")

        for call in [masked, blocked] {
            let id = try #require(call.header("X-Sluice-Request-Id"))
            var text = ""
            #expect(await eventually(timeout: .seconds(30)) {
                text = (try? ReplayContentTests.sluice(gw, ["replay", "--config", gw.configPath.path, id]).out) ?? ""
                return text.contains("response \(id) ") && text.contains("request \(id) ")
            }, "\(text)")
            #expect(text.contains("POST /charges") && text.contains("pg-replay-4e7a"))
            #expect(text.contains(call.status == 200 ? "status=200" : "status=403"))
            for c in canaries { #expect(!text.contains(c.secret), "\(c.rule) in clear in the replay") }
        }
        // In the table, not on disk; sealed content and masked events only.
        let rows = Int(try server.psql("SELECT count(*) FROM e2e_recordings").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(rows >= 8, "rows: \(rows)")
        let dump = try server.psql("SELECT line FROM e2e_recordings")
        #expect(!dump.contains("pg-replay-4e7a"), "content in clear in the table")
        for c in canaries { #expect(!dump.contains(c.secret), "\(c.rule) in the table") }
        let recordings = gw.dataDir.appendingPathComponent("recordings").path
        let onDisk = (FileManager.default.enumerator(atPath: recordings)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".jsonl") }
        #expect(onDisk.isEmpty, "recordings written to files too: \(onDisk)")

        // The database down: replay fails with the reason (exit status, standard error), never the URL.
        server.stop()
        let id = try #require(masked.header("X-Sluice-Request-Id"))
        let down = try ReplayContentTests.sluice(gw, ["replay", "--config", gw.configPath.path, id])
        #expect(down.status != 0)
        #expect(down.err.contains("e2e_recordings") && down.err.contains("Connection refused"), "\(down.err)")
        #expect(!down.err.contains(server.password) && !down.out.contains("pg-replay-4e7a"))
    }
}
