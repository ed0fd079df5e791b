/// Writes one compact JSON object whose keys the caller gives in sorted order: what
/// `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` writes for the same members.
/// Strings are escaped by ``AuditEventJSON/string(_:into:)``. Used by the hand-written encoders
/// on the hot path (audit events, recording lines).
///
/// Guarantees: `finish()` returns a complete object (`{}` when no key was written); the caller
/// writes each value right after its `key` (nested values straight into `out`).
public struct JSONObjectWriter {
    public var out: [UInt8]
    private var first = true

    public init(into out: [UInt8] = []) { self.out = out }

    /// `"name":`, after a comma unless it is the first member.
    public mutating func key(_ name: StaticString) {
        out.append(first ? UInt8(ascii: "{") : UInt8(ascii: ","))
        first = false
        out.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: "\":".utf8)
    }

    public mutating func string(_ name: StaticString, _ value: String) {
        key(name)
        AuditEventJSON.string(value, into: &out)
    }

    public mutating func integer<I: BinaryInteger>(_ name: StaticString, _ value: I) {
        key(name)
        out.append(contentsOf: String(value).utf8)
    }

    public mutating func finish() -> [UInt8] {
        if first { out.append(UInt8(ascii: "{")) }
        out.append(UInt8(ascii: "}"))
        return out
    }
}
