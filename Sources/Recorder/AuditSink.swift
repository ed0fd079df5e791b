import Pipeline

/// A destination for audit events besides the session recordings: a SIEM feed or a file.
///
/// Guarantees every sink must give:
/// - `write` returns only once the event (every event of the batch, in order) is handed to the
///   destination (for a file, written to the file); a thrown error means some may not have
///   arrived, and the Recorder will call `write` again with the same event (the same batch)
///   (at-least-once, so a destination may see an event twice and can de-duplicate by `eventID`).
/// - A sink sends the event's own fields and nothing else: no payload, header value or
///   secret can reach a sink that was not already in the `AuditEvent` (which holds none).
///
/// Splunk HEC and webhook sinks are planned; they implement this protocol.
public protocol AuditSink: Sendable {
    /// A short label for logs and errors, e.g. `file:/var/log/sluice/audit.jsonl`.
    var label: String { get }

    /// Delivers one event.
    func write(_ event: AuditEvent) async throws

    /// Delivers one event whose line (`AuditEventLine`, with its newline) the Recorder has
    /// already encoded for all its outputs. By default the same as ``write(_:)``.
    func write(_ event: AuditEvent, line: [UInt8]) async throws

    /// Delivers a batch of events in order, `lines[i]` being the line of `events[i]`. One call
    /// is one attempt for the whole batch. By default ``write(_:line:)`` per event; a sink that
    /// can send many events at once (one file write, one HTTP request) implements it so.
    ///
    /// From the Recorder, `lines[i]` is the event's chained line (`AuditChain`), and may hold
    /// more than one `\n`-terminated line: a `chain_start` line before it when a chain segment
    /// begins there, a `checkpoint` line after it when one is due. A sink sends every line, in
    /// order and unchanged (`sluice audit verify` checks the bytes); one that sends a record per
    /// line splits `lines[i]` at `\n`.
    func write(batch events: [AuditEvent], lines: [[UInt8]]) async throws

    /// Releases what the sink holds open (a connection), when the Recorder stops. By default
    /// nothing.
    func close() async
}

extension AuditSink {
    public func close() async {}

    public func write(_ event: AuditEvent, line: [UInt8]) async throws { try await write(event) }

    public func write(batch events: [AuditEvent], lines: [[UInt8]]) async throws {
        for (event, line) in zip(events, lines) { try await write(event, line: line) }
    }
}

/// Why a sink or the recordings store could not take an event, or could not start.
public struct RecorderError: Error, CustomStringConvertible, Sendable {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
