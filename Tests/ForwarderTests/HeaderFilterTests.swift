import Pipeline
import Testing
@testable import Forwarder

@Suite("Header filter")
struct HeaderFilterTests {
    @Test func upstreamHeadersDropHopByHopAndReplaceCredential() {
        let credential = CredentialHeader(name: "X-Api-Key", value: "k")
        let out = HeaderFilter.upstreamRequestHeaders(
            [
                HTTPField("Host", "sluice"), HTTPField("Content-Length", "3"), HTTPField("Transfer-Encoding", "chunked"),
                HTTPField("Connection", "close, X-Foo"), HTTPField("X-Foo", "1"), HTTPField("x-api-key", "caller"),
                HTTPField("Accept", "*/*"), HTTPField("idempotency-key", "callers-raw-key"),
            ],
            credential: credential, idempotencyKey: "r-1", traceparent: Self.forwarderSpan)
        #expect(out == [
            HTTPField("Accept", "*/*"), HTTPField("X-Api-Key", "k"), HTTPField("Idempotency-Key", "r-1"),
            HTTPField("traceparent", Self.forwarderSpan),
        ])
    }

    static let forwarderSpan = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test("a traceparent in the envelope (any spelling) never reaches the upstream: the Forwarder's does; tracestate passes")
    func callerTraceparentReplaced() {
        let out = HeaderFilter.upstreamRequestHeaders(
            [
                HTTPField("TraceParent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                HTTPField("traceparent", "not even valid"), HTTPField("tracestate", "vendor=abc"),
            ],
            credential: nil, idempotencyKey: "r-2", traceparent: Self.forwarderSpan)
        #expect(out == [
            HTTPField("tracestate", "vendor=abc"), HTTPField("Idempotency-Key", "r-2"), HTTPField("traceparent", Self.forwarderSpan),
        ])
    }

    @Test("an upstream cannot speak for Sluice: its X-Sluice-… headers are dropped from the reply")
    func replyDropsSluiceNamespace() {
        let reply = HeaderFilter.replyHeaders([
            HTTPField("Content-Type", "application/json"), HTTPField("X-Sluice-Status", "pending_approval"),
            HTTPField("x-sluice-error", "denied"), HTTPField("Content-Length", "3"), HTTPField("Mcp-Session-Id", "s1"),
        ])
        #expect(reply == [HTTPField("Content-Type", "application/json"), HTTPField("Mcp-Session-Id", "s1")])
    }

    @Test func credentialIsNeverPrinted() {
        let credential = CredentialHeader(name: "Authorization", value: "Bearer s3cr3t")
        #expect(!"\(credential)".contains("s3cr3t"))
        #expect(!String(reflecting: credential).contains("s3cr3t"))
        var dumped = ""
        dump(credential, to: &dumped)
        #expect(!dumped.contains("s3cr3t"))
    }
}
