import Foundation
import Pipeline

/// The session recordings under `<data_dir>/recordings/`: one JSON-lines file per session,
/// `<encoded session id>.jsonl`, each line one `AuditEvent` as it arrived on `audit`.
///
/// Guarantees:
/// - Append-only: a recording is never rewritten; lines are appended whole (`AppendFile`).
/// - At-least-once: an event redelivered by the bus is appended again; readers
///   (`SessionReplay`) de-duplicate by `eventID`.
/// - A file name is a pure function of the session id (`fileName(for:)`), safe for any
///   session id a caller could choose (no `/`, no `..`, no control characters, bounded
///   length). Every line also carries its `session_id`, and readers keep only lines whose
///   session id matches exactly, so even a hashed (shortened) name cannot mix sessions.
public struct SessionRecordings: Sendable {
    /// `<data_dir>/recordings`.
    public let directory: String

    public init(dataDir: String) {
        directory = (dataDir as NSString).appendingPathComponent("recordings")
    }

    /// Creates the recordings directory if needed.
    public func prepare() throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw RecorderError("cannot create recordings directory \(directory): \(error)")
        }
    }

    /// The file holding `sessionID`'s recording.
    public func path(for sessionID: String) -> String {
        (directory as NSString).appendingPathComponent(Self.fileName(for: sessionID))
    }

    /// Appends `event` to its session's recording.
    public func append(_ event: AuditEvent) throws {
        try AppendFile.append(try AuditEventLine.encode(event), toFileAt: path(for: event.sessionID))
    }

    /// Longest encoded id kept verbatim; longer ids are shortened with a hash (names stay < 255 bytes).
    static let maxEncodedLength = 180

    /// `[A-Za-z0-9_-]` and non-leading `.` are kept; every other byte becomes `%XX`.
    /// An empty id is `%`, which no encoding of a non-empty id produces. An encoding longer
    /// than `maxEncodedLength` is cut and suffixed with `~` and a 64-bit FNV-1a hash of the id.
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
