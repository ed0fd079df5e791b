import Pipeline
import Testing

@Suite("Canonical path")
struct CanonicalPathTests {
    /// Spellings that must canonicalise to one string.
    static let accepted: [(raw: String, canonical: String)] = [
        ("", "/"),
        ("/", "/"),
        ("/admin/users", "/admin/users"),
        ("/%61dmin/users", "/admin/users"),
        ("/%41dmin/users", "/Admin/users"),
        ("//admin/users", "/admin/users"),
        ("/admin//users", "/admin/users"),
        ("///admin///users", "/admin/users"),
        ("/./admin/users", "/admin/users"),
        ("/admin/./users", "/admin/users"),
        ("/x/../admin/users", "/admin/users"),
        ("/x/y/../../admin/users", "/admin/users"),
        ("/%2e/admin/users", "/admin/users"),
        ("/x/%2e%2e/admin/users", "/admin/users"),
        ("/x/%2E%2E/admin/users", "/admin/users"),
        ("/x/.%2e/admin/users", "/admin/users"),
        ("/admin/users/", "/admin/users/"),
        ("/admin/users//", "/admin/users/"),
        ("/admin/users/.", "/admin/users/"),
        ("/admin/users/x/..", "/admin/users/"),
        ("/admin/..", "/"),
        ("/.", "/"),
        ("//", "/"),
        ("/a%7eb", "/a~b"),
        ("/a%5fb%2Dc", "/a_b-c"),
        // Reserved characters stay escaped (upper-cased) or literal, as they arrived.
        ("/a%3ab", "/a%3Ab"),
        ("/a%3Ab", "/a%3Ab"),
        ("/a:b", "/a:b"),
        ("/a%20b", "/a%20b"),
        ("/a%2bb", "/a%2Bb"),
        ("/a+b", "/a+b"),
        ("/users;v=1", "/users;v=1"),
        ("/a%25b", "/a%25b"),
        // Non-ASCII that NFKC leaves alone: upper-case escaped, raw or encoded alike.
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        ("/café", "/caf%C3%A9"),
        ("/%E6%97%A5%E6%9C%AC", "/%E6%97%A5%E6%9C%AC"),
        // Segments that merely contain dots are ordinary names.
        ("/...", "/..."),
        ("/.hidden", "/.hidden"),
        ("/a..b", "/a..b"),
        ("/file.tar.gz", "/file.tar.gz"),
    ]

    @Test(arguments: accepted)
    func canonicalises(raw: String, canonical: String) throws {
        let result = try CanonicalPath.canonicalize(raw)
        #expect(result == canonical, "\(raw)")
        // A canonical path is a fixed point.
        let again = try CanonicalPath.canonicalize(result)
        #expect(again == result, "\(raw) not a fixed point")
    }

    /// Every spelling of the hold-glob attack from issue 8 lands on the one canonical path.
    @Test func attackSpellingsAgree() throws {
        let spellings = ["/admin/users", "/%61dmin/users", "//admin/users", "/./admin/users", "/x/../admin/users",
                         "/%61%64%6D%69%6E/users", "/admin/%2e/users", "/admin/x/%2E%2E/users"]
        for raw in spellings {
            #expect(try CanonicalPath.canonicalize(raw) == "/admin/users", "\(raw)")
        }
    }

    /// Spellings that must be refused, with a word the reason must contain.
    static let refused: [(raw: String, reasonContains: String)] = [
        ("/admin%2Fusers", "slash"),
        ("/admin%2fusers", "slash"),
        ("/admin%5Cusers", "backslash"),
        ("/admin%5cusers", "backslash"),
        ("/admin\\users", "backslash"),
        ("/admin%00", "control"),
        ("/admin%0a", "control"),
        ("/admin%0D%0Ax", "control"),
        ("/admin%7F", "control"),
        ("/admin%09", "control"),
        ("/admin\u{01}", "control"),
        ("/..", "climbs"),
        ("/../admin", "climbs"),
        ("/%2e%2e", "climbs"),
        ("/%2E%2E/admin", "climbs"),
        ("/a/../../b", "climbs"),
        ("/a/./../../b", "climbs"),
        ("/..;/admin", "matrix"),
        ("/x/..;/admin", "matrix"),
        ("/x/..;jsessionid=1/admin", "matrix"),
        ("/x/.;/admin", "matrix"),
        ("/x/..%3b/admin", "matrix"),
        ("/x/%2e%2e;/admin", "matrix"),
        ("/%EF%BD%81dmin", "normalisation"),  // fullwidth 'a'
        ("/ａdmin", "normalisation"),
        ("/%EF%BC%8E%EF%BC%8E/admin", "normalisation"),  // fullwidth '..'
        ("/a%E2%80%8Bdmin", "invisible"),  // zero-width space
        ("/a%E2%80%AEb", "invisible"),  // right-to-left override
        ("/%C2%85", "invisible"),  // C1 control NEL
        ("/e%CC%81", "normalisation"),  // decomposed é (NFKC composes it)
        ("/%zz", "invalid percent"),
        ("/%", "invalid percent"),
        ("/%4", "invalid percent"),
        ("/a%g1", "invalid percent"),
        ("/%c3%28", "UTF-8"),
        ("/%c3", "UTF-8"),
        ("/%ff", "UTF-8"),
        ("/%ed%a0%80", "UTF-8"),  // encoded surrogate
        ("/%c0%af", "UTF-8"),  // overlong '/'
        ("/%252e%252e/admin", "double-encoded"),
        // Found by fuzz-canonical-path: the hex digits after %25 escaped too.
        ("/admin%25%32%46users", "double-encoded"),
        ("/x%25%30d.~", "double-encoded"),
        ("/%259%41", "double-encoded"),
        ("admin", "start"),
    ]

    @Test(arguments: refused)
    func refuses(raw: String, reasonContains: String) {
        do {
            let result = try CanonicalPath.canonicalize(raw)
            Issue.record("\(raw) was accepted as \(result)")
        } catch {
            #expect(error.reason.contains(reasonContains), "\(raw): \(error.reason)")
            #expect(!error.reason.isEmpty && error.reason.hasSuffix("."))
        }
    }

    /// Mixed-case escapes of one byte give one spelling.
    @Test func escapeCaseDoesNotMatter() throws {
        #expect(try CanonicalPath.canonicalize("/x%3ay") == CanonicalPath.canonicalize("/x%3Ay"))
        #expect(try CanonicalPath.canonicalize("/x%c3%a9") == CanonicalPath.canonicalize("/x%C3%a9"))
    }

    static let queries: [(raw: String, canonical: String)] = [
        ("", ""),
        ("a=1&b=2", "a=1&b=2"),
        ("q=%61dmin", "q=admin"),
        ("q=a%2fb", "q=a%2Fb"),
        ("q=a%2Fb&r=%5c", "q=a%2Fb&r=%5C"),
        ("q=drop+table", "q=drop+table"),
        ("q=%20x", "q=%20x"),
        ("q=caf%c3%a9", "q=caf%C3%A9"),
        ("q=..%2F..", "q=..%2F.."),
    ]

    @Test(arguments: queries)
    func canonicalisesQueries(raw: String, canonical: String) throws {
        let result = try CanonicalPath.canonicalizeQuery(raw)
        #expect(result == canonical, "\(raw)")
        #expect(try CanonicalPath.canonicalizeQuery(result) == result)
    }

    static let refusedQueries: [String] = ["q=%00", "q=%0a", "q=%0D%0A", "q=%7f", "q=%zz", "q=%", "q=%4", "q=\u{07}"]

    @Test(arguments: refusedQueries)
    func refusesQueries(_ raw: String) {
        #expect(throws: CanonicalPath.Refusal.self) { try CanonicalPath.canonicalizeQuery(raw) }
    }
}
