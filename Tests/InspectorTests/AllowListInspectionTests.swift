import Detection
import Foundation
import Inspector
import Pipeline
import Testing

/// `detection.allow` on the data path: a `path` entry applies to `/<connection><path>` only when
/// every reading of that path matches it (so an encoded spelling cannot widen it), and the
/// config section is decoded strictly.
@Suite("Allow-list in the Inspector")
struct AllowListInspectionTests {
    static let awsKey = "AKIA" + String((0..<16).map { _ in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")[Int.random(in: 0..<32)] })

    static func inspect(path: String, connection: String?) throws -> RequestInspector.Result {
        let engine = try DetectionEngine(
            fingerprintKey: Array(repeating: 7, count: 32),
            allow: [AllowSpec(rule: "*", path: "/sandbox/fixtures/**", reason: "canned test credentials")])
        let body = Data("{\"aws_access_key_id\": \"\(awsKey)\"}".utf8)
        let request = HTTPRequestData(
            method: "POST", path: path, query: "", headers: [HTTPField("Content-Type", "application/json")], body: body)
        return RequestInspector(engine: engine).inspect(request, policy: PolicyConfig(onSecret: .block), connection: connection)
    }

    struct Case: Sendable, CustomStringConvertible {
        var description: String
        var path: String
        var connection: String?
        var silenced: Bool
    }

    static let cases: [Case] = [
        Case(description: "the allowed connection and path", path: "/fixtures/aws", connection: "sandbox", silenced: true),
        Case(description: "another path of the connection", path: "/deploy", connection: "sandbox", silenced: false),
        Case(description: "the same path on another connection", path: "/fixtures/aws", connection: "prod", silenced: false),
        Case(description: "a percent-encoded spelling: one reading does not match", path: "/fixture%73/aws", connection: "sandbox", silenced: false),
        Case(description: "matrix parameters: one reading does not match", path: "/fixtures;v=1/aws", connection: "sandbox", silenced: false),
        Case(description: "no connection given: path entries never apply", path: "/fixtures/aws", connection: nil, silenced: false),
    ]

    @Test(arguments: cases)
    func pathEntry(_ c: Case) throws {
        let result = try Self.inspect(path: c.path, connection: c.connection)
        let body = String(decoding: result.request.body, as: UTF8.self)
        if c.silenced {
            #expect(result.findings.isEmpty)
            #expect(body.contains(Self.awsKey), "an allowed value is delivered as sent")
        } else {
            #expect(result.findings.map(\.rule).contains { $0.hasPrefix("aws") })
            #expect(!body.contains(Self.awsKey))
        }
    }

    @Test func theConfigSectionDecodesAndRejectsUnknownKeys() throws {
        let ok = try JSONDecoder().decode(DetectionConfig.self, from: Data(#"""
            {"allow": [{"rule": "*", "path": "/sandbox/**", "reason": "fixtures"}, {"rule": "generic-token", "fingerprint": "0123456789ab"}]}
            """#.utf8))
        #expect(ok.allow.count == 2 && ok.allow[0].path == "/sandbox/**" && ok.allow[1].fingerprint == "0123456789ab")
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(DetectionConfig.self, from: Data(#"{"allow": [{"rule": "*", "paht": "/x/**"}]}"#.utf8))
        }
    }
}
