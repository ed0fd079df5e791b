/// Kubernetes `Secret` manifests: every value under `data:` (base64) and `stringData:` (plain),
/// in YAML (block mappings, also flow `{k: v}`) and JSON (`kubectl get secret -o json`, whose
/// keys are sorted, so `data` comes before `kind`).
///
/// Guarantees: triggered only by a `kind` key whose value is exactly `Secret`; reads the
/// manifest's document (bounded by YAML `---` separators and by 16 KiB before / 64 KiB after
/// the hit); reports each value's span once, never keys; `data` values must be valid base64
/// and decode to at least 4 bytes; placeholders, values under keys that name identifiers
/// (`username`, `DUO_HOST`, `REQUEST_ID`, certificates: `NonSecrets.isIdentifierKey`) and, under
/// keys that do not name a secret, values shaped like identifiers (digests, UUIDs, versions,
/// paths, hosts: `NonSecrets.isIdentifierValue`) or short or low-entropy ones are skipped.
enum KubernetesSecretMatcher {
    static let before = 16 << 10
    static let after = 64 << 10
    static let kindKey: [UInt8] = Array("kind".utf8)
    static let dataKey: [UInt8] = Array("data".utf8)
    static let stringDataKey: [UInt8] = Array("stringdata".utf8)
    /// Key-name fragments that mark a value as secret whatever its shape (`RAILS_MASTER_KEY`
    /// holds 32 hex digits, as an MD5 would).
    static let secretKeyWords: [[UInt8]] = ["key", "secret", "token", "pass", "pwd", "cred", "auth", "license", "dockerconfig"].map { Array($0.utf8) }

    /// `within`: the part of `p` the document may span (`MatchWork.neighbourBounds`: between the
    /// `kind: Secret` hits before and after this one).
    static func run(_ rule: Rule, p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int, within: Range<Int>? = nil, _ emit: (Match) -> Void) {
        guard isKindSecret(p, ks: ks, ke: ke) else { return }
        let n = p.count
        // The document: from the previous `---` line (or the window start) to the next one.
        var lo = max(within?.lowerBound ?? 0, ks - before)
        if let s = lastSeparator(p, from: lo, to: ks) { lo = s }
        var hi = min(within?.upperBound ?? n, n, ke + after)
        if let e = Scan.find(p, Array("\n---".utf8), from: ke, to: hi) { hi = e }
        // In a `kind: List` (`items:` of `- apiVersion: …` entries), only the Secret's own item.
        if let item = listItem(p, kindAt: ks, lo: lo, hi: hi) { (lo, hi) = (item.lowerBound, item.upperBound) }
        var i = lo
        while i < hi {
            // A key `data` or `stringData`: non-identifier before, then quotes, `:`.
            let c = lowerASCII(p[i])
            guard c == UInt8(ascii: "d") || c == UInt8(ascii: "s"),
                  i == 0 || !ByteSet.ident.contains(p[i - 1]) || Scan.isEscapeLetter(p, i - 1) else { i += 1; continue }
            let plain: Bool
            let keyEnd: Int
            if Scan.hasPrefix(p, i, dataKey) { plain = false; keyEnd = i + 4 }
            else if Scan.hasPrefixCI(p, i, stringDataKey) { plain = true; keyEnd = i + 10 }
            else { i += 1; continue }
            guard keyEnd < hi, !ByteSet.ident.contains(p[keyEnd]) else { i = keyEnd; continue }
            var j = keyEnd
            while j < hi && (p[j] == 34 || p[j] == 39) { j += 1 }
            while j < hi && (p[j] == 32 || p[j] == 9) { j += 1 }
            guard j < hi, p[j] == UInt8(ascii: ":") else { i = keyEnd; continue }
            j += 1
            while j < hi && (p[j] == 32 || p[j] == 9) { j += 1 }
            if j < hi && p[j] == UInt8(ascii: "{") {
                i = flow(rule, p, from: j + 1, to: hi, plain: plain, emit)
            } else if j < hi && (p[j] == 13 || p[j] == UInt8(ascii: "#") || newline(p, j, hi) > 0) {
                i = block(rule, p, keyLine: i, from: j, to: hi, plain: plain, emit)
            } else {
                i = j
            }
        }
    }

    /// `kind` <quotes> `:` <quotes> `Secret` <quote or end of value>, around the hit on `secret`.
    static func isKindSecret(_ p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Bool {
        guard p[ks] == UInt8(ascii: "S") else { return false }
        if ke < p.count && (ByteSet.ident.contains(p[ke]) || p[ke] == UInt8(ascii: "/")) { return false }
        var i = ks
        var k = 0
        while i > 0 && k < 4 && (p[i - 1] == 34 || p[i - 1] == 39 || p[i - 1] == 32) { i -= 1; k += 1 }
        guard i > 0, p[i - 1] == UInt8(ascii: ":") else { return false }
        i -= 1
        k = 0
        while i > 0 && k < 4 && (p[i - 1] == 34 || p[i - 1] == 39 || p[i - 1] == 32 || p[i - 1] == 92) { i -= 1; k += 1 }
        guard i >= 4, Scan.hasPrefix(p, i - 4, kindKey) else { return false }
        return i == 4 || !ByteSet.ident.contains(p[i - 5]) || Scan.isEscapeLetter(p, i - 5)
    }

    /// The start of the line holding `i` (after a newline byte or a JSON `\n` escape), not before `lo`.
    static func lineStart(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, lo: Int) -> Int {
        var ls = i
        while ls > lo && p[ls - 1] != 10 && !(ls - 2 >= lo && p[ls - 1] == UInt8(ascii: "n") && p[ls - 2] == 92 && !Scan.isEscapeLetter(p, ls - 2)) { ls -= 1 }
        return ls
    }

    /// The column where a line's content starts, counting a leading `- ` (a sequence entry) as
    /// indentation, and whether the line starts a sequence entry; nil for a blank line.
    static func contentColumn(_ p: UnsafeBufferPointer<UInt8>, line ls: Int, hi: Int) -> (column: Int, dash: Bool)? {
        var i = ls
        var dash = false
        while i < hi && (p[i] == 32 || (p[i] == UInt8(ascii: "-") && i + 1 < hi && p[i + 1] == 32)) {
            if p[i] == UInt8(ascii: "-") { dash = true }
            i += 1
        }
        guard i < hi, newline(p, i, hi) == 0, p[i] != 13 else { return nil }
        return (i - ls, dash)
    }

    /// When the `kind` key at `kindAt` belongs to an entry of a YAML sequence (a `kind: List`'s
    /// `items`), that entry's byte range: from its `- ` line to the next line indented less than
    /// the entry's content. Nil for a top-level manifest (the document bounds it).
    static func listItem(_ p: UnsafeBufferPointer<UInt8>, kindAt ks: Int, lo: Int, hi: Int) -> Range<Int>? {
        var ls = lineStart(p, ks, lo: lo)
        guard let kindLine = contentColumn(p, line: ls, hi: hi), kindLine.column > 0 else { return nil }
        let column = kindLine.column
        // Back to the entry's `- ` line: lines at the same column belong to it.
        var start = ls
        var found = kindLine.dash
        while !found && ls > lo {
            var prev = ls - 1
            if prev > lo && p[prev] == UInt8(ascii: "n") && p[prev - 1] == 92 { prev -= 1 }
            ls = lineStart(p, prev, lo: lo)
            guard let c = contentColumn(p, line: ls, hi: hi) else { continue }
            if c.column < column { return nil }
            if c.column == column {
                start = ls
                found = c.dash
            }
        }
        guard found else { return nil }
        // Forward to the first line indented less than the entry's content, or the next entry.
        var i = ks
        while i < hi {
            while i < hi && newline(p, i, hi) == 0 { i += 1 }
            guard i < hi else { break }
            let next = i + newline(p, i, hi)
            if let c = contentColumn(p, line: next, hi: hi), c.column < column || (c.column == column && c.dash) {
                return start..<i
            }
            i = next
        }
        return start..<hi
    }

    static func lastSeparator(_ p: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
        var i = to - 4
        while i >= from {
            if p[i] == 10 && p[i + 1] == 45 && p[i + 2] == 45 && p[i + 3] == 45 { return i + 4 }
            i -= 1
        }
        return nil
    }

    /// The length of the line break at `i`: 1 for a newline byte, 2 for a JSON `\n` escape (a
    /// manifest inside a JSON string, as tool calls carry it, is not decoded first: its only
    /// escapes are inert), 0 otherwise.
    @inline(__always)
    static func newline(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, _ to: Int) -> Int {
        if p[i] == 10 { return 1 }
        if p[i] == 92 && i + 1 < to && p[i + 1] == UInt8(ascii: "n") && !Scan.isEscapeLetter(p, i) { return 2 }
        return 0
    }

    /// A YAML block mapping under the key at `keyLine`: lines indented deeper than the key.
    /// Returns where parsing stopped.
    static func block(_ rule: Rule, _ p: UnsafeBufferPointer<UInt8>, keyLine: Int, from: Int, to: Int, plain: Bool,
                      _ emit: (Match) -> Void) -> Int {
        let ls = lineStart(p, keyLine, lo: 0)
        var keyIndent = 0
        while ls + keyIndent < keyLine && (p[ls + keyIndent] == 32 || p[ls + keyIndent] == UInt8(ascii: "-")) { keyIndent += 1 }
        var i = from
        while i < to && newline(p, i, to) == 0 { i += 1 }
        // Inside a JSON string (escaped line breaks), an unescaped quote ends the manifest.
        let escaped = i < to && newline(p, i, to) == 2
        while i < to {
            i += newline(p, i, to) // past the line break
            let lineStart = i
            var indent = 0
            while i < to && p[i] == 32 { i += 1; indent += 1 }
            var lineEnd = i
            while lineEnd < to && newline(p, lineEnd, to) == 0 && !(escaped && p[lineEnd] == 34 && p[lineEnd - 1] != 92) { lineEnd += 1 }
            if i >= lineEnd || p[i] == 13 || p[i] == UInt8(ascii: "#") {  // blank or comment
                if lineEnd >= to || newline(p, lineEnd, to) == 0 { return lineEnd }
                i = lineEnd; continue
            }
            if indent <= keyIndent { return lineStart }
            if let scalar = blockScalar(p, entry: i, lineEnd: lineEnd, indent: indent, to: to) {
                // `key: |` (or `|-`, `>`...): the value is on the lines below, indented deeper.
                if scalar.lines.count == 1 || !plain {
                    entry(rule, p, from: i, to: lineEnd, plain: plain, value: scalar.lines, emit)
                }
                // Several plain lines (a config file held in the Secret) are scanned as text.
                if scalar.next >= to || newline(p, scalar.next, to) == 0 { return scalar.next }
                i = scalar.next
                continue
            }
            entry(rule, p, from: i, to: lineEnd, plain: plain, emit)
            if lineEnd >= to || newline(p, lineEnd, to) == 0 { return lineEnd } // the enclosing JSON string ended
            i = lineEnd
        }
        return i
    }

    /// When the entry at `p[from..<lineEnd]` is `key: |` or `key: >` (with an optional chomping
    /// or indentation indicator and comment), the content lines below it (those indented deeper
    /// than `indent`: each line's content span, blanks skipped) and where they end (at a line
    /// break, or `to`); nil when the entry is not a block scalar or has no content.
    static func blockScalar(_ p: UnsafeBufferPointer<UInt8>, entry from: Int, lineEnd: Int, indent: Int, to: Int)
        -> (lines: [Range<Int>], next: Int)? {
        var i = from
        while i < lineEnd && p[i] != UInt8(ascii: ":") { i += 1 }
        guard i < lineEnd else { return nil }
        i += 1
        while i < lineEnd && (p[i] == 32 || p[i] == 9) { i += 1 }
        guard i < lineEnd, p[i] == UInt8(ascii: "|") || p[i] == UInt8(ascii: ">") else { return nil }
        i += 1
        while i < lineEnd && (p[i] == UInt8(ascii: "-") || p[i] == UInt8(ascii: "+") || ByteSet.digits.contains(p[i])) { i += 1 }
        while i < lineEnd && (p[i] == 32 || p[i] == 9 || p[i] == 13) { i += 1 }
        guard i == lineEnd || p[i] == UInt8(ascii: "#") else { return nil }
        var lines: [Range<Int>] = []
        var next = lineEnd
        var j = lineEnd
        while j < to {
            let nl = newline(p, j, to)
            guard nl > 0 else { break }
            var k = j + nl
            var deeper = 0
            while k < to && p[k] == 32 { k += 1; deeper += 1 }
            var e = k
            while e < to && newline(p, e, to) == 0 && !(p[e] == 34 && p[e - 1] != 92) { e += 1 }
            var ce = e
            while ce > k && (p[ce - 1] == 32 || p[ce - 1] == 13) { ce -= 1 }
            if ce == k {  // a blank line belongs to the scalar only if more content follows
                j = e
                if e >= to || newline(p, e, to) == 0 { break }
                continue
            }
            guard deeper > indent else { break }
            lines.append(k..<ce)
            next = e
            j = e
            if e >= to || newline(p, e, to) == 0 { break }
        }
        return lines.isEmpty ? nil : (lines, next)
    }

    /// `{ "k": "v", ... }` (JSON or YAML flow). Returns the position after the closing brace.
    static func flow(_ rule: Rule, _ p: UnsafeBufferPointer<UInt8>, from: Int, to: Int, plain: Bool, _ emit: (Match) -> Void) -> Int {
        var i = from
        var start = from
        var quote: UInt8 = 0
        while i < to {
            let c = p[i]
            if quote != 0 {
                if c == 92 { i += 2; continue }
                if c == quote { quote = 0 }
            } else if c == 34 || c == 39 {
                quote = c
            } else if c == UInt8(ascii: ",") || c == UInt8(ascii: "}") {
                entry(rule, p, from: start, to: i, plain: plain, emit)
                if c == UInt8(ascii: "}") { return i + 1 }
                start = i + 1
            }
            i += 1
        }
        return i
    }

    /// One `key: value` entry in `p[from..<to]`; `value`: the content lines of a block scalar
    /// (`key: |`), which then are the value (joined without their line breaks and indentation).
    static func entry(_ rule: Rule, _ p: UnsafeBufferPointer<UInt8>, from: Int, to: Int, plain: Bool,
                      value lines: [Range<Int>] = [], _ emit: (Match) -> Void) {
        var i = from
        while i < to && (ByteSet.space.contains(p[i]) || p[i] == 34 || p[i] == 39) { i += 1 }
        let ks = i
        while i < to && ByteSet.ident.contains(p[i]) { i += 1 }
        let ke = i
        guard ke > ks else { return }
        while i < to && (p[i] == 34 || p[i] == 39 || p[i] == 32) { i += 1 }
        guard i < to, p[i] == UInt8(ascii: ":") else { return }
        i += 1
        while i < to && (p[i] == 32 || p[i] == 9) { i += 1 }
        var vs = i, ve = to
        while ve > vs && ByteSet.space.contains(p[ve - 1]) { ve -= 1 }
        var joined: [UInt8]? = nil
        if let first = lines.first, let last = lines.last {
            vs = first.lowerBound
            ve = last.upperBound
            joined = lines.count == 1 ? nil : lines.flatMap { p[$0] }
        } else if ve > vs + 1 && p[vs] == 92 && p[vs + 1] == 34 {
            // `\"value\"` inside a JSON string.
            vs += 2
            var e = vs
            while e < ve && p[e] != 92 { e += 1 }
            ve = e
        } else if ve > vs && (p[vs] == 34 || p[vs] == 39) {
            let q = p[vs]
            vs += 1
            var e = vs
            while e < ve && p[e] != q { if p[e] == 92 { e += 1 }; e += 1 }
            ve = min(e, ve)
        } else {
            // A trailing comment ends a plain scalar.
            var e = vs
            while e < ve && !(p[e] == UInt8(ascii: "#") && e > vs && p[e - 1] == 32) { e += 1 }
            ve = e
            while ve > vs && p[ve - 1] == 32 { ve -= 1 }
        }
        guard ve - vs >= 4 else { return }
        let key = p[ks..<ke].map(lowerASCII)
        if NonSecrets.isIdentifierKey(p[ks..<ke]) { return }
        let secretKey = secretKeyWords.contains { Placeholders.contains(key, $0) } && !Placeholders.contains(key, Array("author".utf8))
        if joined == nil && (p[vs] == UInt8(ascii: "|") || p[vs] == UInt8(ascii: ">")) { return } // a block scalar without content
        let raw = joined ?? Array(p[vs..<ve])
        let secret: [UInt8]
        if plain {
            secret = raw
        } else {
            // `data` values are base64, folded over several lines in a block scalar.
            guard raw.allSatisfy({ ByteSet.base64.contains($0) || $0 == UInt8(ascii: "=") }),
                  let d = Base64.decode(raw), d.count >= 4 else { return }
            secret = d
        }
        // A value may itself be base64 text (`SETTINGS_B64`, base64 twice): judge it by what it says.
        var shape = secret
        for _ in 0..<2 {
            guard shape.count >= 12, shape.allSatisfy({ ByteSet.base64.contains($0) || $0 == UInt8(ascii: "=") }),
                  let d = Base64.decode(shape), Base64.looksLikeText(d) else { break }
            shape = d
        }
        if Placeholders.isPlaceholder(shape) || Placeholders.isPlaceholder(raw) || NonSecrets.isPublicOrDigest(shape) { return }
        if !secretKey && (shape.count < 8 || NonSecrets.isIdentifierValue(shape) || Entropy.shannon(shape) < 3.0) { return }
        emit(Match(start: vs, end: ve, secret: secret, confidence: rule.confidence))
    }
}
