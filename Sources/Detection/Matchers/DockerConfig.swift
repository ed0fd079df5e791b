/// Docker `config.json` registry credentials (`auths` entries): the parser reads the value of a
/// key named exactly `auth` or `identitytoken` / `registrytoken` around the keyword hit instead
/// of matching a regex over the whole body.
///
/// Guarantees: pure and synchronous; reads only the assignment around the hit (the value is
/// at most 2 KiB, `Assignment.parse`); never reports a placeholder; reports the value's span in
/// the scanned buffer (the encoded form, which is what is masked) and fingerprints the decoded
/// `user:password` for `auth`.
enum DockerConfigMatcher {
    /// `"auth": "<base64 of user:password>"` (also YAML/env spellings of the same key).
    /// The key must be exactly `auth`, and the value must decode to printable `user:password`
    /// with a non-empty password that is not a placeholder.
    static func auth(_ rule: Rule, p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Match? {
        guard keyIsExactly(p, ks: ks, ke: ke) else { return nil }
        guard let a = Assignment.parse(p, ks: ks, ke: ke), a.valueEnd - a.valueStart >= 8 else { return nil }
        let v = UnsafeBufferPointer(rebasing: p[a.valueStart..<a.valueEnd])
        guard v.allSatisfy({ ByteSet.base64.contains($0) || $0 == UInt8(ascii: "=") }),
              let cred = Base64.userPassword(v) else { return nil }
        return Match(start: a.valueStart, end: a.valueEnd, secret: cred, confidence: rule.confidence)
    }

    /// `"identitytoken"` / `"registrytoken"`: an OAuth refresh or bearer token the Docker CLI
    /// stores instead of a password. Any value of 16+ bytes that is not a placeholder.
    static func token(_ rule: Rule, p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Match? {
        guard keyIsExactly(p, ks: ks, ke: ke) else { return nil }
        guard let a = Assignment.parse(p, ks: ks, ke: ke), a.valueEnd - a.valueStart >= 16 else { return nil }
        let v = Scan.bytes(p, a.valueStart, a.valueEnd)
        guard !Placeholders.isPlaceholder(v), Entropy.shannon(v) >= 3.0 else { return nil }
        return Match(start: a.valueStart, end: a.valueEnd, secret: v, confidence: rule.confidence)
    }

    /// The keyword is the whole key name (no identifier byte on either side).
    @inline(__always)
    static func keyIsExactly(_ p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Bool {
        (ks == 0 || !ByteSet.ident.contains(p[ks - 1])) && (ke >= p.count || !ByteSet.ident.contains(p[ke]))
    }
}
