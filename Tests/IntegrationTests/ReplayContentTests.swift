import BusContract
import Foundation
import GatewayHarness
import Testing

/// `sluice replay` shows what was sent and answered (issue 11, item 5): the masked request and
/// the response of each call, from the session recording, opened with the config's sealing keys.
@Suite("Replay with recorded content", .serialized)
struct ReplayContentTests {
    /// Runs `sluice <arguments>` with gw's environment: exit status, standard output, standard error.
    static func sluice(_ gw: Gateway, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = SluiceProcess.binary
        p.arguments = arguments
        p.environment = gw.environment
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, stdout, stderr)
    }

    @Test("replay --config prints the masked request and the response of a call; no secret; --json carries them; --data-dir alone says they are sealed")
    func replayShowsMaskedContent() async throws {
        let gw = try await Gateway(mode: .embedded)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let canaries = Canaries.make()
        var body: [String: Any] = ["visible_note": "replay-me-5c1e"]
        for c in canaries { body[c.field] = c.secret }
        let call = try await gw.call(
            connection: "billing", path: "/charges", query: "dry_run=1", headers: [("Content-Type", "application/json")], body: gw.json(body))
        #expect(call.status == 200, "\(call.text)")
        let id = try #require(call.header("X-Sluice-Request-Id"))

        // Sent without a session: the request id is its session.
        var text = ""
        #expect(await eventually(timeout: .seconds(30)) {
            text = (try? Self.sluice(gw, ["replay", "--config", gw.configPath.path, id]).out) ?? ""
            return text.contains("response \(id) ")
        }, "\(text)")
        #expect(text.contains("request \(id) ") && text.contains("POST /charges?dry_run=1") && text.contains("status=200"))
        #expect(text.contains("replay-me-5c1e"), "the request body is not shown")
        for c in canaries { #expect(!text.contains(c.secret), "\(c.rule) in clear in the replay") }

        let json = try Self.sluice(gw, ["replay", "--config", gw.configPath.path, "--json", id])
        #expect(json.status == 0, "\(json.err)")
        let records = json.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let content = records.compactMap { $0["content"] as? [String: Any] }
        #expect(content.compactMap { $0["part"] as? String }.sorted() == ["request", "response"])
        #expect(records.contains { $0["kind"] as? String == "delivered" && $0["v"] as? Int == 1 })
        for c in canaries { #expect(!json.out.contains(c.secret)) }

        let sealed = try Self.sluice(gw, ["replay", "--data-dir", gw.dataDir.path, id])
        #expect(sealed.status == 0 && sealed.err.contains("sealed: give --config"), "\(sealed.err)")
        #expect(!sealed.out.contains("replay-me-5c1e"))
    }
}
