/// Checksums used to validate token and PII formats. All functions are pure.
public enum Checksums {
    private static let crcTable: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 (IEEE 802.3, as zlib's `crc32`).
    public static func crc32<C: Collection>(_ data: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = crcTable[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// Base62 alphabet used by GitHub token checksums (digits, upper, lower).
    public static let base62Upper: [UInt8] = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    /// The other common base62 ordering (digits, lower, upper).
    public static let base62Lower: [UInt8] = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)

    /// `value` in base62, left-padded with the alphabet's zero to `width` characters.
    public static func base62(_ value: UInt32, width: Int = 6, alphabet: [UInt8] = base62Upper) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        while v > 0 { out.append(alphabet[Int(v % 62)]); v /= 62 }
        while out.count < width { out.append(alphabet[0]) }
        return out.reversed()
    }

    /// GitHub token checksum: the last 6 chars of the 36-char token body are
    /// base62(CRC32(first 30 chars)). Accepts either base62 ordering.
    public static func githubChecksumValid<C: Collection>(body: C) -> Bool where C.Element == UInt8 {
        let b = Array(body)
        guard b.count == 36 else { return false }
        let crc = crc32(b[0..<30])
        let tail = Array(b[30..<36])
        return base62(crc, alphabet: base62Upper) == tail || base62(crc, alphabet: base62Lower) == tail
    }

    /// Luhn (mod 10) over ASCII digits; non-digits are ignored.
    public static func luhnValid<C: Collection>(_ digits: C) -> Bool where C.Element == UInt8 {
        var sum = 0
        var double = false
        var n = 0
        for ch in digits.reversed() {
            guard ch >= 48 && ch <= 57 else { continue }
            var d = Int(ch - 48)
            if double { d *= 2; if d > 9 { d -= 9 } }
            sum += d
            double.toggle()
            n += 1
        }
        return n > 1 && sum % 10 == 0
    }

    /// ISO 13616 IBAN check: mod-97 of the rearranged number equals 1. Spaces are ignored.
    public static func ibanValid<C: Collection>(_ text: C) -> Bool where C.Element == UInt8 {
        let s = text.filter { $0 != 32 }
        guard s.count >= 15 && s.count <= 34 else { return false }
        let rearranged = Array(s[s.index(s.startIndex, offsetBy: 4)...]) + Array(s.prefix(4))
        var rem = 0
        for ch in rearranged {
            switch ch {
            case 48...57: rem = (rem * 10 + Int(ch - 48)) % 97
            case 65...90: rem = (rem * 100 + Int(ch - 55)) % 97
            default: return false
            }
        }
        return rem == 1
    }

    /// US SSN valid ranges: area 001–899 except 666, group 01–99, serial 0001–9999.
    public static func ssnValid(area: Int, group: Int, serial: Int) -> Bool {
        area >= 1 && area <= 899 && area != 666 && group >= 1 && group <= 99 && serial >= 1 && serial <= 9999
    }
}
