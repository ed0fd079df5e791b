/// A W3C `traceparent` value (Trace Context, https://www.w3.org/TR/trace-context/ §3.2):
/// `version-traceid-parentid-flags`, all lowercase hex.
///
/// Guarantees: a parsed value has a 32-digit `traceID` and a 16-digit `parentID`, lowercase
/// hex and neither all zeros; `format()` writes version `00` and round-trips what `parse`
/// accepted. Parsing is pure and never throws: a refused value says why (`Refusal`).
public struct TraceParent: Sendable, Hashable {
    /// 32 lowercase hex digits, not all zero.
    public let traceID: String
    /// 16 lowercase hex digits, not all zero: the span of whoever sent this value.
    public let parentID: String
    /// The trace flags; bit 0 is `sampled`.
    public let flags: UInt8

    /// The longest value read at all (a future version may append fields; nothing sane is this long).
    public static let maxLength = 512

    /// Why a value was refused.
    public enum Refusal: String, Error, Sendable, Hashable {
        case tooLong = "too_long"
        case malformed
        case badVersion = "bad_version"
        case badHex = "bad_hex"
        case zeroTraceID = "zero_trace_id"
        case zeroParentID = "zero_parent_id"
        case extraFields = "extra_fields"
    }

    /// A value built from parts already known to be valid (this process's own ids).
    init(validTraceID: String, parentID: String, flags: UInt8) {
        self.traceID = validTraceID
        self.parentID = parentID
        self.flags = flags
    }

    /// Parses one `traceparent` value. Version `00` must be exactly 55 characters; a higher
    /// version (not `ff`) is read by its first four fields and may only go on after a `-`
    /// (the specification's forward compatibility). Uppercase hex is refused.
    public static func parse(_ value: String) -> Result<TraceParent, Refusal> {
        let bytes = Array(value.utf8)
        guard bytes.count <= maxLength else { return .failure(.tooLong) }
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else {
            return .failure(.malformed)
        }
        guard let version = hexByte(bytes[0], bytes[1]) else { return .failure(.badHex) }
        guard version != 0xff else { return .failure(.badVersion) }
        if bytes.count > 55 {
            // Version 00 has exactly four fields; a later version may add fields after a dash.
            guard version != 0 else { return .failure(.extraFields) }
            guard bytes[55] == UInt8(ascii: "-") else { return .failure(.malformed) }
        }
        let trace = bytes[3..<35], parent = bytes[36..<52]
        guard trace.allSatisfy(isLowerHex), parent.allSatisfy(isLowerHex), let flags = hexByte(bytes[53], bytes[54]) else {
            return .failure(.badHex)
        }
        guard trace.contains(where: { $0 != UInt8(ascii: "0") }) else { return .failure(.zeroTraceID) }
        guard parent.contains(where: { $0 != UInt8(ascii: "0") }) else { return .failure(.zeroParentID) }
        return .success(TraceParent(
            validTraceID: String(decoding: trace, as: UTF8.self), parentID: String(decoding: parent, as: UTF8.self), flags: flags))
    }

    /// The value as version `00` writes it.
    public func format() -> String {
        "00-\(traceID)-\(parentID)-\(Self.hex(flags))"
    }

    static func isLowerHex(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
    }

    static func hexByte(_ hi: UInt8, _ lo: UInt8) -> UInt8? {
        guard isLowerHex(hi), isLowerHex(lo) else { return nil }
        func value(_ b: UInt8) -> UInt8 { b <= UInt8(ascii: "9") ? b - UInt8(ascii: "0") : b - UInt8(ascii: "a") + 10 }
        return value(hi) << 4 | value(lo)
    }

    /// Lowercase hex of `bytes`, two digits each.
    static func hex<S: Sequence<UInt8>>(_ bytes: S) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hex(_ byte: UInt8) -> String { hex(CollectionOfOne(byte)) }
}
