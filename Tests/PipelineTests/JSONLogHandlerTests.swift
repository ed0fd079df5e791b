import Foundation
import Logging
import Pipeline
import Synchronization
import Testing

@Suite("JSON log handler")
struct JSONLogHandlerTests {
    static func object(_ line: String) throws -> [String: Any] {
        #expect(line.hasSuffix("\n") && line.dropLast().firstIndex(of: "\n") == nil, "one line: \(line)")
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try #require(object as? [String: Any])
    }

    @Test("every string is escaped so the line stays one valid ASCII JSON object that decodes back to it")
    func escaping() throws {
        let strings = [
            "plain", "quote \" and backslash \\ and slash /", "new\nline\r\ttab", "\u{0}\u{1}\u{7}\u{8}\u{b}\u{c}\u{1f}\u{7f}",
            "ünïcödé ✓", "emoji 🔑 beyond the BMP", "\u{2028}\u{2029} JS separators", "{\"injected\":\"field\"}", "",
            // Invalid UTF-8 arrives already repaired (U+FFFD) in a Swift String.
            String(decoding: [0x66, 0xff, 0xfe, 0x6f], as: UTF8.self),
        ]
        for s in strings {
            let line = JSONLogHandler.line(millis: 0, level: .info, label: s, message: s, source: s, metadata: ["error": .string(s)])
            #expect(line.utf8.allSatisfy { $0 < 0x80 }, "not ASCII: \(line)")
            let o = try Self.object(line)
            #expect(o["message"] as? String == s)
            #expect(o["label"] as? String == s)
            #expect(o["source"] as? String == s)
            #expect(o["error"] as? String == s)
        }
    }

    @Test("levels, the fixed fields, and metadata flattened to sorted string fields")
    func fieldsAndFlattening() throws {
        for level in Logger.Level.allCases {
            let o = try Self.object(JSONLogHandler.line(millis: 1, level: level, label: "l", message: "m", source: "s", metadata: [:]))
            #expect(o["level"] as? String == level.rawValue)
            #expect(o.keys.sorted() == ["label", "level", "message", "source", "ts"])
        }
        let metadata: Logger.Metadata = [
            "request_id": "r-1", "count": .stringConvertible(42), "nested": ["a": "1", "b": ["c": "2"]],
            "list": ["x", "y"], "message": "collides", "ts": "collides too",
        ]
        let line = JSONLogHandler.line(millis: 1, level: .notice, label: "sluice", message: "hello", source: "Ingress", metadata: metadata)
        let o = try Self.object(line)
        #expect(o["request_id"] as? String == "r-1")
        #expect(o["count"] as? String == "42")
        #expect(o["nested.a"] as? String == "1")
        #expect(o["nested.b.c"] as? String == "2")
        #expect(o["list"] as? String == Logger.Metadata.Value.array(["x", "y"]).description)
        #expect(o["message"] as? String == "hello" && o["_message"] as? String == "collides")
        #expect(o["_ts"] as? String == "collides too")
        #expect(o.values.allSatisfy { $0 is String }, "every field is a string")
        // Fixed fields first, metadata in key order.
        #expect(line.hasPrefix("{\"ts\":\"1970-01-01T00:00:00.001Z\",\"level\":\"notice\",\"label\":\"sluice\",\"message\":\"hello\",\"source\":\"Ingress\",\"_message\""))
    }

    @Test("timestamps are RFC 3339 UTC with milliseconds")
    func timestamps() {
        let cases: [(Int64, String)] = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_764_501_648_123, "2025-11-30T11:20:48.123Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
        ]
        for (millis, expected) in cases { #expect(JSONLogHandler.rfc3339(millis: millis) == expected) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let parsed = formatter.date(from: JSONLogHandler.rfc3339(millis: now))
        #expect(parsed.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } == now)
    }

    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ s: String) { lines.withLock { $0.append(s) } }
        var all: [String] { lines.withLock { $0 } }
    }

    @Test("through a Logger: per-call metadata wins over the provider's, which wins over the handler's; the level filters")
    func throughALogger() throws {
        let lines = Lines()
        let provider = Logger.MetadataProvider { ["trace_id": "from-provider", "stage": "from-provider"] }
        var logger = Logger(label: "sluice") { label in
            JSONLogHandler(label: label, metadataProvider: provider, sink: { lines.append($0) })
        }
        logger.logLevel = .info
        logger[metadataKey: "stage"] = "handler"
        logger[metadataKey: "role"] = "all"
        logger.debug("filtered out")
        logger.info("kept", metadata: ["trace_id": "per-call"])
        logger.error("second")
        #expect(lines.all.count == 2)
        let first = try Self.object(lines.all[0])
        #expect(first["message"] as? String == "kept")
        #expect(first["trace_id"] as? String == "per-call")
        #expect(first["stage"] as? String == "from-provider")
        #expect(first["role"] as? String == "all")
        #expect(first["label"] as? String == "sluice")
        let second = try Self.object(lines.all[1])
        #expect(second["level"] as? String == "error" && second["trace_id"] as? String == "from-provider")
    }
}
