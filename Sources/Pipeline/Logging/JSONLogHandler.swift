import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A swift-log handler that writes one JSON object per line to standard error
/// (`--log-format json`): `ts` (RFC 3339 UTC, milliseconds), `level`, `label`, `message`,
/// `source`, then the metadata flattened to string fields in key order (`role`, `stage`,
/// `request_id`, `trace_id`, `error`, ...).
///
/// Guarantees:
/// - Every line is one complete JSON object, pure ASCII: quotes, backslashes and control
///   characters are escaped, and everything outside ASCII is written as `\uXXXX` (surrogate
///   pairs above U+FFFF), so no log pipeline can split or mis-decode it.
/// - Metadata is flattened: a dictionary's entries become `key.sub` fields, an array its
///   description; a metadata key that collides with a fixed field is written with a leading
///   `_` (`_message`) rather than replacing it.
/// - Per-call metadata wins over the metadata provider's, which wins over the handler's own
///   (as `StreamLogHandler` merges them).
/// - Lines from concurrent tasks never interleave (one write per line, under a lock).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let sink: @Sendable (String) -> Void

    /// A handler writing to standard error.
    public static func standardError(label: String, metadataProvider: Logger.MetadataProvider?) -> JSONLogHandler {
        JSONLogHandler(label: label, metadataProvider: metadataProvider, sink: StandardError.write)
    }

    /// A handler writing each line (with its newline) to `sink`.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil, sink: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        if let error = event.error, merged["error"] == nil { merged["error"] = .string("\(error)") }
        sink(Self.line(
            millis: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)), level: event.level, label: label,
            message: event.message.description, source: event.source, metadata: merged))
    }

    static let fixedFields: Set<String> = ["ts", "level", "label", "message", "source"]

    /// One log line (with its trailing newline). Pure: the tests' table goes through here.
    public static func line(
        millis: Int64, level: Logger.Level, label: String, message: String, source: String, metadata: Logger.Metadata
    ) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        out += Array("{\"ts\":\"\(rfc3339(millis: millis))\",\"level\":\"\(level.rawValue)\",\"label\":".utf8)
        appendString(label, to: &out)
        out += Array(",\"message\":".utf8)
        appendString(message, to: &out)
        out += Array(",\"source\":".utf8)
        appendString(source, to: &out)
        var fields: [(String, String)] = []
        flatten(metadata, prefix: "", into: &fields)
        for (key, value) in fields.map({ (fixedFields.contains($0.0) ? "_" + $0.0 : $0.0, $0.1) }).sorted(by: { $0.0 < $1.0 }) {
            out.append(UInt8(ascii: ","))
            appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            appendString(value, to: &out)
        }
        out += Array("}\n".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    static func flatten(_ metadata: Logger.Metadata, prefix: String, into fields: inout [(String, String)]) {
        for (key, value) in metadata {
            let name = prefix + key
            switch value {
            case .string(let s): fields.append((name, s))
            case .stringConvertible(let c): fields.append((name, c.description))
            case .dictionary(let d): flatten(d, prefix: name + ".", into: &fields)
            case .array: fields.append((name, value.description))
            }
        }
    }

    /// `s` as a JSON string literal in pure ASCII.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for scalar in s.unicodeScalars {
            let v = scalar.value
            switch v {
            case 0x22: out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case 0x5c: out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0a: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0d: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0c: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x20..<0x7f: out.append(UInt8(v))
            case 0..<0x10000: appendEscape(UInt16(v), to: &out)
            default:
                appendEscape(UInt16(0xd800 + ((v - 0x10000) >> 10)), to: &out)
                appendEscape(UInt16(0xdc00 + ((v - 0x10000) & 0x3ff)), to: &out)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func appendEscape(_ unit: UInt16, to out: inout [UInt8]) {
        out += [UInt8(ascii: "\\"), UInt8(ascii: "u")]
        for shift in stride(from: 12, through: 0, by: -4) { out.append(hexDigits[Int((unit >> UInt16(shift)) & 0xf)]) }
    }

    /// `millis` since the Unix epoch as RFC 3339 UTC with milliseconds (`2026-11-30T11:20:48.123Z`).
    public static func rfc3339(millis: Int64) -> String {
        let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        let ms = millis - seconds * 1000
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))"
            + "T\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(Int(ms), 3))Z"
    }
}

/// Standard error, written one whole line at a time.
enum StandardError {
    private static let lock = Mutex(())

    static func write(_ line: String) {
        let bytes = Array(line.utf8)
        lock.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                guard let base = buffer.baseAddress else { return }
                var offset = 0
                while offset < buffer.count {
                    let n = systemWrite(2, base + offset, buffer.count - offset)
                    if n > 0 {
                        offset += n
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        return  // stderr closed or failing: nothing sensible to do with a log line
                    }
                }
            }
        }
    }
}

private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(fd, bytes, count)
    #else
    Darwin.write(fd, bytes, count)
    #endif
}
