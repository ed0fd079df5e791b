import Foundation
import Pipeline
import Testing

@testable import Ingress

/// The Ingress keeps a preview of each held request, never its whole body (item 8 of the
/// hardening issue: a held request keeps no body in memory at the edge).
@Suite("Ingress: holds view")
struct HoldsViewTests {
    static func record(bodyBytes: Int) -> HoldRecord {
        let now = currentMillis()
        let identity = CallerIdentity(id: "apikey:ci", groups: ["ci"], method: "api_key", person: "ci")
        let inspected = InspectedRequest(
            metadata: RequestMetadata(
                requestID: "r-\(bodyBytes)", sessionID: "s", identity: identity, connection: "held",
                receivedAtMillis: now, deadlineMillis: now + 5000, replyTo: "x"),
            verdict: Verdict(decision: .hold), findings: [],
            request: HTTPRequestData(method: "POST", path: "/x", query: "", headers: [], body: Data(repeating: 0x61, count: bodyBytes)))
        return HoldRecord(requestID: "r-\(bodyBytes)", request: inspected, approvalsRequired: 1, createdAtMillis: now, expiresAtMillis: now + 60_000)
    }

    @Test("keeps at most the preview plus one byte of a held body", arguments: [0, 100, 512, 513, 514, 1 << 20])
    func bodyCutToPreview(bodyBytes: Int) async throws {
        let view = HoldsView(retention: .seconds(60))
        await view.apply(.record(Self.record(bodyBytes: bodyBytes)))
        let kept = try #require(await view.record("r-\(bodyBytes)"))
        let keptBytes = kept.request?.request.body.count ?? -1
        #expect(keptBytes == min(bodyBytes, ApprovalsRoutes.previewBytes + 1))
        let described = ApprovalsRoutes.describe(kept)
        #expect((described["preview"] as? String)?.utf8.count == min(bodyBytes, ApprovalsRoutes.previewBytes))
        #expect(described["preview_truncated"] as? Bool == (bodyBytes > ApprovalsRoutes.previewBytes))
    }

    @Test("the pending count per identity follows every change, as list would count it")
    func pendingCountFollowsChanges() async throws {
        let view = HoldsView(retention: .seconds(60))
        let connections: Set<String> = ["held"]
        func count() async -> (kept: Int, listed: Int) {
            let listed = await view.list(connections: connections, statuses: [.pending])
                .count { $0.request?.metadata.identity.id == "apikey:ci" }
            return (await view.pendingCount(identity: "apikey:ci", connections: connections), listed)
        }
        var a = Self.record(bodyBytes: 1)
        let b = Self.record(bodyBytes: 2)
        await view.apply(.record(a))
        await view.apply(.record(a))  // the same record again counts once
        await view.apply(.record(b))
        #expect(await count() == (2, 2))
        #expect(await view.pendingCount(identity: "apikey:ci", connections: ["other"]) == 0)
        #expect(await view.pendingCount(identity: "apikey:someone", connections: connections) == 0)
        a.status = .denied
        await view.apply(.record(a))
        #expect(await count() == (1, 1))
        await view.apply(.removed(requestID: b.requestID))
        #expect(await count() == (0, 0))
        a.status = .pending  // a record that goes back to pending (a replayed changelog) counts again
        await view.apply(.record(a))
        #expect(await count() == (1, 1))
    }
}
