import Foundation

/// Path globs, as `policy.hold.paths` and `detection.allow[].path` write them: `**` matches any
/// characters (across segments), `*` any characters but `/` (within one segment), anything
/// else itself.
public enum PathGlob {
    /// The anchored regular expression (`^…$`) equivalent to `glob`.
    public static func regex(_ glob: String) -> String {
        var out = "^"
        var chars = Array(glob)[...]
        while let c = chars.popFirst() {
            if c == "*" {
                if chars.first == "*" {
                    chars.removeFirst()
                    out += ".*"
                } else {
                    out += "[^/]*"
                }
            } else {
                out += NSRegularExpression.escapedPattern(for: String(c))
            }
        }
        return out + "$"
    }
}
