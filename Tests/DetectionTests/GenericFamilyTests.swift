import Testing
@testable import Detection

/// `GenericMatcher.family`: the key-name families of the generic assignment rules. The table
/// covers every suffix list (each ends in its own last byte, which `family` checks first) and
/// names that end in other bytes, separators or a camelCase boundary.
@Suite struct GenericFamilyTests {
    static let cases: [(String, GenericKind?)] = [
        ("password", .password), ("DB_PASSWORD", .password), ("user_passwd", .password), ("ssh_passphrase", .password),
        ("smtp_pwd", .password), ("db_pass", .password), ("dbPass", .password), ("DB-PASS", .password),
        ("bypass", nil), ("compass", nil),
        ("secret", .secret), ("client_secret", .secret), ("AWS_CREDENTIAL", .secret), ("credentials", .secret),
        ("token", .token), ("authToken", .token), ("GITHUB_TOKEN", .token), ("nextToken", nil), ("max_token", nil),
        ("api_key", .apiKey), ("apiKey", .apiKey), ("X-Api-Key", .apiKey), ("storage_account_key", .apiKey),
        ("monkey", nil), ("keyboard", nil), ("max_tokens", nil), ("author", nil), ("secrets", nil),
        ("password_", .password), ("token--", .token), ("__", nil), ("", nil),
    ]

    @Test func familiesOfKeyNames() {
        for (name, expected) in Self.cases {
            let bytes = Array(name.utf8)
            let got = bytes.withUnsafeBufferPointer { GenericMatcher.family($0, keyStart: 0, keyEnd: $0.count) }
            #expect(got == expected, "\(name)")
        }
    }

    /// The last-byte check ahead of normalization must let every suffix of every list through.
    @Test func everySuffixIsClassified() {
        for s in GenericMatcher.passwordSuffixes { #expect(family(s) == .password, "\(s)") }
        for s in GenericMatcher.secretSuffixes { #expect(family(s) == .secret, "\(s)") }
        for s in GenericMatcher.keySuffixBytes { #expect(family(s) == .apiKey, "\(s)") }
        #expect(family(GenericMatcher.tokenSuffix) == .token)
        #expect(family(Array("x_".utf8) + GenericMatcher.passComponent) == .password)
        for s in GenericMatcher.exclusionBytes { #expect(family(s) == nil, "\(s)") }
    }

    func family(_ b: [UInt8]) -> GenericKind? {
        b.withUnsafeBufferPointer { GenericMatcher.family($0, keyStart: 0, keyEnd: $0.count) }
    }
}
