import CodingsEncoders
import Detection
import Foundation
import Inspector
import Pipeline
import Testing

/// The Inspector on content-coded bodies: every layer decoded (real libraries), the decoded body
/// scanned and matched, what cannot be decoded blocked, and the right bytes forwarded.
@Suite("Request inspector on content-coded bodies")
struct RequestInspectorCodingsTests {
    static let engine = try! DetectionEngine(fingerprintKey: Array(repeating: 7, count: 32))  // fixed key, cannot fail
    static let maxBodyBytes = 1 << 20

    /// A fake AWS access key id, made at run time.
    static let awsKey = "AKIA" + String((0..<16).map { _ in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")[Int.random(in: 0..<32)] })

    enum Coding: Int32, Sendable { case gzip = 1, deflate = 2, br = 3, zstd = 4 }

    /// `data` encoded as one stream of `coding` by the test encoders (zlib, libbrotlienc, libzstd).
    static func encode(_ coding: Coding, _ data: [UInt8]) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var len = 0
        let rc = data.withUnsafeBufferPointer { cce_encode(coding.rawValue, $0.baseAddress, $0.count, &out, &len) }
        defer { cce_free(out) }
        precondition(rc == 0 && out != nil, "test encoder failed")  // test fixture, not user input
        return Array(UnsafeBufferPointer(start: out, count: len))
    }

    /// A body of `decoded` bytes of one repeated byte, as one `coding` stream (never in memory decoded).
    static func bomb(_ coding: Coding, decoded: Int) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var len = 0
        let rc = cce_bomb(coding.rawValue, decoded, UInt8(ascii: "a"), &out, &len)
        defer { cce_free(out) }
        precondition(rc == 0 && out != nil, "test encoder failed")
        return Array(UnsafeBufferPointer(start: out, count: len))
    }

    enum Forwarded: Sendable { case original, decodedMasked, none }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var body: @Sendable () -> [UInt8]
        var contentEncoding: [String]
        var onSecret: PolicyConfig.OnSecret = .mask
        var decision: Decision
        var rules: [String] = []
        var forwarded: Forwarded
        var testDescription: String { name }
    }

    static func secretJSON() -> String { "{\"env\":{\"AWS_ACCESS_KEY_ID\":\"\(awsKey)\"}}" }
    static let clean = Array("{\"greeting\":\"hello\",\"n\":1}".utf8)

    static let cases: [Case] = [
        Case(name: "gzip of two members, secret in the second, under block",
             body: { encode(.gzip, Array("{\"a\":\"harmless\",".utf8)) + encode(.gzip, Array(secretJSON().utf8)) },
             contentEncoding: ["gzip"], onSecret: .block, decision: .block, rules: ["aws-access-key-id"], forwarded: .none),
        Case(name: "gzip of two members, secret in the second, under mask",
             body: { encode(.gzip, Array("{\"a\":\"harmless\",".utf8)) + encode(.gzip, Array(secretJSON().utf8)) },
             contentEncoding: ["gzip"], decision: .mask, rules: ["aws-access-key-id"], forwarded: .decodedMasked),
        Case(name: "x-gzip", body: { encode(.gzip, Array(secretJSON().utf8)) }, contentEncoding: ["x-gzip"],
             decision: .mask, rules: ["aws-access-key-id"], forwarded: .decodedMasked),
        Case(name: "gzip then br (one field), secret", body: { encode(.br, encode(.gzip, Array(secretJSON().utf8))) },
             contentEncoding: ["gzip, br"], onSecret: .block, decision: .block, rules: ["aws-access-key-id"], forwarded: .none),
        Case(name: "br then zstd (two fields), secret", body: { encode(.zstd, encode(.br, Array(secretJSON().utf8))) },
             contentEncoding: ["br", "zstd"], decision: .mask, rules: ["aws-access-key-id"], forwarded: .decodedMasked),
        Case(name: "deflate, secret", body: { encode(.deflate, Array(secretJSON().utf8)) }, contentEncoding: ["deflate"],
             decision: .mask, rules: ["aws-access-key-id"], forwarded: .decodedMasked),
        Case(name: "gzip then br, clean: original bytes forwarded", body: { encode(.br, encode(.gzip, clean)) },
             contentEncoding: ["gzip, br"], decision: .allow, forwarded: .original),
        Case(name: "zstd, clean", body: { encode(.zstd, clean) }, contentEncoding: ["zstd"], decision: .allow, forwarded: .original),
        Case(name: "identity, clean", body: { clean }, contentEncoding: ["identity"], decision: .allow, forwarded: .original),
        Case(name: "gzip then br, escaped DROP TABLE is held", body: { encode(.br, encode(.gzip, Array(#"{"q":"\u0044ROP TABLE t"}"#.utf8))) },
             contentEncoding: ["gzip, br"], decision: .hold, forwarded: .original),
        Case(name: "gzip, DROP%20TABLE in a form body is held", body: { encode(.gzip, Array("q=DROP%20TABLE+t".utf8)) },
             contentEncoding: ["gzip"], decision: .hold, forwarded: .original),
        Case(name: "unknown coding", body: { clean }, contentEncoding: ["x-custom"], decision: .block, rules: ["undecodable-body"],
             forwarded: .none),
        Case(name: "br on bytes that are not brotli", body: { Array("this is not brotli at all, not even close".utf8) },
             contentEncoding: ["br"], decision: .block, rules: ["undecodable-body"], forwarded: .none),
        Case(name: "gzip, gzip on a body gzipped once", body: { encode(.gzip, clean) }, contentEncoding: ["gzip, gzip"],
             decision: .block, rules: ["undecodable-body"], forwarded: .none),
        Case(name: "gzip with trailing garbage", body: { encode(.gzip, clean) + Array("garbage".utf8) }, contentEncoding: ["gzip"],
             decision: .block, rules: ["undecodable-body"], forwarded: .none),
        Case(name: "zstd bomb over max_body_bytes", body: { bomb(.zstd, decoded: 2 * maxBodyBytes) }, contentEncoding: ["zstd"],
             decision: .block, rules: ["undecodable-body"], forwarded: .none),
        Case(name: "gzip bomb over max_body_bytes", body: { bomb(.gzip, decoded: 4 * maxBodyBytes) }, contentEncoding: ["gzip"],
             decision: .block, rules: ["undecodable-body"], forwarded: .none),
    ]

    @Test(arguments: cases)
    func inspect(_ c: Case) throws {
        var policy = PolicyConfig(onSecret: c.onSecret)
        policy.hold.bodyPatterns = ["(?i)drop\\s+table"]
        let hold = try HoldRules(policy.hold)
        let body = Data(c.body())
        var headers = [HTTPField("Content-Type", "application/json"), HTTPField("Content-Length", "\(body.count)")]
        headers += c.contentEncoding.map { HTTPField("Content-Encoding", $0) }
        let request = HTTPRequestData(method: "POST", path: "/v1/x", query: "", headers: headers, body: body)

        let result = RequestInspector(engine: Self.engine, maxBodyBytes: Self.maxBodyBytes).inspect(request, policy: policy)
        let verdict = PolicyEvaluator.verdict(
            for: PolicyInput(inspected: result, original: request, groups: ["ci"]), policy: policy, hold: hold, holdSupported: true)
        #expect(verdict.decision == c.decision)
        #expect(verdict.rules == c.rules)
        for reason in verdict.reasons { #expect(!reason.contains("x-custom") && !reason.contains(Self.awsKey)) }

        let out = result.request
        #expect(!String(decoding: out.body, as: UTF8.self).contains(Self.awsKey))
        switch c.forwarded {
        case .original:
            #expect(out.body == body, "the inspected bytes are forwarded unchanged")
            #expect(out.headers == request.headers)
        case .decodedMasked:
            #expect(out.header("Content-Encoding") == nil)
            #expect(out.header("Content-Length") == nil)
            let text = String(decoding: out.body, as: UTF8.self)
            #expect(text.contains("[MASKED:aws-access-key-id:"))
            #expect(text.contains("AWS_ACCESS_KEY_ID"), "forwarded decoded")
        case .none:
            #expect(verdict.decision == .block)
        }
    }
}
