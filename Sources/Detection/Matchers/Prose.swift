/// Secrets handed over in prose, the way agents and people write them in chat and tickets:
/// "I found the Duo secret key in the old notes, it is 3Zsx…", "here is the token you asked
/// for: ghp_…", "the following API key:\n\n```\n…\n```".
///
/// A credential noun (`token`, `key`, `secret`, `password`, `passphrase`, `credentials`,
/// each a whole word in running text, not a key name) followed, within ``window`` bytes and
/// with only ordinary words and punctuation in between, by one word that looks like a secret.
///
/// Guarantees: pure; never fires on a key name in code or data (`"token":`, `max_tokens`,
/// `API_KEY=` are the assignment rules'); the value is the first non-word after the noun, and
/// it must have letters and digits (or three character classes), ≥ 12 bytes, entropy
/// ≥ 3.0 bits per byte, and not be a placeholder, URL, path or e-mail address.
enum ProseMatcher {
    static let window = 240
    static let maxWords = 24
    /// Whether `p[s..<e]` is one of the credential nouns (any case; no allocation).
    static func isNoun(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> Bool {
        func eq(_ lit: StaticString) -> Bool {
            guard lit.utf8CodeUnitCount == e - s else { return false }
            return lit.withUTF8Buffer { b in
                for i in 0..<b.count where lowerASCII(p[s + i]) != b[i] { return false }
                return true
            }
        }
        switch e - s {
        case 3: return eq("key")
        case 4: return eq("keys")
        case 5: return eq("token")
        case 6: return eq("tokens") || eq("secret") || eq("passwd")
        case 7: return eq("secrets")
        case 8: return eq("password")
        case 9: return eq("passwords")
        case 10: return eq("passphrase") || eq("credential")
        case 11: return eq("credentials")
        default: return false
        }
    }
    static let letters = ByteSet("A-Za-z")
    static let wordBytes = ByteSet("A-Za-z_")
    /// Bytes that delimit a word in prose (quotes and backticks included: values are often fenced).
    static let wordStop = ByteSet(" \t\r\n\"'`")
    /// Punctuation allowed between the noun and the value.
    static let link = ByteSet(",.:;!?()#*-")

    /// The cheap part of `run`'s word test, without statics: the word through the hit ends at a
    /// blank or `:` `,` `.` (not `"`, `_`, `=`: a key name), within 16 bytes.
    @inline(__always)
    static func plausible(_ p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Bool {
        var we = ke
        let n = p.count
        while we < n && we - ke < 16 && ((p[we] | 0x20) >= 97 && (p[we] | 0x20) <= 122) { we += 1 }
        guard we < n else { return false }
        let c = p[we]
        return c == 32 || c == 10 || c == 58 || c == 44 || c == 46
    }

    static func run(_ rule: Rule, p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Match? {
        let n = p.count
        // The whole word around the hit (`SECRET_KEY` counts as its last part, `key`).
        var ws = ks, we = ke
        while ws > 0 && ke - ws < 32 && wordBytes.contains(p[ws - 1]) { ws -= 1 }
        while we < n && we - ks < 16 && wordBytes.contains(p[we]) { we += 1 }
        // Running text: a blank (or `(`) before, a blank or link punctuation after.
        guard ws > 0, p[ws - 1] == 32 || p[ws - 1] == 10 || p[ws - 1] == UInt8(ascii: "("), we < n else { return nil }
        guard p[we] == 32 || p[we] == 10 || p[we] == UInt8(ascii: ":") || p[we] == UInt8(ascii: ",") || p[we] == UInt8(ascii: ".") else { return nil }
        // `  token: …` / `- key: …` at the start of a line is a YAML key, not a sentence.
        if p[we] == UInt8(ascii: ":") {
            var b = ws
            while b > 0 && (p[b - 1] == 32 || p[b - 1] == UInt8(ascii: "-")) { b -= 1 }
            if b == 0 || p[b - 1] == 10 || Scan.isEscapeLetter(p, b - 1) { return nil }
        }
        var ns = we
        while ns > ws && letters.contains(p[ns - 1]) { ns -= 1 }
        guard isNoun(p, ns, we) else { return nil }
        // `kind: Secret`, `type: token`: a value in data, not a noun in a sentence.
        var b = ws - 1
        while b > 0 && p[b] == 32 { b -= 1 }
        if p[b] == UInt8(ascii: ":") || p[b] == UInt8(ascii: "=") { return nil }
        // "the public key is …", "publishable key": named as not secret.
        if previousWordIs(p, before: ws, ["public", "publishable"]) { return nil }
        var i = we
        let limit = min(n, we + window)
        var words = 0
        /// The last non-blank byte passed, and whether the last word was a copula (`is`, `are`,
        /// `was`, `below`...): a line break continues the sentence only after one of them or a
        /// colon ("the following API key:\n\n```\n…", "the correct one is\n\n    …"); otherwise
        /// the next line is another record (a log line, a paragraph).
        var last: UInt8 = p[we]
        var copula = false
        while i < limit {
            let lineBreak = p[i] == 10 || (p[i] == 92 && i + 1 < n && p[i + 1] == UInt8(ascii: "n"))
            if lineBreak && !copula && last != UInt8(ascii: ":") && last != UInt8(ascii: "`") { return nil }
            // Skip blanks, quotes, backticks and link punctuation; a JSON-escaped newline counts as a blank.
            if wordStop.contains(p[i]) || link.contains(p[i]) {
                if p[i] != 32 && p[i] != 9 && p[i] != 10 && p[i] != 13 { last = p[i] }
                i += 1
                continue
            }
            if p[i] == 92, i + 1 < n, p[i + 1] == UInt8(ascii: "n") || p[i + 1] == UInt8(ascii: "t") { i += 2; continue }
            var e = i
            while e < limit && !wordStop.contains(p[e]) && p[e] != 92 { e += 1 }
            // Trailing sentence punctuation is not part of the value.
            var ve = e
            while ve > i && (p[ve - 1] == UInt8(ascii: ".") || p[ve - 1] == UInt8(ascii: ",") || p[ve - 1] == UInt8(ascii: ";")
                             || p[ve - 1] == UInt8(ascii: ":") || p[ve - 1] == UInt8(ascii: "?")) { ve -= 1 }
            if isOrdinaryWord(p, i, ve) {
                words += 1
                guard words <= maxWords else { return nil }
                last = p[e - 1]
                copula = ve == e && isCopula(p, i, ve)
                i = e
                continue
            }
            let v = Scan.bytes(p, i, ve)
            guard looksSecret(v) else { return nil }
            return Match(start: i, end: ve, secret: v, confidence: rule.confidence)
        }
        return nil
    }

    /// `is`, `are`, `was`, `were`, `be`, `below`, `follows`, `here` (any case): words after which a
    /// value may start on the next line.
    static func isCopula(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> Bool {
        let w = p[s..<e].map(lowerASCII)
        switch w.count {
        case 2: return w == Array("is".utf8) || w == Array("be".utf8)
        case 3: return w == Array("are".utf8) || w == Array("was".utf8)
        case 4: return w == Array("were".utf8) || w == Array("here".utf8)
        case 5: return w == Array("below".utf8)
        case 7: return w == Array("follows".utf8)
        default: return false
        }
    }

    /// A word of running text: letters with at most an apostrophe or inner hyphen, or a short number.
    static func isOrdinaryWord(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> Bool {
        guard e > s else { return true }
        if e - s <= 4 && (s..<e).allSatisfy({ isDigit(p[$0]) }) { return true }
        var letters = 0
        for i in s..<e {
            let c = p[i]
            if (c | 0x20) >= 97 && (c | 0x20) <= 122 { letters += 1; continue }
            if c == UInt8(ascii: "'") || c == UInt8(ascii: "-") || c == UInt8(ascii: "#") || c == UInt8(ascii: "!") || c == UInt8(ascii: ")") || c == UInt8(ascii: "(") { continue }
            return false
        }
        return letters > 0 && e - s <= 24
    }

    /// The lowercase word that ends (with blanks between) right before `before`.
    static func previousWordIs(_ p: UnsafeBufferPointer<UInt8>, before: Int, _ words: [String]) -> Bool {
        var e = before
        while e > 0 && p[e - 1] == 32 { e -= 1 }
        var s = e
        while s > 0 && e - s < 16 && letters.contains(p[s - 1]) { s -= 1 }
        guard e > s else { return false }
        let w = String(decoding: p[s..<e].map(lowerASCII), as: UTF8.self)
        return words.contains(w)
    }

    static func looksSecret(_ v: [UInt8]) -> Bool {
        guard v.count >= 12, v.count <= 1024 else { return false }
        if Placeholders.isPlaceholder(v) || GenericMatcher.explainedElsewhere(v) { return false }
        // `$VAR`, `actions/checkout@v4`, `user@host`: references, not values.
        if v.first == UInt8(ascii: "$") || v.contains(UInt8(ascii: "@")) || NonSecrets.isIdentifierValue(v, hex: false) { return false }
        var hasLetter = false, hasDigit = false
        for b in v {
            if isDigit(b) { hasDigit = true } else if (b | 0x20) >= 97 && (b | 0x20) <= 122 { hasLetter = true }
        }
        guard (hasLetter && hasDigit) || Entropy.classCount(v) >= 3 else { return false }
        return Entropy.shannon(v) >= 3.0
    }
}
