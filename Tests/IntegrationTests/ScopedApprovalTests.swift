import BusContract
import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// Issue 13, item 2: scoped approvals, end to end on a real deployment.
@Suite("Scoped approvals", .serialized)
struct ScopedApprovalTests {
    /// A `DELETE` on `held` (held by its methods clause); the 202's request id.
    static func hold(_ gw: Gateway, path: String, key: String = Gateway.ciKey) async throws -> String {
        let r = try await gw.call(.DELETE, connection: "held", path: path, key: key)
        try #require(r.status == 202, "\(path): \(r.status) \(r.text)")
        return try #require(r.json?["request_id"] as? String)
    }

    static func grant(_ gw: Gateway, _ id: String) async throws -> [String: Any]? {
        let r = try await gw.api(.GET, "/v1/grants?status=all", key: Gateway.aliceKey)
        return (r.json?["grants"] as? [[String: Any]])?.first { $0["grant_id"] as? String == id }
    }

    /// Waits until the grant `id` satisfies `condition` (the Forwarder writes it to `holds`).
    static func waitGrant(_ gw: Gateway, _ id: String, _ condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        var last: [String: Any]? = nil
        let ok = try await eventually(timeout: .seconds(20)) {
            last = try await grant(gw, id)
            return last.map(condition) ?? false
        }
        try #require(ok, "grant \(id): \(String(describing: last))\n\(gw.processLogs.suffix(3000))")
        return try #require(last)
    }

    @Test("approve with a scope: the next matching calls pass without a reviewer, up to the count; others are held; a secret is never pre-approved; revocation stops it",
          arguments: GatewayMode.available)
    func scopedApproval(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "1s")
        defer { Task { await gw.stop() } }
        try await gw.start()

        // A request with a secret cannot be the pattern; a connection needing two approvals neither.
        let secret = Canaries.make()[0].secret
        let withSecret = try await gw.call(connection: "held", path: "/deploy", headers: [("Content-Type", "application/json")],
                                           body: gw.json(["key": secret]))
        try #require(withSecret.status == 202)
        let secretID = try #require(withSecret.json?["request_id"] as? String)
        try await gw.waitPending(secretID)
        let refused = try await gw.api(.POST, "/v1/approvals/\(secretID)/approve", key: Gateway.aliceKey,
                                       json: ["reason": "ok", "grant": ["for": "1h", "calls": 5]])
        #expect(refused.status == 422, "\(refused.text)")
        #expect(refused.json?["error"] as? String == "grant_refused")
        #expect((refused.json?["message"] as? String)?.contains("never pre-approved") == true)
        #expect(try await gw.approvalIDs().contains(secretID), "nothing was decided")
        let twoNeeded = try await gw.call(.DELETE, connection: "held2", path: "/db/1")
        let twoID = try #require(twoNeeded.json?["request_id"] as? String)
        try await gw.waitPending(twoID)
        let several = try await gw.api(.POST, "/v1/approvals/\(twoID)/approve", key: Gateway.aliceKey, json: ["grant": ["for": "1h"]])
        #expect(several.status == 422)
        #expect((several.json?["message"] as? String)?.contains("2 approvals") == true, "\(several.text)")

        // The pattern: ci-bot's DELETE /db/1, approved with a scope of 3 calls under /db/*.
        let first = try await Self.hold(gw, path: "/db/1")
        try await gw.waitPending(first)
        let approved = try await gw.api(.POST, "/v1/approvals/\(first)/approve", key: Gateway.aliceKey,
                                        json: ["reason": "cleanup of old rows", "grant": ["for": "1h", "calls": 3, "path_glob": "/db/*"]])
        #expect(approved.status == 200, "\(approved.text)")
        let grantID = try #require((approved.json?["decision"] as? [String: Any])?["grant_id"] as? String)
        #expect(try await gw.waitFinal(first).status == 200)
        let made = try await Self.waitGrant(gw, grantID) { $0["state"] as? String == "active" }
        #expect(made["path_glob"] as? String == "/db/*" && made["method"] as? String == "DELETE" && made["max_calls"] as? Int == 3)
        #expect(made["person"] as? String == "ci-bot" && made["approved_by"] as? String == "apikey:alice")

        // Three calls under the scope: delivered, no reviewer involved.
        var released: [String] = []
        for path in ["/db/2", "/db/3", "/db/4"] {
            let r = try await gw.call(.DELETE, connection: "held", path: path)
            let id = try #require(r.header("X-Sluice-Request-Id"))
            let final = r.status == 202 ? try await gw.waitFinal(id) : r
            #expect(final.status == 200, "\(path): \(final.status) \(final.text)")
            released.append(id)
        }
        let used = try await Self.waitGrant(gw, grantID) { $0["uses"] as? Int == 3 }
        #expect(used["state"] as? String == "exhausted")
        #expect(Set(used["released"] as? [String] ?? []) == Set(released))
        for id in released {
            let decided = try await gw.waitAudit("approval_decided", requestID: id)
            #expect((decided["details"] as? [String: String])?["grant_id"] == grantID)
            #expect(decided["identity"] as? String == "apikey:alice")
        }
        let created = try await gw.waitAudit("grant_created", requestID: first)
        #expect((created["details"] as? [String: String])?["grant_id"] == grantID)

        // Exhausted, another path, another person: held as usual.
        let fourth = try await Self.hold(gw, path: "/db/5")
        let outside = try await Self.hold(gw, path: "/other/1")
        let carol = try await Self.hold(gw, path: "/db/6", key: Gateway.carolKey)
        for id in [fourth, outside, carol] { try await gw.waitPending(id) }

        // A second grant releases the matching requests already waiting (the 4th), not the others.
        let pattern = try await Self.hold(gw, path: "/db/7")
        try await gw.waitPending(pattern)
        let second = try await gw.api(.POST, "/v1/approvals/\(pattern)/approve", key: Gateway.bobKey,
                                      json: ["reason": "more cleanup", "grant": ["for": "1h", "path_glob": "/db/*"]])
        let secondID = try #require((second.json?["decision"] as? [String: Any])?["grant_id"] as? String, "\(second.text)")
        #expect(try await gw.waitFinal(fourth).status == 200, "the waiting request under the new scope was released")
        _ = try await Self.waitGrant(gw, secondID) { ($0["released"] as? [String] ?? []).contains(fourth) }
        #expect(try await gw.approvalIDs().contains(outside))
        #expect(try await gw.approvalIDs().contains(carol), "another person's call is not covered")

        // Revoked: the next matching call is held.
        let revoked = try await gw.api(.POST, "/v1/grants/\(secondID)/revoke", key: Gateway.aliceKey)
        #expect(revoked.status == 200, "\(revoked.text)")
        #expect(revoked.json?["state"] as? String == "revoked")
        #expect(try await gw.api(.POST, "/v1/grants/\(secondID)/revoke", key: Gateway.aliceKey).status == 409)
        #expect(try await gw.api(.POST, "/v1/grants/\(secondID)/revoke", key: Gateway.ciKey).status == 403)
        let afterRevoke = try await Self.hold(gw, path: "/db/8")
        try await gw.waitPending(afterRevoke)
        _ = try await gw.waitAudit("grant_revoked", requestID: pattern)
        let active = try await gw.api(.GET, "/v1/grants", key: Gateway.aliceKey)
        #expect((active.json?["grants"] as? [[String: Any]])?.isEmpty == true, "no active grant left: \(active.text)")

        // Each released call reached the upstream once; the held ones never.
        let deletes = await gw.upstream.requests.filter { $0.method == "DELETE" }.map(\.path)
        #expect(deletes.sorted() == ["/db/1", "/db/2", "/db/3", "/db/4", "/db/5", "/db/7"], "\(deletes)")
    }

    @Test("CLI: sluice approvals approve --for --calls --path-glob, sluice grants list and revoke")
    func cli() async throws {
        let gw = try await Gateway(mode: .embedded, holdWait: "100ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let id = try await Self.hold(gw, path: "/db/1")
        try await gw.waitPending(id)
        let approve = try await gw.runCLI(
            ["approvals", "approve", id, "--url", gw.baseURL, "--reason", "cli batch", "--for", "30m", "--calls", "2", "--path-glob", "/db/*"],
            token: Gateway.aliceKey)
        #expect(approve.status == 0, "\(approve.output)")
        let grantID = try #require(approve.output.split(separator: "\n").first { $0.hasPrefix("similar calls allowed: grant ") }
            .map { String($0.dropFirst("similar calls allowed: grant ".count).prefix { $0 != " " }) }, "\(approve.output)")
        _ = try await Self.waitGrant(gw, grantID) { $0["state"] as? String == "active" }
        let list = try await gw.runCLI(["grants", "list", "--url", gw.baseURL], token: Gateway.aliceKey)
        #expect(list.status == 0 && list.output.contains(grantID) && list.output.contains("DELETE /db/*") && list.output.contains("0/2"), "\(list.output)")
        let revoke = try await gw.runCLI(["grants", "revoke", grantID, "--url", gw.baseURL], token: Gateway.aliceKey)
        #expect(revoke.status == 0 && revoke.output.contains("revoked \(grantID)"), "\(revoke.output)")
        let again = try await gw.runCLI(["grants", "revoke", grantID, "--url", gw.baseURL], token: Gateway.aliceKey)
        #expect(again.status != 0 && again.output.contains("409 already_revoked"), "\(again.output)")
        let all = try await gw.runCLI(["grants", "list", "--all", "--json", "--url", gw.baseURL], token: Gateway.aliceKey)
        let grants = (try? JSONSerialization.jsonObject(with: Data(all.output.utf8)) as? [String: Any])?["grants"] as? [[String: Any]]
        #expect(grants?.first?["state"] as? String == "revoked", "\(all.output)")
        let none = try await gw.runCLI(["grants", "list", "--url", gw.baseURL], token: Gateway.aliceKey)
        #expect(none.output.contains("no active grants"))
    }
}
