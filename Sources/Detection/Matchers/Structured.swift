/// Private keys in PEM / SSH2 armor.
enum PEMMatcher {
    static let leftBlock = ByteSet("A-Za-z0-9\\-")
    static let labelSet = ByteSet("A-Z0-9 ")
    static let bodySet = ByteSet("A-Za-z0-9+/=\\\\ \t\r\n:,-")

    static func run(_ rule: Rule, labels: [String], p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Match? {
        let n = p.count
        // Delimiter: "-----" (PEM) or "----" (SSH2).
        var dashes = 0
        while ks + dashes < n && p[ks + dashes] == UInt8(ascii: "-") { dashes += 1 }
        guard dashes == 4 || dashes == 5 else { return nil }
        guard Scan.leftOK(p, ks, leftBlock) else { return nil }
        var i = ke
        let labelStart = i
        while i < n && i - labelStart < 64 && labelSet.contains(p[i]) { i += 1 }
        var labelEnd = i
        while labelEnd > labelStart && p[labelEnd - 1] == 32 { labelEnd -= 1 }
        let label = String(decoding: UnsafeBufferPointer(rebasing: p[labelStart..<labelEnd]), as: UTF8.self)
        guard labels.contains(label) else { return nil }
        guard i < n, p[i] == UInt8(ascii: "-") else { return nil }
        while i < n && p[i] == UInt8(ascii: "-") { i += 1 }
        let bodyStart = i
        let delim = String(repeating: "-", count: dashes)
        let endMarker = Array("\(delim)END \(label)".utf8)
        let searchEnd = min(n, bodyStart + 65536)
        var end: Int
        var bodyEnd: Int
        if let e = Scan.find(p, endMarker, from: bodyStart, to: searchEnd) {
            bodyEnd = e
            end = e + endMarker.count
            while end < n && (p[end] == UInt8(ascii: "-") || (dashes == 4 && p[end] == 32 && end + 1 < n && p[end + 1] == UInt8(ascii: "-"))) { end += 1 }
        } else {
            // Truncated key: mask through the base64 body.
            var e = bodyStart
            while e < searchEnd && bodySet.contains(p[e]) { e += 1 }
            bodyEnd = e
            end = e
        }
        var b64 = 0
        var k = bodyStart
        while k < bodyEnd {
            if ByteSet.base64.contains(p[k]) && !Scan.isEscapeLetter(p, k) { b64 += 1 }
            k += 1
        }
        guard b64 >= 64 else { return nil }
        let body = Scan.bytes(p, bodyStart, bodyEnd)
        if Placeholders.contains(body.map(lowerASCII), Array("...".utf8)) || Placeholders.contains(body.map(lowerASCII), Array("example".utf8)) { return nil }
        return Match(start: ks, end: end, secret: Scan.bytes(p, ks, end), confidence: rule.confidence)
    }
}

/// Passwords in URIs: `scheme://user:password@host`.
enum URIMatcher {
    static let schemeSet = ByteSet("A-Za-z0-9+.:\\-")
    static let stop = ByteSet(" \t\r\n\"'<>/?#\\\\`")

    static func run(_ rule: Rule, schemes: [String], p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Match? {
        // `user:password@` first: a byte loop that rejects almost every URL (no userinfo)
        // before the scheme is turned into a String.
        var at = -1
        var colon = -1
        var i = ke
        let lim = min(p.count, ke + 512)
        // Read once per call, not once per byte (each read of a `static let` is a `swift_once` check).
        let stop = Self.stop, schemeSet = Self.schemeSet
        while i < lim {
            let c = p[i]
            if c == UInt8(ascii: "@") { at = i }          // last '@' before the host wins
            else if stop.contains(c) { break }
            else if c == UInt8(ascii: ":") && colon < 0 && at < 0 { colon = i }
            i += 1
        }
        guard at > 0, colon > 0, colon < at else { return nil }
        var s = ks
        while s > 0 && ks - s < 40 && schemeSet.contains(p[s - 1]) { s -= 1 }
        while s < ks && !isAlnum(p[s]) { s += 1 }
        guard s < ks else { return nil }
        var scheme = String(decoding: p[s..<ks].map(lowerASCII), as: UTF8.self)
        if !schemes.contains(scheme), let c = scheme.lastIndex(of: ":") {
            scheme = String(scheme[scheme.index(after: c)...])
        }
        guard schemes.contains(scheme) else { return nil }
        let user = Scan.bytes(p, ke, colon)
        let pw = Scan.bytes(p, colon + 1, at)
        guard !pw.isEmpty, pw.count <= 256 else { return nil }
        if pw == user { return nil }
        if pw.count < 3 { return nil }
        if Placeholders.isPlaceholder(pw) { return nil }
        if scheme.hasPrefix("http") || scheme.hasPrefix("ws") {
            if pw.allSatisfy(isDigit) && pw.count <= 5 { return nil }
        }
        return Match(start: colon + 1, end: at, secret: pw, confidence: rule.confidence)
    }
}

/// `Authorization` header values: Bearer, Basic, token/Bot/SSWS/other schemes.
enum AuthHeaderMatcher {
    static let tokenSet = ByteSet("A-Za-z0-9._~+/=\\-")
    static let wordSet = ByteSet("A-Za-z0-9_")

    static func run(_ rule: Rule, scheme: String, p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Match? {
        let n = p.count
        guard Scan.leftOK(p, ks, .alnum) else { return nil }
        switch scheme {
        case "bearer", "basic", "ssws":
            guard ke < n, p[ke] == 32 || p[ke] == 9 else { return nil }
            var i = ke
            while i < n && i - ke < 4 && (p[i] == 32 || p[i] == 9) { i += 1 }
            let vs = i
            while i < n && i - vs < 8192 && tokenSet.contains(p[i]) { i += 1 }
            return value(rule, scheme: scheme, p: p, vs, i)
        default:
            // "authorization" <quotes> <op> <quotes> [scheme ] value
            guard Scan.rightOK(p, ke, wordSet) else { return nil }
            var i = ke
            var k = 0
            while i < n && k < 6 && Assignment.quoteSet.contains(p[i]) { i += 1; k += 1 }
            while i < n && (p[i] == 32 || p[i] == 9) { i += 1 }
            guard i < n, p[i] == UInt8(ascii: ":") || p[i] == UInt8(ascii: "=") else { return nil }
            i += 1
            while i < n && (p[i] == 32 || p[i] == 9) { i += 1 }
            k = 0
            while i < n && k < 6 && Assignment.quoteSet.contains(p[i]) { i += 1; k += 1 }
            var w = i
            while w < n && w - i < 32 && (isAlnum(p[w]) || p[w] == UInt8(ascii: "-")) { w += 1 }
            let word = String(decoding: p[i..<w].map(lowerASCII), as: UTF8.self)
            if w < n && p[w] == 32 {
                if word == "bearer" || word == "basic" || word == "ssws" { return nil }
                var vs = w
                while vs < n && p[vs] == 32 { vs += 1 }
                var ve = vs
                while ve < n && ve - vs < 8192 && tokenSet.contains(p[ve]) { ve += 1 }
                return value(rule, scheme: "other", p: p, vs, ve)
            }
            var ve = i
            while ve < n && ve - i < 8192 && tokenSet.contains(p[ve]) { ve += 1 }
            return value(rule, scheme: "other", p: p, i, ve)
        }
    }

    static func value(_ rule: Rule, scheme: String, p: UnsafeBufferPointer<UInt8>, _ vs: Int, _ ve: Int) -> Match? {
        guard ve > vs else { return nil }
        let v = Scan.bytes(p, vs, ve)
        if Placeholders.isPlaceholder(v) { return nil }
        switch scheme {
        case "basic":
            guard let d = Base64.userPassword(v) else { return nil }
            return Match(start: vs, end: ve, secret: d, confidence: rule.confidence)
        case "ssws":
            guard v.count == 42, v.starts(with: "00".utf8), Entropy.shannon(v) >= 3.5 else { return nil }
            return Match(start: vs, end: ve, secret: v, confidence: rule.confidence)
        default:
            guard v.count >= 16, Entropy.classCount(v) >= 2, Entropy.shannon(v) >= 3.0 else { return nil }
            return Match(start: vs, end: ve, secret: v, confidence: rule.confidence)
        }
    }
}

/// Azure SAS signatures: `sig=<base64, often percent-encoded>` in a URL that carries `sv=`.
enum SASMatcher {
    static let valueSet = ByteSet("A-Za-z0-9%+/=")

    static func run(_ rule: Rule, p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Match? {
        guard ks > 0, p[ks - 1] == UInt8(ascii: "&") || p[ks - 1] == UInt8(ascii: "?") || p[ks - 1] == UInt8(ascii: ";") else { return nil }
        var e = ke
        while e < p.count && e - ke < 256 && valueSet.contains(p[e]) { e += 1 }
        guard e - ke >= 30 else { return nil }
        guard Scan.findCI(p, Array("sv=".utf8), from: ks - 800, to: min(p.count, e + 400)) != nil else { return nil }
        let v = Scan.bytes(p, ke, e)
        guard Entropy.shannon(v) >= 3.5, !Placeholders.isPlaceholder(v) else { return nil }
        return Match(start: ke, end: e, secret: v, confidence: rule.confidence)
    }
}
