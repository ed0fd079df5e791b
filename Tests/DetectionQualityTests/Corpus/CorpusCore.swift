// Independent labelled corpus of leaked credentials (issue 15).
// Token shapes are taken from the providers' public documentation of their formats, not from
// Sluice's detection rules. Deterministic: all randomness comes from a seeded CorpusRNG.

/// Whether a labelled span must be found (`secret`) or may be found without counting as a false
/// positive (`identifier`: e.g. an AWS access key id, a username next to a password).
public enum LabelKind: String, Sendable { case secret, identifier }

public struct CorpusLabel: Sendable {
    public let format: String
    public let kind: LabelKind
    /// The byte range of the payload that holds the value as it appears there (its encoded form
    /// when the carrier encodes it). A detector finding that overlaps this range counts as finding it.
    public let span: Range<Int>
    /// The raw value (decoded), for humans reading a failure.
    public let value: String

    public init(format: String, kind: LabelKind, span: Range<Int>, value: String) {
        self.format = format; self.kind = kind; self.span = span; self.value = value
    }
}

public struct CorpusPayload: Sendable {
    public let id: String
    public let carrier: String
    public let bytes: [UInt8]
    /// Empty for a payload of hard negatives only.
    public let labels: [CorpusLabel]
    /// For hard-negative payloads: what look-alikes it holds.
    public let negatives: [String]

    public init(id: String, carrier: String, bytes: [UInt8], labels: [CorpusLabel], negatives: [String]) {
        self.id = id; self.carrier = carrier; self.bytes = bytes; self.labels = labels; self.negatives = negatives
    }
}

// MARK: - PRNG

struct CorpusRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + int(r.count) }
    mutating func bool() -> Bool { next() & 1 == 1 }
    mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }
    mutating func str(_ alphabet: [UInt8], _ n: Int) -> String {
        var out = [UInt8](); out.reserveCapacity(n)
        for _ in 0..<n { out.append(alphabet[int(alphabet.count)]) }
        return String(decoding: out, as: UTF8.self)
    }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
    mutating func hex(_ n: Int) -> String { str(CorpusAlpha.hexLower, n) }
    mutating func digits(_ n: Int) -> String { str(CorpusAlpha.nonZeroDigits, 1) + str(CorpusAlpha.digits, n - 1) }
    mutating func alnum(_ n: Int) -> String { str(CorpusAlpha.base62, n) }
    mutating func uuid() -> String { "\(hex(8))-\(hex(4))-4\(hex(3))-\(pick(["8", "9", "a", "b"]))\(hex(3))-\(hex(12))" }
}

enum CorpusAlpha {
    static let digits = Array("0123456789".utf8)
    static let nonZeroDigits = Array("123456789".utf8)
    static let hexLower = Array("0123456789abcdef".utf8)
    static let hexUpper = Array("0123456789ABCDEF".utf8)
    static let upper = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
    static let lower = Array("abcdefghijklmnopqrstuvwxyz".utf8)
    static let letters = upper + lower
    static let base62 = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    static let upperDigits = upper + digits
    static let lowerDigits = lower + digits
    static let base32 = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)
    static let base64 = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let base64url = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    static let password = base62 + Array("-_.".utf8)
}

// MARK: - Encoders

enum CorpusEnc {
    static func base64(_ bytes: [UInt8], url: Bool = false, pad: Bool = true) -> String {
        let a = url ? CorpusAlpha.base64url : CorpusAlpha.base64
        var out = [UInt8](); out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [a[Int(n >> 18 & 63)], a[Int(n >> 12 & 63)], a[Int(n >> 6 & 63)], a[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [a[Int(n >> 18 & 63)], a[Int(n >> 12 & 63)]]
            if pad { out += Array("==".utf8) }
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [a[Int(n >> 18 & 63)], a[Int(n >> 12 & 63)], a[Int(n >> 6 & 63)]]
            if pad { out += Array("=".utf8) }
        }
        return String(decoding: out, as: UTF8.self)
    }
    static func base64(_ s: String, url: Bool = false, pad: Bool = true) -> String { base64(Array(s.utf8), url: url, pad: pad) }

    /// JSON string-content escaping (also valid for YAML double-quoted scalars).
    static func json(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count + 8)
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 {
                    let h = String(c.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }
    static func json2(_ s: String) -> String { json(json(s)) }

    /// application/x-www-form-urlencoded / RFC 3986 query escaping (unreserved kept).
    static func percent(_ s: String, spaceAsPlus: Bool = false) -> String {
        var out = [UInt8]()
        let hexd = CorpusAlpha.hexUpper
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                 UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(b)
            case UInt8(ascii: " ") where spaceAsPlus: out.append(UInt8(ascii: "+"))
            default: out += [UInt8(ascii: "%"), hexd[Int(b >> 4)], hexd[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func base62(_ v: UInt32, width: Int) -> String {
        var n = v
        var out = [UInt8]()
        while n > 0 { out.append(CorpusAlpha.base62[Int(n % 62)]); n /= 62 }
        while out.count < width { out.append(UInt8(ascii: "0")) }
        return String(decoding: out.reversed(), as: UTF8.self)
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// Wraps base64 text at `width` columns (PEM).
    static func wrap(_ s: String, _ width: Int = 64) -> String {
        let b = Array(s.utf8)
        var lines: [String] = []
        var i = 0
        while i < b.count { lines.append(String(decoding: b[i..<min(i + width, b.count)], as: UTF8.self)); i += width }
        return lines.joined(separator: "\n")
    }
}

// MARK: - Segmented text with labels

struct CorpusSegLabel {
    let format: String
    let kind: LabelKind
    let value: String
}

struct CorpusSeg {
    var text: String
    var labels: [CorpusSegLabel]
}

/// A text made of segments; labelled segments carry the raw (decoded) value. Character-wise
/// encodings (JSON escaping, percent-encoding) are applied per segment so spans stay exact.
struct CorpusDoc {
    var segs: [CorpusSeg] = []

    init() {}
    init(_ s: String) { segs = [CorpusSeg(text: s, labels: [])] }
    static func secret(_ format: String, _ value: String) -> CorpusDoc {
        var d = CorpusDoc(); d.segs = [CorpusSeg(text: value, labels: [CorpusSegLabel(format: format, kind: .secret, value: value)])]; return d
    }
    static func ident(_ format: String, _ value: String) -> CorpusDoc {
        var d = CorpusDoc(); d.segs = [CorpusSeg(text: value, labels: [CorpusSegLabel(format: format, kind: .identifier, value: value)])]; return d
    }
    static func + (a: CorpusDoc, b: CorpusDoc) -> CorpusDoc { var d = a; d.segs += b.segs; return d }
    static func + (a: CorpusDoc, b: String) -> CorpusDoc { a + CorpusDoc(b) }
    static func + (a: String, b: CorpusDoc) -> CorpusDoc { CorpusDoc(a) + b }
    static func += (a: inout CorpusDoc, b: CorpusDoc) { a.segs += b.segs }
    static func += (a: inout CorpusDoc, b: String) { a.segs.append(CorpusSeg(text: b, labels: [])) }

    var text: String { segs.map(\.text).joined() }
    var hasLabels: Bool { segs.contains { !$0.labels.isEmpty } }
    var isMultiline: Bool { segs.contains { $0.text.utf8.contains(10) } }

    /// Applies a character-wise encoding to every segment.
    func map(_ f: (String) -> String) -> CorpusDoc {
        var d = CorpusDoc(); d.segs = segs.map { CorpusSeg(text: f($0.text), labels: $0.labels) }; return d
    }
    /// Base64 of the whole text: one segment carrying every label (the base64 run is the span).
    func base64(url: Bool = false, pad: Bool = true) -> CorpusDoc {
        var d = CorpusDoc(); d.segs = [CorpusSeg(text: CorpusEnc.base64(text, url: url, pad: pad), labels: segs.flatMap(\.labels))]; return d
    }
    func json() -> CorpusDoc { map(CorpusEnc.json) }
    func json2() -> CorpusDoc { map(CorpusEnc.json2) }
    func percent() -> CorpusDoc { map { CorpusEnc.percent($0) } }
    /// Indents every line after the first by `prefix` (for YAML block scalars, heredocs).
    func indented(_ prefix: String) -> CorpusDoc {
        map { $0.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n" + prefix) }
    }

    func render(id: String, carrier: String, negatives: [String]) -> CorpusPayload {
        var bytes = [UInt8]()
        var labels = [CorpusLabel]()
        for s in segs {
            let start = bytes.count
            bytes += Array(s.text.utf8)
            for l in s.labels {
                labels.append(CorpusLabel(format: l.format, kind: l.kind, span: start..<bytes.count, value: l.value))
            }
        }
        return CorpusPayload(id: id, carrier: carrier, bytes: bytes, labels: labels, negatives: negatives)
    }
}
