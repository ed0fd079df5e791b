import Foundation

/// The one canonical spelling of a request path and query, shared by every check: the
/// Ingress publishes it, the Inspector's hold globs and policy match it, the Forwarder
/// builds the upstream URL from it.
///
/// Guarantees:
/// - Two spellings that an upstream server could resolve to the same resource canonicalise
///   to the same string, or at least one of them is refused: `%61dmin`, `//admin`,
///   `/./admin`, `/x/../admin` all become `/admin`.
/// - Refuses (never guesses) what cannot be made unambiguous: encoded `/` `\` NUL or
///   control characters, a raw `\` or control character, a `..` that would climb above the
///   root, invalid percent escapes, invalid UTF-8, non-ASCII that Unicode compatibility
///   normalisation (NFKC) would change (fullwidth letters and other look-alikes), Unicode
///   control and format characters, double-encoded escapes (`%252e`), and dot segments
///   hidden behind matrix parameters (`..;x`, `..%3Bx`).
/// - The result is a fixed point: canonicalising a canonical path returns it unchanged.
/// - Pure and synchronous; refusal reasons are one sentence that never echoes the input.
public enum CanonicalPath {
    /// Why a path or query was refused; `reason` is one sentence, safe to show a caller.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public init(reason: String) { self.reason = reason }
        public var description: String { reason }
    }

    /// `raw`: the request path below the connection exactly as sent (percent-encoded; "" or starting with "/").
    /// Returns the one canonical spelling: unreserved characters percent-decoded, other escapes upper-cased,
    /// RFC 3986 dot segments removed, empty segments (`//`) collapsed, always starting with "/".
    /// Refuses (never guesses): encoded `/` `\` NUL or control characters, a raw `\`, a `..` that would climb
    /// above the root, invalid percent escapes, invalid UTF-8, non-ASCII that Unicode compatibility
    /// normalisation (NFKC) would change (look-alikes such as fullwidth letters), and dot segments hidden
    /// behind matrix parameters (`..;x`).
    public static func canonicalize(_ raw: String) throws(Refusal) -> String {
        if raw.isEmpty { return "/" }
        let bytes = Array(raw.utf8)
        guard bytes.first == slash else { throw Refusal(reason: "The path must start with \"/\".") }

        // 1. Decode into units: each byte remembers whether it was percent-encoded.
        let units = try decodeUnits(bytes, inQuery: false)

        // 2. Split on literal slashes (an encoded slash was refused in step 1).
        var segments: [[Unit]] = [[]]
        for unit in units.dropFirst() {
            if unit.byte == slash { segments.append([]) } else { segments[segments.count - 1].append(unit) }
        }

        // 3. Spell each segment canonically and remove dot segments (RFC 3986 §5.2.4), collapsing `//`.
        var stack: [String] = []
        var trailingSlash = false
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            let spelled = try spell(segment)
            switch spelled {
            case "":
                trailingSlash = isLast
            case ".":
                trailingSlash = isLast
            case "..":
                guard stack.popLast() != nil else {
                    throw Refusal(reason: "The path climbs above the connection root with \"..\".")
                }
                trailingSlash = isLast
            default:
                if isMatrixDotSegment(spelled) {
                    throw Refusal(reason: "The path hides a dot segment behind a matrix parameter (\"..;\").")
                }
                stack.append(spelled)
                trailingSlash = false
            }
        }
        if stack.isEmpty { return "/" }
        return "/" + stack.joined(separator: "/") + (trailingSlash ? "/" : "")
    }

    /// The query string, for scanning and forwarding: refuses NUL/control escapes and invalid escapes,
    /// decodes unreserved characters; otherwise unchanged.
    public static func canonicalizeQuery(_ raw: String) throws(Refusal) -> String {
        if raw.isEmpty { return "" }
        let units = try decodeUnits(Array(raw.utf8), inQuery: true)
        var out: [UInt8] = []
        out.reserveCapacity(units.count)
        for unit in units {
            if unit.wasEncoded && !isUnreserved(unit.byte) {
                appendEscape(unit.byte, to: &out)
            } else {
                out.append(unit.byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Units

    /// One byte of the path after percent-decoding, and whether it arrived as `%XX`.
    struct Unit: Equatable {
        var byte: UInt8
        var wasEncoded: Bool
    }

    private static let slash = UInt8(ascii: "/")
    private static let backslash = UInt8(ascii: "\\")
    private static let percent = UInt8(ascii: "%")

    /// Percent-decodes `bytes`, refusing invalid escapes, control characters (raw or encoded) and,
    /// in a path, encoded `/` and any `\`.
    private static func decodeUnits(_ bytes: [UInt8], inQuery: Bool) throws(Refusal) -> [Unit] {
        var units: [Unit] = []
        units.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == percent {
                guard i + 2 < bytes.count, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) else {
                    throw Refusal(reason: "The \(inQuery ? "query" : "path") contains an invalid percent escape.")
                }
                let decoded = hi << 4 | lo
                if isControl(decoded) {
                    throw Refusal(reason: "The \(inQuery ? "query" : "path") contains an encoded control character.")
                }
                if !inQuery && decoded == slash {
                    throw Refusal(reason: "The path contains an encoded slash (%2F).")
                }
                if !inQuery && decoded == backslash {
                    throw Refusal(reason: "The path contains an encoded backslash (%5C).")
                }
                units.append(Unit(byte: decoded, wasEncoded: true))
                i += 3
            } else {
                if isControl(b) {
                    throw Refusal(reason: "The \(inQuery ? "query" : "path") contains a control character.")
                }
                if !inQuery && b == backslash {
                    throw Refusal(reason: "The path contains a backslash.")
                }
                units.append(Unit(byte: b, wasEncoded: false))
                i += 1
            }
        }
        if !inQuery {
            // `%252e`, and `%25%32%65` (the hex digits escaped too): once decoded, a `%` followed by two
            // hex digits is an escape to an upstream that decodes twice; refuse rather than guess.
            for (j, unit) in units.enumerated() where unit.byte == percent && j + 2 < units.count {
                if hexValue(units[j + 1].byte) != nil, hexValue(units[j + 2].byte) != nil {
                    throw Refusal(reason: "The path contains a double-encoded percent escape (%25XX).")
                }
            }
        }
        return units
    }

    /// The canonical spelling of one segment: unreserved bytes literal; sub-delims, `:` and `@`
    /// literal when they arrived literal and upper-case escaped when they arrived escaped; every
    /// other byte (including all non-ASCII, after UTF-8 and NFKC checks) upper-case escaped.
    private static func spell(_ segment: [Unit]) throws(Refusal) -> String {
        // Non-ASCII (raw or escaped, possibly mixed): the whole decoded segment must be valid
        // UTF-8 and NFKC-stable (checked as a whole so a combining mark cannot hide behind ASCII).
        if segment.contains(where: { $0.byte >= 0x80 }) {
            try checkUnicode(segment.map(\.byte))
        }
        var out: [UInt8] = []
        out.reserveCapacity(segment.count)
        for unit in segment {
            if isUnreserved(unit.byte) {
                out.append(unit.byte)
            } else if unit.byte < 0x80 && !unit.wasEncoded && isLiteralPathByte(unit.byte) {
                out.append(unit.byte)
            } else {
                appendEscape(unit.byte, to: &out)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Refuses invalid UTF-8, Unicode control/format characters and anything NFKC would change.
    private static func checkUnicode(_ run: [UInt8]) throws(Refusal) {
        guard let text = String(validating: run, as: UTF8.self) else {
            throw Refusal(reason: "The path is not valid UTF-8.")
        }
        for scalar in text.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator:
                throw Refusal(reason: "The path contains an invisible or control Unicode character.")
            default:
                break
            }
        }
        let normalized = text.precomposedStringWithCompatibilityMapping
        guard normalized.utf8.elementsEqual(text.utf8) else {
            throw Refusal(reason: "The path contains characters that Unicode normalisation would change (look-alikes).")
        }
    }

    /// `.;x`, `..;x`, `..%3Bx` and the like: a dot segment followed by a matrix parameter, which
    /// servers such as Tomcat resolve as `..`.
    private static func isMatrixDotSegment(_ spelled: String) -> Bool {
        let head: Substring
        if let semicolon = spelled.firstIndex(of: ";") {
            head = spelled[..<semicolon]
        } else if let encoded = spelled.range(of: "%3B") {
            head = spelled[..<encoded.lowerBound]
        } else {
            return false
        }
        return head == "." || head == ".."
    }

    // MARK: - Character classes

    /// RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~".
    static func isUnreserved(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
            || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E
    }

    /// Sub-delims, `:` and `@`: legal in a path segment as themselves (RFC 3986 `pchar`).
    private static func isLiteralPathByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
             UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
             UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: "@"):
            return true
        default:
            return false
        }
    }

    private static func isControl(_ b: UInt8) -> Bool { b < 0x20 || b == 0x7F }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    private static func appendEscape(_ b: UInt8, to out: inout [UInt8]) {
        out.append(percent)
        out.append(hexDigits[Int(b >> 4)])
        out.append(hexDigits[Int(b & 0x0F)])
    }
}
