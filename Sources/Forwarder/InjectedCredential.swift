import Detection
import Foundation
import Pipeline

/// The credential value the Forwarder injects into one connection's deliveries, and every
/// spelling of it an upstream might reflect back (a debug header, a redirect URL, a body),
/// so none of them ever reaches the caller (invariant 4).
///
/// Guarantees:
/// - The forms searched are those of the full header value (`Bearer <secret>`) and of the
///   secret part alone (what the `env:`/`file:` reference resolved to): the exact bytes;
///   percent-encoded (RFC 3986 strict, `encodeURIComponent`-style, `/` kept, reserved kept;
///   upper- and lower-case hex; with a space as `%20` or as form `+`); base64 and base64url
///   (padded and unpadded, and the characters that depend only on the secret at each of the
///   three alignments inside a longer base64 text); JSON-escaped (`\/`); hex.
/// - `mask` replaces every occurrence of every form with ``maskText``; overlapping
///   occurrences are merged into one mask; the longest form wins where several start at one
///   place. Nothing else is changed.
/// - The value is never printed: `description` shows the header name only.
struct InjectedCredential: Sendable, CustomStringConvertible {
    static let maskText = "[MASKED:injected-credential]"
    static let rule = "injected-credential"

    let headerName: String
    /// Every form to look for, longest first, deduplicated; never empty strings.
    let forms: [[UInt8]]
    /// First 12 hex characters of HMAC-SHA256(fingerprint key, secret), like Detection's fingerprints.
    let fingerprint: String

    var description: String { "InjectedCredential(\(headerName): <redacted>)" }

    /// Aligned base64 fragments shorter than this are not used (too likely to match by chance).
    static let minFragment = 8

    init(header: CredentialHeader, template: String?, fingerprintKey: [UInt8]) {
        headerName = header.name
        let full = Array(header.value.utf8)
        let secret = template.flatMap { Self.secretPart(resolved: header.value, template: $0) } ?? full
        var all: [[UInt8]] = []
        for value in [full, secret] where !value.isEmpty { all.append(contentsOf: Self.forms(of: value)) }
        var seen = Set<[UInt8]>()
        forms = all.filter { !$0.isEmpty && seen.insert($0).inserted }.sorted { $0.count > $1.count }
        fingerprint = HMACSHA256(key: fingerprintKey).fingerprint(secret)
    }

    /// The part of `resolved` the reference in `template` stood for: `template` is the
    /// configured value (`Bearer env:TOKEN`), whose one space-separated token that is a
    /// reference was replaced by the secret. `nil` when `resolved` does not fit the template.
    static func secretPart(resolved: String, template: String) -> [UInt8]? {
        for token in template.split(separator: " ") where (try? SecretReference(parsing: String(token))) != nil {
            let prefix = Array(template[template.startIndex..<token.startIndex].utf8)
            let suffix = Array(template[token.endIndex...].utf8)
            let bytes = Array(resolved.utf8)
            guard bytes.count > prefix.count + suffix.count,
                  bytes.starts(with: prefix), bytes.reversed().starts(with: suffix.reversed())
            else { return nil }
            return Array(bytes[prefix.count..<(bytes.count - suffix.count)])
        }
        return nil
    }

    // MARK: forms

    /// Every spelling of `value` this type searches for (see the type's guarantees).
    static func forms(of value: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = [value]
        // Percent-encodings, as the common encoders write them.
        let unreserved = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))
        let keepSets: [Set<UInt8>] = [
            unreserved,                                                // RFC 3986, Go url.PathEscape-ish, Python quote_plus
            unreserved.union(Array("/".utf8)),                         // Python quote (safe="/")
            unreserved.union(Array("!*'()".utf8)),                     // JavaScript encodeURIComponent
            unreserved.union(Array(":/?#[]@!$&'()*+,;=".utf8)),       // JavaScript encodeURI (reserved kept)
        ]
        for keep in keepSets {
            for upper in [true, false] {
                for plus in [false, true] {
                    out.append(percentEncode(value, keep: keep, upperHex: upper, spaceAsPlus: plus))
                }
            }
        }
        // Base64 and base64url, whole.
        for urlSafe in [false, true] {
            for pad in [true, false] {
                out.append(base64(value, urlSafe: urlSafe, pad: pad))
            }
            // Inside a longer base64 text the value starts at one of three alignments; the
            // characters that depend only on its bytes are the same wherever it sits.
            for shift in 1..<3 {
                let fragment = alignedFragment(value, shift: shift, urlSafe: urlSafe)
                if fragment.count >= minFragment { out.append(fragment) }
            }
            let fragment0 = alignedFragment(value, shift: 0, urlSafe: urlSafe)
            if fragment0.count >= minFragment { out.append(fragment0) }
        }
        // JSON string escaping of `/` (and of `"` and `\`, should a credential hold them).
        var json: [UInt8] = []
        for b in value {
            switch b {
            case UInt8(ascii: "/"), UInt8(ascii: "\""), UInt8(ascii: "\\"): json.append(UInt8(ascii: "\\")); json.append(b)
            default: json.append(b)
            }
        }
        out.append(json)
        // Hex dumps.
        out.append(Array(Hex.encode(value).utf8))
        out.append(Array(Hex.encode(value).uppercased().utf8))
        return out
    }

    static func percentEncode(_ value: [UInt8], keep: Set<UInt8>, upperHex: Bool, spaceAsPlus: Bool) -> [UInt8] {
        let digits = Array((upperHex ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
        var out: [UInt8] = []
        out.reserveCapacity(value.count * 3)
        for b in value {
            if spaceAsPlus, b == UInt8(ascii: " ") {
                out.append(UInt8(ascii: "+"))
            } else if keep.contains(b), !(spaceAsPlus && b == UInt8(ascii: "+")) {
                out.append(b)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(digits[Int(b >> 4)])
                out.append(digits[Int(b & 0xF)])
            }
        }
        return out
    }

    static func base64(_ value: [UInt8], urlSafe: Bool, pad: Bool) -> [UInt8] {
        var text = Data(value).base64EncodedString()
        if urlSafe { text = text.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_") }
        if !pad { while text.hasSuffix("=") { text.removeLast() } }
        return Array(text.utf8)
    }

    /// The base64 characters of `shift` unknown bytes followed by `value` that depend only on
    /// `value`'s bits (neither on the bytes before it nor on those after it).
    static func alignedFragment(_ value: [UInt8], shift: Int, urlSafe: Bool) -> [UInt8] {
        let encoded = base64([UInt8](repeating: 0, count: shift) + value, urlSafe: urlSafe, pad: false)
        let firstBit = 8 * shift
        let endBit = 8 * (shift + value.count)
        var out: [UInt8] = []
        for (i, c) in encoded.enumerated() where 6 * i >= firstBit && 6 * i + 6 <= endBit {
            out.append(c)
        }
        return out
    }

    // MARK: masking

    /// The byte ranges of `bytes` that hold some form, merged, in order.
    func occurrences(in bytes: [UInt8]) -> [Range<Int>] {
        guard !bytes.isEmpty else { return [] }
        var ranges: [Range<Int>] = []
        bytes.withUnsafeBufferPointer { hay in
            for form in forms where form.count <= hay.count {
                var from = 0
                while let at = Self.find(form, in: hay, from: from) {
                    ranges.append(at..<(at + form.count))
                    from = at + form.count
                }
            }
        }
        guard !ranges.isEmpty else { return [] }
        ranges.sort { $0.lowerBound < $1.lowerBound || ($0.lowerBound == $1.lowerBound && $0.upperBound > $1.upperBound) }
        var merged: [Range<Int>] = [ranges[0]]
        for r in ranges.dropFirst() {
            let last = merged[merged.count - 1]
            if r.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        return merged
    }

    /// `bytes` with every occurrence replaced by ``maskText``, and the replaced ranges (in `bytes`).
    func mask(_ bytes: [UInt8]) -> (bytes: [UInt8], ranges: [Range<Int>]) {
        let ranges = occurrences(in: bytes)
        guard !ranges.isEmpty else { return (bytes, []) }
        let maskBytes = Array(Self.maskText.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var at = 0
        for r in ranges {
            out.append(contentsOf: bytes[at..<r.lowerBound])
            out.append(contentsOf: maskBytes)
            at = r.upperBound
        }
        out.append(contentsOf: bytes[at...])
        return (out, ranges)
    }

    /// The summaries of masked ranges, for the audit (never the value).
    func findings(_ ranges: [Range<Int>], location: String) -> [FindingSummary] {
        ranges.map {
            FindingSummary(
                rule: Self.rule, ruleClass: "credential", severity: "critical", location: location,
                start: $0.lowerBound, end: $0.upperBound, fingerprint: fingerprint)
        }
    }

    /// The first index `>= from` where `needle` occurs in `hay`.
    static func find(_ needle: [UInt8], in hay: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
        let n = needle.count
        guard n > 0, hay.count - from >= n else { return nil }
        guard let base = hay.baseAddress else { return nil }
        let first = Int32(needle[0])
        var i = from
        let last = hay.count - n
        while i <= last {
            // memchr jumps to the next candidate first byte.
            guard let p = memchr(base + i, first, last - i + 1) else { return nil }
            i = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(p))
            var j = 1
            while j < n, hay[i + j] == needle[j] { j += 1 }
            if j == n { return i }
            i += 1
        }
        return nil
    }
}
