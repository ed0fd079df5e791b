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

    /// `containsMarker` (markers bucketed by first byte) answers as the marker-by-marker search:
    /// every marker at the start, middle and end of a value, cut short by one byte, and values
    /// from a fixed-seed generator over an alphabet rich in the markers' bytes.
    @Test func markerSearchMatchesNaiveSearch() {
        func naive(_ v: [UInt8]) -> Bool { Placeholders.markers.contains { Placeholders.contains(v, $0) } }
        var values: [[UInt8]] = [[], Array("a".utf8), Array("q7#ecw!cd7fkcojlgm".utf8)]
        for m in Placeholders.markers {
            values += [m, Array("ab".utf8) + m, m + Array("zz".utf8), Array("k9".utf8) + m + Array("_x".utf8), Array(m.dropLast()),
                       Array("x".utf8) + Array(m.dropFirst())]
        }
        let alphabet = Array("examplxyour_-<*.[]todfkecsnq0123456789ab\u{2022}".utf8)
        var s: UInt64 = 0x9E3779B97F4A7C15
        for _ in 0..<3000 {
            var v: [UInt8] = []
            for _ in 0..<Int(s % 24) {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17
                v.append(alphabet[Int(s % UInt64(alphabet.count))])
            }
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            values.append(v)
        }
        var hits = 0
        for v in values {
            let expected = naive(v)
            if expected { hits += 1 }
            #expect(Placeholders.containsMarker(v) == expected, "\(v)")
        }
        #expect(hits >= Placeholders.markers.count * 4)
    }
}
