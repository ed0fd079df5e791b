/// Sidekiq Pro / Enterprise license credentials (`username:password`, documented by
/// Contributed Systems as Bundler credentials for `gems.contribsys.com` /
/// `enterprise.contribsys.com`): `BUNDLE_GEMS__CONTRIBSYS__COM=user:pass` (env, YAML, JSON)
/// and `bundle config [--local|--global] gems.contribsys.com user:pass`. The URL form
/// `https://user:pass@gems.contribsys.com` is the URI rules' (`uri-http-basic-auth`).
///
/// Guarantees: the value must be `user:password` (both parts 4–64 bytes of
/// `[A-Za-z0-9_.-]`, not a placeholder); the password is what is fingerprinted; the span is
/// the whole `user:password`.
enum BundlerCredentialMatcher {
    static let part = ByteSet("A-Za-z0-9_.\\-")

    static func run(_ rule: Rule, p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Match? {
        if let a = Assignment.parse(p, ks: ks, ke: ke), let m = pair(rule, p, a.valueStart, limit: a.valueEnd) { return m }
        // `bundle config gems.contribsys.com user:pass`: the host, blanks, the pair.
        guard let (_, keyEnd) = Assignment.keyBounds(p, ks: ks, ke: ke) else { return nil }
        var i = keyEnd
        var k = 0
        while i < p.count && k < 8 && (p[i] == 32 || p[i] == 9 || p[i] == 34 || p[i] == 39) { i += 1; k += 1 }
        guard k > 0 else { return nil }
        return pair(rule, p, i, limit: min(p.count, i + 160))
    }

    static func pair(_ rule: Rule, _ p: UnsafeBufferPointer<UInt8>, _ s: Int, limit: Int) -> Match? {
        var i = s
        while i < limit && part.contains(p[i]) { i += 1 }
        let colon = i
        guard colon - s >= 4, colon - s <= 64, colon < limit, p[colon] == UInt8(ascii: ":") else { return nil }
        i += 1
        while i < limit && part.contains(p[i]) { i += 1 }
        let e = i
        guard e - colon - 1 >= 4, e - colon - 1 <= 64, Scan.rightOK(p, e, part) else { return nil }
        let user = Scan.bytes(p, s, colon), pw = Scan.bytes(p, colon + 1, e)
        if Placeholders.isPlaceholder(pw) || Placeholders.isPlaceholder(user + [58] + pw) { return nil }
        return Match(start: s, end: e, secret: pw, confidence: rule.confidence)
    }
}
