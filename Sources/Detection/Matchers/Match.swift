/// A confirmed match produced by a matcher, in the coordinates of the buffer it ran on.
struct Match {
    /// Span to mask.
    var start: Int
    var end: Int
    /// The secret bytes that are fingerprinted (often the span itself).
    var secret: [UInt8]
    var confidence: Double
    /// The token has its provider's shape but fails the provider's checksum: still a finding
    /// (a shape is enough), one severity step lower and with lower confidence.
    var checksumFailed = false
}

/// Shared helpers for matchers working on raw byte buffers.
enum Scan {
    /// True when the byte at `i` is the letter of a backslash escape (`\n`, `\t`, `\u`...),
    /// so that a token right after `\n` in a JSON string still has a left boundary.
    @inline(__always)
    static func isEscapeLetter(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
        guard i >= 1, p[i - 1] == 92 else { return false }
        var k = i - 1
        var count = 0
        while k >= 0 && p[k] == 92 { count += 1; k -= 1 }
        return count % 2 == 1
    }

    /// Left boundary: position `start` is at the buffer start, or the byte before it is
    /// not in `block`, or is an escape letter.
    @inline(__always)
    static func leftOK(_ p: UnsafeBufferPointer<UInt8>, _ start: Int, _ block: ByteSet) -> Bool {
        start == 0 || !block.contains(p[start - 1]) || isEscapeLetter(p, start - 1)
    }

    @inline(__always)
    static func rightOK(_ p: UnsafeBufferPointer<UInt8>, _ end: Int, _ block: ByteSet) -> Bool {
        end >= p.count || !block.contains(p[end])
    }

    static func bytes(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> [UInt8] { Array(p[s..<e]) }

    /// Case-insensitive comparison of `p[at...]` with a lowercase ASCII literal.
    static func hasPrefixCI(_ p: UnsafeBufferPointer<UInt8>, _ at: Int, _ lit: [UInt8]) -> Bool {
        guard at >= 0, at + lit.count <= p.count else { return false }
        for (k, c) in lit.enumerated() where lowerASCII(p[at + k]) != c { return false }
        return true
    }

    static func hasPrefix(_ p: UnsafeBufferPointer<UInt8>, _ at: Int, _ lit: [UInt8]) -> Bool {
        guard at >= 0, at + lit.count <= p.count else { return false }
        for (k, c) in lit.enumerated() where p[at + k] != c { return false }
        return true
    }

    /// Finds a lowercase literal case-insensitively in `p[from..<to]`.
    static func findCI(_ p: UnsafeBufferPointer<UInt8>, _ lit: [UInt8], from: Int, to: Int) -> Int? {
        let lo = max(0, from), hi = min(p.count, to) - lit.count
        guard hi >= lo, let f = lit.first else { return nil }
        var i = lo
        while i <= hi {
            if lowerASCII(p[i]) == f && hasPrefixCI(p, i, lit) { return i }
            i += 1
        }
        return nil
    }

    static func find(_ p: UnsafeBufferPointer<UInt8>, _ lit: [UInt8], from: Int, to: Int) -> Int? {
        let lo = max(0, from), hi = min(p.count, to) - lit.count
        guard hi >= lo, let f = lit.first else { return nil }
        var i = lo
        while i <= hi {
            if p[i] == f && hasPrefix(p, i, lit) { return i }
            i += 1
        }
        return nil
    }
}
