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

    /// Decodes `%XX` (and `+` when `plusIsSpace`) in `p[region]`, mapping every decoded byte to
    /// the escape (or byte) it came from; nil when nothing changes.
    ///
    /// Guarantees: never reads outside `region`; the output is never longer than the region (every
    /// escape decodes to one byte), so it is written in place into buffers of `region.count`
    /// elements, with no per-byte growth check.
    static func decode(_ p: UnsafeBufferPointer<UInt8>, region: Range<Int>, plusIsSpace: Bool) -> Decoded? {
        let cap = region.count
        var n = 0
        var changed = false
        var ss: [Int32] = [], se: [Int32] = []
        let out = [UInt8](unsafeUninitializedCapacity: cap) { o, oCount in
            ss = [Int32](unsafeUninitializedCapacity: cap) { a, aCount in
                se = [Int32](unsafeUninitializedCapacity: cap) { b, bCount in
                    (n, changed) = decodeLoop(p, region, plusIsSpace, o, a, b)
                    bCount = n
                }
                aCount = n
            }
            oCount = n
        }
        guard changed else { return nil }
        return Decoded(via: "percent", bytes: out, srcStart: ss, srcEnd: se, region: region)
    }

    /// `decode`, written into `buf` (grown to `region.count` first) instead of three new arrays;
    /// the decoded length, nil when nothing changes (the same bytes and map as `decode`).
    static func decode(_ p: UnsafeBufferPointer<UInt8>, region: Range<Int>, plusIsSpace: Bool, into buf: DecodeBuffer) -> Int? {
        buf.reserve(region.count)
        let (n, changed) = decodeLoop(p, region, plusIsSpace, buf.bytes, buf.srcStart, buf.srcEnd)
        return changed ? n : nil
    }

    /// The loop of `decode`, writing decoded bytes to `o` and their source spans to `a`/`b`
    /// (each at least `region.count` long). Returns the decoded length and whether anything changed.
    @inline(__always)
    static func decodeLoop(_ p: UnsafeBufferPointer<UInt8>, _ region: Range<Int>, _ plusIsSpace: Bool,
                           _ o: UnsafeMutableBufferPointer<UInt8>, _ a: UnsafeMutableBufferPointer<Int32>,
                           _ b: UnsafeMutableBufferPointer<Int32>) -> (Int, Bool) {
        var n = 0
        var changed = false
        var i = region.lowerBound
        let end = region.upperBound
        while i < end {
            let c = p[i]
            if c == 37, i + 3 <= end {
                let h = hexVal(p[i + 1]), l = hexVal(p[i + 2])
                if h >= 0 && l >= 0 {
                    o[n] = UInt8(h * 16 + l); a[n] = Int32(i); b[n] = Int32(i + 3); n += 1
                    i += 3; changed = true
                    continue
                }
            }
            if c == 43 && plusIsSpace {
                o[n] = 32; changed = true
            } else {
                o[n] = c
            }
            a[n] = Int32(i); b[n] = Int32(i + 1); n += 1
            i += 1
        }
        return (n, changed)
    }
}
