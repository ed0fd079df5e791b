import Foundation

/// Path globs, as `policy.hold.paths` and `detection.allow[].path` write them: `**` matches any
/// characters (across segments), `*` any characters but `/` (within one segment), anything
/// else itself.
public enum PathGlob {
    /// Whether `glob` is a usable path glob: starts with `/` and compiles.
    public static func isValid(_ glob: String) -> Bool {
        glob.hasPrefix("/") && (try? NSRegularExpression(pattern: regex(glob))) != nil
    }

    /// Whether `path` matches `glob` (case-sensitive); `false` for an invalid glob.
    public static func matches(_ glob: String, _ path: String) -> Bool {
        guard let regex = try? NSRegularExpression(pattern: regex(glob)) else { return false }
        return regex.firstMatch(in: path, options: [], range: NSRange(path.startIndex..., in: path)) != nil
    }

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
