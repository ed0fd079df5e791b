import Foundation
import Pipeline

/// The `file` sink: every event as one JSON line (see `AuditEventLine`) appended to `path`,
/// for a SIEM agent to tail.
///
/// Guarantees: the line is exactly the event's JSON encoding; lines are appended whole
/// (`AppendFile`), a batch's lines in order as one write; the file is opened once at start, so
/// a bad path fails start-up.
/// - No line twice after a crash: the event ids of the file's last `resumeWindowBytes` are read
///   at open, and an event already among them (written, then redelivered because the Recorder
///   died before committing it) is not appended again.
public struct FileSink: AuditSink {
    private let file: AppendFile
    /// Event ids found at the end of the file when it was opened.
    private let writtenBeforeStart: Set<String>

    /// How much of an existing file's end is read at open for event ids (well beyond what one
    /// Recorder can have written and not yet committed).
    static let resumeWindowBytes = 1 << 20

    /// Opens (creating if needed) the file at `path` for appending.
    public init(path: String) throws {
        file = try AppendFile(path: path)
        writtenBeforeStart = Self.eventIDs(inTailOf: path, bytes: Self.resumeWindowBytes)
    }

    public var label: String { "file:\(file.path)" }

    public func write(_ event: AuditEvent) async throws {
        try await write(event, line: AuditEventLine.encode(event))
    }

    public func write(_ event: AuditEvent, line: [UInt8]) async throws {
        try await write(batch: [event], lines: [line])
    }

    public func write(batch events: [AuditEvent], lines: [[UInt8]]) async throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(lines.reduce(0) { $0 + $1.count })
        for (event, line) in zip(events, lines) where !writtenBeforeStart.contains(event.eventID) {
            bytes += line
        }
        guard !bytes.isEmpty else { return }
        try file.append(bytes)
    }

    /// The `event_id`s of the whole lines in the last `bytes` of the file (none when it cannot be read).
    static func eventIDs(inTailOf path: String, bytes: Int) -> Set<String> {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), size > 0 else { return [] }
        let start = size > UInt64(bytes) ? size - UInt64(bytes) : 0
        guard (try? handle.seek(toOffset: start)) != nil, let data = try? handle.readToEnd() else { return [] }
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
        if start > 0, !lines.isEmpty { lines.removeFirst() }  // cut mid-line
        var ids: Set<String> = []
        for line in lines {
            if let event = try? AuditEventLine.decoder.decode(AuditEvent.self, from: Data(line)) { ids.insert(event.eventID) }
        }
        return ids
    }
}
