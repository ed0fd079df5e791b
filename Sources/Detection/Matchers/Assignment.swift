/// Parses `<key> <op> <value>` around a keyword hit: JSON (`"key": "v"`, also with
/// escaped quotes), YAML (`key: v`), env (`KEY=v`), CLI flags (`--key v`, `--key=v`),
/// headers (`X-Key: v`), XML (`<key>v</key>`), Ruby (`key => "v"`), and name/value pairs
/// (`{"name": "DB_PASSWORD", "value": "v"}`, YAML `- name: X` / `value: v`).
struct Assignment {
    var keyStart: Int
    var keyEnd: Int
    var valueStart: Int
    var valueEnd: Int
    var quoted: Bool
    /// For bare values: the byte following the value (to reject code like `f(x)`).
    var next: UInt8

    static let maskOpen: [UInt8] = Array("[MASKED:".utf8)
    static let quoteSet = ByteSet("\"'`\\\\")
    static let bareStop = ByteSet(" \t\r\n,;&\"'`(){}[]<>\\\\|")

    /// The key name around a keyword hit (identifier bytes, at most 64 on each side); nil
    /// when it is longer than that.
    @inline(__always)
    static func keyBounds(_ p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> (start: Int, end: Int)? {
        let n = p.count
        let ident = ByteSet.ident // one `swift_once` check, not one per byte
        var keyStart = ks
        while keyStart > 0 && ks - keyStart < 64 && ident.contains(p[keyStart - 1]) { keyStart -= 1 }
        var keyEnd = ke
        while keyEnd < n && keyEnd - ke < 64 && ident.contains(p[keyEnd]) { keyEnd += 1 }
        if keyStart > 0 && ident.contains(p[keyStart - 1]) { return nil }
        if keyEnd < n && ident.contains(p[keyEnd]) { return nil }
        return (keyStart, keyEnd)
    }

    static func parse(_ p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Assignment? {
        let n = p.count
        guard let (keyStart, keyEnd) = keyBounds(p, ks: ks, ke: ke) else { return nil }
        // The rule id inside an existing mask (`[MASKED:generic-password:…]`) is not a key.
        if Scan.hasPrefix(p, keyStart - 8, maskOpen) { return nil }
        let dashed = keyStart < n && p[keyStart] == UInt8(ascii: "-")
        let xml = keyStart > 0 && p[keyStart - 1] == UInt8(ascii: "<")
        if let a = parseValue(p, keyStart: keyStart, keyEnd: keyEnd, from: keyEnd, dashed: dashed, xml: xml) { return a }
        // Name/value pair: the key is a quoted value followed by a "value" field.
        var i = keyEnd
        var k = 0
        while i < n && k < 48 && (Self.quoteSet.contains(p[i]) || p[i] == 44 || ByteSet.space.contains(p[i]) || p[i] == UInt8(ascii: "-")) { i += 1; k += 1 }
        while i < n && Self.quoteSet.contains(p[i]) { i += 1 }
        if Scan.hasPrefixCI(p, i, Array("value".utf8)), !(i + 5 < n && ByteSet.ident.contains(p[i + 5])) {
            return parseValue(p, keyStart: keyStart, keyEnd: keyEnd, from: i + 5, dashed: false, xml: false)
        }
        return nil
    }

    private static func parseValue(_ p: UnsafeBufferPointer<UInt8>, keyStart: Int, keyEnd: Int, from: Int, dashed: Bool, xml: Bool) -> Assignment? {
        let n = p.count
        var i = from
        var k = 0
        while i < n && k < 6 && quoteSet.contains(p[i]) { i += 1; k += 1 }
        var spaces = 0
        while i < n && spaces < 8 && (p[i] == 32 || p[i] == 9) { i += 1; spaces += 1 }
        guard i < n else { return nil }
        let c = p[i]
        if c == UInt8(ascii: ":") {
            i += 1
            if i < n && (p[i] == UInt8(ascii: "=") || p[i] == UInt8(ascii: ":")) { i += 1 }
        } else if c == UInt8(ascii: "=") {
            i += 1
            if i < n && (p[i] == UInt8(ascii: ">") || p[i] == UInt8(ascii: "=")) { i += 1 }
        } else if c == UInt8(ascii: ">") && xml {
            i += 1
        } else if dashed && spaces > 0 {
            // `--password value`
        } else {
            return nil
        }
        spaces = 0
        while i < n && spaces < 8 && (p[i] == 32 || p[i] == 9) { i += 1; spaces += 1 }
        var quote: UInt8 = 0
        var escapedQuote = false
        k = 0
        while i < n && k < 6 && quoteSet.contains(p[i]) {
            if p[i] == 92 { escapedQuote = true } else { quote = p[i] }
            i += 1; k += 1
        }
        let vs = i
        var ve = i
        let limit = min(n, vs + 2048)
        if quote != 0 {
            while ve < limit {
                let b = p[ve]
                if b == quote || b == 10 || b == 13 { break }
                if b == 92 && escapedQuote { break }
                if b == 92 && ve + 1 < limit && !escapedQuote { ve += 2; continue }
                ve += 1
            }
            if ve > limit { ve = limit }
            return Assignment(keyStart: keyStart, keyEnd: keyEnd, valueStart: vs, valueEnd: ve, quoted: true, next: ve < n ? p[ve] : 0)
        }
        while ve < limit && !bareStop.contains(p[ve]) { ve += 1 }
        if xml { var e = vs; while e < ve && p[e] != UInt8(ascii: "<") { e += 1 }; ve = e }
        return Assignment(keyStart: keyStart, keyEnd: keyEnd, valueStart: vs, valueEnd: ve, quoted: false, next: ve < n ? p[ve] : 0)
    }
}

/// Contextual provider rules: the key contains the keyword and the value matches the rule's pattern in full.
enum ContextMatcher {
    /// `read`: the length of the value parsed (0 when none), for `MatchWork`.
    static func run(_ rule: Rule, _ pattern: TokenPattern, p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int, read: inout Int) -> Match? {
        guard let a = Assignment.parse(p, ks: ks, ke: ke) else { return nil }
        read = a.valueEnd - a.valueStart
        guard a.valueEnd > a.valueStart else { return nil }
        guard let end = pattern.match(p, at: a.valueStart, limit: a.valueEnd), end == a.valueEnd else { return nil }
        let v = Scan.bytes(p, a.valueStart, a.valueEnd)
        if rule.placeholderCheck && Placeholders.isPlaceholder(v) { return nil }
        if rule.minEntropy > 0 && Entropy.shannon(v) < rule.minEntropy { return nil }
        return Match(start: a.valueStart, end: a.valueEnd, secret: v, confidence: rule.confidence)
    }
}

/// Generic `password` / `secret` / `token` / `api_key` assignments, gated by key name,
/// value shape, entropy and stop-words.
enum GenericMatcher {
    static let tokenExclusions: [String] = ["pagetoken", "nexttoken", "continuationtoken", "synctoken", "cursortoken",
                                            "maxtoken", "resumetoken", "paginationtoken", "starttoken", "prevtoken",
                                            "previoustoken", "lasttoken", "tokentoken", "cancellationtoken", "stoptoken",
                                            "eostoken", "bostoken", "padtoken", "unktoken", "septoken", "clstoken", "masktoken"]
    static let keySuffixes: [String] = ["apikey", "accesskey", "secretkey", "privatekey", "authkey", "masterkey", "encryptionkey",
                                        "signingkey", "clientkey", "appkey", "accountkey", "sharedkey", "servicekey",
                                        "subscriptionkey", "webhookkey", "developerkey", "consumerkey", "hmackey", "licensekey", "apisecretkey"]

    static let exclusionBytes: [[UInt8]] = tokenExclusions.map { Array($0.utf8) }
    static let keySuffixBytes: [[UInt8]] = keySuffixes.map { Array($0.utf8) }
    static let passwordSuffixes: [[UInt8]] = ["password", "passwd", "passphrase", "pwd"].map { Array($0.utf8) }
    static let secretSuffixes: [[UInt8]] = ["secret", "credential", "credentials"].map { Array($0.utf8) }
    static let tokenSuffix: [UInt8] = Array("token".utf8)
    static let passComponent: [UInt8] = Array("pass".utf8)

    @inline(__always)
    static func hasSuffix(_ a: UnsafeMutableBufferPointer<UInt8>, _ n: Int, _ s: [UInt8]) -> Bool {
        let m = s.count
        guard n >= m else { return false }
        var i = 0
        while i < m { if a[n - m + i] != s[i] { return false }; i += 1 }
        return true
    }

    /// Classifies a key name; nil when it is not a secret-bearing key.
    static func family(_ p: UnsafeBufferPointer<UInt8>, _ a: Assignment) -> GenericKind? {
        family(p, keyStart: a.keyStart, keyEnd: a.keyEnd)
    }

    /// Classifies `p[keyStart..<keyEnd]` (normalized in a stack buffer: no allocation).
    static func family(_ p: UnsafeBufferPointer<UInt8>, keyStart: Int, keyEnd: Int) -> GenericKind? {
        guard keyEnd - keyStart <= 64 else { return nil }
        // The normalized name ends with the last two alphanumeric bytes, lower-cased: when they
        // are not the last two bytes of some suffix below (`rd wd se ss ls en ey et al`), no
        // suffix can match and nothing is normalized (`max_tokens`, `keyboard`, `author`).
        var b = keyEnd - 1
        while b >= keyStart && !isAlnum(p[b]) { b -= 1 }
        var a = b - 1
        while a >= keyStart && !isAlnum(p[a]) { a -= 1 }
        guard a >= keyStart else { return nil }
        switch (lowerASCII(p[a]), lowerASCII(p[b])) {
        case (UInt8(ascii: "r"), UInt8(ascii: "d")), (UInt8(ascii: "w"), UInt8(ascii: "d")), (UInt8(ascii: "s"), UInt8(ascii: "e")),
             (UInt8(ascii: "s"), UInt8(ascii: "s")), (UInt8(ascii: "l"), UInt8(ascii: "s")), (UInt8(ascii: "e"), UInt8(ascii: "n")),
             (UInt8(ascii: "e"), UInt8(ascii: "y")), (UInt8(ascii: "e"), UInt8(ascii: "t")), (UInt8(ascii: "a"), UInt8(ascii: "l")): break
        default: return nil
        }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { norm -> GenericKind? in
            var count = 0
            var lastStart = 0
            for i in keyStart..<keyEnd {
                let c = p[i]
                if isAlnum(c) {
                    // camelCase boundary or separator starts a new component
                    if c >= 65 && c <= 90 && i > keyStart && p[i - 1] >= 97 && p[i - 1] <= 122 { lastStart = count }
                    norm[count] = lowerASCII(c)
                    count += 1
                } else {
                    lastStart = count
                }
            }
            guard count > 0, count <= 48 else { return nil }
            // Every suffix below ends in one of a few bytes, so the last byte picks the lists
            // worth comparing (the same answers in the same order: a suffix can only match
            // a name ending in its own last byte). Most keyword hits end in none of them.
            switch norm[count - 1] {
            case UInt8(ascii: "d"), UInt8(ascii: "e"): // password, passwd, pwd, passphrase
                for s in passwordSuffixes where hasSuffix(norm, count, s) { return .password }
            case UInt8(ascii: "s"): // pass, credentials
                if count - lastStart == 4 && hasSuffix(norm, count, passComponent) { return .password }
                for s in secretSuffixes where hasSuffix(norm, count, s) { return .secret }
            case UInt8(ascii: "n"): // token
                if hasSuffix(norm, count, tokenSuffix) {
                    for x in exclusionBytes where hasSuffix(norm, count, x) { return nil }
                    return .token
                }
            case UInt8(ascii: "y"): // apikey, accesskey, ...
                for s in keySuffixBytes where hasSuffix(norm, count, s) { return .apiKey }
            case UInt8(ascii: "t"), UInt8(ascii: "l"): // secret, credential
                for s in secretSuffixes where hasSuffix(norm, count, s) { return .secret }
            default: break
            }
            return nil
        }
    }

    /// Parses and classifies once per keyword hit (shared by the four generic rules).
    /// The key name is classified first (cheap, allocation-free): most keyword hits in clean
    /// traffic (`max_tokens`, `keyboard`, `author`) are not secret-bearing keys, and then the
    /// value is never parsed.
    static func classify(p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> (Assignment, GenericKind)? {
        guard let (keyStart, keyEnd) = Assignment.keyBounds(p, ks: ks, ke: ke),
              let k = family(p, keyStart: keyStart, keyEnd: keyEnd) else { return nil }
        // `arn:aws:secretsmanager:…:secret:prod/db-AbC123`: a field of a colon-separated name, not a key.
        if keyStart > 0 && p[keyStart - 1] == UInt8(ascii: ":") { return nil }
        guard let a = Assignment.parse(p, ks: ks, ke: ke), a.valueEnd > a.valueStart else { return nil }
        return (a, k)
    }

    static func run(_ rule: Rule, kind: GenericKind, p: UnsafeBufferPointer<UInt8>, classified: (Assignment, GenericKind)?) -> Match? {
        guard let (a, k) = classified, k == kind else { return nil }
        let v = Scan.bytes(p, a.valueStart, a.valueEnd)
        guard valueLooksSecret(v, kind: kind, quoted: a.quoted, next: a.next) else { return nil }
        // A Firebase web config's `apiKey` is public by design (as the Google API key rule says).
        if v.starts(with: FirebaseWebConfig.keyPrefix), FirebaseWebConfig.surrounds(p, a.valueStart, a.valueEnd) { return nil }
        let h = Entropy.shannon(v)
        let conf = min(0.9, rule.confidence + (h > 4 ? 0.1 : 0))
        return Match(start: a.valueStart, end: a.valueEnd, secret: v, confidence: conf)
    }

    /// True when the value is something other than a secret once seen as the application sees
    /// it, or belongs to another rule: a percent-encoded placeholder or reference
    /// (`%24%7B%7B%20secrets.NPM_TOKEN%20%7D%7D` is `${{ secrets.NPM_TOKEN }}`), a base64 blob
    /// whose text is a placeholder or a provider's documented example key, or a URI (`://`:
    /// its password, if any, is the URI rules').
    static func explainedElsewhere(_ v: [UInt8]) -> Bool {
        if Placeholders.contains(v, schemeSeparator) || NonSecrets.isPublicOrDigest(v) { return true }
        if v.contains(UInt8(ascii: "%")),
           let d = v.withUnsafeBufferPointer({ PercentDecoder.decode($0, region: 0..<v.count, plusIsSpace: true)?.bytes }) {
            if Placeholders.isPlaceholder(d) || Placeholders.contains(d, schemeSeparator) { return true }
        }
        if v.count >= 12, v.count % 4 == 0, v.allSatisfy({ ByteSet.base64.contains($0) || $0 == UInt8(ascii: "=") }),
           let d = Base64.decode(v), Base64.looksLikeText(d), Placeholders.isPlaceholder(d) {
            return true
        }
        return false
    }
    static let schemeSeparator: [UInt8] = Array("://".utf8)

    static func valueLooksSecret(_ v: [UInt8], kind: GenericKind, quoted: Bool, next: UInt8) -> Bool {
        let n = v.count
        let minLen = kind == .password ? 6 : 10
        guard n >= minLen, n <= (kind == .password ? 256 : 4096) else { return false }
        if Placeholders.isPlaceholder(v) || explainedElsewhere(v) { return false }
        var digits = 0, letters = 0, spaces = 0, upper = 0, lower = 0
        for b in v {
            if isDigit(b) { digits += 1 } else if (b | 0x20) >= 97 && (b | 0x20) <= 122 { letters += 1; if b < 97 { upper += 1 } else { lower += 1 } }
            else if b == 32 { spaces += 1 }
            if b < 32 || b == 127 { return false }
        }
        if spaces > 0 && kind != .password { return false }
        if spaces > 1 { return false }
        if digits == n { return false }
        // URLs, paths, emails, numbers with units, versions.
        let lower8 = v.prefix(8).map(lowerASCII)
        if lower8.starts(with: "http".utf8) || v.first == UInt8(ascii: "/") || v.starts(with: "./".utf8) || v.starts(with: "~/".utf8) { return false }
        if v.contains(UInt8(ascii: "@")) && v.contains(UInt8(ascii: ".")) && kind != .password { return false }
        if !quoted {
            // Code: `password = getPassword()`, `token = config.token`, `key = os.environ[...]`.
            if next == UInt8(ascii: "(") || next == UInt8(ascii: "[") { return false }
            // A template cut at its brace: `postgres://app:${DB_PASSWORD}` read up to `{`.
            if next == UInt8(ascii: "{") && v.last == UInt8(ascii: "$") { return false }
            if v.contains(UInt8(ascii: ".")) && letters == n - v.filter({ $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") }).count { return false }
            if digits == 0 && v.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "_") }) && (upper == 0 || lower == 0 || v.contains(UInt8(ascii: "_"))) { return false }
        }
        let h = Entropy.shannon(v)
        let classes = Entropy.classCount(v)
        switch kind {
        case .password:
            if letters == n && n < 12 { return false }
            return h >= 2.5 && (classes >= 2 || n >= 14)
        case .secret, .token, .apiKey:
            if letters == n && n < 20 { return false }
            if classes < 2 && !(v.allSatisfy { ByteSet.hex.contains($0) } && n >= 16) { return false }
            return h >= 3.0
        }
    }
}
