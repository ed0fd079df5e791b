import Foundation

/// Shannon entropy, in bits per byte, of a byte string. Pure; allocation-free.
public enum Entropy {
    public static func shannon<C: Collection>(_ bytes: C) -> Double where C.Element == UInt8 {
        let n = bytes.count
        guard n > 0 else { return 0 }
        var counts = [Int](repeating: 0, count: 256)
        for b in bytes { counts[Int(b)] += 1 }
        var h = 0.0
        let dn = Double(n)
        for c in counts where c > 0 {
            let p = Double(c) / dn
            h -= p * log2(p)
        }
        return h
    }

    /// Number of character classes (lower, upper, digit, other) present.
    static func classCount<C: Collection>(_ bytes: C) -> Int where C.Element == UInt8 {
        var l = false, u = false, d = false, o = false
        for b in bytes {
            if b >= 97 && b <= 122 { l = true } else if b >= 65 && b <= 90 { u = true }
            else if b >= 48 && b <= 57 { d = true } else { o = true }
        }
        return (l ? 1 : 0) + (u ? 1 : 0) + (d ? 1 : 0) + (o ? 1 : 0)
    }

}
