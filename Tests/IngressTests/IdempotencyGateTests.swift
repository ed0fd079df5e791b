import Foundation
import Pipeline
import Testing

@testable import Ingress

/// The Ingress end of idempotency: the derived key in the envelope, the late reply handed to
/// the table by the replies reader, retries never published.
@Suite("Ingress: Idempotency-Key")
struct IdempotencyGateTests {
    static let body = Data("{\"amount\":1}".utf8)

    @Test("504 from the Ingress, then a late reply: the retry gets it, replayed; nothing is published twice")
    func lateReplyAfterTimeout() async throws {
        try await IngressHarness.with(configJSON: IngressHarness.configJSON(requestTimeout: "1s")) { h in
            let headers = [("Idempotency-Key", "pay-7"), ("Content-Type", "application/json")]
            let first = try await h.call("POST", "/fn/billing/charges", bearer: TestKeys.alice, headers: headers, body: Self.body)
            #expect(first.status == 504)
            let firstID = try #require(first.header("X-Sluice-Request-Id"))
            let published = try await h.messages(on: h.topics.requests)
            try #require(published.count == 1)
            let envelope = try h.codec.open(InspectionRequest.self, from: published[0])
            #expect(envelope.metadata.requestID == firstID)
            let derived = try #require(envelope.metadata.idempotencyKey)
            #expect(derived.count == 64 && derived.allSatisfy(\.isHexDigit) && !derived.contains("pay-7"))

            // Before any reply: the retry is answered 504 for the first request, and not published.
            let early = try await h.call("POST", "/fn/billing/charges", bearer: TestKeys.alice, headers: headers, body: Self.body)
            #expect(early.status == 504 && early.header("X-Sluice-Request-Id") == firstID)
            #expect(early.header("X-Sluice-Idempotent-Replay") == "true")

            // The Forwarder's reply arrives late; the replies reader hands it to the table.
            let late = HTTPResponseData(status: 201, headers: [HTTPField("Content-Type", "application/json")], body: Data("{\"id\":\"ch_9\"}".utf8))
            try await h.bus.publish(h.codec.reply(Reply(requestID: firstID, sessionID: firstID, response: late), to: envelope.metadata.replyTo))
            var replay: IngressHarness.Answer?
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                let r = try await h.call("POST", "/fn/billing/charges", bearer: TestKeys.alice, headers: headers, body: Self.body)
                if r.status == 201 { replay = r; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let answer = try #require(replay)
            #expect(answer.text == "{\"id\":\"ch_9\"}")
            #expect(answer.header("X-Sluice-Request-Id") == firstID && answer.header("X-Sluice-Idempotent-Replay") == "true")

            let reused = try await h.call("POST", "/fn/billing/charges", bearer: TestKeys.alice, headers: headers, body: Data("{}".utf8))
            #expect(reused.status == 422 && reused.json["error"] as? String == "idempotency_key_reused")
            #expect(try await h.messages(on: h.topics.requests).count == 1, "a retry was published")
        }
    }
}
