/// The canonical JSON of an `AuditEvent` (`schema: sluice`), written by hand: compact, keys
/// sorted, `/` not escaped, the schema version `"v":1` last — byte for byte what `JSONEncoder`
/// with `[.sortedKeys, .withoutEscapingSlashes]` writes for ``Versioned`` (`AuditEventJSONTests`
/// compares the two on a table and on random events), about ten times faster. Audit events are encoded by every stage and by the Recorder for each of its
/// outputs; Foundation's encoder was a third of the Recorder's time (docs/performance.md).
///
/// Guarantees: the output is valid JSON (strings escaped as Foundation does: `"` `\` and the
/// control characters below U+0020, as `\b \f \n \r \t` or `\u00XX`; everything else, `/` and
/// non-ASCII included, as UTF-8), absent optionals are left out, dictionary keys are sorted as
/// Swift orders `String`s (Foundation's order); every event carries `"v":` ``version``.
/// Readers (``decodeCanonical(_:)``, `JSONDecoder`) accept lines with and without `v` (lines
/// written before it was added have none).
public enum AuditEventJSON {
    /// The version of the event schema, `"v"` in every event. It changes only when a field is
    /// removed, renamed or changes meaning; a new optional field or a new `kind` keeps it
    /// (docs/siem.md).
    public static let version: Int64 = 1

    /// An event as `JSONEncoder` writes it with the schema version: the event's own fields and
    /// `"v"`. The reference ``encode(_:)`` equals; the stages never encode through it.
    public struct Versioned: Encodable, Sendable {
        public var event: AuditEvent

        public init(_ event: AuditEvent) { self.event = event }

        private enum Key: String, CodingKey { case v }

        public func encode(to encoder: any Encoder) throws {
            try event.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(AuditEventJSON.version, forKey: .v)
        }
    }

    public static func encode(_ event: AuditEvent) -> [UInt8] {
        var w = JSONObjectWriter()
        w.out.reserveCapacity(384 + (event.findings?.count ?? 0) * 160)
        // Keys in sorted order: connection, decision, details, duration_ms, event_id, findings,
        // identity, kind, method, path, reasons, request_id, rules, session_id, stage, status, time_ms, v.
        if let v = event.connection { w.string("connection", v) }
        if let v = event.decision { w.string("decision", v.rawValue) }
        if let v = event.details {
            w.key("details")
            w.out.append(UInt8(ascii: "{"))
            for (i, k) in v.keys.sorted().enumerated() {
                if i > 0 { w.out.append(UInt8(ascii: ",")) }
                string(k, into: &w.out)
                w.out.append(UInt8(ascii: ":"))
                string(v[k]!, into: &w.out)
            }
            w.out.append(UInt8(ascii: "}"))
        }
        if let v = event.durationMillis { w.integer("duration_ms", v) }
        w.string("event_id", event.eventID)
        if let v = event.findings {
            w.key("findings")
            w.out.append(UInt8(ascii: "["))
            for (i, f) in v.enumerated() {
                if i > 0 { w.out.append(UInt8(ascii: ",")) }
                // class, end, fingerprint, location, rule, severity, start
                w.out.append(contentsOf: #"{"class":"#.utf8)
                string(f.ruleClass, into: &w.out)
                w.out.append(contentsOf: #","end":"#.utf8)
                integer(Int64(f.end), into: &w.out)
                w.out.append(contentsOf: #","fingerprint":"#.utf8)
                string(f.fingerprint, into: &w.out)
                w.out.append(contentsOf: #","location":"#.utf8)
                string(f.location, into: &w.out)
                w.out.append(contentsOf: #","rule":"#.utf8)
                string(f.rule, into: &w.out)
                w.out.append(contentsOf: #","severity":"#.utf8)
                string(f.severity, into: &w.out)
                w.out.append(contentsOf: #","start":"#.utf8)
                integer(Int64(f.start), into: &w.out)
                w.out.append(UInt8(ascii: "}"))
            }
            w.out.append(UInt8(ascii: "]"))
        }
        if let v = event.identity { w.string("identity", v) }
        w.string("kind", event.kind.rawValue)
        if let v = event.method { w.string("method", v) }
        if let v = event.path { w.string("path", v) }
        if let v = event.reasons { w.key("reasons"); strings(v, into: &w.out) }
        w.string("request_id", event.requestID)
        if let v = event.rules { w.key("rules"); strings(v, into: &w.out) }
        w.string("session_id", event.sessionID)
        w.string("stage", event.stage)
        if let v = event.status { w.integer("status", v) }
        w.integer("time_ms", event.timeMillis)
        w.integer("v", version)
        return w.finish()
    }

    private static func strings(_ values: [String], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (i, s) in values.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            string(s, into: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    private static func integer(_ value: Int64, into out: inout [UInt8]) {
        out.append(contentsOf: String(value).utf8)
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// `value` as a JSON string literal (quotes, backslashes and control characters escaped, as
    /// Foundation's encoder writes them), appended to `out`.
    public static func string(_ value: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(byte)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(byte)
            case 0x08: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "f"))
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension AuditEventJSON {
    /// Reads JSON in exactly the canonical form ``encode(_:)`` writes (no whitespace, keys in
    /// order, only the escapes it writes; `"v":1` last, or no `v` at all as before it was
    /// added); `nil` for anything else (another `v` included), which the caller then gives
    /// to `JSONDecoder` (so every input is decoded as Foundation decodes it — this is only a
    /// fast path for what the stages publish, `AuditEventJSONTests` checks both agree).
    public static func decodeCanonical(_ bytes: [UInt8]) -> AuditEvent? {
        bytes.withUnsafeBufferPointer { p in
            var r = CanonicalReader(p: p)
            return r.event()
        }
    }
}

/// The cursor of ``AuditEventJSON/decodeCanonical(_:)``: every method returns `nil` (or `false`)
/// on the first byte that is not in canonical form.
private struct CanonicalReader {
    let p: UnsafeBufferPointer<UInt8>
    var i = 0

    mutating func event() -> AuditEvent? {
        guard take(UInt8(ascii: "{")) else { return nil }
        var connection, identity, method, path, eventID, kindName, requestID, sessionID, stage: String?
        var decision: Decision?
        var details: [String: String]?
        var duration, time: Int64?
        var findings: [FindingSummary]?
        var reasons, rules: [String]?
        var status: Int?
        var first = true
        // The keys in canonical order; each may appear once, in this order.
        let order: [StaticString] = [
            "connection", "decision", "details", "duration_ms", "event_id", "findings", "identity", "kind", "method",
            "path", "reasons", "request_id", "rules", "session_id", "stage", "status", "time_ms", "v",
        ]
        var next = 0
        while !(i < p.count && p[i] == UInt8(ascii: "}")) {
            if !first { guard take(UInt8(ascii: ",")) else { return nil } }
            first = false
            guard let name = string() else { return nil }
            guard take(UInt8(ascii: ":")) else { return nil }
            var k = next
            while k < order.count && !equal(name, order[k]) { k += 1 }
            guard k < order.count else { return nil }
            next = k + 1
            switch k {
            case 0: guard let v = string() else { return nil }; connection = v
            case 1: guard let v = string(), let d = Decision(rawValue: v) else { return nil }; decision = d
            case 2: guard let v = stringMap() else { return nil }; details = v
            case 3: guard let v = integer() else { return nil }; duration = v
            case 4: guard let v = string() else { return nil }; eventID = v
            case 5: guard let v = findingList() else { return nil }; findings = v
            case 6: guard let v = string() else { return nil }; identity = v
            case 7: guard let v = string() else { return nil }; kindName = v
            case 8: guard let v = string() else { return nil }; method = v
            case 9: guard let v = string() else { return nil }; path = v
            case 10: guard let v = stringList() else { return nil }; reasons = v
            case 11: guard let v = string() else { return nil }; requestID = v
            case 12: guard let v = stringList() else { return nil }; rules = v
            case 13: guard let v = string() else { return nil }; sessionID = v
            case 14: guard let v = string() else { return nil }; stage = v
            case 15: guard let v = integer(), let s = Int(exactly: v) else { return nil }; status = s
            case 16: guard let v = integer() else { return nil }; time = v
            default: guard integer() == AuditEventJSON.version else { return nil }
            }
        }
        i += 1
        guard i == p.count, let eventID, let kindName, let requestID, let sessionID, let stage, let time,
              let kindValue = AuditEvent.Kind(rawValue: kindName) else { return nil }
        return AuditEvent(
            kind: kindValue, stage: stage, requestID: requestID, sessionID: sessionID, connection: connection, identity: identity,
            method: method, path: path, decision: decision, rules: rules, reasons: reasons, findings: findings, status: status,
            durationMillis: duration, details: details, timeMillis: time, eventID: eventID)
    }

    mutating func take(_ byte: UInt8) -> Bool {
        guard i < p.count, p[i] == byte else { return false }
        i += 1
        return true
    }

    func equal(_ s: String, _ key: StaticString) -> Bool {
        key.withUTF8Buffer { s.utf8.elementsEqual($0) }
    }

    mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = i
        // Fast: no escapes.
        while i < p.count, p[i] != UInt8(ascii: "\""), p[i] != UInt8(ascii: "\\"), p[i] >= 0x20 { i += 1 }
        guard i < p.count else { return nil }
        if p[i] == UInt8(ascii: "\"") {
            i += 1
            return String(validating: UnsafeBufferPointer(rebasing: p[start..<(i - 1)]), as: UTF8.self)
        }
        var bytes = Array(p[start..<i])
        while i < p.count {
            let b = p[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                return String(validating: bytes, as: UTF8.self)
            }
            guard b >= 0x20 else { return nil }
            if b != UInt8(ascii: "\\") { bytes.append(b); i += 1; continue }
            guard i + 1 < p.count else { return nil }
            let e = p[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(e)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "u"):
                // Only what the encoder writes: \u00XX for the other control characters.
                guard i + 4 <= p.count, p[i] == UInt8(ascii: "0"), p[i + 1] == UInt8(ascii: "0"),
                      let hi = hexValue(p[i + 2]), let lo = hexValue(p[i + 3]) else { return nil }
                let v = hi << 4 | lo
                guard v < 0x20, ![0x08, 0x09, 0x0A, 0x0C, 0x0D].contains(v) else { return nil }
                bytes.append(v)
                i += 4
            default: return nil
            }
        }
        return nil
    }

    func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    mutating func integer() -> Int64? {
        let start = i
        if i < p.count, p[i] == UInt8(ascii: "-") { i += 1 }
        let digits = i
        while i < p.count, p[i] >= UInt8(ascii: "0"), p[i] <= UInt8(ascii: "9") { i += 1 }
        // Canonical: at least one digit, no leading zero (but "0" itself).
        guard i > digits, i - digits < 20, !(p[digits] == UInt8(ascii: "0") && i - digits > 1) else { return nil }
        return Int64(String(decoding: UnsafeBufferPointer(rebasing: p[start..<i]), as: UTF8.self))
    }

    mutating func stringList() -> [String]? {
        guard take(UInt8(ascii: "[")) else { return nil }
        var out: [String] = []
        if take(UInt8(ascii: "]")) { return out }
        repeat {
            guard let s = string() else { return nil }
            out.append(s)
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "]")) ? out : nil
    }

    mutating func stringMap() -> [String: String]? {
        guard take(UInt8(ascii: "{")) else { return nil }
        var out: [String: String] = [:]
        if take(UInt8(ascii: "}")) { return out }
        var previous: String?
        repeat {
            guard let k = string(), take(UInt8(ascii: ":")), let v = string() else { return nil }
            // Sorted and unique, as encoded.
            if let previous { guard previous < k else { return nil } }
            previous = k
            out[k] = v
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "}")) ? out : nil
    }

    mutating func findingList() -> [FindingSummary]? {
        guard take(UInt8(ascii: "[")) else { return nil }
        var out: [FindingSummary] = []
        if take(UInt8(ascii: "]")) { return out }
        repeat {
            guard literal(#"{"class":"#), let cls = string(),
                  literal(#","end":"#), let end = integer(), let endInt = Int(exactly: end),
                  literal(#","fingerprint":"#), let fingerprint = string(),
                  literal(#","location":"#), let location = string(),
                  literal(#","rule":"#), let rule = string(),
                  literal(#","severity":"#), let severity = string(),
                  literal(#","start":"#), let start = integer(), let startInt = Int(exactly: start),
                  take(UInt8(ascii: "}")) else { return nil }
            out.append(FindingSummary(rule: rule, ruleClass: cls, severity: severity, location: location, start: startInt, end: endInt, fingerprint: fingerprint))
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "]")) ? out : nil
    }

    mutating func literal(_ s: StaticString) -> Bool {
        s.withUTF8Buffer { lit in
            guard i + lit.count <= p.count, UnsafeBufferPointer(rebasing: p[i..<(i + lit.count)]).elementsEqual(lit) else { return false }
            i += lit.count
            return true
        }
    }
}
