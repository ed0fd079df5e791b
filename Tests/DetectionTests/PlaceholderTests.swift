import Testing
@testable import Detection

/// Placeholders and templates are recognised by their whole shape, never by a first character:
/// a secret that happens to start with `%`, `$`, `<`, `{` or `[` is still a secret.
@Suite("Placeholders")
struct PlaceholderTests {
    static let templates = [
        "${DB_PASSWORD}", "$(cat /run/secrets/db)", "$DB_PASSWORD", "{{ db_password }}", "{password}",
        "<your-password>", "[redacted-value]", "%(password)s", "%s", "%DB_PASSWORD%", "%{password}",
    ]
    static let secretsThatLookLikeStarts = [
        "%Q#yMfutA7x80P9D#YzE", "%48MONyGxmRJnAcVUSzr", "$Kq8#wP2!zR7mX4vL9", "<Kq8#wP2!zR7mX4vL9",
        "{Kq8#wP2!zR7mX4vL9", "[Kq8#wP2!zR7mX4vL9", "%2xHJCaHBbgCX3WTdzN%", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
    ]

    @Test(arguments: templates)
    func templatesArePlaceholders(_ value: String) {
        #expect(Placeholders.isPlaceholder(Array(value.utf8)), "\(value)")
    }

    @Test(arguments: secretsThatLookLikeStarts)
    func aFirstCharacterIsNotATemplate(_ value: String) {
        #expect(!Placeholders.isTemplate(Array(value.lowercased().utf8)), "\(value)")
    }

    @Test("a password starting with a template character is found in an assignment", arguments: ["%", "$", "<", "{", "["])
    func passwordFound(_ first: String) throws {
        let engine = try DetectionEngine(fingerprintKey: Array(repeating: 7, count: 32))
        let body = "{\"task\":\"deploy\",\"password\":\"\(first)Qy7#eCw!cd7fkcOjlgM\"}"
        let found = engine.scan(Array(body.utf8), context: ScanContext(credentials: true, pii: false, hint: .json))
        #expect(found.contains { $0.rule == "generic-password" }, "\(body): \(found.map(\.rule))")
    }
}
