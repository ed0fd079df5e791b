import CHyperscan

/// Base64 / base64url decoding (padded or unpadded). Pure.
enum Base64 {
    private static let table: [Int16] = {
        var t = [Int16](repeating: -1, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8.enumerated() { t[Int(c)] = Int16(i) }
        t[Int(UInt8(ascii: "+"))] = 62; t[Int(UInt8(ascii: "/"))] = 63
        t[Int(UInt8(ascii: "-"))] = 62; t[Int(UInt8(ascii: "_"))] = 63
        return t
    }()

    /// Decodes `s` (trailing `=` optional). `urlSafe` only documents intent: both alphabets are
    /// accepted, but mixing `+/` with `-_` is rejected. Returns nil on invalid input.
    static func decode<C: Collection>(_ s: C, urlSafe: Bool = false, limit: Int = Int.max) -> [UInt8]? where C.Element == UInt8 {
        if let r = s.withContiguousStorageIfAvailable({ decode(contiguous: $0, limit: limit) }) { return r }
        return Array(s).withUnsafeBufferPointer { decode(contiguous: $0, limit: limit) }
    }

    /// `decode` over contiguous bytes, output written in place.
    static func decode(contiguous s: UnsafeBufferPointer<UInt8>, limit: Int) -> [UInt8]? {
        let cap = Swift.min(Swift.max(1, limit), s.count * 3 / 4 + 2) // limit <= 0 still yields the first byte, as always
        var ok = true
        let out = [UInt8](unsafeUninitializedCapacity: cap) { o, count in
            if let n = decode(s, into: o, limit: limit) { count = n } else { ok = false; count = 0 }
        }
        return ok ? out : nil
    }

    /// The decoding loop: one table load per byte, writing into `o`, which must hold
    /// `min(max(1, limit), s.count * 3 / 4 + 2)` bytes. Returns the decoded length.
    ///
    /// Guarantees: the same result as the symbol-by-symbol definition: `=` may only be
    /// followed by `=`, a byte outside both alphabets or a mix of `+/` with `-_` gives nil,
    /// a lone trailing symbol gives nil, and decoding stops (successfully) at `limit` bytes.
    @inline(__always)
    static func decode(_ s: UnsafeBufferPointer<UInt8>, into o: UnsafeMutableBufferPointer<UInt8>, limit: Int) -> Int? {
        table.withUnsafeBufferPointer { t -> Int? in
            var acc: UInt32 = 0
            var bits = 0
            var n = 0
            var sawStd = false, sawURL = false, sawPad = false
            for c in s {
                if c == 61 { sawPad = true; continue }
                let v = t[Int(c)]
                if sawPad || v < 0 { return nil }
                if c == 43 || c == 47 { sawStd = true } else if c == 45 || c == 95 { sawURL = true }
                acc = (acc << 6) | UInt32(v)
                bits &+= 6
                if bits >= 8 {
                    bits &-= 8
                    o[n] = UInt8(truncatingIfNeeded: acc >> UInt32(bits))
                    n &+= 1
                    if n >= limit { return n }
                }
            }
            if (sawStd && sawURL) || bits >= 6 { return nil }
            return n
        }
    }

    /// The check `base64Region` makes before decoding a whole run: decodes the first 64
    /// symbols on the stack (no allocation). nil when they are not valid base64; else whether
    /// the decoded bytes start with the gzip magic and whether they `looksLikeText`.
    ///
    /// Guarantees: the same result as `probeReference` (decode the first 64 symbols with
    /// `decode`, then `looksLikeText`); it runs in C (`chs_b64_probe`), one table load per symbol,
    /// because a realistic payload holds a base64-class run (ids, model names, paths) every few
    /// hundred bytes and almost all of them are rejected here.
    static func probe(_ s: UnsafeBufferPointer<UInt8>) -> (gzip: Bool, text: Bool)? {
        let r = chs_b64_probe(s.baseAddress, s.count)
        if r < 0 { return nil }
        return (r & 1 != 0, r & 2 != 0)
    }

    /// `probe` as `base64Region` uses it: `.gzip` when valid with the gzip magic, `.text` when
    /// valid, text and without it, nil otherwise (`chs_b64_probe_worth`, which stops decoding as
    /// soon as neither can hold).
    static func probeWorth(_ s: UnsafeBufferPointer<UInt8>) -> ProbeKind? {
        switch chs_b64_probe_worth(s.baseAddress, s.count) {
        case 1: return .gzip
        case 2: return .text
        default: return nil
        }
    }

    enum ProbeKind { case gzip, text }

    /// `probe` by definition, in Swift (tests compare the two).
    static func probeReference(_ s: UnsafeBufferPointer<UInt8>) -> (gzip: Bool, text: Bool)? {
        let src = UnsafeBufferPointer(rebasing: s.prefix(64))
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { buf -> (gzip: Bool, text: Bool)? in
            guard let n = decode(src, into: buf, limit: Int.max) else { return nil }
            let d = UnsafeBufferPointer(rebasing: buf[..<n])
            return (n >= 2 && d[0] == 0x1f && d[1] == 0x8b, looksLikeText(d))
        }
    }

    /// Standard base64 encoding with padding (used by tests and the CLI).
    static func encode(_ data: [UInt8], urlSafe: Bool = false, pad: Bool = true) -> [UInt8] {
        let alpha = Array((urlSafe ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                                   : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/").utf8)
        var out: [UInt8] = []
        var i = 0
        while i + 2 < data.count {
            let n = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2])
            out += [alpha[Int(n >> 18)], alpha[Int((n >> 12) & 63)], alpha[Int((n >> 6) & 63)], alpha[Int(n & 63)]]
            i += 3
        }
        let rem = data.count - i
        if rem == 1 {
            let n = UInt32(data[i]) << 16
            out += [alpha[Int(n >> 18)], alpha[Int((n >> 12) & 63)]]
            if pad { out += [61, 61] }
        } else if rem == 2 {
            let n = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8
            out += [alpha[Int(n >> 18)], alpha[Int((n >> 12) & 63)], alpha[Int((n >> 6) & 63)]]
            if pad { out.append(61) }
        }
        return out
    }

    /// `base64(user:password)` as in HTTP Basic credentials and Docker `auths` entries: the
    /// decoded text when `s` (8+ symbols) decodes to printable text holding a `:` followed by a
    /// non-empty password that is not a placeholder; nil otherwise. The one check both the
    /// `Authorization: Basic` and the Docker config matchers use.
    static func userPassword<C: Collection>(_ s: C) -> [UInt8]? where C.Element == UInt8 {
        guard s.count >= 8, let d = decode(s), looksLikeText(d), let c = d.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let pw = d[(c + 1)...]
        guard !pw.isEmpty, !Placeholders.isPlaceholder(pw) else { return nil }
        return d
    }

    /// True when at least 90% of the bytes are printable ASCII / whitespace / UTF-8 continuation
    /// and there are no NULs: the decoded data is text worth scanning.
    static func looksLikeText<C: Collection>(_ d: C) -> Bool where C.Element == UInt8 {
        guard !d.isEmpty else { return false }
        var good = 0
        for b in d {
            if b == 0 { return false }
            if (b >= 32 && b < 127) || b == 9 || b == 10 || b == 13 || b >= 0xC2 { good += 1 }
        }
        return good * 10 >= d.count * 9
    }
}
