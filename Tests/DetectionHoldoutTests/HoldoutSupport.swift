import Foundation

// Support for the held-out corpus: a small deterministic PRNG, alphabets, checksums, encodings,
// and "documents" made of segments that remember which bytes are a labelled secret or identifier.
// Nothing here knows anything about the detection rules.

/// SplitMix64: small, fast and fully deterministic for a given seed.
struct HoldoutRng {
    private var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 ^ 0xD1B5_4A32_D192_ED03 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<n (n > 0).
    mutating func int(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + int(r.upperBound - r.lowerBound + 1) }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    mutating func pick<T>(_ xs: [T]) -> T { xs[int(xs.count)] }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }

    mutating func chars(_ n: Int, _ alphabet: String) -> String {
        let a = Array(alphabet)
        var s = ""
        s.reserveCapacity(n)
        for _ in 0..<n { s.append(a[int(a.count)]) }
        return s
    }
    mutating func digits(_ n: Int) -> String { String(chars(1, "123456789")) + chars(max(0, n - 1), Alpha.digits) }
    mutating func hex(_ n: Int) -> String { chars(n, Alpha.hex) }
    mutating func alnum(_ n: Int) -> String { chars(n, Alpha.base62) }
}

enum Alpha {
    static let digits = "0123456789"
    static let hex = "0123456789abcdef"
    static let hexUpper = "0123456789ABCDEF"
    static let upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    static let lower = "abcdefghijklmnopqrstuvwxyz"
    static let base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    static let upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    static let lowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789"
    static let base64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    static let base64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    static let base32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    static let bech32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
}

enum Checksum {
    static let crcTable: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 (IEEE 802.3), as used by GitHub's and npm's token checksums.
    static func crc32(_ s: String) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in s.utf8 { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// `n` in base62 (0-9A-Za-z), left-padded with "0" to `width`.
    static func base62(_ n: UInt32, width: Int) -> String {
        let a = Array(Alpha.base62)
        var v = n
        var out: [Character] = []
        while v > 0 { out.append(a[Int(v % 62)]); v /= 62 }
        while out.count < width { out.append("0") }
        return String(out.reversed())
    }

    /// The GitHub/npm token shape: prefix + 30 base62 characters + 6-character base62 CRC-32 of those 30.
    static func checksummedToken(prefix: String, rng: inout HoldoutRng) -> String {
        let entropy = rng.alnum(30)
        return prefix + entropy + base62(crc32(entropy), width: 6)
    }
}

enum Enc {
    static func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }
    static func b64(_ b: [UInt8]) -> String { Data(b).base64EncodedString() }
    static func b64url(_ b: [UInt8]) -> String {
        Data(b).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
    static func b64url(_ s: String) -> String { b64url(Array(s.utf8)) }

    /// JSON string escaping (also valid for YAML double-quoted scalars and Python/JS double-quoted strings).
    static func json(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out
    }

    /// Percent-encoding of everything but RFC 3986 unreserved characters.
    static func percent(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let c = Character(UnicodeScalar(b))
            if (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "-._~".contains(c) {
                out.append(c)
            } else {
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// Form encoding: like percent-encoding but a space is `+`.
    static func form(_ s: String) -> String { percent(s).replacingOccurrences(of: "%20", with: "+") }

    /// POSIX shell single quoting.
    static func shellSingle(_ s: String) -> String { s.replacingOccurrences(of: "'", with: "'\\''") }
}

// MARK: documents with labelled segments

/// `secret` must be found; a finding on an `identifier` is neither right nor wrong; `negative` marks a
/// hard-negative value (a finding on it is a false positive; the mark only names the shape in reports).
enum LabelKind: Sendable, Hashable { case secret, identifier, negative }

struct Mark: Sendable, Hashable {
    var kind: LabelKind
    var format: String
    var value: String
}

/// A piece of a payload; `marks` label its bytes (after any encoding applied to the segment).
struct Seg {
    var text: String
    var marks: [Mark] = []
}

typealias Doc = [Seg]

func lit(_ s: String) -> Seg { Seg(text: s) }
func secretSeg(_ s: String, _ format: String) -> Seg { Seg(text: s, marks: [Mark(kind: .secret, format: format, value: s)]) }
func identSeg(_ s: String, _ format: String) -> Seg { Seg(text: s, marks: [Mark(kind: .identifier, format: format, value: s)]) }

extension Array where Element == Seg {
    /// Applies a character-wise encoding to every segment (valid for escapes that map each character independently).
    func encoded(_ f: (String) -> String) -> Doc { map { Seg(text: f($0.text), marks: $0.marks) } }
    /// Concatenated text.
    var text: String { map(\.text).joined() }
    var marks: [Mark] { flatMap(\.marks) }
    var hasSecret: Bool { contains { $0.marks.contains { $0.kind == .secret } } }
    var isMultiline: Bool { contains { $0.text.contains("\n") } }
    /// Applies a whole-string encoding (base64, …): one segment carrying every secret mark of the input
    /// (identifier marks are dropped when the blob also holds a secret).
    func collapsed(_ f: (String) -> String) -> Doc {
        let all = marks
        let secrets = all.filter { $0.kind == .secret }
        let idents = all.filter { $0.kind == .identifier }
        return [Seg(text: f(text), marks: !secrets.isEmpty ? secrets : !idents.isEmpty ? idents : all)]
    }
}

struct HoldoutLabel: Sendable {
    var kind: LabelKind
    var span: Range<Int>
    var format: String
    var value: String
}

struct HoldoutPayload: Sendable {
    var id: String
    var carrier: String
    var bytes: [UInt8]
    var labels: [HoldoutLabel]
    /// Names of the hard-negative shapes the payload contains (for reading false positives).
    var negatives: [String]
}

func render(_ doc: Doc) -> (bytes: [UInt8], labels: [HoldoutLabel]) {
    var bytes: [UInt8] = []
    var labels: [HoldoutLabel] = []
    for seg in doc {
        let start = bytes.count
        bytes.append(contentsOf: Array(seg.text.utf8))
        for m in seg.marks where bytes.count > start {
            labels.append(HoldoutLabel(kind: m.kind, span: start..<bytes.count, format: m.format, value: m.value))
        }
    }
    return (bytes, labels)
}
