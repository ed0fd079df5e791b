import Pipeline

/// One audit event as an RFC 5424 syslog message (pure: no clock, no I/O).
///
/// ```
/// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [sluice@32473 request_id="…" session_id="…" event_id="…"] MSG
/// ```
///
/// - PRI is `facility * 8 + severity`, the severity taken from the event kind
///   (`severity(of:)`).
/// - TIMESTAMP is the event's own `time_ms` (never the clock) in RFC 3339 UTC with
///   milliseconds: `2026-11-29T19:20:00.123Z`.
/// - HOSTNAME, APP-NAME, PROCID and MSGID (the event kind) are header fields: only
///   PRINTUSASCII (`!`…`~`) is sent, every other byte becomes `_`, each is cut to its RFC 5424
///   length (255, 48, 128, 32) and an empty field is `-`.
/// - STRUCTURED-DATA is one element `sluice@32473` with the request, session and event ids,
///   `"`, `\` and `]` escaped with `\` (RFC 5424 §6.3.3). SIEMs de-duplicate by `event_id`.
/// - MSG is the event's JSON line (`AuditEventLine`) without its newline, byte for byte, with no
///   BOM (many collectors keep a BOM as part of the message and then fail to parse the JSON).
public struct SyslogMessage: Sendable {
    /// RFC 5424 severities.
    public enum Severity: Int, Sendable, CaseIterable {
        case emergency = 0, alert, critical, error, warning, notice, informational, debug
    }

    /// The SD-ID of the element carrying the ids. 32473 is the private enterprise number that
    /// RFC 5424 itself uses in examples; it marks the element as not IANA-registered.
    public static let structuredDataID = "sluice@32473"

    /// RFC 5424 header field length limits.
    static let maxHostname = 255
    static let maxAppName = 48
    static let maxProcID = 128
    static let maxMsgID = 32

    /// 0…23 (`RecorderConfig.Sink.facility`).
    public let facility: Int
    public let hostname: String
    public let appName: String
    public let procID: String

    /// Throws when `facility` is not 0…23.
    public init(facility: Int, hostname: String, appName: String, procID: String) throws {
        guard (0...23).contains(facility) else { throw RecorderError("syslog facility \(facility) is not 0...23") }
        self.facility = facility
        self.hostname = hostname
        self.appName = appName
        self.procID = procID
        var header: [UInt8] = []
        for (value, max) in [(hostname, Self.maxHostname), (appName, Self.maxAppName), (procID, Self.maxProcID)] {
            header += Self.headerField(value, max: max)
            header.append(UInt8(ascii: " "))
        }
        self.header = header
    }

    /// `HOSTNAME SP APP-NAME SP PROCID SP`, the same for every message.
    private let header: [UInt8]

    /// How serious an event is for a SIEM:
    /// - `failed` (a delivery that did not happen) → error (3);
    /// - `blocked`, `denied`, `approval_refused` (a request or an approval stopped by policy) →
    ///   warning (4);
    /// - `request_rejected` (bad input refused at the edge) and `expired` (a hold nobody decided)
    ///   → notice (5);
    /// - `sink_events_dropped` (audit a sink will never get) → error (3); `sink_failed` →
    ///   warning (4);
    /// - everything else (received, inspected, delivered, approvals, masked responses,
    ///   idempotent replays, a sink recovered, a process started with a configuration) →
    ///   informational (6).
    public static func severity(of kind: AuditEvent.Kind) -> Severity {
        switch kind {
        case .failed, .sinkEventsDropped: .error
        case .blocked, .denied, .approvalRefused, .sinkFailed: .warning
        case .requestRejected, .expired: .notice
        case .requestReceived, .inspected, .delivered, .approvalRequested, .approvalDecided, .responseMasked,
            .idempotentReplay, .sinkRecovered, .configLoaded, .grantCreated, .grantRevoked:
            .informational
        }
    }

    /// The message for `event`, whose JSON line is `line` (with or without its trailing newline,
    /// which is not sent). No framing: the transport adds it.
    /// `msgID`: the MSGID instead of the event's kind (the audit chain's own records).
    public func format(_ event: AuditEvent, line: [UInt8], msgID: String? = nil) -> [UInt8] {
        let json = line.last == UInt8(ascii: "\n") ? line.dropLast() : line[...]
        var out: [UInt8] = []
        out.reserveCapacity(json.count + 200)
        out += Array("<\(facility * 8 + Self.severity(of: event.kind).rawValue)>1 ".utf8)
        out += Self.timestamp(millis: event.timeMillis)
        out.append(UInt8(ascii: " "))
        out += header
        out += Self.headerField(msgID ?? event.kind.rawValue, max: Self.maxMsgID)
        out.append(UInt8(ascii: " "))
        out += Self.structuredData(event)
        out.append(UInt8(ascii: " "))
        out += json
        return out
    }

    /// `[sluice@32473 request_id="…" session_id="…" event_id="…"]`.
    static func structuredData(_ event: AuditEvent) -> [UInt8] {
        var out = Array("[\(structuredDataID)".utf8)
        for (name, value) in [("request_id", event.requestID), ("session_id", event.sessionID), ("event_id", event.eventID)] {
            out += Array(" \(name)=\"".utf8)
            out += paramValue(value)
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// A PARAM-VALUE: the UTF-8 of `value` with `"`, `\` and `]` escaped by a `\`.
    static func paramValue(_ value: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "]") { out.append(UInt8(ascii: "\\")) }
            out.append(byte)
        }
        return out
    }

    /// A header field: PRINTUSASCII only (others become `_`), at most `max` bytes, `-` when empty.
    static func headerField(_ value: String, max: Int) -> [UInt8] {
        let bytes = value.utf8.prefix(max).map { (33...126).contains($0) ? $0 : UInt8(ascii: "_") }
        return bytes.isEmpty ? [UInt8(ascii: "-")] : bytes
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-29T19:20:00.123Z` (proleptic Gregorian;
    /// a time before 1970 or after 9999 is clamped to that range, as syslog allows 4-digit years).
    static func timestamp(millis: Int64) -> [UInt8] {
        let maxMillis: Int64 = 253_402_300_799_999  // 9999-12-31T23:59:59.999Z
        let clamped = min(max(millis, 0), maxMillis)
        let days = clamped / 86_400_000
        let msOfDay = clamped % 86_400_000
        let (year, month, day) = RecordingDay.civil(days: days)
        let hour = msOfDay / 3_600_000, minute = msOfDay / 60_000 % 60, second = msOfDay / 1000 % 60, ms = msOfDay % 1000
        func pad(_ n: Int64, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return Array("\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(ms, 3))Z".utf8)
    }
}
