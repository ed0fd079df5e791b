import Foundation
import Pipeline
import Testing

/// The hand-written audit JSON is byte for byte Foundation's `[.sortedKeys, .withoutEscapingSlashes]`.
@Suite("Audit event JSON")
struct AuditEventJSONTests {
    static let foundation: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static let awkward = [
        "", "plain", "a/b/c", "quote\" back\\slash", "\u{0}\u{1}\u{7}\u{8}\u{9}\u{A}\u{B}\u{C}\u{D}\u{1F}\u{7F}",
        "grüße 日本 🦆", "\u{2028}\u{2029}", "</script>", "e\u{301}", "😀\u{10FFFF}",
    ]

    static let table: [AuditEvent] = [
        AuditEvent(kind: .requestReceived, stage: "ingress", requestID: "r", sessionID: "s", timeMillis: 0, eventID: "e"),
        AuditEvent(
            kind: .inspected, stage: "inspector", requestID: "0f8b2c1e-7a3d-4b5e-9c6f-112233445566", sessionID: "sess/1",
            connection: "github", identity: "alice@example.com", method: "POST", path: "/repos/x/y?token=[MASKED:github-pat:abc]",
            decision: .mask, rules: ["github-pat", "email"], reasons: ["credential found"],
            findings: [
                FindingSummary(rule: "github-pat", ruleClass: "credential", severity: "critical", location: "body", start: 10, end: 50, fingerprint: "0123456789ab"),
                FindingSummary(rule: "email", ruleClass: "pii", severity: "low", location: "header:x-user", start: 0, end: -1, fingerprint: ""),
            ],
            status: 200, durationMillis: -5, details: ["b": "2", "a": "1", "a_b": "3", "ab": "4", "B": "5", "a10": "", "a9": "", "é": "x"],
            timeMillis: Int64.max, eventID: "evt"),
        AuditEvent(kind: .idempotentReplay, stage: "ingress", requestID: "r", sessionID: "s", findings: [], details: [:], timeMillis: Int64.min, eventID: "e"),
        AuditEvent(kind: .approvalRefused, stage: "ingress", requestID: "r", sessionID: "s", rules: [], reasons: [], status: Int.min, timeMillis: 1, eventID: "e"),
        AuditEvent(
            kind: .configLoaded, stage: "run", requestID: "e", sessionID: "e",
            details: ["config_sha256": String(repeating: "ab", count: 32), "config_path": "/etc/sluice/sluice.yaml", "stages": "recorder,ingress",
                      "version": "0.1.0", "instance": "host-1-abcd"],
            timeMillis: 1, eventID: "e"),
    ]

    @Test("the table", arguments: table.indices)
    func tableRow(i: Int) throws {
        let event = Self.table[i]
        #expect(AuditEventJSON.encode(event) == Array(try Self.foundation.encode(AuditEventJSON.Versioned(event))))
    }

    @Test("the schema version is the last key, \"v\":1, after time_ms")
    func version() {
        let event = AuditEvent(kind: .requestReceived, stage: "ingress", requestID: "r", sessionID: "s", timeMillis: 5, eventID: "e")
        #expect(String(decoding: AuditEventJSON.encode(event), as: UTF8.self)
            == #"{"event_id":"e","kind":"request_received","request_id":"r","session_id":"s","stage":"ingress","time_ms":5,"v":1}"#)
    }

    @Test("every awkward string in every string field")
    func awkwardStrings() throws {
        for s in Self.awkward {
            let event = AuditEvent(
                kind: .failed, stage: s, requestID: s, sessionID: s, connection: s, identity: s, method: s, path: s,
                decision: .block, rules: [s, s], reasons: [s],
                findings: [FindingSummary(rule: s, ruleClass: s, severity: s, location: s, start: 1, end: 2, fingerprint: s)],
                details: [s: s, s + "x": s], timeMillis: 7, eventID: s)
            let ours = AuditEventJSON.encode(event)
            #expect(ours == Array(try Self.foundation.encode(AuditEventJSON.Versioned(event))), "\(s.debugDescription)")
            #expect(try JSONDecoder().decode(AuditEvent.self, from: Data(ours)) == event)
        }
    }

    @Test("random events")
    func random() throws {
        var rng = SystemRandomNumberGenerator()
        let kinds: [AuditEvent.Kind] = [.requestReceived, .requestRejected, .inspected, .delivered, .blocked, .denied, .expired, .failed,
                                        .approvalRequested, .approvalDecided, .responseMasked, .approvalRefused, .idempotentReplay,
                                        .sinkFailed, .sinkRecovered, .sinkEventsDropped, .configLoaded]
        func text() -> String {
            let scalars = (0..<Int.random(in: 0...12, using: &rng)).map { _ -> Unicode.Scalar in
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: Unicode.Scalar(UInt8.random(in: 0...0x7F, using: &rng))
                case 1: Unicode.Scalar(UInt32.random(in: 0xA0...0xD7FF, using: &rng)) ?? "x"
                case 2: Unicode.Scalar(UInt32.random(in: 0x1F300...0x1F64F, using: &rng)) ?? "y"
                default: Unicode.Scalar(UInt8.random(in: 0x61...0x7A, using: &rng))
                }
            }
            return String(String.UnicodeScalarView(scalars))
        }
        func maybe<T>(_ make: () -> T) -> T? { Bool.random(using: &rng) ? make() : nil }
        for _ in 0..<2_000 {
            let event = AuditEvent(
                kind: kinds.randomElement(using: &rng)!, stage: text(), requestID: text(), sessionID: text(),
                connection: maybe(text), identity: maybe(text), method: maybe(text), path: maybe(text),
                decision: maybe { Decision.allCases.randomElement(using: &rng)! },
                rules: maybe { (0..<Int.random(in: 0...3, using: &rng)).map { _ in text() } },
                reasons: maybe { (0..<Int.random(in: 0...3, using: &rng)).map { _ in text() } },
                findings: maybe { (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                    FindingSummary(rule: text(), ruleClass: text(), severity: text(), location: text(),
                                   start: Int.random(in: -5...100_000, using: &rng), end: Int.random(in: -5...100_000, using: &rng), fingerprint: text())
                } },
                status: maybe { Int.random(in: -1_000...1_000, using: &rng) },
                durationMillis: maybe { Int64.random(in: .min ... .max, using: &rng) },
                details: maybe { Dictionary((0..<Int.random(in: 0...4, using: &rng)).map { _ in (text(), text()) }, uniquingKeysWith: { a, _ in a }) },
                timeMillis: Int64.random(in: .min ... .max, using: &rng), eventID: text())
            let ours = AuditEventJSON.encode(event)
            let theirs = Array(try Self.foundation.encode(AuditEventJSON.Versioned(event)))
            #expect(ours == theirs, "\(String(decoding: ours, as: UTF8.self)) != \(String(decoding: theirs, as: UTF8.self))")
            if ours != theirs { return }
        }
    }
}

/// The canonical fast-path reader agrees with Foundation: it reads back everything the encoder
/// writes, and on any other input either declines (`nil`) or reads what `JSONDecoder` reads.
@Suite("Audit event JSON reader")
struct AuditEventJSONReaderTests {
    static func foundationDecode(_ bytes: [UInt8]) -> AuditEvent? {
        try? JSONDecoder().decode(AuditEvent.self, from: Data(bytes))
    }

    @Test("reads back the table and the awkward strings")
    func roundTrip() throws {
        var events = AuditEventJSONTests.table
        for s in AuditEventJSONTests.awkward {
            events.append(AuditEvent(
                kind: .failed, stage: s, requestID: s, sessionID: s, connection: s, identity: s, method: s, path: s,
                decision: .hold, rules: [s], reasons: [s, s],
                findings: [FindingSummary(rule: s, ruleClass: s, severity: s, location: s, start: -1, end: 0, fingerprint: s)],
                status: 0, durationMillis: 0, details: [s: s, "k" + s: s], timeMillis: -1, eventID: s))
        }
        for event in events {
            #expect(AuditEventJSON.decodeCanonical(AuditEventJSON.encode(event)) == event)
        }
    }

    @Test("reads an event with and without v (lines written before v existed), as Foundation does")
    func withAndWithoutVersion() throws {
        let without = Array(#"{"event_id":"e","kind":"inspected","request_id":"r","session_id":"s","stage":"x","time_ms":1}"#.utf8)
        let with = Array(#"{"event_id":"e","kind":"inspected","request_id":"r","session_id":"s","stage":"x","time_ms":1,"v":1}"#.utf8)
        let expected = AuditEvent(kind: .inspected, stage: "x", requestID: "r", sessionID: "s", timeMillis: 1, eventID: "e")
        #expect(AuditEventJSON.decodeCanonical(without) == expected)
        #expect(AuditEventJSON.decodeCanonical(with) == expected)
        #expect(Self.foundationDecode(without) == expected)
        #expect(Self.foundationDecode(with) == expected)
        #expect(AuditEventJSON.encode(expected) == with)
    }

    @Test("declines or agrees with Foundation on every mutation of a canonical event")
    func mutations() throws {
        let base = AuditEventJSON.encode(AuditEventJSONTests.table[1])
        var rng = SystemRandomNumberGenerator()
        var declined = 0
        let alphabet = Array(#"{}[]",:\/0123456789-aenu tbfr"#.utf8) + [0x00, 0x1F, 0xC3, 0xA9, 0xFF]
        for _ in 0..<20_000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[at] = alphabet.randomElement(using: &rng)!
                case 1: bytes.remove(at: at)
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: at)
                }
                if bytes.isEmpty { break }
            }
            guard let ours = AuditEventJSON.decodeCanonical(bytes) else { declined += 1; continue }
            #expect(ours == Self.foundationDecode(bytes), "\(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(declined > 0)
    }

    @Test("declines what is valid JSON but not canonical, which Foundation then reads")
    func nonCanonical() throws {
        let inputs = [
            #"{ "event_id":"e","kind":"inspected","request_id":"r","session_id":"s","stage":"x","time_ms":1}"#,
            #"{"kind":"inspected","event_id":"e","request_id":"r","session_id":"s","stage":"x","time_ms":1}"#,
            #"{"event_id":"e","kind":"inspected","request_id":"r","session_id":"s","stage":"x","time_ms":1,"extra":2}"#,
            #"{"event_id":"\u0065","kind":"inspected","request_id":"r","session_id":"s","stage":"x","time_ms":1}"#,
            #"{"event_id":"e\/","kind":"inspected","request_id":"r","session_id":"s","stage":"x","time_ms":1}"#,
            #"{"event_id":"e","kind":"inspected","request_id":"r","session_id":"s","stage":"x","time_ms":01}"#,
            #"{"details":{"b":"1","a":"2"},"event_id":"e","kind":"inspected","request_id":"r","session_id":"s","stage":"x","time_ms":1}"#,
        ]
        for input in inputs {
            #expect(AuditEventJSON.decodeCanonical(Array(input.utf8)) == nil, "\(input)")
        }
        // Another schema version is not read on the fast path (Foundation ignores `v`).
        let v2 = Array(#"{"event_id":"e","kind":"inspected","request_id":"r","session_id":"s","stage":"x","time_ms":1,"v":2}"#.utf8)
        #expect(AuditEventJSON.decodeCanonical(v2) == nil)
        // And an unknown kind is refused by both.
        let unknown = Array(#"{"event_id":"e","kind":"nope","request_id":"r","session_id":"s","stage":"x","time_ms":1}"#.utf8)
        #expect(AuditEventJSON.decodeCanonical(unknown) == nil)
        #expect(Self.foundationDecode(unknown) == nil)
    }
}
