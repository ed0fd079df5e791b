/// A set of bytes as a 256-bit bitmap. Value type, immutable after construction.
public struct ByteSet: Sendable, Hashable {
    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    public init() {}

    /// Builds a set from a class body such as `A-Za-z0-9_-` (ranges and single chars, `\` escapes).
    public init(_ spec: String) {
        let b = Array(spec.utf8)
        var i = 0
        while i < b.count {
            var c = b[i]
            if c == 92, i + 1 < b.count { i += 1; c = b[i] }
            if i + 2 < b.count, b[i + 1] == 45 {
                var hi = b[i + 2]
                var skip = 3
                if hi == 92, i + 3 < b.count { hi = b[i + 3]; skip = 4 }
                if hi >= c { for x in c...hi { insert(x) } }
                i += skip
                continue
            }
            insert(c)
            i += 1
        }
    }

    public mutating func insert(_ b: UInt8) {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: w0 |= bit
        case 1: w1 |= bit
        case 2: w2 |= bit
        default: w3 |= bit
        }
    }

    @inline(__always) public func contains(_ b: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: return w0 & bit != 0
        case 1: return w1 & bit != 0
        case 2: return w2 & bit != 0
        default: return w3 & bit != 0
        }
    }

    /// True when no byte is in both sets.
    func isDisjoint(with o: ByteSet) -> Bool {
        (w0 & o.w0) | (w1 & o.w1) | (w2 & o.w2) | (w3 & o.w3) == 0
    }

    public func union(_ o: ByteSet) -> ByteSet {
        var r = self
        r.w0 |= o.w0; r.w1 |= o.w1; r.w2 |= o.w2; r.w3 |= o.w3
        return r
    }

    public var inverted: ByteSet {
        var r = self
        r.w0 = ~w0; r.w1 = ~w1; r.w2 = ~w2; r.w3 = ~w3
        return r
    }

    static let alnum = ByteSet("A-Za-z0-9")
    static let digits = ByteSet("0-9")
    static let hex = ByteSet("0-9a-fA-F")
    static let upper = ByteSet("A-Z")
    static let base64 = ByteSet("A-Za-z0-9+/")
    static let base64url = ByteSet("A-Za-z0-9_\\-")
    static let base64any = ByteSet("A-Za-z0-9+/_\\-")
    /// Characters that may appear in an identifier or key name (`DB_PASSWORD`, `x-api-key`, `client.secret`).
    static let ident = ByteSet("A-Za-z0-9_.\\-")
    static let space = ByteSet(" \t\r\n")
}

@inline(__always) func lowerASCII(_ b: UInt8) -> UInt8 { (b >= 65 && b <= 90) ? b | 0x20 : b }
@inline(__always) func isAlnum(_ b: UInt8) -> Bool { (b >= 48 && b <= 57) || ((b | 0x20) >= 97 && (b | 0x20) <= 122) }
@inline(__always) func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }
