/// Percent-decoding (RFC 3986) with an offset map. `+` becomes a space for query/form content.
enum PercentDecoder {
    /// URL characters that may form a percent-encoded region (no quotes, spaces or backslashes).
    static let regionSet = ByteSet("A-Za-z0-9\\-._~:/?#[]@!$&*+,;=%")

    @inline(__always) static func hexVal(_ c: UInt8) -> Int {
        switch c {
        case 48...57: return Int(c - 48)
        case 65...70: return Int(c - 55)
        case 97...102: return Int(c - 87)
        default: return -1
        }
    }

    static func decode(_ p: UnsafeBufferPointer<UInt8>, region: Range<Int>, plusIsSpace: Bool) -> Decoded? {
        var out: [UInt8] = []
        var ss: [Int32] = [], se: [Int32] = []
        out.reserveCapacity(region.count)
        var i = region.lowerBound
        var changed = false
        while i < region.upperBound {
            let c = p[i]
            if c == 37, i + 3 <= region.upperBound {
                let h = hexVal(p[i + 1]), l = hexVal(p[i + 2])
                if h >= 0 && l >= 0 {
                    out.append(UInt8(h * 16 + l)); ss.append(Int32(i)); se.append(Int32(i + 3))
                    i += 3; changed = true
                    continue
                }
            }
            if c == 43 && plusIsSpace {
                out.append(32); changed = true
            } else {
                out.append(c)
            }
            ss.append(Int32(i)); se.append(Int32(i + 1))
            i += 1
        }
        guard changed else { return nil }
        return Decoded(via: "percent", bytes: out, srcStart: ss, srcEnd: se, region: region)
    }
}
