import BusContract
import Foundation
import GatewayHarness
import Testing

/// A call blocked by policy is recorded with the masked request that was blocked and the 403
/// (`Reply.blockedRequest`); the caller gets the 403 alone.
@Suite("Blocked calls in the session recording", .serialized)
struct BlockedRecordingTests {
    @Test("a blocked call replays as its masked request and the 403; no secret in the replay; the caller's 403 holds no part of the request")
    func blockedCallReplaysMaskedRequestAndResponse() async throws {
        let gw = try await Gateway(mode: .embedded)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let canaries = Canaries.make()
        let visible = "blocked-note-4e7a"
        var body: [String: Any] = ["visible_note": visible]
        for c in canaries { body[c.field] = c.secret }
        let call = try await gw.call(
            connection: "strict", path: "/keys", query: "dry_run=1", headers: [("Content-Type", "application/json")], body: gw.json(body))
        #expect(call.status == 403, "\(call.text)")
        #expect(call.json?["error"] as? String == "blocked")
        let id = try #require(call.header("X-Sluice-Request-Id"))
        // The caller's answer is the 403 alone: nothing of the request, masked or not.
        #expect(!call.text.contains(visible) && !call.text.contains("MASKED") && !call.text.contains("dry_run"), "\(call.text)")
        for c in canaries { #expect(!call.text.contains(c.secret), "\(c.rule) in the 403") }

        // Sent without a session: the request id is its session.
        var text = ""
        #expect(await eventually(timeout: .seconds(30)) {
            text = (try? ReplayContentTests.sluice(gw, ["replay", "--config", gw.configPath.path, id]).out) ?? ""
            return text.contains("response \(id) ") && text.contains("request \(id) ")
        }, "\(text)")
        #expect(text.contains("POST /keys?dry_run=1") && text.contains("connection=strict") && text.contains("status=403"), "\(text)")
        #expect(text.contains(visible), "the masked request's body is not shown")
        #expect(text.contains("[MASKED:aws-access-key-id:"), "the request shown is not the masked one")
        for c in canaries { #expect(!text.contains(c.secret), "\(c.rule) in clear in the replay") }
        // The request comes before the response.
        let request = try #require(text.range(of: "request \(id) "))
        let response = try #require(text.range(of: "response \(id) "))
        #expect(request.lowerBound < response.lowerBound)

        let json = try ReplayContentTests.sluice(gw, ["replay", "--config", gw.configPath.path, "--json", id])
        #expect(json.status == 0, "\(json.err)")
        let records = json.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let content = records.compactMap { $0["content"] as? [String: Any] }
        #expect(content.compactMap { $0["part"] as? String } == ["request", "response"])
        #expect(records.contains { $0["kind"] as? String == "blocked" })
        for c in canaries { #expect(!json.out.contains(c.secret)) }

        // At rest the secrets are nowhere under the data directory (recordings, sink, bus logs).
        let stored = String(decoding: gw.dataDirectoryBytes(), as: UTF8.self)
        for c in canaries { #expect(!stored.contains(c.secret), "\(c.rule) in clear at rest") }
        await gw.stop()
    }
}
