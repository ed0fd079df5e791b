import Testing
@testable import Detection

/// "Shapes, not only checksums": a token with a provider's fixed prefix and shape is a finding
/// whether or not its checksum holds. A failed checksum lowers severity and confidence only.
@Suite struct ShapeTests {
    static let engine = try! DetectionEngine(fingerprintKey: Array("shape-key".utf8))
    static let fallback = try! DetectionEngine(fingerprintKey: Array("shape-key".utf8), options: EngineOptions(useHyperscan: false))
    static let P = "_", D = "-"

    struct Row: Sendable, CustomTestStringConvertible {
        var rule: String
        var token: String
        var severity: Severity
        var checksumFailed: Bool
        var testDescription: String { "\(rule)\(checksumFailed ? " (wrong checksum)" : "")" }
    }

    /// A GitHub token (`prefix` + 30 random + 6 CRC32/base62 characters) whose checksum is made wrong
    /// by changing one checksum character.
    static func wrongChecksum(_ f: inout Fakes, _ prefix: String) -> String {
        var chars = Array(f.github(prefix))
        let i = chars.count - 1 - f.int(6)
        chars[i] = chars[i] == "A" ? "B" : "A"
        let t = String(chars)
        precondition(!Checksums.githubChecksumValid(body: Array(t.utf8)[4...]))
        return t
    }

    /// `prefix` + 36 random alphanumerics: the issue's example (the checksum is wrong unless by chance).
    static func randomBody(_ f: inout Fakes, _ prefix: String) -> String {
        while true {
            let t = prefix + f.s(Fakes.alnum, 36)
            if !Checksums.githubChecksumValid(body: Array(t.utf8)[4...]) { return t }
        }
    }

    static func rows() -> [Row] {
        var f = Fakes(seed: 2024)
        let a = Fakes.alnum, h = Fakes.hex, u = Fakes.b64url, ud = Fakes.upper + Fakes.digits
        var rows: [Row] = []
        let github = [("github-pat-classic", "gh" + "p" + P), ("github-oauth-token", "gh" + "o" + P),
                      ("github-user-to-server-token", "gh" + "u" + P), ("github-app-token", "gh" + "s" + P),
                      ("github-refresh-token", "gh" + "r" + P)]
        for (rule, prefix) in github {
            rows.append(Row(rule: rule, token: f.github(prefix), severity: .critical, checksumFailed: false))
            rows.append(Row(rule: rule, token: wrongChecksum(&f, prefix), severity: .high, checksumFailed: true))
            rows.append(Row(rule: rule, token: randomBody(&f, prefix), severity: .high, checksumFailed: true))
        }
        // Prefixed providers without a checksum: random bodies of the right shape are findings at full severity.
        let shaped: [(String, String, Severity)] = [
            ("github-fine-grained-pat", "github" + P + "pat" + P + f.s(a, 22) + P + f.s(a, 59), .critical),
            ("slack-bot-token", "xo" + "xb" + D + f.s(Fakes.digits, 12) + D + f.s(Fakes.digits, 13) + D + f.s(a, 24), .critical),
            ("slack-user-token", "xo" + "xp" + D + f.s(Fakes.digits, 12) + D + f.s(Fakes.digits, 13) + D + f.s(a, 32), .critical),
            ("slack-legacy-token", "xo" + "xs" + D + f.s(Fakes.digits, 10) + D + f.s(a, 30), .high),
            ("slack-app-token", "xa" + "pp" + D + "1" + D + f.s(ud, 11) + D + f.s(Fakes.digits, 13) + D + f.s(h, 64), .critical),
            ("anthropic-api-key", "sk" + D + "ant" + D + "api03" + D + f.s(u, 93) + "AA", .critical),
            ("anthropic-admin-key", "sk" + D + "ant" + D + "admin01" + D + f.s(u, 93) + "AA", .critical),
            ("anthropic-session-key", "sk" + D + "ant" + D + "sid01" + D + f.s(u, 93) + "AA", .critical),
            ("aws-access-key-id", "AK" + "IA" + f.s(ud, 16), .critical),
            ("aws-access-key-id", "AS" + "IA" + f.s(ud, 16), .critical),
            ("stripe-secret-key", "sk" + P + "live" + P + f.s(a, 24), .critical),
            ("stripe-restricted-key", "rk" + P + "live" + P + f.s(a, 24), .critical),
            ("gitlab-pat", "gl" + "pat" + D + f.s(a, 20), .critical),
            ("npm-access-token", "np" + "m" + P + f.s(a, 36), .critical),
            ("openai-project-key", "sk" + D + "proj" + D + f.s(u, 120), .critical),
            ("gcp-api-key", "AI" + "za" + f.s(u, 35), .high),
            ("huggingface-token", "hf" + P + f.s(Fakes.upper + Fakes.lower, 34), .critical),
            ("digitalocean-pat", "dop" + P + "v1" + P + f.s(h, 64), .critical),
            ("sendgrid-api-key", "SG." + f.s(u, 22) + "." + f.s(u, 43), .critical),
        ]
        for (rule, token, sev) in shaped { rows.append(Row(rule: rule, token: token, severity: sev, checksumFailed: false)) }
        return rows
    }

    @Test(arguments: rows())
    func shapeIsAFinding(_ row: Row) {
        for context in [ScanContext(), ScanContext(hint: .json)] {
            for doc in ["token: \(row.token)", "{\"auth\": \"\(row.token)\"}", row.token] {
                let bytes = Array(doc.utf8)
                let found = Self.engine.scan(bytes, context: context)
                #expect(found == Self.fallback.scan(bytes, context: context))
                let hit = found.first { $0.rule == row.rule }
                #expect(hit != nil, "\(row.rule) not found in \(doc.prefix(40))…: \(found.map(\.rule))")
                guard let hit else { continue }
                #expect(String(decoding: bytes[hit.start..<hit.end], as: UTF8.self) == row.token)
                #expect(hit.severity == row.severity)
                if row.checksumFailed {
                    #expect(hit.confidence == TokenMatcher.failedChecksumConfidence)
                } else {
                    #expect(hit.confidence > TokenMatcher.failedChecksumConfidence)
                }
                // Masking removes it either way.
                let masked = String(decoding: Self.engine.mask(bytes, findings: found), as: UTF8.self)
                #expect(!masked.contains(row.token))
            }
        }
    }

    @Test func severityLowersOneStep() {
        #expect(Severity.critical.lowered == .high)
        #expect(Severity.high.lowered == .medium)
        #expect(Severity.medium.lowered == .low)
        #expect(Severity.low.lowered == .low)
    }

    /// Placeholders of a provider's shape stay clean: the checksum never cleared them, the placeholder filter does.
    @Test(arguments: [
        "gh" + "p" + "_" + String(repeating: "x", count: 36),
        "gh" + "p" + "_" + "abcdefghijklmnopqrstuvwxyz0123456789",
        "gh" + "o" + "_" + "EXAMPLE" + "abcdEFGH1234ijklMNOP5678qrstU",
        "sk" + "_live_" + String(repeating: "X", count: 24),
        "AK" + "IAIOSFODNN7" + "EXAMPLE",
    ])
    func placeholdersOfTheShapeStayClean(_ text: String) {
        #expect(Self.engine.scan(Array(text.utf8)).isEmpty)
    }
}
