/// Recognises values that look like secrets but are placeholders, references or
/// documentation examples (`YOUR_API_KEY`, `${TOKEN}`, `<token>`, `xxxx`, `****`,
/// `AKIAIOSFODNN7EXAMPLE`, already-masked values). Pure.
enum Placeholders {
    /// Lowercase substrings that mark a value as a placeholder or example.
    static let markers: [[UInt8]] = [
        "example", "xxxxx", "***", "your_", "your-", "yourapi", "your api", "<your", "placeholder",
        "redacted", "changeme", "change_me", "change-me", "replace_me", "replace-me", "replaceme", "insert_", "insert-", "dummy",
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

    /// Whole tokens that providers publish in their documentation as examples (every tutorial
    /// and sample project has them): exact values, not patterns, so a real key never matches.
    static let documentedExamples: Set<[UInt8]> = Set([
        // Stripe's API reference test-mode key and its publishable pair.
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "pk_test_TYooMQauvdEDq54NiTphI7jx",
        "sk_test_BQokikJOvBiI2HlWgH4olfQ2", "pk_test_6pRNASCoBOKtIshFeQd4XMUh",
        // AWS's documentation key pair (already caught by the "example" marker where checked).
        "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        // The JWT of jwt.io's debugger and countless tutorials ("John Doe", HS256, "your-256-bit-secret").
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        // The storage emulator's (Azurite) well-known account key for `devstoreaccount1`, published by Microsoft.
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    ].map { Array($0.utf8) })
    private static let documentedExampleLengths = Set(documentedExamples.map(\.count))

    /// Whether `value` is exactly one of the `documentedExamples` (no copy unless the length fits).
    static func isDocumentedExample<C: Collection>(_ value: C) -> Bool where C.Element == UInt8 {
        documentedExampleLengths.contains(value.count) && documentedExamples.contains(Array(value))
    }

    /// True when `value` is a placeholder, reference, template or example and must not be reported.
    static func isPlaceholder<C: Collection>(_ value: C) -> Bool where C.Element == UInt8 {
        if isDocumentedExample(value) { return true }
        let v = value.map(lowerASCII)
        guard !v.isEmpty else { return true }
        if stopWords.contains(v) { return true }
        // References and templates: ${X}, $X, {{ x }}, <x>, %(x)s, env:X, file:/x, vault:...
        if isTemplate(v) { return true }
        for prefix in ["env:", "file:", "vault:", "secret:", "ref:", "arn:", "secretsmanager:", "op://", "process.env", "os.environ", "secrets.",
                       "%env("] {
            if v.starts(with: prefix.utf8) { return true }
        }
        // A secret manager's resource name (`projects/123/secrets/db-pass/versions/latest`): where
        // the secret is, not the secret.
        if v.starts(with: "projects/".utf8) && contains(v, Array("/secrets/".utf8)) { return true }
        if containsMarker(v) { return true }
        // Runs like "aaaaaaaa" / "00000000" / "x-x-x-x".
        if maxRun(v) >= 6 { return true }
        var distinct = Set<UInt8>()
        for b in v { distinct.insert(b); if distinct.count >= 5 { break } }
        if distinct.count < 5 && v.count >= 8 { return true }
        if v.contains(UInt8(ascii: "{")) && v.contains(UInt8(ascii: "}")) && v.contains(UInt8(ascii: "$")) { return true }
        return false
    }

    /// A whole-value template or reference: `${X}`, `$(cmd)`, `$NAME`, `{{ x }}`, `{x}`, `<x>`,
    /// `[x]`, `%(x)s`, `%s`, `%NAME%`, `%{x}`. Only the template's full shape counts: a value
    /// that merely starts with one of these characters (`%Q#yMfutA7x80`, `$2b$12$...`) is not one,
    /// so a secret cannot pass as a placeholder by its first character.
    static func isTemplate(_ v: [UInt8]) -> Bool {
        guard let first = v.first, let last = v.last else { return false }
        // An environment-variable name: a letter or `_`, then letters, digits and `_`.
        func isIdentifier<S: Sequence>(_ s: S) -> Bool where S.Element == UInt8 {
            var count = 0
            for b in s {
                let letter = (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || b == UInt8(ascii: "_")
                guard letter || (count > 0 && ByteSet.digits.contains(b)) else { return false }
                count += 1
            }
            return count > 0
        }
        switch first {
        case UInt8(ascii: "$"):
            if v.count >= 2, v[1] == UInt8(ascii: "{") { return last == UInt8(ascii: "}") }
            if v.count >= 2, v[1] == UInt8(ascii: "(") { return last == UInt8(ascii: ")") }
            return isIdentifier(v.dropFirst()) && v.count <= 64
        case UInt8(ascii: "{"):
            return last == UInt8(ascii: "}")
        case UInt8(ascii: "<"):
            return last == UInt8(ascii: ">")
        case UInt8(ascii: "["):
            return last == UInt8(ascii: "]")
        case UInt8(ascii: "%"):
            if v.count == 2 { return true }  // %s, %d
            if v.count >= 3, v[1] == UInt8(ascii: "(") { return v.contains(UInt8(ascii: ")")) }
            if v.count >= 3, v[1] == UInt8(ascii: "{") { return last == UInt8(ascii: "}") }
            return last == UInt8(ascii: "%") && isIdentifier(v.dropFirst().dropLast())
        default:
            return false
        }
    }

    /// `markers` ordered by first byte, and per byte the range of those starting with it.
    static let markersByFirst: [[UInt8]] = markers.sorted { $0[0] < $1[0] }
    static let markerRange: [Range<Int>] = (0..<256).map { b in
        let ms = markersByFirst
        let lo = ms.firstIndex { Int($0[0]) == b } ?? 0
        let hi = ms.lastIndex { Int($0[0]) == b }.map { $0 + 1 } ?? 0
        return lo..<hi
    }

    /// True when some marker occurs in `v` (`markers.contains { contains(v, $0) }`): one pass
    /// over `v` that compares, at each position, only the markers starting with its byte.
    static func containsMarker(_ v: [UInt8]) -> Bool {
        let ms = markersByFirst, ranges = markerRange
        let n = v.count
        var i = 0
        while i < n {
            for k in ranges[Int(v[i])] {
                let m = ms[k]
                guard m.count <= n - i else { continue }
                var j = 1
                while j < m.count && v[i + j] == m[j] { j += 1 }
                if j == m.count { return true }
            }
            i += 1
        }
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
