import Testing
@testable import Detection

/// Inputs built to make scanning slow (256 KiB, or JSON strings just over one 1 MiB decoding
/// window; `DetectionBench` scans 1 MiB and more of each and prints the rates). Each once took
/// from seconds to hours (work growing with the square of the input); now
/// each is either scanned whole, with the findings it holds, or refused (fails closed) by the
/// matchers' work budget (`MatchWork`). The time limit turns a regression into a failure
/// rather than a hung run; it measures nothing.
@Suite(.timeLimit(.minutes(2))) struct AdversarialInputTests {
    static let engine = try! DetectionEngine(fingerprintKey: Array("adversarial-key".utf8))  // built-in rules only, cannot fail
    /// Dense bodies: a quarter of the gateway's default body limit (the tests run unoptimised).
    static let size = 256 << 10
    /// Long strings: just over one JSON-escape window.
    static let long = 1_200_000
    static let everything = ScanContext(credentials: true, pii: true, hint: .json)

    static func repeated(_ unit: String, _ size: Int = size) -> String {
        String(repeating: unit, count: size / unit.utf8.count)
    }

    static func jsonString(_ content: String) -> [UInt8] { Array(("{\"a\":\"" + content + "\"}").utf8) }

    /// Bodies with nothing to find, by name (the bodies are built in the test: arguments are printed).
    static let nothingToFind: [String: @Sendable () -> [UInt8]] = [
        "1.2 MB JSON string of \\n escapes": { jsonString(repeated("abcdefgh\\n", long)) },
        "1.2 MB JSON string of escaped backslashes": { jsonString(repeated("\\\\", long)) },
        "1.2 MB JSON string of \\u escapes": { jsonString(repeated("\\u0041", long)) },
        "1.2 MB JSON string of escaped quotes": { jsonString(repeated("\\\"", long)) },
        "escaped JSON inside a 1.2 MB JSON string": { jsonString(repeated("{\\\"b\\\":\\\"x\\\\n\\\"}", long)) },
        "kind: Secret on every line": { Array(repeated("kind: Secret\n").utf8) },
        "kind: Secret in every JSON object": { Array(("[" + repeated("{\"kind\":\"Secret\"},") + "{}]").utf8) },
        "base64 of zeros (a keyword at every byte)": { Array(repeated("A").utf8) },
    ]

    /// Long JSON strings (over `JSONEscapeDecoder.maxStringLength`) full of escapes, and other
    /// shapes with nothing to find: scanned whole, nothing reported.
    @Test(arguments: nothingToFind.keys.sorted())
    func nothingToFindIsScannedWhole(_ name: String) throws {
        let make = try #require(Self.nothingToFind[name])
        let body = make()
        let found = try Self.engine.scanThrowing(body, context: Self.everything)
        #expect(found.isEmpty, "\(name): \(found.map(\.rule))")
    }

    /// A body of nothing but secrets: every one is reported, as when each is scanned alone
    /// (resolving thousands of overlapping candidates was quadratic).
    @Test func everySecretOfADenseBodyIsReported() throws {
        var f = Fakes(seed: 7)
        let tokens = (0..<(Self.size / 41)).map { _ in f.github() }
        let alone = tokens.filter { !Self.engine.scan(Array($0.utf8), context: Self.everything).isEmpty }
        #expect(alone.count > tokens.count * 9 / 10)
        let found = try Self.engine.scanThrowing(Array(tokens.joined(separator: " ").utf8), context: Self.everything)
        #expect(found.count == alone.count)
        #expect(Set(found.map(\.rule)) == ["github-pat-classic"])
    }

    /// Keyword hits packed inside each other's values: refused with one finding over the whole
    /// body, quickly, instead of reading 2 KiB per hit.
    @Test(arguments: ["token=", "api_key=", "accesskeysecret=x", "_authToken=", "Secret="])
    func hitsInsideValuesAreRefused(_ unit: String) throws {
        let body = Array(Self.repeated(unit).utf8)
        #expect(throws: DetectionError.inspectionLimitExceeded(limit: MatchWork.budget(body.count))) {
            try Self.engine.scanThrowing(body, context: Self.everything)
        }
        let found = Self.engine.scan(body, context: Self.everything)
        #expect(found.map(\.rule) == ["inspection-limit-exceeded"])
        #expect(found.first.map { $0.start == 0 && $0.end == body.count } == true)
    }

    /// The same keywords as real assignments, as densely as real bodies have them: scanned, with
    /// every secret found (the budget is far from what they spend).
    @Test func denseRealAssignmentsAreScanned() throws {
        var f = Fakes(seed: 11)
        var lines: [String] = []
        var secrets: [String] = []
        while lines.count * 300 < Self.size {
            let secret = f.s(Fakes.alnum, 32)
            secrets.append(secret)
            lines.append("{\"api_key\": \"\(secret)\", \"token\": \"\(f.github())\", \"max_tokens\": 512, \"auth\": \"Bearer \(f.jwt())\"}\n")
        }
        let found = try Self.engine.scanThrowing(Array(lines.joined().utf8), context: Self.everything)
        #expect(!found.contains { $0.rule == "inspection-limit-exceeded" })
        #expect(found.filter { $0.rule == "github-pat-classic" }.count == lines.count)
        #expect(found.count >= 3 * lines.count)
    }

    /// A secret hidden by an escape (`\u0070` for `p`) in a JSON string longer than one window is
    /// found wherever it sits: at the start, across each edge of the first window, at the end.
    @Test func escapedSecretsInALongStringAreFoundAtWindowEdges() throws {
        var f = Fakes(seed: 3)
        let step = JSONEscapeDecoder.maxStringLength - JSONEscapeDecoder.windowOverlap
        let prefix = "{\"a\":\""
        var content = Array(Self.repeated("abcdefgh\\n", 2 * JSONEscapeDecoder.maxStringLength + 200_000).utf8)
        var placed: [String] = []
        // Offsets into the string: its start, across window 1's start, across window 0's end, its end.
        // Each at the start of a filler unit, after its `\n` (a letter before would join the token).
        for offset in [10, step - 20, JSONEscapeDecoder.maxStringLength - 20, content.count - 80] {
            let at = offset / 10 * 10
            let token = f.github()
            // Ends with an escape: the filler's letters after it would join the token.
            let escaped = Array((token.replacingOccurrences(of: "ghp_", with: "gh\\u0070_") + "\\n").utf8)
            content.replaceSubrange(at..<(at + escaped.count), with: escaped)
            placed.append(token)
        }
        let body = Array(prefix.utf8) + content + Array("\"}".utf8)
        let found = try Self.engine.scanThrowing(body, context: Self.everything)
        #expect(found.count == placed.count, "\(found.map { "\($0.rule)@\($0.start)" })")
        #expect(found.allSatisfy { $0.rule == "github-pat-classic" && $0.decodedVia == ["json-escape"] })
        let alone = try placed.map { try Self.engine.scanThrowing(Array($0.utf8), context: Self.everything).map(\.fingerprint) }
        #expect(found.map(\.fingerprint) == alone.flatMap { $0 })
    }

    /// Which windows of a long string hold a position (table).
    @Test func windowIndices() {
        let step = JSONEscapeDecoder.maxStringLength - JSONEscapeDecoder.windowOverlap
        let s = 100..<(100 + 3 * step)
        let cases: [(Int, ClosedRange<Int>)] = [
            (100, 0...0), (100 + step - 1, 0...0), (100 + step, 0...1),
            (100 + step + JSONEscapeDecoder.windowOverlap - 1, 0...1), (100 + step + JSONEscapeDecoder.windowOverlap, 1...1),
            (100 + 2 * step + 5, 1...2),
        ]
        for (at, want) in cases { #expect(JSONEscapeDecoder.windowIndices(of: s, holding: at) == want, "\(at)") }
    }
}

/// A real token that happens to contain a placeholder marker is still a token.
@Suite struct PlaceholderMarkerInRealTokenTests {
    static let engine = try! DetectionEngine(fingerprintKey: Array("marker-key".utf8))  // built-in rules only, cannot fail

    /// `ghp_` + 30 bytes + their CRC-32 in base62: a token with a valid checksum.
    static func github(_ body: String) -> String {
        "gh" + "p_" + body + String(decoding: Checksums.base62(Checksums.crc32(Array(body.utf8))), as: UTF8.self)
    }

    @Test(arguments: ["TodO", "todo", "TEST", "Sample", "xxxx", "FIXME"])
    func aValidGitHubTokenHoldingAMarkerIsFound(_ marker: String) throws {
        var f = Fakes(seed: UInt64(marker.utf8.count * 31 + 7))
        let body = f.s(Fakes.alnum, 10) + marker + f.s(Fakes.alnum, 20 - marker.count)
        let token = Self.github(body)
        let found = Self.engine.scan(Array("{\"github_token\":\"\(token)\"}".utf8), context: ScanContext(hint: .json))
        #expect(found.map(\.rule) == ["github-pat-classic"], "\(token)")
    }

    /// Without a valid checksum a marker still reads as a placeholder, as before.
    @Test func aMadeUpTokenWithAMarkerIsStillAPlaceholder() {
        let token = "gh" + "p_" + "TODOreplaceWithYourOwnTokenHere12345"
        let found = Self.engine.scan(Array("{\"token\":\"\(token)\"}".utf8), context: ScanContext(hint: .json))
        #expect(!found.contains { $0.rule == "github-pat-classic" }, "\(found.map(\.rule))")
    }
}
