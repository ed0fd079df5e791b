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
            credential: credential, idempotencyKey: "r-1")
        #expect(out == [HTTPField("Accept", "*/*"), HTTPField("X-Api-Key", "k"), HTTPField("Idempotency-Key", "r-1")])
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
