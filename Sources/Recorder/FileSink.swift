import Foundation
import Pipeline

/// The `file` sink: every event as one JSON line (see `AuditEventLine`) appended to `path`,
/// for a SIEM agent to tail.
///
/// Guarantees: the line is exactly the event's JSON encoding; lines are appended whole
/// (`AppendFile`), a batch's lines in order as one write; the file is opened once at start, so
/// a bad path fails start-up.
/// - No line twice after a crash: the lines of the file's last `resumeWindowBytes` are read at
///   open, and a line already among them (written, then redelivered because the Recorder died
///   before committing it) is not appended again. Lines are compared whole: a redelivered event
///   chained anew (a new chain segment, its `chain` differs) is written again, so the chain in
///   the file stays continuous.
public struct FileSink: AuditSink {
    private let file: AppendFile
    /// The whole lines (without their newline) found at the end of the file when it was opened.
    private let writtenBeforeStart: Set<[UInt8]>

    /// How much of an existing file's end is read at open for its lines (well beyond what one
    /// Recorder can have written and not yet committed).
    static let resumeWindowBytes = 1 << 20

    /// Opens (creating if needed) the file at `path` for appending.
    public init(path: String) throws {
        file = try AppendFile(path: path)
        writtenBeforeStart = Self.lines(inTailOf: path, bytes: Self.resumeWindowBytes)
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
        if writtenBeforeStart.isEmpty {
            for line in lines { bytes += line }
        } else {
            for chunk in lines {
                for line in chunk.split(separator: UInt8(ascii: "\n")) where !writtenBeforeStart.contains(Array(line)) {
                    bytes += line
                    bytes.append(UInt8(ascii: "\n"))
                }
            }
        }
        guard !bytes.isEmpty else { return }
        try file.append(bytes)
    }

    /// The whole lines (without newline) in the last `bytes` of the file (none when it cannot be read).
    static func lines(inTailOf path: String, bytes: Int) -> Set<[UInt8]> {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), size > 0 else { return [] }
        let start = size > UInt64(bytes) ? size - UInt64(bytes) : 0
        guard (try? handle.seek(toOffset: start)) != nil, let data = try? handle.readToEnd() else { return [] }
        var lines = Array(data).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
        if start > 0, !lines.isEmpty { lines.removeFirst() }  // cut mid-line
        if data.last != UInt8(ascii: "\n"), !lines.isEmpty { lines.removeLast() }  // torn by a crash
        return Set(lines.map(Array.init))
    }
}
