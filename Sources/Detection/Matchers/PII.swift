/// Personal data: email, payment cards (Luhn + issuer ranges), IBAN (mod-97 + country
/// lengths), US SSN (valid ranges), phone numbers (E.164 and North-American forms).
enum PIIMatcher {
    // MARK: email

    static let localSet = ByteSet("A-Za-z0-9._%+\\-")
    static let domainSet = ByteSet("A-Za-z0-9.\\-")
    static let fileExtensions: Set<String> = ["png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "js", "mjs", "ts", "css", "json", "map",
                                              "txt", "md", "html", "htm", "py", "go", "rs", "swift", "java", "kt", "zip", "gz", "tar",
                                              "pdf", "lock", "yml", "yaml", "xml", "toml", "ini", "cfg", "sh", "rb", "php", "c", "h",
                                              "cpp", "wasm", "woff", "woff2", "ttf", "mp4", "mp3", "wav", "csv", "log"]
    static let exampleDomains: Set<String> = ["example.com", "example.org", "example.net", "domain.com", "email.com", "test.com",
                                              "company.com", "yourdomain.com", "mydomain.com", "acme.com", "foo.com", "bar.com", "localhost"]
    static let nonPersonalLocals: Set<String> = ["noreply", "no-reply", "donotreply", "do-not-reply", "git", "mailer-daemon", "postmaster"]

    /// A necessary condition for `email(_:p:at:)` to match the `@` at `at`, checked before the
    /// rule is read (`RuleGate.email`): an address byte before it, and a `.` in the run of domain
    /// bytes after it (`email` needs two domain labels). Most `@`s (`actions/checkout@v4`,
    /// `npm@10`, decorators) fail it without an allocation.
    static func emailPlausible(_ p: UnsafeBufferPointer<UInt8>, at: Int) -> Bool {
        guard at > 0, at < p.count, localSet.contains(p[at - 1]) else { return false }
        let domain = domainSet
        var e = at + 1
        while e < p.count && e - at < 255 && domain.contains(p[e]) {
            if p[e] == UInt8(ascii: ".") { return true }
            e += 1
        }
        return false
    }

    static func email(_ rule: Rule, p: UnsafeBufferPointer<UInt8>, at: Int) -> Match? {
        var s = at
        while s > 0 && at - s < 64 && localSet.contains(p[s - 1]) { s -= 1 }
        while s < at && (p[s] == UInt8(ascii: ".") || p[s] == UInt8(ascii: "-") || p[s] == UInt8(ascii: "+")) { s += 1 }
        guard s < at else { return nil }
        if s > 0 && (p[s - 1] == UInt8(ascii: "/") || p[s - 1] == UInt8(ascii: ":")) && !Scan.isEscapeLetter(p, s - 1) {
            // URL userinfo (`https://user@host`), not an address.
            if s >= 3 && p[s - 1] == UInt8(ascii: "/") && p[s - 2] == UInt8(ascii: "/") { return nil }
        }
        guard Scan.leftOK(p, s, localSet) else { return nil }
        var e = at + 1
        while e < p.count && e - at < 255 && domainSet.contains(p[e]) { e += 1 }
        while e > at + 1 && (p[e - 1] == UInt8(ascii: ".") || p[e - 1] == UInt8(ascii: "-")) { e -= 1 }
        guard e > at + 1 else { return nil }
        let local = Scan.bytes(p, s, at)
        if local.last == UInt8(ascii: ".") { return nil }
        let domain = Scan.bytes(p, at + 1, e).map(lowerASCII)
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ !$0.isEmpty && $0.count <= 63 }) else { return nil }
        guard let tld = labels.last, tld.count >= 2, tld.count <= 24, tld.allSatisfy({ $0 >= 97 && $0 <= 122 }) else { return nil }
        let tldS = String(decoding: tld, as: UTF8.self)
        if fileExtensions.contains(tldS) { return nil }
        let domS = String(decoding: domain, as: UTF8.self)
        if exampleDomains.contains(domS) || domS.hasSuffix(".example") || domS.hasSuffix(".test") || domS.hasSuffix(".invalid")
            || domS.hasSuffix(".local") || domS.hasSuffix(".localhost") || domS.hasSuffix(".internal") { return nil }
        for d in exampleDomains where domS.hasSuffix("." + d) { return nil }
        if domS.contains("noreply") || domS.contains("no-reply") { return nil }
        let localS = String(decoding: local.map(lowerASCII), as: UTF8.self)
        if nonPersonalLocals.contains(localS) || localS.hasPrefix("noreply") || localS.hasSuffix("noreply") { return nil }
        if localS.hasPrefix("user") && localS.count <= 5 || localS == "john.doe" || localS == "jane.doe" || localS == "you" || localS == "your.name" || localS == "name" { return nil }
        // Must not be glued to more address characters on the right (e.g. `a@b.c@d`).
        if e < p.count && (p[e] == UInt8(ascii: "@")) { return nil }
        return Match(start: s, end: e, secret: Scan.bytes(p, s, e), confidence: rule.confidence)
    }

    // MARK: numeric region (cards, SSN, phone)

    static let numericRegionSet = ByteSet("0-9 ()+.\\-")

    /// The maximal run of numeric-region bytes containing `anchor`.
    static func numericRegion(_ p: UnsafeBufferPointer<UInt8>, anchor: Int) -> Range<Int> {
        var s = anchor, e = anchor
        let set = numericRegionSet // one `swift_once` check, not one per byte
        while s > 0 && anchor - s < 256 && set.contains(p[s - 1]) { s -= 1 }
        while e < p.count && e - anchor < 256 && set.contains(p[e]) { e += 1 }
        return s..<e
    }

    static let testCards: Set<String> = ["4111111111111111", "4242424242424242", "5555555555554444", "378282246310005",
                                         "6011111111111117", "4012888888881881", "5105105105105100", "4000056655665556",
                                         "371449635398431", "30569309025904", "3566002020360505", "6200000000000005"]

    static func cardBrandOK(_ d: [UInt8]) -> Bool {
        func num(_ k: Int) -> Int { d.prefix(k).reduce(0) { $0 * 10 + Int($1 - 48) } }
        let n = d.count
        let p1 = num(1), p2 = num(2), p3 = num(3), p4 = num(4), p6 = num(6)
        if p1 == 4 { return n == 13 || n == 16 || n == 19 }
        if (51...55).contains(p2) || (2221...2720).contains(p4) { return n == 16 }
        if p2 == 34 || p2 == 37 { return n == 15 }
        if p4 == 6011 || (644...649).contains(p3) || p2 == 65 || (622126...622925).contains(p6) { return (16...19).contains(n) }
        if (3528...3589).contains(p4) { return (16...19).contains(n) }
        if (300...305).contains(p3) || p2 == 36 || p2 == 38 || p2 == 39 { return (14...19).contains(n) }
        if p2 == 62 { return (16...19).contains(n) }
        if [5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763].contains(p4) { return (12...19).contains(n) }
        return false
    }

    /// Runs the card, SSN and phone matchers over a numeric region.
    /// `emit` receives 0 (card), 1 (SSN) or 2 (phone) and the match.
    /// `rules` holds the rules' confidences (nil: rule disabled), so no `Rule` is copied per number.
    static func numeric(_ rules: (card: Double?, ssn: Double?, phone: Double?), p: UnsafeBufferPointer<UInt8>, region r: Range<Int>, emit: (Int, Match) -> Void) {
        var i = r.lowerBound
        while i < r.upperBound {
            let c = p[i]
            let startsNumber = isDigit(c) && (i == 0 || !(isDigit(p[i - 1]) || p[i - 1] == UInt8(ascii: ".") || isAlnum(p[i - 1])) || Scan.isEscapeLetter(p, i - 1))
            if startsNumber {
                if let rule = rules.card, let m = card(rule, p, i, r) { emit(0, m) }
                if let rule = rules.ssn, let m = ssn(rule, p, i, r) { emit(1, m) }
                if let rule = rules.phone, let m = phoneNANP(rule, p, i, r) { emit(2, m) }
            }
            if c == UInt8(ascii: "+"), let rule = rules.phone, i + 1 < r.upperBound, isDigit(p[i + 1]),
               i == 0 || !isAlnum(p[i - 1]) || Scan.isEscapeLetter(p, i - 1) {
                if let m = phoneIntl(rule, p, i, r) { emit(2, m) }
            }
            if c == UInt8(ascii: "("), let rule = rules.phone, i == 0 || !isAlnum(p[i - 1]) || Scan.isEscapeLetter(p, i - 1) {
                if let m = phoneNANP(rule, p, i, r) { emit(2, m) }
            }
            i += 1
        }
    }

    private static func endOK(_ p: UnsafeBufferPointer<UInt8>, _ e: Int) -> Bool {
        if e >= p.count { return true }
        let c = p[e]
        if isAlnum(c) { return Scan.isEscapeLetter(p, e) }
        if (c == UInt8(ascii: ".") || c == UInt8(ascii: "-")) && e + 1 < p.count && isDigit(p[e + 1]) { return false }
        return true
    }

    static func card(_ conf: Double, _ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ r: Range<Int>) -> Match? {
        // Allocation-free shape check first (same walk, digits only counted): timestamps,
        // ids and counters are rejected before any array is built.
        do {
            var i = s, n = 0, cur = 0
            var sep: UInt8 = 0
            while i < r.upperBound && n <= 19 {
                let c = p[i]
                if isDigit(c) { n += 1; cur += 1; i += 1; continue }
                if (c == 32 || c == UInt8(ascii: "-")) && cur > 0 && i + 1 < r.upperBound && isDigit(p[i + 1]) && (sep == 0 || sep == c) {
                    sep = c; cur = 0; i += 1; continue
                }
                break
            }
            guard n >= 12 && n <= 19, endOK(p, i) else { return nil }
        }
        var digits: [UInt8] = []
        var i = s
        var sep: UInt8 = 0
        var groups: [Int] = []
        var cur = 0
        while i < r.upperBound && digits.count <= 19 {
            let c = p[i]
            if isDigit(c) { digits.append(c); cur += 1; i += 1; continue }
            if (c == 32 || c == UInt8(ascii: "-")) && cur > 0 && i + 1 < r.upperBound && isDigit(p[i + 1]) && (sep == 0 || sep == c) {
                sep = c; groups.append(cur); cur = 0; i += 1; continue
            }
            break
        }
        groups.append(cur)
        guard (12...19).contains(digits.count), endOK(p, i) else { return nil }
        if sep != 0 {
            guard groups.count >= 3, groups[0] == 4, groups[1] >= 4, groups.allSatisfy({ $0 >= 3 && $0 <= 7 }) else { return nil }
        }
        guard cardBrandOK(digits), Checksums.luhnValid(digits) else { return nil }
        if testCards.contains(String(decoding: digits, as: UTF8.self)) { return nil }
        if Placeholders.maxRun(digits) >= 8 { return nil }
        return Match(start: s, end: i, secret: digits, confidence: conf)
    }

    static let exampleSSNs: Set<String> = ["078051120", "219099999", "123456789", "111111111", "987654320", "987654321"]

    static func ssn(_ conf: Double, _ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ r: Range<Int>) -> Match? {
        guard s + 11 <= r.upperBound else { return nil }
        let sep = p[s + 3]
        guard sep == UInt8(ascii: "-") || sep == 32, p[s + 6] == sep else { return nil }
        for k in [0, 1, 2, 4, 5, 7, 8, 9, 10] where !isDigit(p[s + k]) { return nil }
        guard endOK(p, s + 11) else { return nil }
        if s + 11 < p.count && (p[s + 11] == sep || p[s + 11] == UInt8(ascii: "-")) { return nil }
        if s > 0 && (p[s - 1] == UInt8(ascii: "-") || p[s - 1] == UInt8(ascii: "+")) { return nil }
        func v(_ a: Int, _ b: Int) -> Int { (a..<b).reduce(0) { $0 * 10 + Int(p[s + $1] - 48) } }
        let area = v(0, 3), group = v(4, 6), serial = v(7, 11)
        guard Checksums.ssnValid(area: area, group: group, serial: serial) else { return nil }
        let d = [0, 1, 2, 4, 5, 7, 8, 9, 10].map { p[s + $0] }
        if exampleSSNs.contains(String(decoding: d, as: UTF8.self)) { return nil }
        return Match(start: s, end: s + 11, secret: d, confidence: conf)
    }

    /// `(415) 555-2671`, `415-555-2671`, `415.555.2671` (NANP rules: area and exchange start 2–9).
    static func phoneNANP(_ conf: Double, _ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ r: Range<Int>) -> Match? {
        var i = s
        var d: [UInt8] = []
        if p[i] == UInt8(ascii: "(") {
            guard i + 5 <= r.upperBound, isDigit(p[i + 1]), isDigit(p[i + 2]), isDigit(p[i + 3]), p[i + 4] == UInt8(ascii: ")") else { return nil }
            d += [p[i + 1], p[i + 2], p[i + 3]]
            i += 5
            if i < r.upperBound && p[i] == 32 { i += 1 }
            guard i + 8 <= r.upperBound else { return nil }
            for k in 0..<3 { guard isDigit(p[i + k]) else { return nil }; d.append(p[i + k]) }
            let sep = p[i + 3]
            guard sep == UInt8(ascii: "-") || sep == UInt8(ascii: ".") || sep == 32 else { return nil }
            for k in 4..<8 { guard isDigit(p[i + k]) else { return nil }; d.append(p[i + k]) }
            i += 8
        } else {
            guard s + 12 <= r.upperBound else { return nil }
            let sep = p[s + 3]
            guard sep == UInt8(ascii: "-") || sep == UInt8(ascii: "."), p[s + 7] == sep else { return nil }
            for k in [0, 1, 2, 4, 5, 6, 8, 9, 10, 11] { guard isDigit(p[s + k]) else { return nil }; d.append(p[s + k]) }
            i = s + 12
            if s > 0 && (p[s - 1] == sep) { return nil }
        }
        guard endOK(p, i) else { return nil }
        if i < p.count && (p[i] == UInt8(ascii: "-") || p[i] == UInt8(ascii: ".")) { return nil }
        guard nanpValid(d) else { return nil }
        return Match(start: s, end: i, secret: d, confidence: conf)
    }

    static func nanpValid(_ d: [UInt8]) -> Bool {
        guard d.count == 10 else { return false }
        guard d[0] >= 50, d[3] >= 50 else { return false }
        // 555-0100..0199 is reserved for fiction and documentation.
        if d[3] == 53 && d[4] == 53 && d[5] == 53 && d[6] == 48 && d[7] == 49 { return false }
        if Placeholders.maxRun(d) >= 7 { return false }
        return true
    }

    /// `+14155552671`, `+1 415 555 2671`, `+44 20 7946 0958`, `+49 (0)30 1234567`.
    static func phoneIntl(_ conf: Double, _ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ r: Range<Int>) -> Match? {
        var i = s + 1
        var d: [UInt8] = []
        var lastDigitEnd = i
        while i < r.upperBound && d.count <= 15 {
            let c = p[i]
            if isDigit(c) { d.append(c); i += 1; lastDigitEnd = i; continue }
            if (c == 32 || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")) && i + 1 < r.upperBound && (isDigit(p[i + 1]) || p[i + 1] == UInt8(ascii: "(")) && isDigit(p[i - 1]) { i += 1; continue }
            if c == UInt8(ascii: "(") && i + 2 < r.upperBound && isDigit(p[i + 1]) {
                var j = i + 1
                while j < r.upperBound && isDigit(p[j]) && j - i <= 4 { j += 1 }
                if j < r.upperBound && p[j] == UInt8(ascii: ")") {
                    for k in (i + 1)..<j where !(j - i == 2 && p[k] == 48) { d.append(p[k]) }
                    i = j + 1
                    if i < r.upperBound && p[i] == 32 { i += 1 }
                    continue
                }
            }
            break
        }
        guard d.count >= 8 && d.count <= 15, d[0] != 48 else { return nil }
        guard endOK(p, lastDigitEnd) else { return nil }
        if d[0] == 49 {
            guard d.count == 11, nanpValid(Array(d[1...])) else { return nil }
        }
        if Placeholders.maxRun(d) >= 7 { return nil }
        return Match(start: s, end: lastDigitEnd, secret: d, confidence: conf)
    }

    // MARK: IBAN

    static let ibanLengths: [String: Int] = [
        "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
        "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
        "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
        "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
        "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
        "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24,
        "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    ]
    static let exampleIBANs: Set<String> = ["DE89370400440532013000", "GB82WEST12345698765432", "GB29NWBK60161331926819",
                                            "FR1420041010050500013M02606", "NL91ABNA0417164300", "CH9300762011623852957"]
    static let ibanRegionSet = ByteSet("A-Z0-9 ")

    static func ibanRegion(_ p: UnsafeBufferPointer<UInt8>, anchor: Int) -> Range<Int> {
        var s = anchor, e = anchor
        while s > 0 && anchor - s < 64 && ibanRegionSet.contains(p[s - 1]) { s -= 1 }
        while e < p.count && e - anchor < 64 && ibanRegionSet.contains(p[e]) { e += 1 }
        return s..<e
    }

    static func iban(_ rule: Rule, p: UnsafeBufferPointer<UInt8>, region r: Range<Int>, emit: (Match) -> Void) {
        var s = r.lowerBound
        while s + 4 <= r.upperBound {
            defer { s += 1 }
            guard ByteSet.upper.contains(p[s]), ByteSet.upper.contains(p[s + 1]), isDigit(p[s + 2]), isDigit(p[s + 3]) else { continue }
            guard s == 0 || !isAlnum(p[s - 1]) || Scan.isEscapeLetter(p, s - 1) else { continue }
            let cc = String(decoding: [p[s], p[s + 1]], as: UTF8.self)
            guard let len = ibanLengths[cc] else { continue }
            var chars: [UInt8] = []
            var i = s
            while i < r.upperBound && chars.count < len {
                let c = p[i]
                if ByteSet.alnum.contains(c) { chars.append(c); i += 1; continue }
                if c == 32 && i + 1 < r.upperBound && isAlnum(p[i + 1]) && !chars.isEmpty { i += 1; continue }
                break
            }
            guard chars.count == len, i >= p.count || !isAlnum(p[i]) || Scan.isEscapeLetter(p, i) else { continue }
            guard Checksums.ibanValid(chars) else { continue }
            if exampleIBANs.contains(String(decoding: chars, as: UTF8.self)) { continue }
            emit(Match(start: s, end: i, secret: chars, confidence: rule.confidence))
        }
    }
}
