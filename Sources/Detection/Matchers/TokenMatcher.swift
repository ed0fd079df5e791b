/// Confirms token rules (fixed prefixes, checksums, entropy) around a keyword hit.
enum TokenMatcher {
    /// Confidence of a shape match whose checksum fails.
    static let failedChecksumConfidence = 0.7

    static func run(_ rule: Rule, _ pattern: TokenPattern, lead: Lead, p: UnsafeBufferPointer<UInt8>, ks: Int, ke: Int) -> Match? {
        let start: Int
        switch lead {
        case .fixed(let n):
            start = ks - n
        case .back(let set, let lo, let hi):
            var s = ks
            while s > 0 && ks - s < hi && set.contains(p[s - 1]) { s -= 1 }
            guard ks - s >= lo else { return nil }
            start = s
        }
        guard start >= 0, start < p.count else { return nil }
        guard Scan.leftOK(p, start, rule.leftBlock) else { return nil }
        guard let end = pattern.match(p, at: start, limit: min(p.count, start + 4096)) else { return nil }
        guard Scan.rightOK(p, end, rule.rightBlock) else { return nil }
        let token = Scan.bytes(p, start, end)
        let lp = pattern.literalPrefix
        let body: ArraySlice<UInt8> = (token.starts(with: lp) && lp.count < token.count) ? token[lp.count...] : token[...]
        // A placeholder marker (`todo`, `test`, `xxxx`, ...) inside a token whose checksum holds is
        // chance, not a placeholder: about 1 in 10,000 random GitHub tokens holds one, and was
        // let through unmasked. A made-up token does not carry a valid CRC-32.
        let checksumHolds: Bool
        if case .githubChecksum = rule.validator, token.count == 40 {
            checksumHolds = Checksums.githubChecksumValid(body: token[4..<40])
        } else {
            checksumHolds = false
        }
        if rule.placeholderCheck && !checksumHolds && Placeholders.isPlaceholder(body) { return nil }
        // Keys printed in providers' own documentation are in every tutorial and sample: not leaks.
        if Placeholders.isDocumentedExample(token) { return nil }
        if rule.minEntropy > 0 && Entropy.shannon(body) < rule.minEntropy { return nil }
        switch rule.validator {
        case .none: break
        case .githubChecksum:
            // A token of the provider's shape is a finding whether or not its checksum holds: the
            // checksum raises confidence, it never clears a shape match (a mistyped, truncated or
            // deliberately altered token is still sent somewhere it should not go).
            // Only the 40-byte formats have a documented checksum layout (longer `ghr_` refresh
            // tokens are reported on their shape alone).
            if token.count == 40 && !checksumHolds {
                return Match(start: start, end: end, secret: token, confidence: Self.failedChecksumConfidence, checksumFailed: true)
            }
        case .jwt:
            guard JWTCheck.valid(token) else { return nil }
        case .notFirebaseWebConfig:
            if FirebaseWebConfig.surrounds(p, start, end) { return nil }
        }
        return Match(start: start, end: end, secret: token, confidence: rule.confidence)
    }
}

/// JWT structural validation: a base64url JSON header with "alg", and not the jwt.io example.
enum JWTCheck {
    static func valid(_ token: [UInt8]) -> Bool {
        let parts = token.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3, let header = Base64.decode(Array(parts[0]), urlSafe: true),
              let payload = Base64.decode(Array(parts[1]), urlSafe: true) else { return false }
        guard header.first == UInt8(ascii: "{"), Placeholders.contains(header, Array("\"alg\"".utf8)) else { return false }
        // The jwt.io documentation example (sub 1234567890, John Doe).
        if Placeholders.contains(payload, Array("John Doe".utf8)) && Placeholders.contains(payload, Array("1234567890".utf8)) { return false }
        return true
    }
}
