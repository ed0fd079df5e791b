/// `curl -u user:password` / `curl --user user:password` on a command line (shell history, CI
/// scripts, tool calls that run commands).
///
/// Guarantees: only on a line that runs `curl` before the flag; the value is the flag's next
/// word, `user:password` with a non-empty password that is not a placeholder or a shell
/// reference (`$TOKEN`, `${X}`); the span and fingerprint are the password's.
enum CurlUserMatcher {
    static let valueStop = ByteSet(" \t\r\n\"'`\\\\")
    static let curl: [UInt8] = Array("curl".utf8)

    static func run(_ rule: Rule, p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Match? {
        let n = p.count
        guard ks > 0, p[ks - 1] == 32 || p[ks - 1] == 9 else { return nil }
        var i = ke
        // The keyword `-u ` ends with its blank; `--user` must be followed by one or `=`.
        guard p[ke - 1] == 32 || (i < n && (p[i] == 32 || p[i] == 9 || p[i] == UInt8(ascii: "="))) else { return nil }
        while i < n && (p[i] == 32 || p[i] == 9 || p[i] == UInt8(ascii: "=") || p[i] == 34 || p[i] == 39) { i += 1 }
        // `curl` earlier on the same line.
        var ls = ks
        while ls > 0 && ks - ls < 512 && p[ls - 1] != 10 { ls -= 1 }
        guard Scan.findCI(p, curl, from: ls, to: ks) != nil else { return nil }
        let vs = i
        var colon = -1
        while i < n && i - vs < 512 && !valueStop.contains(p[i]) {
            if p[i] == UInt8(ascii: ":") && colon < 0 { colon = i }
            i += 1
        }
        guard colon > vs, i > colon + 1 else { return nil }
        let pw = Scan.bytes(p, colon + 1, i)
        guard pw.first != UInt8(ascii: "$"), !Placeholders.isPlaceholder(pw) else { return nil }
        return Match(start: colon + 1, end: i, secret: pw, confidence: rule.confidence)
    }
}
