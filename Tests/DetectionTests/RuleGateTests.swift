import Testing
@testable import Detection

/// `RuleGate.email` (`PIIMatcher.emailPlausible`) runs before the email rule is read: it must
/// hold wherever `PIIMatcher.email` matches, and it rejects the `@`s that cannot be addresses.
@Suite struct RuleGateTests {
    static let cases: [(String, Bool)] = [
        ("mail jane.roe@corp.io today", true), ("a@b.c", true), ("x+tag@sub.domain.org,", true),
        ("uses: actions/checkout@v4", false), ("npm@10", false), ("@decorator", false), (" @x.y", false),
        ("user@localhost", false), ("ab@-", false), ("a@b", false), ("trailing@", false),
        ("https://app_user:pw@db.internal.corp:5432/x", true), ("a@b.c@d.e", true),
    ]

    @Test func emailGate() throws {
        let rules = try BuiltinRules.all()
        let rule = try #require(rules.first { $0.id == "email" })
        #expect(RuleGate(rule) == .email)
        for (text, plausible) in Self.cases {
            let bytes = Array(text.utf8)
            let at = try #require(bytes.firstIndex(of: UInt8(ascii: "@")))
            bytes.withUnsafeBufferPointer { p in
                #expect(PIIMatcher.emailPlausible(p, at: at) == plausible, "\(text)")
                if PIIMatcher.email(rule, p: p, at: at) != nil { #expect(PIIMatcher.emailPlausible(p, at: at), "\(text)") }
            }
        }
    }

    /// Every `@` of the detection corpus: wherever the email matcher matches, the gate lets it through.
    @Test func emailGateNeverHidesAMatch() throws {
        let rule = try #require(try BuiltinRules.all().first { $0.id == "email" })
        var matched = 0
        for text in ["jane.roe@corp.io", "x@y.co.uk", "ops-team@acme-corp.net", "first.last+ci@mail.example.dev",
                     "\"email\":\"ana.b@z.io\"", "<b@c.de>", "mailto:someone@place.org?x=1"] {
            let bytes = Array(text.utf8)
            for at in bytes.indices where bytes[at] == UInt8(ascii: "@") {
                bytes.withUnsafeBufferPointer { p in
                    if PIIMatcher.email(rule, p: p, at: at) != nil {
                        matched += 1
                        #expect(PIIMatcher.emailPlausible(p, at: at), "\(text)")
                    }
                }
            }
        }
        #expect(matched >= 4)
    }
}
