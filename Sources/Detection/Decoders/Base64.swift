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
        var out: [UInt8] = []
        out.reserveCapacity(Swift.min(limit, s.count * 3 / 4 + 2))
        var acc: UInt32 = 0
        var bits = 0
        var sawStd = false, sawURL = false, sawPad = false
        for c in s {
            if c == UInt8(ascii: "=") { sawPad = true; continue }
            if sawPad { return nil }
            let v = table[Int(c)]
            if v < 0 { return nil }
            if c == UInt8(ascii: "+") || c == UInt8(ascii: "/") { sawStd = true }
            if c == UInt8(ascii: "-") || c == UInt8(ascii: "_") { sawURL = true }
            acc = (acc << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((acc >> UInt32(bits)) & 0xff))
                if out.count >= limit { return out }
            }
        }
        if sawStd && sawURL { return nil }
        if bits >= 6 { return nil } // a lone trailing symbol is not valid base64
        return out
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
