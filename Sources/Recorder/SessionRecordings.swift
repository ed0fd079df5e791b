import Foundation
import Pipeline

/// The session recordings under `<data_dir>/recordings/`: one JSON-lines file per session per
/// UTC day, each line one `AuditEvent` as it arrived on `audit`:
///
/// ```
/// recordings/2025-06-01/<encoded session id>.jsonl   events of a session on that day
/// recordings/2025-06-01/~requests.jsonl              events of requests sent without a session
/// recordings/<encoded session id>.jsonl              older layout (read by replay, deleted by age)
/// ```
///
/// Guarantees:
/// - Append-only: a recording is never rewritten; lines are appended whole (`AppendFile`). A
///   batch's lines for one file are one append (`appends(of:lines:)`), in the batch's order.
/// - At-least-once: an event redelivered by the bus is appended again, to the same file
///   (the day is the event's own `timeMillis`, not the clock); readers (`SessionReplay`)
///   de-duplicate by `eventID`.
/// - An event whose session id is its request id (the caller sent no session) goes to the
///   day's one shared file `~requests.jsonl`, so sessionless traffic makes one file a day,
///   not one a request. No encoded session id starts with `~`, so that name is never a session's.
/// - A path is a pure function of the ids and the event time (`relativePath`), safe for any
///   session id a caller could choose (no `/`, no `..`, no control characters, bounded
///   length). Every line also carries its `session_id`, and readers keep only lines whose
///   session id matches exactly, so neither a hashed (shortened) name nor the shared file
///   can mix sessions.
public struct SessionRecordings: Sendable {
    /// `<data_dir>/recordings`.
    public let directory: String

    /// The per-day file of the events of requests that carried no session.
    public static let sessionlessFileName = "~requests.jsonl"

    public init(dataDir: String) {
        directory = (dataDir as NSString).appendingPathComponent("recordings")
    }

    /// Creates the recordings directory if needed (day directories are created on first write).
    public func prepare() throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw RecorderError("cannot create recordings directory \(directory): \(error)")
        }
    }

    /// Appends `event` to its recording file (`path(for:)`), creating the day directory if needed.
    public func append(_ event: AuditEvent) throws {
        try append(event, line: AuditEventLine.encode(event))
    }

    /// Appends `event`, already encoded as `line` (`AuditEventLine`).
    func append(_ event: AuditEvent, line: [UInt8]) throws {
        for append in appends(of: [event], lines: [line]) { try self.append(append) }
    }

    /// The lines of a batch for one recording file, in batch order.
    struct FileAppend: Sendable {
        var path: String
        var bytes: [UInt8] = []
        var events = 0
    }

    /// `lines[i]` (the encoded `events[i]`) grouped by recording file, each file's lines in
    /// batch order; files in the order of their first event.
    func appends(of events: [AuditEvent], lines: [[UInt8]]) -> [FileAppend] {
        var files: [FileAppend] = []
        var index: [String: Int] = [:]
        for (event, line) in zip(events, lines) {
            let path = path(for: event)
            let i: Int
            if let known = index[path] { i = known } else {
                i = files.count
                index[path] = i
                files.append(FileAppend(path: path))
            }
            files[i].bytes += line
            files[i].events += 1
        }
        return files
    }

    /// Appends a file's lines of a batch in one write, creating the day directory if needed.
    func append(_ append: FileAppend) throws {
        try AppendFile.append(append.bytes, toFileAt: append.path, creatingDirectory: true)
    }

    /// The file `event` is appended to.
    public func path(for event: AuditEvent) -> String {
        (directory as NSString).appendingPathComponent(
            Self.relativePath(sessionID: event.sessionID, requestID: event.requestID, timeMillis: event.timeMillis))
    }

    /// `<day>/<encoded session id>.jsonl`, or `<day>/~requests.jsonl` when the request carried
    /// no session (`sessionID == requestID`); the day is that of `timeMillis` (UTC).
    static func relativePath(sessionID: String, requestID: String, timeMillis: Int64) -> String {
        let day = RecordingDay(millis: timeMillis).name
        return day + "/" + (sessionID == requestID ? sessionlessFileName : fileName(for: sessionID))
    }

    /// `recordings/<day>`.
    public func directory(for day: RecordingDay) -> String {
        (directory as NSString).appendingPathComponent(day.name)
    }

    /// The file of `sessionID` on `day` (for a session sent by the caller).
    public func path(forSession sessionID: String, day: RecordingDay) -> String {
        (directory(for: day) as NSString).appendingPathComponent(Self.fileName(for: sessionID))
    }

    /// The shared file of sessionless requests on `day`.
    public func sessionlessPath(day: RecordingDay) -> String {
        (directory(for: day) as NSString).appendingPathComponent(Self.sessionlessFileName)
    }

    /// Where the older layout (one file per session, no day) kept `sessionID`'s recording.
    /// Nothing is written there any more; replay still reads it and retention deletes it by age.
    public func legacyPath(forSession sessionID: String) -> String {
        (directory as NSString).appendingPathComponent(Self.fileName(for: sessionID))
    }

    /// The files that can hold events of `sessionID`, in the order their events were written:
    /// the older layout's file, then per day (oldest first) the session's file and the day's
    /// sessionless file. Only existing files are listed; an absent recordings directory lists none.
    ///
    /// - Throws: `RecorderError` when the recordings directory exists but cannot be listed.
    func files(forSession sessionID: String) throws -> [String] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else { return [] }
        let names: [String]
        do { names = try fm.contentsOfDirectory(atPath: directory) } catch {
            throw RecorderError("cannot list recordings directory \(directory): \(error)")
        }
        var files: [String] = []
        let legacy = legacyPath(forSession: sessionID)
        if fm.fileExists(atPath: legacy) { files.append(legacy) }
        for day in names.compactMap(RecordingDay.init(name:)).sorted() {
            for path in [path(forSession: sessionID, day: day), sessionlessPath(day: day)] where fm.fileExists(atPath: path) {
                files.append(path)
            }
        }
        return files
    }

    /// Longest encoded id kept verbatim; longer ids are shortened with a hash (names stay < 255 bytes).
    static let maxEncodedLength = 180

    /// `[A-Za-z0-9_-]` and non-leading `.` are kept; every other byte becomes `%XX`.
    /// An empty id is `%`, which no encoding of a non-empty id produces. An encoding longer
    /// than `maxEncodedLength` is cut and suffixed with `~` and a 64-bit FNV-1a hash of the id.
    /// A name never starts with `~` (that prefix is the sessionless file's).
    static func fileName(for sessionID: String) -> String {
        var out = ""
        for b in sessionID.utf8 {
            let safe = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || (b == UInt8(ascii: ".") && !out.isEmpty)
            if safe { out.append(Character(Unicode.Scalar(b))) } else { out += String(format: "%%%02X", b) }
        }
        if out.isEmpty { out = "%" }
        if out.utf8.count > maxEncodedLength {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in sessionID.utf8 {
                hash ^= UInt64(b)
                hash = hash &* 0x100_0000_01b3
            }
            out = String(out.utf8.prefix(maxEncodedLength - 17))! + "~" + String(format: "%016llx", hash)
        }
        return out + ".jsonl"
    }
}
