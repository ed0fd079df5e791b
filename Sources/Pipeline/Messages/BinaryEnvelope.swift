import Foundation

/// The compact binary form of the envelopes on the hot path (`requests`, `inspected`,
/// `replies`), sealed like their JSON form. Foundation's JSON coding was a quarter of the
/// gateway's CPU time under load (docs/performance.md); this form is a straight copy of fields.
///
/// Layout (all integers little-endian or LEB128 varints):
/// ```
/// u8  format version (1 or 2)     JSON starts with "{" (0x7B), so the first byte tells them apart
/// u8  envelope type (1 request, 2 inspected, 3 reply)
/// ... the fields in declaration order: strings and byte strings as varint length + bytes,
///     integers as zigzag varints, arrays as varint count + items, optionals as 0/1 + value
/// ```
///
/// Versions:
/// - 1: the three envelopes as first written.
/// - 2: a reply ends with its `blockedRequest` (0/1, then connection and request as in an
///   inspected envelope); requests and inspected envelopes are laid out as in version 1.
///
/// A writer writes the lowest version that holds the value (`formatVersion`): every envelope
/// but a reply carrying a blocked request is still version 1, byte for byte, so a reader that
/// knows only version 1 keeps reading them. Such a reader refuses a version 2 reply (the caller
/// of a blocked call would wait for its timeout): in a rolling upgrade, upgrade the Ingresses
/// before the Inspectors, or write JSON (`bus.envelopes: json`, whose readers ignore the new
/// member) until every stage runs a build that reads version 2.
///
/// Guarantees:
/// - `decode(encode(x)) == x` for every value of the three envelope types.
/// - Decoding never reads past the input and never traps: truncated input, a length or count
///   larger than what is left, invalid UTF-8, trailing bytes, an unknown version or type are
///   `EnvelopeFormatError`s. (The input is authenticated by the sealer first; this is defence
///   in depth, not the boundary.)
/// - A change of the layout gets a new version number; readers keep decoding the versions
///   (and the JSON) written before.
public protocol BinaryEnvelope {
    static var envelopeType: UInt8 { get }
    /// The format version `write(to:)` lays this value out in: the lowest that holds it.
    var formatVersion: UInt8 { get }
    func write(to writer: inout EnvelopeWriter)
    /// Reads the layout of `reader.version`.
    init(from reader: inout EnvelopeReader) throws
}

extension BinaryEnvelope {
    public var formatVersion: UInt8 { 1 }
}

public struct EnvelopeFormatError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

public enum BinaryEnvelopes {
    /// The oldest version this build reads (and writes when the value allows it).
    public static let version: UInt8 = 1
    /// The newest version this build reads and writes.
    public static let latestVersion: UInt8 = 2

    /// Whether `bytes` is in this binary form (else it is JSON).
    public static func isBinary(_ bytes: [UInt8]) -> Bool { bytes.first.map { (version...latestVersion).contains($0) } ?? false }

    public static func encode<T: BinaryEnvelope>(_ value: T) -> [UInt8] {
        var w = EnvelopeWriter()
        w.bytes.append(value.formatVersion)
        w.bytes.append(T.envelopeType)
        value.write(to: &w)
        return w.bytes
    }

    public static func decode<T: BinaryEnvelope>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        var r = EnvelopeReader(bytes)
        let v = try r.u8()
        guard (version...latestVersion).contains(v) else { throw EnvelopeFormatError("unknown envelope format version \(v)") }
        r.version = v
        let t = try r.u8()
        guard t == T.envelopeType else { throw EnvelopeFormatError("envelope type \(t), expected \(T.envelopeType) (\(T.self))") }
        let value = try T(from: &r)
        guard r.isAtEnd else { throw EnvelopeFormatError("\(r.remaining) bytes after the \(T.self) envelope") }
        return value
    }
}

public struct EnvelopeWriter {
    public var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(512) }

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func int(_ v: Int64) { varint(UInt64(bitPattern: (v << 1) ^ (v >> 63))) }
    mutating func int(_ v: Int) { int(Int64(v)) }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func data(_ d: Data) {
        varint(UInt64(d.count))
        bytes.append(contentsOf: d)
    }

    mutating func strings(_ a: [String]) {
        varint(UInt64(a.count))
        for s in a { string(s) }
    }

    mutating func optional(_ s: String?) {
        if let s {
            bytes.append(1)
            string(s)
        } else {
            bytes.append(0)
        }
    }
}

public struct EnvelopeReader {
    private let bytes: [UInt8]
    private var position = 0
    /// The format version of the envelope being read (set by `BinaryEnvelopes.decode`).
    public internal(set) var version: UInt8 = BinaryEnvelopes.version

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position == bytes.count }
    var remaining: Int { bytes.count - position }

    mutating func u8() throws -> UInt8 {
        guard position < bytes.count else { throw EnvelopeFormatError("envelope truncated") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try u8()
            guard shift < 64, shift < 63 || b <= 1 else { throw EnvelopeFormatError("varint too long") }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
    }

    mutating func int64() throws -> Int64 {
        let z = try varint()
        return Int64(bitPattern: (z >> 1) ^ (0 &- (z & 1)))
    }

    mutating func int() throws -> Int {
        let v = try int64()
        guard let i = Int(exactly: v) else { throw EnvelopeFormatError("integer out of range") }
        return i
    }

    /// A length or count that cannot exceed what is left of the input (each item takes a byte at least).
    private mutating func length() throws -> Int {
        let n = try varint()
        guard n <= UInt64(remaining) else { throw EnvelopeFormatError("length \(n) beyond the \(remaining) bytes left") }
        return Int(n)
    }

    private mutating func raw() throws -> ArraySlice<UInt8> {
        let n = try length()
        defer { position += n }
        return bytes[position..<(position + n)]
    }

    mutating func string() throws -> String {
        let slice = try raw()
        guard let s = String(validating: slice, as: UTF8.self) else { throw EnvelopeFormatError("string is not UTF-8") }
        return s
    }

    mutating func data() throws -> Data { Data(try raw()) }

    mutating func strings() throws -> [String] {
        let n = try length()
        var out: [String] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try string()) }
        return out
    }

    mutating func optionalString() throws -> String? {
        switch try u8() {
        case 0: return nil
        case 1: return try string()
        case let b: throw EnvelopeFormatError("optional marker \(b)")
        }
    }

    mutating func array<T>(_ item: (inout EnvelopeReader) throws -> T) throws -> [T] {
        let n = try length()
        var out: [T] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try item(&self)) }
        return out
    }
}

// MARK: - The envelope types

extension CallerIdentity {
    func write(to w: inout EnvelopeWriter) {
        w.string(id)
        w.strings(groups)
        w.string(method)
        w.string(person)
    }

    init(from r: inout EnvelopeReader) throws {
        let id = try r.string()
        let groups = try r.strings()
        let method = try r.string()
        self.init(id: id, groups: groups, method: method, person: try r.string())
    }
}

extension RequestMetadata {
    func write(to w: inout EnvelopeWriter) {
        w.string(requestID)
        w.string(sessionID)
        identity.write(to: &w)
        w.string(connection)
        w.int(receivedAtMillis)
        w.int(deadlineMillis)
        w.string(replyTo)
        w.optional(idempotencyKey)
    }

    init(from r: inout EnvelopeReader) throws {
        self.init(
            requestID: try r.string(), sessionID: try r.string(), identity: try CallerIdentity(from: &r),
            connection: try r.string(), receivedAtMillis: try r.int64(), deadlineMillis: try r.int64(),
            replyTo: try r.string(), idempotencyKey: try r.optionalString())
    }
}

extension HTTPField {
    func write(to w: inout EnvelopeWriter) {
        w.string(name)
        w.string(value)
    }

    init(from r: inout EnvelopeReader) throws {
        let name = try r.string()
        self.init(name, try r.string())
    }
}

extension HTTPRequestData {
    func write(to w: inout EnvelopeWriter) {
        w.string(method)
        w.string(path)
        w.string(query)
        w.varint(UInt64(headers.count))
        for h in headers { h.write(to: &w) }
        w.data(body)
    }

    init(from r: inout EnvelopeReader) throws {
        self.init(
            method: try r.string(), path: try r.string(), query: try r.string(),
            headers: try r.array { try HTTPField(from: &$0) }, body: try r.data())
    }
}

extension HTTPResponseData {
    func write(to w: inout EnvelopeWriter) {
        w.int(status)
        w.varint(UInt64(headers.count))
        for h in headers { h.write(to: &w) }
        w.data(body)
    }

    init(from r: inout EnvelopeReader) throws {
        self.init(status: try r.int(), headers: try r.array { try HTTPField(from: &$0) }, body: try r.data())
    }
}

extension FindingSummary {
    func write(to w: inout EnvelopeWriter) {
        w.string(rule)
        w.string(ruleClass)
        w.string(severity)
        w.string(location)
        w.int(start)
        w.int(end)
        w.string(fingerprint)
    }

    init(from r: inout EnvelopeReader) throws {
        self.init(
            rule: try r.string(), ruleClass: try r.string(), severity: try r.string(), location: try r.string(),
            start: try r.int(), end: try r.int(), fingerprint: try r.string())
    }
}

extension Verdict {
    func write(to w: inout EnvelopeWriter) {
        w.string(decision.rawValue)
        w.strings(rules)
        w.strings(reasons)
    }

    init(from r: inout EnvelopeReader) throws {
        let raw = try r.string()
        // The error names no decoded content: it reaches logs and the clear `deadletter` reason.
        guard let decision = Decision(rawValue: raw) else { throw EnvelopeFormatError("unknown decision (\(raw.utf8.count) bytes)") }
        self.init(decision: decision, rules: try r.strings(), reasons: try r.strings())
    }
}

extension InspectionRequest: BinaryEnvelope {
    public static let envelopeType: UInt8 = 1

    public func write(to w: inout EnvelopeWriter) {
        metadata.write(to: &w)
        request.write(to: &w)
    }

    public init(from r: inout EnvelopeReader) throws {
        self.init(metadata: try RequestMetadata(from: &r), request: try HTTPRequestData(from: &r))
    }
}

extension InspectedRequest: BinaryEnvelope {
    public static let envelopeType: UInt8 = 2

    public func write(to w: inout EnvelopeWriter) {
        metadata.write(to: &w)
        verdict.write(to: &w)
        w.varint(UInt64(findings.count))
        for f in findings { f.write(to: &w) }
        request.write(to: &w)
    }

    public init(from r: inout EnvelopeReader) throws {
        self.init(
            metadata: try RequestMetadata(from: &r), verdict: try Verdict(from: &r),
            findings: try r.array { try FindingSummary(from: &$0) }, request: try HTTPRequestData(from: &r))
    }
}

extension MaskedRequest {
    func write(to w: inout EnvelopeWriter) {
        w.string(connection)
        request.write(to: &w)
    }

    init(from r: inout EnvelopeReader) throws {
        self.init(connection: try r.string(), request: try HTTPRequestData(from: &r))
    }
}

extension Reply: BinaryEnvelope {
    public static let envelopeType: UInt8 = 3

    /// Version 1 unless the reply carries a blocked request (version 2 adds it).
    public var formatVersion: UInt8 { blockedRequest == nil ? 1 : 2 }

    public func write(to w: inout EnvelopeWriter) {
        w.string(requestID)
        w.string(sessionID)
        response.write(to: &w)
        // Version 2 (`formatVersion`): the blocked request as an optional (0/1 + value).
        if let blockedRequest {
            w.bytes.append(1)
            blockedRequest.write(to: &w)
        }
    }

    public init(from r: inout EnvelopeReader) throws {
        let requestID = try r.string()
        let sessionID = try r.string()
        let response = try HTTPResponseData(from: &r)
        var blocked: MaskedRequest?
        if r.version >= 2 {
            switch try r.u8() {
            case 0: blocked = nil
            case 1: blocked = try MaskedRequest(from: &r)
            case let b: throw EnvelopeFormatError("optional marker \(b)")
            }
        }
        self.init(requestID: requestID, sessionID: sessionID, response: response, blockedRequest: blocked)
    }
}
