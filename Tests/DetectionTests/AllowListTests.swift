import Foundation
import Synchronization
import Testing
@testable import Detection

/// `detection.allow`: an entry silences exactly the findings it describes (its rule, and every
/// condition it states), never hides another rule's finding, and is refused when it is malformed.
@Suite struct AllowListTests {
    static let key = Array("allow-key".utf8)

    /// A GitHub token with a valid checksum, assigned to a token-named key (so `generic-token` would
    /// also match the value if the GitHub rule did not outrank it).
    static func sample() -> (bytes: [UInt8], token: String) {
        var f = Fakes(seed: 7)
        let token = f.github()
        return (Array("{\"GITHUB_TOKEN\": \"\(token)\", \"note\": \"deploy\"}".utf8), token)
    }

    static func engine(_ allow: [AllowSpec], observer: (@Sendable (AllowedFinding) -> Void)? = nil) throws -> DetectionEngine {
        try DetectionEngine(fingerprintKey: key, allow: allow, allowObserver: observer)
    }

    @Test func withoutEntriesTheGitHubRuleReportsTheToken() throws {
        let (bytes, _) = Self.sample()
        let found = try Self.engine([]).scan(bytes)
        #expect(found.map(\.rule) == ["github-pat-classic"])
    }

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var allow: @Sendable (_ fingerprint: String) -> [AllowSpec]
        var paths: [String]
        /// The rules still reported.
        var reported: [String]
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "fingerprint of that rule: the rule is silenced, the generic rule then reports the value (fail closed)",
             allow: { [AllowSpec(rule: "github-pat-classic", fingerprint: $0)] }, paths: [], reported: ["generic-token"]),
        Case(name: "fingerprint for every rule: nothing reported",
             allow: { [AllowSpec(rule: "*", fingerprint: $0)] }, paths: [], reported: []),
        Case(name: "fingerprint in upper case is the same fingerprint",
             allow: { [AllowSpec(rule: "*", fingerprint: $0.uppercased())] }, paths: [], reported: []),
        Case(name: "another fingerprint: reported",
             allow: { _ in [AllowSpec(rule: "*", fingerprint: "0123456789ab")] }, paths: [], reported: ["github-pat-classic"]),
        Case(name: "another rule's entry: reported",
             allow: { [AllowSpec(rule: "gitlab-pat", fingerprint: $0)] }, paths: [], reported: ["github-pat-classic"]),
        Case(name: "pattern matching the whole value: silenced",
             allow: { _ in [AllowSpec(rule: "*", pattern: "gh[p]_[A-Za-z0-9]{36}")] }, paths: [], reported: []),
        Case(name: "pattern matching only part of the value: reported",
             allow: { _ in [AllowSpec(rule: "*", pattern: "ghp_")] }, paths: [], reported: ["github-pat-classic"]),
        Case(name: "pattern with an alternation is grouped, so it still must match the whole value",
             allow: { _ in [AllowSpec(rule: "*", pattern: "x|gh[p]_.{3}")] }, paths: [], reported: ["github-pat-classic"]),
        Case(name: "path glob matching the only reading: silenced",
             allow: { _ in [AllowSpec(rule: "*", path: "tests/fixtures/**")] }, paths: ["tests/fixtures/a/b.json"], reported: []),
        Case(name: "path glob: * stays within a segment",
             allow: { _ in [AllowSpec(rule: "*", path: "tests/*.json")] }, paths: ["tests/a/b.json"], reported: ["github-pat-classic"]),
        Case(name: "path glob matching one reading of two: reported (a spelling cannot widen an entry)",
             allow: { _ in [AllowSpec(rule: "*", path: "/billing/test/**")] }, paths: ["/billing/t%65st/x", "/billing/test/x"],
             reported: ["github-pat-classic"]),
        Case(name: "path glob when the scan has no path: reported",
             allow: { _ in [AllowSpec(rule: "*", path: "**")] }, paths: [], reported: ["github-pat-classic"]),
        Case(name: "every condition must hold: right fingerprint, wrong path: reported",
             allow: { [AllowSpec(rule: "*", fingerprint: $0, path: "docs/**")] }, paths: ["src/a.json"], reported: ["github-pat-classic"]),
        Case(name: "every condition holds: silenced",
             allow: { [AllowSpec(rule: "*", fingerprint: $0, path: "docs/**")] }, paths: ["docs/a.json"], reported: []),
    ]

    @Test(arguments: cases)
    func entry(_ c: Case) throws {
        let (bytes, _) = Self.sample()
        let fingerprint = try #require(try Self.engine([]).scan(bytes).first).fingerprint
        let engine = try Self.engine(c.allow(fingerprint))
        let found = engine.scan(bytes, context: ScanContext(paths: c.paths))
        #expect(found.map(\.rule) == c.reported)
        // Whatever is reported masks the token as before.
        if !c.reported.isEmpty {
            let masked = String(decoding: engine.mask(bytes, findings: found), as: UTF8.self)
            #expect(!masked.contains(Self.sample().token))
        }
    }

    @Test func theObserverIsToldOfEverySilencedFindingAndItsEntry() throws {
        let (bytes, _) = Self.sample()
        let seen = Mutex<[AllowedFinding]>([])
        let engine = try Self.engine([AllowSpec(rule: "gitlab-pat", path: "**"), AllowSpec(rule: "*", pattern: "gh[p]_.*")]) { a in
            seen.withLock { $0.append(a) }
        }
        #expect(engine.scan(bytes).isEmpty)
        let silenced = seen.withLock { $0 }
        #expect(silenced.map(\.finding.rule) == ["github-pat-classic"])
        #expect(silenced.map(\.entry) == [1])
        // Through scanAndMask too (the Inspector's path), and the body is left as it was.
        let (masked, found) = try engine.scanAndMask(bytes)
        #expect(found.isEmpty && masked == bytes)
        #expect(seen.withLock { $0.count } == 2)
    }

    @Test func explainListsTheSilencedFindingWithItsEntryAndReason() throws {
        let (bytes, _) = Self.sample()
        let engine = try Self.engine([AllowSpec(rule: "*", pattern: "gh[p]_.*", reason: "revoked fixture")])
        let explained = engine.explain(bytes)
        #expect(explained.count == 1)
        #expect(explained.first?.allowedBy == 0)
        #expect(explained.first?.allowReason == "revoked fixture")
        #expect(explained.first?.finding.rule == "github-pat-classic")
    }

    @Test func failClosedFindingsCannotBeSilenced() throws {
        // An undecodable body is reported over the whole input under a rule no entry can name.
        let engine = try Self.engine([AllowSpec(rule: "*", path: "**"), AllowSpec(rule: "*", pattern: ".*")])
        let found = engine.scan([1, 2, 3], context: ScanContext(contentCodings: [.gzip], paths: ["x"]))
        #expect(found.map(\.rule) == ["undecodable-body"])
        #expect(engine.explain([1, 2, 3], context: ScanContext(contentCodings: [.gzip], paths: ["x"])).map(\.allowedBy) == [nil])
    }

    struct Invalid: Sendable, CustomStringConvertible {
        var spec: AllowSpec
        var reason: String
        var description: String { reason }
    }

    static let invalid: [Invalid] = [
        Invalid(spec: AllowSpec(rule: "no-such-rule", fingerprint: "0123456789ab"), reason: "unknown rule 'no-such-rule'"),
        Invalid(spec: AllowSpec(rule: "", fingerprint: "0123456789ab"), reason: "rule is required"),
        Invalid(spec: AllowSpec(rule: "generic-token"), reason: "give at least one of fingerprint, pattern or path"),
        Invalid(spec: AllowSpec(rule: "*", fingerprint: "0123"), reason: "fingerprint must be 12 hex characters"),
        Invalid(spec: AllowSpec(rule: "*", fingerprint: "0123456789xz"), reason: "fingerprint must be 12 hex characters"),
        Invalid(spec: AllowSpec(rule: "*", pattern: "(unclosed"), reason: "pattern does not compile"),
        Invalid(spec: AllowSpec(rule: "*", pattern: ""), reason: "pattern is empty"),
        Invalid(spec: AllowSpec(rule: "*", path: ""), reason: "path is empty"),
    ]

    @Test(arguments: invalid)
    func malformedEntriesAreRefusedByIndex(_ c: Invalid) throws {
        let good = AllowSpec(rule: "*", fingerprint: "0123456789ab")
        do {
            _ = try DetectionEngine(fingerprintKey: Self.key, allow: [good, c.spec])
            Issue.record("accepted \(c.spec)")
        } catch {
            guard case .invalidAllow(let index, let reason) = error else { Issue.record("wrong error \(error)"); return }
            #expect(index == 1)
            #expect(reason.contains(c.reason), "\(reason)")
        }
    }

    @Test func aCustomRuleCanBeAllowListed() throws {
        let rule = RuleSpec(id: "acme-key", pattern: "acme_[a-z0-9]{20}", keywords: ["acme_"])
        let engine = try DetectionEngine(fingerprintKey: Self.key, customRules: [rule],
                                         allow: [AllowSpec(rule: "acme-key", pattern: "acme_test[a-z0-9]{16}")])
        #expect(engine.scan(Array("k=acme_testk3j9x8q2m4n7p1z5".utf8)).isEmpty)
        #expect(engine.scan(Array("k=acme_k3j9x8q2m4n7p1z5w6e8".utf8)).map(\.rule) == ["acme-key"])
    }

    @Test func specsDecodeStrictly() throws {
        let ok = try JSONDecoder().decode(AllowSpec.self, from: Data(#"{"rule":"*","path":"a/**","reason":"fixtures"}"#.utf8))
        #expect(ok.path == "a/**" && ok.reason == "fixtures")
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(AllowSpec.self, from: Data(#"{"rule":"*","fingerprint":"0123456789ab","paht":"a/**"}"#.utf8))
        }
    }
}
