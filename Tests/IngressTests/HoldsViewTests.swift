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
}
