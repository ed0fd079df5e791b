import Foundation
import Pipeline

/// Reads a session back from its recordings (`sluice replay SESSION_ID`).
///
/// Pure apart from reading the recordings: no bus, no clock. Guarantees:
/// - `load` finds the session in every place it can have been filed: each day's file of the
///   session, each day's shared file of sessionless requests (a request id given as the
///   session), and the older one-file-per-session layout, so nothing recorded before an
///   upgrade is lost.
/// - It returns each event once (the first copy of every `eventID`, so a redelivered event
///   is not shown twice), only events of that exact session, ordered by time (ties keep
///   recording order). Lines that are not events (a line torn by a crash) are skipped.
/// - A recording file that exists but cannot be read fails the load (`unreadable`) rather
///   than showing part of a session.
/// - `render` and `renderJSON` show only what the events hold; events never hold a body,
///   a header value or a secret, findings appear as rule, location and fingerprint.
///
/// Cost: a session's own files are read whole; each day's shared sessionless file is read
/// too (in chunks, decoding only lines that contain the quoted id when the id is plain).
public struct SessionReplay {
    /// The session's events in time order, de-duplicated by `eventID`.
    ///
    /// - Throws: `ReplayError.sessionNotFound` when no recording holds an event of the session,
    ///   `ReplayError.unreadable` when a recording cannot be read.
    public static func load(dataDir: String, sessionID: String) throws -> [AuditEvent] {
        let recordings = SessionRecordings(dataDir: dataDir)
        let files: [String]
        do { files = try recordings.files(forSession: sessionID) } catch {
            throw ReplayError.unreadable(path: recordings.directory)
        }
        var collector = Collector(sessionID: sessionID)
        for path in files {
            do { try LineReader.forEachLine(ofFileAt: path) { collector.add(line: $0) } } catch {
                throw ReplayError.unreadable(path: path)
            }
        }
        let events = order(collector.events)
        guard !events.isEmpty else {
            throw ReplayError.sessionNotFound(
                sessionID: sessionID,
                path: (recordings.directory as NSString).appendingPathComponent("*/" + SessionRecordings.fileName(for: sessionID)))
        }
        return events
    }

    /// The session's recorded content (`RecordingContent`): per request its masked request and
    /// response (a held request: the 202 its caller got first and the final answer), de-duplicated (first copy), in time order. Opening needs the sealing key ring.
    ///
    /// - Throws: `ReplayError.unreadable` when a recording cannot be read,
    ///   `ReplayError.content` when a content line does not open (another key ring, an edited
    ///   or moved line): never a silent gap.
    public static func loadContent(dataDir: String, sessionID: String, sealer: PayloadSealer) throws -> [RecordingContent] {
        let recordings = SessionRecordings(dataDir: dataDir)
        let files: [String]
        do { files = try recordings.files(forSession: sessionID) } catch {
            throw ReplayError.unreadable(path: recordings.directory)
        }
        var collector = ContentCollector(sessionID: sessionID, sealer: sealer)
        for path in files {
            do {
                try LineReader.forEachLine(ofFileAt: path) { collector.add(line: $0, source: path) }
            } catch {
                throw ReplayError.unreadable(path: path)
            }
            if let failure = collector.failure { throw failure }
        }
        return collector.ordered
    }

    /// A session from the postgres store (`recorder.store.kind: postgres`): its events (as `load`)
    /// and, given the sealing key ring, its content (as `loadContent`).
    ///
    /// - Throws: `ReplayError.unreadable` when the database cannot be read,
    ///   `ReplayError.sessionNotFound` when it holds no event of the session,
    ///   `ReplayError.content` when a content row does not open.
    public static func load(
        database: PostgresRecordings, sessionID: String, sealer: PayloadSealer?
    ) async throws -> (events: [AuditEvent], content: [RecordingContent]) {
        let source = "postgres table \(database.table)"
        let lines: [String]
        do { lines = try await database.lines(sessionID: sessionID) } catch {
            throw ReplayError.unreadable(path: "\(source) (\(error))")
        }
        var events = Collector(sessionID: sessionID)
        var content = sealer.map { ContentCollector(sessionID: sessionID, sealer: $0) }
        for line in lines {
            var line = line
            line.withUTF8 { utf8 in
                let bytes = UnsafeRawBufferPointer(utf8)
                events.add(line: bytes)
                content?.add(line: bytes, source: source)
            }
            if let failure = content?.failure { throw failure }
        }
        let ordered = order(events.events)
        guard !ordered.isEmpty else { throw ReplayError.sessionNotFound(sessionID: sessionID, path: source) }
        return (ordered, content?.ordered ?? [])
    }

    /// Keeps the first copy of each content record (request, response) of one session; the
    /// first line that does not open is kept as `failure`.
    struct ContentCollector {
        let sessionID: String
        let sealer: PayloadSealer
        private(set) var contents: [RecordingContent] = []
        private(set) var failure: ReplayError?
        private var seen = Set<String>()
        private static let marker = Array(#""kind":"content""#.utf8)

        init(sessionID: String, sealer: PayloadSealer) {
            self.sessionID = sessionID
            self.sealer = sealer
        }

        mutating func add(line: UnsafeRawBufferPointer, source: String) {
            guard failure == nil, LineReader.contains(line, Self.marker) else { return }
            do {
                // One copy per request and part (a redelivered line repeats one); a held request
                // has two responses, the 202 its caller got first and the final answer: both kept.
                guard let content = try RecordingContent.open(line: line, sealer: sealer), content.sessionID == sessionID,
                    seen.insert(content.requestID + "/" + content.part.rawValue + "/" + (content.status.map { "\($0)" } ?? "")).inserted
                else { return }
                contents.append(content)
            } catch {
                failure = .content("\(source): \(error)")
            }
        }

        /// Time order; ties keep their order.
        var ordered: [RecordingContent] {
            contents.enumerated().sorted { ($0.element.timeMillis, $0.offset) < ($1.element.timeMillis, $1.offset) }.map(\.element)
        }
    }

    /// The recorded content as text, per request: the request line, headers and body, then the
    /// response's status, headers and body. Bodies that are not UTF-8 text are shown as their size.
    public static func render(content: [RecordingContent]) -> String {
        var out = ""
        for c in content {
            switch c.part {
            case .request:
                let query = (c.query ?? "").isEmpty ? "" : "?" + clean(c.query ?? "")
                out += "request \(clean(c.requestID)) \(timestamp(c.timeMillis))  \(clean(c.method ?? "")) \(clean(c.path ?? ""))\(query)"
                out += (c.connection.map { "  connection=\(clean($0))" } ?? "") + "\n"
            case .response:
                out += "response \(clean(c.requestID)) \(timestamp(c.timeMillis))  status=\(c.status.map(String.init) ?? "-")\n"
            }
            for h in c.headers { out += "    \(clean(h.name)): \(clean(h.value))\n" }
            if let text = String(data: c.body, encoding: .utf8) {
                if !text.isEmpty { out += text.split(separator: "\n", omittingEmptySubsequences: false).map { "    | " + clean(String($0)) + "\n" }.joined() }
            } else {
                out += "    (\(c.body.count) bytes, not UTF-8 text)\n"
            }
            if c.truncated { out += "    (body cut at \(c.body.count) of \(c.bodyBytes) bytes)\n" }
        }
        return out
    }

    /// The events of `sessionID` in a recording's bytes: de-duplicated, in time order.
    static func parse(_ bytes: [UInt8], sessionID: String) -> [AuditEvent] {
        var collector = Collector(sessionID: sessionID)
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            line.withUnsafeBytes { collector.add(line: $0) }
        }
        return order(collector.events)
    }

    /// Keeps the first copy of each event of one session, in the order lines are given.
    struct Collector {
        let sessionID: String
        /// `"<id>"`: a line holding an event of the session contains this, when the id needs no
        /// JSON escaping (letters, digits, `.`, `_`, `:`, `-`); `nil` otherwise (decode every line).
        let needle: [UInt8]?
        private(set) var events: [AuditEvent] = []
        private var seen = Set<String>()

        init(sessionID: String) {
            self.sessionID = sessionID
            let plain = !sessionID.isEmpty && sessionID.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                    || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: ":") || b == UInt8(ascii: "-")
            }
            needle = plain ? [UInt8(ascii: "\"")] + Array(sessionID.utf8) + [UInt8(ascii: "\"")] : nil
        }

        mutating func add(line: UnsafeRawBufferPointer) {
            if let needle, !LineReader.contains(line, needle) { return }
            guard let event = AuditEventLine.decode(line), event.sessionID == sessionID else { return }
            guard seen.insert(event.eventID).inserted else { return }
            events.append(event)
        }
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
    /// A recorded request or response that does not open with the configured sealing keys.
    case content(String)

    public var description: String {
        switch self {
        case .sessionNotFound(let id, let path): "no recording for session \"\(SessionReplay.clean(id))\" (looked for \(path))"
        case .unreadable(let path): "cannot read recording \(path)"
        case .encoding(let reason): "cannot encode events as JSON: \(reason)"
        case .content(let reason): "cannot open recorded content: \(reason)"
        }
    }
}
