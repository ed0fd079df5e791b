/// Recognises values that look like secrets but are placeholders, references or
/// documentation examples (`YOUR_API_KEY`, `${TOKEN}`, `<token>`, `xxxx`, `****`,
/// `AKIAIOSFODNN7EXAMPLE`, already-masked values). Pure.
enum Placeholders {
    /// Lowercase substrings that mark a value as a placeholder or example.
    static let markers: [[UInt8]] = [
        "example", "xxxxx", "***", "your_", "your-", "yourapi", "your api", "<your", "placeholder",
        "redacted", "changeme", "change_me", "replace_me", "replaceme", "insert_", "insert-", "dummy",
        "[masked", "masked]", "sample", "todo", "fixme", "notreal", "not_real", "not-a-real", "fake_",
        "1234567890abcdef", "abcdefghij", "0123456789abc", "qwertyuiop", "...", "•••", "____", "----",
    ].map { Array($0.utf8) }

    /// Whole values (lowercased) that are never secrets.
    static let stopWords: Set<[UInt8]> = Set([
        "password", "passwd", "secret", "token", "apikey", "api_key", "api-key", "null", "none", "nil",
        "true", "false", "undefined", "string", "required", "optional", "hidden", "empty", "default",
        "bearer", "basic", "unknown", "n/a", "value", "test", "testing", "admin", "root", "user",
        "username", "secret_key", "access_token", "client_secret", "private_key", "my_secret",
        "mysecret", "mypassword", "supersecret", "letmein", "hunter2", "pass", "pwd", "env", "config",
        "str", "int", "bool", "object", "array", "function", "yes", "no", "on", "off", "enabled", "disabled",
    ].map { Array($0.utf8) })

    /// True when `value` is a placeholder, reference, template or example and must not be reported.
    static func isPlaceholder<C: Collection>(_ value: C) -> Bool where C.Element == UInt8 {
        let v = value.map(lowerASCII)
        guard !v.isEmpty else { return true }
        if stopWords.contains(v) { return true }
        // References and templates: ${X}, $X, {{ x }}, <x>, %(x)s, env:X, file:/x, vault:...
        let first = v[0]
        if first == UInt8(ascii: "$") || first == UInt8(ascii: "<") || first == UInt8(ascii: "{")
            || first == UInt8(ascii: "%") || first == UInt8(ascii: "[") { return true }
        for prefix in ["env:", "file:", "vault:", "secret:", "ref:", "arn:", "secretsmanager:", "op://", "process.env", "os.environ", "secrets."] {
            if v.starts(with: prefix.utf8) { return true }
        }
        for m in markers where contains(v, m) { return true }
        // Runs like "aaaaaaaa" / "00000000" / "x-x-x-x".
        if maxRun(v) >= 6 { return true }
        var distinct = Set<UInt8>()
        for b in v { distinct.insert(b); if distinct.count >= 5 { break } }
        if distinct.count < 5 && v.count >= 8 { return true }
        if v.contains(UInt8(ascii: "{")) && v.contains(UInt8(ascii: "}")) && v.contains(UInt8(ascii: "$")) { return true }
        return false
    }

    static func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= hay.count, let f = needle.first else { return false }
        var i = 0
        let last = hay.count - needle.count
        while i <= last {
            if hay[i] == f {
                var j = 1
                while j < needle.count && hay[i + j] == needle[j] { j += 1 }
                if j == needle.count { return true }
            }
            i += 1
        }
        return false
    }

    static func maxRun(_ v: [UInt8]) -> Int {
        var best = 0, cur = 0
        var prev: UInt8 = 0
        for (i, b) in v.enumerated() {
            if i > 0 && b == prev { cur += 1 } else { cur = 1 }
            prev = b
            best = max(best, cur)
        }
        return best
    }
}
