import Foundation
import Testing
@testable import Detection

/// `explain` reports exactly `scan`'s findings, each with the rule, how it matched, the keyword,
/// the decoded view, the value's length and entropy, the checksum and the rules it outranked —
/// and never the secret.
@Suite struct ExplainTests {
    static let engine = try! DetectionEngine(fingerprintKey: Array("explain-key".utf8))  // built-in rules only, cannot fail

    @Test func explainReportsExactlyTheFindingsOfScanOnTheCorpus() {
        for (i, sample) in PrecisionRecallTests.corpus().enumerated() {
            let scanned = Self.engine.scan(sample.text)
            let explained = Self.engine.explain(sample.text)
            #expect(explained.map(\.finding) == scanned, "sample \(i) (\(sample.label))")
            #expect(explained.allSatisfy { $0.allowedBy == nil })
        }
    }

    @Test func aTokenInBase64InsideAnEscapedJSONStringNamesItsViewKeywordAndChecksum() throws {
        var f = Fakes(seed: 11)
        let token = f.github()
        let b64 = Data("export GH=\(token)\n".utf8).base64EncodedString()
        let inner = "{\"script\":\"\(b64)\"}"
        let escaped = inner.replacingOccurrences(of: "\"", with: "\\\"")
        let doc = Array("{\"name\":\"run\",\"arguments\":\"\(escaped)\"}".utf8)
        let e = try #require(Self.engine.explain(doc).first)
        #expect(e.finding.rule == "github-pat-classic")
        #expect(e.view == "base64")
        #expect(e.keyword == "ghp_")
        #expect(e.length == 40)
        #expect(e.entropy > 4 && e.minEntropy > 0)
        #expect(e.checksum == "GitHub CRC32 (base62) checksum: passed")
        #expect(e.method.contains("fixed prefix"))
        // Never the secret, in any field.
        let encoded = String(decoding: try JSONEncoder().encode(e), as: UTF8.self)
        #expect(!encoded.contains(token) && !encoded.contains(String(token.dropFirst(4))))
    }

    @Test func aFailedChecksumIsSaidAndTheSeverityIsLower() throws {
        var f = Fakes(seed: 12)
        var token = Array(f.github())
        token[10] = token[10] == "a" ? "b" : "a"
        let e = try #require(Self.engine.explain(Array("x \(String(token)) y".utf8)).first)
        #expect(e.checksum?.contains("failed") == true)
        #expect(e.finding.severity < .critical)
    }

    @Test func theGenericRuleSaysWhatItCheckedAndTheSpecificRuleWhatItOutranked() throws {
        var f = Fakes(seed: 13)
        let token = f.github()
        let specific = try #require(Self.engine.explain(Array("GITHUB_TOKEN=\(token)".utf8)).first)
        #expect(specific.finding.rule == "github-pat-classic")
        #expect(specific.outranked.contains("generic-token"))

        let generic = try #require(Self.engine.explain(Array("db_password = \"Zq7-vLm2!pXw9#rT\"".utf8)).first)
        #expect(generic.finding.rule == "generic-password")
        #expect(generic.method.hasPrefix("generic"))
        #expect(generic.checks.contains { $0.contains("placeholder") })
        #expect(generic.view == "raw bytes")
    }

    @Test func aStructuralTriggerHasNoKeywordAndPIIChecksAreNamed() throws {
        var f = Fakes(seed: 14)
        let card = f.luhnCard(prefix: "4", length: 16)
        let e = try #require(Self.engine.explain(Array("card: \(card)".utf8)).first { $0.finding.rule == "payment-card" })
        #expect(e.keyword == nil)
        #expect(e.checksum?.hasPrefix("Luhn") == true)
    }

    @Test func contentCodingsAppearInTheViewAndSpanTheWholeInput() throws {
        var f = Fakes(seed: 15)
        let token = f.github()
        let gz = try EngineTests().gzip(Array("{\"k\": \"\(token)\"}".utf8))
        let e = try #require(Self.engine.explain(gz, context: ScanContext(contentCodings: [.gzip])).first)
        #expect(e.view == "gzip")
        #expect(e.finding.start == 0 && e.finding.end == gz.count)
        #expect([e.finding] == Self.engine.scan(gz, context: ScanContext(contentCodings: [.gzip])))
    }
}
