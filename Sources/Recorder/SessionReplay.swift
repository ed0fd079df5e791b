import Foundation
import Pipeline

/// Reads a session back from its recording (`sluice replay SESSION_ID`).
///
/// Pure apart from reading the recording: no bus, no clock. Guarantees:
/// - `load` returns each event once (the first copy of every `eventID`, so a redelivered
///   event is not shown twice), only events of that exact session, ordered by time (ties
///   keep recording order). Lines that are not events (a line torn by a crash) are skipped.
/// - `render` and `renderJSON` show only what the events hold; events never hold a body,
///   a header value or a secret, findings appear as rule, location and fingerprint.
public struct SessionReplay {
    /// The session's events in time order, de-duplicated by `eventID`.
    ///
    /// - Throws: `ReplayError.sessionNotFound` when there is no recording for the session,
    ///   `ReplayError.unreadable` when it cannot be read.
    public static func load(dataDir: String, sessionID: String) throws -> [AuditEvent] {
        let path = SessionRecordings(dataDir: dataDir).path(for: sessionID)
        guard FileManager.default.fileExists(atPath: path) else {
            throw ReplayError.sessionNotFound(sessionID: sessionID, path: path)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ReplayError.unreadable(path: path)
        }
        let events = parse(Array(data), sessionID: sessionID)
        guard !events.isEmpty else { throw ReplayError.sessionNotFound(sessionID: sessionID, path: path) }
        return events
    }

    /// The events of `sessionID` in a recording's bytes: de-duplicated, in time order.
    static func parse(_ bytes: [UInt8], sessionID: String) -> [AuditEvent] {
        var seen = Set<String>()
        var events: [AuditEvent] = []
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            guard let event = AuditEventLine.decode(line), event.sessionID == sessionID else { continue }
            guard seen.insert(event.eventID).inserted else { continue }
            events.append(event)
        }
        return order(events)
    }

    /// Time order; events with the same time keep their given order (stable).
    static func order(_ events: [AuditEvent]) -> [AuditEvent] {
        events.enumerated()
            .sorted { a, b in (a.element.timeMillis, a.offset) < (b.element.timeMillis, b.offset) }
            .map(\.element)
    }

    /// A text rendering, one block per event, in the given order:
    ///
    /// ```
    /// session s-1: 3 events, request r-1
    /// 2025-01-01T10:00:00.000Z  ingress    request_received    r-1  POST /v1/charges  connection=billing  identity=ci-bot
    /// 2025-01-01T10:00:00.010Z  inspector  inspected           r-1  verdict=mask  rules=github-pat
    ///     finding github-pat (credential, high) in body [12, 52) fingerprint 3fa9c2d1e0b7
    /// 2025-01-01T10:00:00.250Z  forwarder  delivered           r-1  status=200  240ms
    /// ```
    ///
    /// Free-text fields are escaped so control characters cannot drive the terminal.
    public static func render(_ events: [AuditEvent]) -> String {
        guard let first = events.first else { return "no events\n" }
        let requests = orderedUnique(events.map(\.requestID))
        var out = "session \(clean(first.sessionID)): \(events.count) event\(events.count == 1 ? "" : "s"), "
        out += "\(requests.count == 1 ? "request" : "requests") \(requests.map(clean).joined(separator: ", "))\n"
        for event in events { out += line(for: event) }
        return out
    }

    /// The events as a JSON array (same field names as on the `audit` topic), pretty-printed
    /// with sorted keys, for `sluice replay --json`.
    public static func renderJSON(_ events: [AuditEvent]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(events), as: UTF8.self) + "\n"
        } catch {
            throw ReplayError.encoding("\(error)")
        }
    }

    // MARK: - Text rendering

    static func line(for e: AuditEvent) -> String {
        var fields: [String] = [
            timestamp(e.timeMillis), pad(clean(e.stage), 9), pad(e.kind.rawValue, 18), clean(e.requestID),
        ]
        if let method = e.method { fields.append(clean(method) + (e.path.map { " " + clean($0) } ?? "")) }
        else if let path = e.path { fields.append(clean(path)) }
        if let c = e.connection { fields.append("connection=\(clean(c))") }
        if let i = e.identity { fields.append("identity=\(clean(i))") }
        if let d = e.decision { fields.append("verdict=\(d.rawValue)") }
        if let rules = e.rules, !rules.isEmpty { fields.append("rules=\(rules.map(clean).joined(separator: ","))") }
        if let s = e.status { fields.append("status=\(s)") }
        if let ms = e.durationMillis { fields.append("\(ms)ms") }
        var out = fields.joined(separator: "  ") + "\n"
        for reason in e.reasons ?? [] { out += "    reason: \(clean(reason))\n" }
        for f in e.findings ?? [] {
            out += "    finding \(clean(f.rule)) (\(clean(f.ruleClass)), \(clean(f.severity))) in \(clean(f.location)) "
            out += "[\(f.start), \(f.end)) fingerprint \(clean(f.fingerprint))\n"
        }
        if let details = e.details, !details.isEmpty {
            out += "    " + details.sorted { $0.key < $1.key }.map { "\(clean($0.key))=\(clean($0.value))" }.joined(separator: "  ") + "\n"
        }
        return out
    }

    static func timestamp(_ millis: Int64) -> String {
        let date = Date(timeIntervalSince1970: Double(millis) / 1000)
        return date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    /// Escapes control characters (ANSI escapes, newlines) in recorded free text.
    static func clean(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            if scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}" {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func orderedUnique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}

/// Why a session could not be replayed.
public enum ReplayError: Error, CustomStringConvertible, Sendable, Equatable {
    case sessionNotFound(sessionID: String, path: String)
    case unreadable(path: String)
    case encoding(String)

    public var description: String {
        switch self {
        case .sessionNotFound(let id, let path): "no recording for session \"\(SessionReplay.clean(id))\" (looked for \(path))"
        case .unreadable(let path): "cannot read recording \(path)"
        case .encoding(let reason): "cannot encode events as JSON: \(reason)"
        }
    }
}
