/// A dictionary of values and key names that are identifiers, not secrets: hex digests and
/// short commit ids, UUIDs, trace ids, versions, image and package digests, URLs and file
/// paths, host and region names, publishable keys and public-key material, JSON and code.
/// Used where a rule has no token format to go by (the generic, prose and Kubernetes
/// `Secret` rules). Pure.
enum NonSecrets {
    /// Last components of key names that hold identifiers (`REQUEST_ID`, `client-id`,
    /// `DUO_HOST`, `AWS_DEFAULT_REGION`, `CHART_VERSION`, `CI_COMMIT_SHORT_SHA`, `ETAG`...).
    static let identifierKeyWords: Set<String> = [
        "id", "ids", "user", "username", "login", "email", "host", "hostname", "port", "region", "zone", "version",
        "commit", "sha", "etag", "digest", "image", "asset", "resolved", "endpoint", "traceparent", "namespace",
        "checksum", "sha256", "sha512", "sha512sum", "sha256sum", "md5", "name", "url", "uri", "path", "dir",
        "crt", "cert", "certificate", "ikey",
    ]
    /// Key components that make any key name an identifier's (`stripe-publishable-key`, `AUTHORIZED_KEY`, `public_key`).
    static let identifierKeyQualifiers: Set<String> = ["publishable", "public", "authorized", "known", "pub"]

    /// Whether a key name (any case and separators) names an identifier, not a secret.
    static func isIdentifierKey<C: Collection>(_ key: C) -> Bool where C.Element == UInt8 {
        var parts: [String] = []
        var cur: [UInt8] = []
        var prevLower = false
        for c in key {
            let upper = c >= 65 && c <= 90
            if isAlnum(c) {
                if upper && prevLower && !cur.isEmpty { parts.append(String(decoding: cur, as: UTF8.self)); cur = [] }
                cur.append(lowerASCII(c))
                prevLower = !upper && !isDigit(c)
            } else {
                if !cur.isEmpty { parts.append(String(decoding: cur, as: UTF8.self)); cur = [] }
                prevLower = false
            }
        }
        if !cur.isEmpty { parts.append(String(decoding: cur, as: UTF8.self)) }
        guard let last = parts.last else { return false }
        return identifierKeyWords.contains(last) || parts.contains(where: identifierKeyQualifiers.contains)
    }

    /// DER prefixes of public keys in base64 (SubjectPublicKeyInfo for RSA 2048/4096, EC P-256, Ed25519).
    static let publicKeyPrefixes: [[UInt8]] = ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A", "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8A",
                                               "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE", "MCowBQYDK2VwAyEA"].map { Array($0.utf8) }
    static let valuePrefixes: [[UInt8]] = ["pk_live_", "pk_test_", "pk.eyJ", "sha256:", "sha512:", "sha1:", "sha512-", "sha384-", "sha256-", "sha1-",
                                           "h1:", "ssh-rsa ", "ssh-ed25519 ", "ecdsa-sha2-", "data:image/", "data:application/"].map { Array($0.utf8) }

    /// Unambiguous non-secrets: publishable keys, digests with their algorithm, public-key material.
    static func isPublicOrDigest(_ v: [UInt8]) -> Bool {
        for p in valuePrefixes where v.starts(with: p) { return true }
        for p in publicKeyPrefixes where v.starts(with: p) { return true }
        return false
    }

    /// Whether a value has the shape of a non-secret identifier (see the type's documentation).
    /// `hex: false` keeps hex strings (a 32-hex API key and an MD5 have the same shape: only a
    /// key name or a noun tells them apart).
    static func isIdentifierValue(_ v: [UInt8], hex: Bool = true) -> Bool {
        guard !v.isEmpty else { return true }
        if isPublicOrDigest(v) { return true }
        var hexOrDash = true, lowerHost = true, hasDot = false, dashes = 0, braces = 0
        for b in v {
            if b == 32 || b == 9 || b == 10 { return true } // phrases, key lines, go.sum lines
            if b == UInt8(ascii: "{") || b == UInt8(ascii: "}") { braces += 1 }
            if !(ByteSet.hex.contains(b) || b == 45) { hexOrDash = false }
            if !((b >= 97 && b <= 122) || isDigit(b) || b == 45 || b == 46) { lowerHost = false }
            if b == 46 { hasDot = true }
            if b == 45 { dashes += 1 }
        }
        if hexOrDash && hex { return true }            // digests, short SHAs, UUIDs, trace ids
        if braces >= 2 { return true }                 // JSON, templates, code
        if isVersion(v) { return true }                // 4.40.3, v1.2.3-rc.1+abc
        if lowerHost && !hexOrDash && (hasDot || dashes >= 2) { return true } // api-1.duosecurity.com, us-east-1
        if Placeholders.contains(v, Array("://".utf8)) || (v.contains(UInt8(ascii: "@")) && hasDot) { return true }
        return isPath(v)
    }

    /// `v?[0-9]+(.[0-9]+)+`, optionally followed by `-` or `+` and a pre-release / build suffix.
    static func isVersion(_ v: [UInt8]) -> Bool {
        var i = 0
        if i < v.count && (v[i] == UInt8(ascii: "v") || v[i] == UInt8(ascii: "V")) { i += 1 }
        var groups = 0
        while i < v.count {
            let s = i
            while i < v.count && isDigit(v[i]) { i += 1 }
            guard i > s else { return false }
            groups += 1
            if i < v.count && v[i] == 46 { i += 1; continue }
            break
        }
        guard groups >= 2 else { return false }
        if i == v.count { return true }
        guard v[i] == 45 || v[i] == 43 else { return false }
        return v[(i + 1)...].allSatisfy { isAlnum($0) || $0 == 46 || $0 == 45 || $0 == 43 }
    }

    /// `/static/js/main.js`, `./x`, `~/x`: a leading segment of lowercase path characters.
    static func isPath(_ v: [UInt8]) -> Bool {
        if v.starts(with: "./".utf8) || v.starts(with: "~/".utf8) { return true }
        guard v.first == UInt8(ascii: "/") else { return false }
        var i = 1
        while i < v.count && v[i] != UInt8(ascii: "/") {
            let c = v[i]
            guard (c >= 97 && c <= 122) || isDigit(c) || c == 45 || c == 95 || c == 46 else { return false }
            i += 1
        }
        return i > 1
    }
}
