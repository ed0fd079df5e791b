import Foundation

/// The decoded views of a request body that `hold.body_patterns` are matched against, so that
/// an encoding cannot hide text from a pattern: `{"q":"\u0044ROP TABLE t"}` is also seen as
/// `{"q":"DROP TABLE t"}`, `q=DROP%20TABLE` as `q=DROP TABLE`, `ＤＲＯＰ` and `DR\u{200B}OP` as `DROP`.
///
/// The views are the raw text plus everything reachable from it by repeatedly applying three
/// decodings, in any order, until nothing changes (a fixpoint):
/// - lenient JSON string unescaping anywhere in the text (`\uXXXX` with surrogate pairs, `\"`,
///   `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`; anything else is kept), so JSON inside JSON and
///   invalid JSON are unescaped too;
/// - form/URL percent-decoding (`%XX`, `+` as a space);
/// - Unicode compatibility normalisation (NFKC, per character: fullwidth and other look-alikes),
///   with default-ignorable characters such as zero-width spaces removed.
///
/// The body must already have its content codings undone (see `RequestInspector`).
///
/// Guarantees:
/// - The raw text is always the first view; every view is distinct.
/// - Pure, synchronous and bounded: at most `maxLevels` rounds of decoding, `maxViews` views and
///   `maxTotalBytes(for:)` bytes over all views. When a bound is hit before the fixpoint, `views`
///   throws `Unbuildable` instead of returning an incomplete set, so the caller fails closed.
public enum BodyViews {
    /// Why the views of a body could not all be built. `reason` never contains body content.
    public struct Unbuildable: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// Rounds of decoding that may still change the views (JSON nested this deep is unescaped);
    /// one more round must change nothing (the fixpoint).
    public static let maxLevels = 10
    /// Distinct views at most.
    public static let maxViews = 64

    /// The byte budget over all views for a body of `count` bytes.
    public static func maxTotalBytes(for count: Int) -> Int { 16 * count + (1 << 20) }

    /// Every view of `body` (raw first), or `Unbuildable` when a bound is hit before the fixpoint.
    public static func views(of body: [UInt8]) throws(Unbuildable) -> [String] {
        try views(of: body, maxLevels: maxLevels, maxViews: maxViews, budget: maxTotalBytes(for: body.count))
    }

    /// `views(of:)` with explicit bounds (tests use small ones).
    static func views(of body: [UInt8], maxLevels: Int, maxViews: Int, budget: Int) throws(Unbuildable) -> [String] {
        let raw = String(decoding: body, as: UTF8.self)
        var views = [raw]
        var seen: Set<[UInt8]> = [Array(raw.utf8)]  // byte-exact (String equality is canonical equivalence)
        var totalBytes = raw.utf8.count
        var frontier = [raw]
        var level = 0
        while !frontier.isEmpty {
            level += 1
            var next: [String] = []
            for view in frontier {
                for decoded in [jsonUnescaped(view), percentDecoded(view), nfkc(view)] {
                    guard let decoded, seen.insert(Array(decoded.utf8)).inserted else { continue }
                    views.append(decoded)
                    next.append(decoded)
                    totalBytes += decoded.utf8.count
                    if views.count > maxViews {
                        throw Unbuildable(reason: "the body has more than \(maxViews) distinct decoded views")
                    }
                    if totalBytes > budget {
                        throw Unbuildable(reason: "the decoded views of the body exceed \(budget) bytes")
                    }
                }
            }
            if level > maxLevels, !next.isEmpty {
                throw Unbuildable(reason: "the body is still changing after \(maxLevels) rounds of decoding")
            }
            frontier = next
        }
        return views
    }

    /// Lenient JSON string unescaping over the whole text; nil when nothing changes.
    static func jsonUnescaped(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "\\")) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var changed = false
        var i = 0
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for k in 0..<4 {
                guard let h = hexValue(bytes[at + k]) else { return nil }
                v = v << 4 | UInt32(h)
            }
            return v
        }
        while i < bytes.count {
            let c = bytes[i]
            guard c == UInt8(ascii: "\\"), i + 1 < bytes.count else {
                out.append(c)
                i += 1
                continue
            }
            let n = bytes[i + 1]
            var replacement: UInt8?
            switch n {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): replacement = n
            case UInt8(ascii: "b"): replacement = 8
            case UInt8(ascii: "f"): replacement = 12
            case UInt8(ascii: "n"): replacement = 10
            case UInt8(ascii: "r"): replacement = 13
            case UInt8(ascii: "t"): replacement = 9
            case UInt8(ascii: "u"):
                guard var scalar = hex4(i + 2) else { break }
                var end = i + 6
                if (0xD800..<0xDC00).contains(scalar), end + 1 < bytes.count, bytes[end] == UInt8(ascii: "\\"),
                   bytes[end + 1] == UInt8(ascii: "u"), let low = hex4(end + 2), (0xDC00..<0xE000).contains(low) {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    end += 6
                }
                let unicode = Unicode.Scalar(scalar) ?? "\u{FFFD}"  // a lone surrogate
                out += Array(String(Character(unicode)).utf8)
                i = end
                changed = true
                continue
            default: break
            }
            if let replacement {
                out.append(replacement)
                i += 2
                changed = true
            } else {
                out.append(c)
                i += 1
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : nil
    }

    /// Form/URL decoding over the whole text (`%XX`, `+` as a space); nil when nothing changes.
    static func percentDecoded(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "%")) || bytes.contains(UInt8(ascii: "+")) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var changed = false
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "%"), i + 2 < bytes.count, let h = hexValue(bytes[i + 1]), let l = hexValue(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 3
                changed = true
            } else if c == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
                i += 1
                changed = true
            } else {
                out.append(c)
                i += 1
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : nil
    }

    /// Unicode compatibility normalisation, character by character, with default-ignorable
    /// characters (zero-width spaces, soft hyphens, …) removed; nil when nothing changes
    /// (always nil for ASCII).
    ///
    /// Each character that NFKC changes is replaced by its NFKC form (fullwidth `Ｄ` → `D`,
    /// `ﬁ` → `fi`, `𝐃` → `D`); the others are kept as they are. Per character rather than over
    /// the whole text: Foundation's whole-string NFKC costs about a second per MiB, and the
    /// canonical compositions it would add only make text less like the ASCII that patterns
    /// look for.
    static func nfkc(_ text: String) -> String? {
        let bytes = Array(text.utf8)  // valid UTF-8: it comes from a String
        guard bytes.contains(where: { $0 >= 0x80 }) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var changed = false
        var mappings: [UInt32: [UInt8]?] = [:]  // nil: the character stays
        var i = 0
        while i < bytes.count {
            let lead = bytes[i]
            if lead < 0x80 {
                out.append(lead)
                i += 1
                continue
            }
            let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
            guard i + length <= bytes.count else {
                out += bytes[i...]
                break
            }
            var value = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
            for k in 1..<length { value = value << 6 | UInt32(bytes[i + k] & 0x3F) }
            let replacement: [UInt8]?
            if let known = mappings[value] {
                replacement = known
            } else {
                replacement = Self.compatibilityMapping(value)
                mappings[value] = .some(replacement)
            }
            if let replacement {
                out += replacement
                changed = true
            } else {
                out += bytes[i..<(i + length)]
            }
            i += length
        }
        return changed ? String(decoding: out, as: UTF8.self) : nil
    }

    /// The UTF-8 bytes that replace one non-ASCII character in the NFKC view (empty for a
    /// default-ignorable character), or nil when it stays.
    static func compatibilityMapping(_ value: UInt32) -> [UInt8]? {
        guard let scalar = Unicode.Scalar(value) else { return nil }
        let properties = scalar.properties
        if properties.isDefaultIgnorableCodePoint { return [] }
        // NFKC(c) != c implies NFKC_Casefold(c) != c: the cheap stdlib property filters.
        guard properties.changesWhenNFKCCaseFolded else { return nil }
        let mapped = Array(String(Character(scalar)).precomposedStringWithCompatibilityMapping.utf8)
        return mapped.elementsEqual(String(Character(scalar)).utf8) ? nil : mapped
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
