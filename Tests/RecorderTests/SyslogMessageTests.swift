import Foundation
import Pipeline
import Testing
@testable import Recorder

/// The RFC 5424 formatter, table by table: PRI, timestamp, header fields, structured data, MSG.
@Suite("Syslog message")
struct SyslogMessageTests {
    static func formatter(facility: Int = 16, hostname: String = "gw-1", appName: String = "sluice", procID: String = "42") throws -> SyslogMessage {
        try SyslogMessage(facility: facility, hostname: hostname, appName: appName, procID: procID)
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// Every event kind's severity, and PRI = facility * 8 + severity.
    @Test(arguments: [
        (AuditEvent.Kind.requestReceived, 6), (.requestRejected, 5), (.inspected, 6), (.delivered, 6), (.blocked, 4),
        (.denied, 4), (.expired, 5), (.failed, 3), (.approvalRequested, 6), (.approvalDecided, 6), (.responseMasked, 6),
        (.approvalRefused, 4), (.idempotentReplay, 6), (.sinkFailed, 4), (.sinkRecovered, 6), (.sinkEventsDropped, 3),
        (.configLoaded, 6),
    ])
    func severityAndPRI(kind: AuditEvent.Kind, severity: Int) throws {
        #expect(SyslogMessage.severity(of: kind).rawValue == severity)
        for facility in [0, 4, 13, 16, 23] {
            let message = Self.text(try Self.formatter(facility: facility).format(event(kind, time: 0), line: Array("{}\n".utf8)))
            #expect(message.hasPrefix("<\(facility * 8 + severity)>1 "), "\(message)")
        }
    }

    @Test func facilityOutOfRangeIsRefused() {
        #expect(throws: RecorderError.self) { try Self.formatter(facility: 24) }
        #expect(throws: RecorderError.self) { try Self.formatter(facility: -1) }
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000Z"), (1_795_980_000_123, "2026-11-29T19:20:00.123Z"),
        (951_868_799_999, "2000-02-29T23:59:59.999Z"), (1_709_164_800_000, "2024-02-29T00:00:00.000Z"),
        (946_684_799_001, "1999-12-31T23:59:59.001Z"), (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (-5, "1970-01-01T00:00:00.000Z"), (Int64.max, "9999-12-31T23:59:59.999Z"),
    ])
    func timestampIsRFC3339UTCWithMilliseconds(millis: Int64, expected: String) {
        #expect(Self.text(SyslogMessage.timestamp(millis: millis)) == expected)
    }

    /// The whole message for one event, byte for byte.
    @Test func wholeMessage() throws {
        let e = event(.blocked, session: "s-1", request: "r-1", stage: "inspector", time: 1_795_980_000_123, id: "e-1")
        let line = AuditEventLine.encode(e)
        let message = try Self.formatter().format(e, line: line)
        let json = Self.text(Array(line.dropLast()))
        #expect(Self.text(message) == "<132>1 2026-11-29T19:20:00.123Z gw-1 sluice 42 blocked [sluice@32473 request_id=\"r-1\" session_id=\"s-1\" event_id=\"e-1\"] \(json)")
        // MSG is the line without its newline, byte for byte.
        #expect(Array(message.suffix(line.count - 1)) == Array(line.dropLast()))
        // A line given without a newline is sent the same.
        #expect(try Self.formatter().format(e, line: Array(line.dropLast())) == message)
    }

    /// MSG keeps non-ASCII bytes as they are (no BOM, nothing escaped).
    @Test func msgIsTheLineByteForByte() throws {
        let line = Array("{\"path\":\"/caf\u{e9}/\u{1F600}\",\"x\":\"a]\\\"b\"}\n".utf8)
        let message = try Self.formatter().format(event(.inspected, time: 0), line: line)
        #expect(Array(message.suffix(line.count - 1)) == Array(line.dropLast()))
        #expect(!message.starts(with: [0xEF, 0xBB, 0xBF]))
    }

    /// `"`, `\` and `]` in ids are escaped with `\`; other bytes (UTF-8 included) are kept.
    @Test(arguments: [
        ("plain-id", "plain-id"), ("a\"b", "a\\\"b"), ("a\\b", "a\\\\b"), ("a]b", "a\\]b"), ("[x]", "[x\\]"),
        ("caf\u{e9} x=y", "caf\u{e9} x=y"), ("", ""),
    ])
    func structuredDataEscaping(id: String, escaped: String) {
        let e = event(.inspected, session: id, request: id, time: 0, id: id)
        let sd = Self.text(SyslogMessage.structuredData(e))
        #expect(sd == "[sluice@32473 request_id=\"\(escaped)\" session_id=\"\(escaped)\" event_id=\"\(escaped)\"]")
    }

    /// Header fields: PRINTUSASCII only, length-limited, `-` when empty.
    @Test(arguments: [
        ("gw-1.example", 255, "gw-1.example"), ("gw 1", 255, "gw_1"), ("caf\u{e9}", 255, "caf__"), ("", 48, "-"),
        ("tab\there", 48, "tab_here"), (String(repeating: "a", count: 60), 48, String(repeating: "a", count: 48)),
        ("new\nline", 32, "new_line"), ("~!", 32, "~!"),
    ])
    func headerFields(value: String, max: Int, expected: String) {
        #expect(Self.text(SyslogMessage.headerField(value, max: max)) == expected)
    }

    @Test func headerUsesSanitizedHostnameAppNameAndProcID() throws {
        let long = String(repeating: "h", count: 300)
        let message = Self.text(try Self.formatter(hostname: long, appName: "my app", procID: "").format(event(.delivered, time: 0), line: Array("{}".utf8)))
        let fields = message.split(separator: " ", maxSplits: 6).map(String.init)
        #expect(fields[2] == String(repeating: "h", count: 255))
        #expect(fields[3] == "my_app")
        #expect(fields[4] == "-")
        #expect(fields[5] == "delivered")
    }

    /// UDP truncation never cuts a UTF-8 sequence.
    @Test(arguments: [(10, 10), (5, 4), (6, 6), (4, 4), (9, 8), (100, 10)])
    func truncationKeepsUTF8Whole(limit: Int, kept: Int) {
        let message = Array("abcd\u{e9}fg\u{e9}".utf8)  // é at bytes 4-5 and 8-9 (10 bytes)
        #expect(message.count == 10)
        #expect(SyslogSink.truncated(message, to: limit).count == kept)
    }
}
