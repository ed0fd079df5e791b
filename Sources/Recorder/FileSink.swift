import Pipeline

/// The `file` sink: every event as one JSON line (see `AuditEventLine`) appended to `path`,
/// for a SIEM agent to tail.
///
/// Guarantees: the line is exactly the event's JSON encoding; lines are appended whole
/// (`AppendFile`); the file is opened once at start, so a bad path fails start-up.
public struct FileSink: AuditSink {
    private let file: AppendFile

    /// Opens (creating if needed) the file at `path` for appending.
    public init(path: String) throws {
        file = try AppendFile(path: path)
    }

    public var label: String { "file:\(file.path)" }

    public func write(_ event: AuditEvent) async throws {
        try file.append(try AuditEventLine.encode(event))
    }
}
