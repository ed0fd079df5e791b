import Foundation
import Pipeline

/// The one encoding of an `AuditEvent` the Recorder writes anywhere: compact JSON with
/// sorted keys (the same field names as on the `audit` topic, and the schema version `"v"`),
/// terminated by `\n`.
///
/// Because every store and sink goes through this, what they hold is exactly the event's
/// fields: nothing is added and nothing else is read.
enum AuditEventLine {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static let decoder = JSONDecoder()

    /// The event as one JSON line (with the trailing newline): `AuditEventJSON`, byte for byte
    /// what `encoder` writes for `AuditEventJSON.Versioned(event)`.
    static func encode(_ event: AuditEvent) -> [UInt8] {
        var bytes = AuditEventJSON.encode(event)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// The event in one line (without the newline), or `nil` when the line is not an event
    /// (for example a line torn by a crash mid-write).
    static func decode<C: Collection>(_ line: C) -> AuditEvent? where C.Element == UInt8 {
        try? decoder.decode(AuditEvent.self, from: Data(line))
    }
}
