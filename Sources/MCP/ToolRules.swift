import Foundation

/// A connection's `policy.tools` lists, compiled: which tools a caller may see and call, and
/// which calls wait for approval. Pure data, pure functions.
///
/// Globs: `*` matches any run of characters (also none), `?` exactly one, anything else itself.
///
/// Guarantees (a tool name is the caller's text, so a spelling must not slip past a rule):
/// - `deny` and `hold` match a name under every reading a server might give it: as sent,
///   case-folded, NFKC-normalised with default-ignorable characters removed (fullwidth
///   `ｄｅｌｅｔｅ_repo`, `delete\u{200B}_repo`) and trimmed of surrounding white space, each
///   also case-folded. One match is enough.
/// - `allow` (when not empty) must match the name exactly as sent, case and all: a name that is
///   only allowed under some reading is not allowed.
/// - A name is visible in `tools/list` and may be called only when it is allowed and not denied.
public struct ToolRules: Sendable {
    public let allow: [String]
    public let deny: [String]
    public let hold: [String]

    public init(allow: [String] = [], deny: [String] = [], hold: [String] = []) {
        self.allow = allow
        self.deny = deny
        self.hold = hold
    }

    public static let none = ToolRules()

    /// Why a tool may not be called, naming the rule (`tools.deny[0] "delete_*"`, `tools.allow`),
    /// or nil when it may.
    public func refusal(of name: String) -> String? {
        for (k, glob) in deny.enumerated() where Self.matchesAnyReading(glob, name) {
            return "tools.deny[\(k)] \"\(glob)\""
        }
        if !allow.isEmpty, !allow.contains(where: { Self.glob($0, matches: name) }) { return "tools.allow (not listed)" }
        return nil
    }

    public func isVisible(_ name: String) -> Bool { refusal(of: name) == nil }

    /// The `hold` globs that `name` matches, as reasons (`tools.hold[1] "transfer_*"`).
    public func holdReasons(for name: String) -> [String] {
        hold.enumerated().compactMap { k, glob in Self.matchesAnyReading(glob, name) ? "tools.hold[\(k)] \"\(glob)\"" : nil }
    }

    /// Whether `glob` matches some reading of `name` (`readings(of:)`), case-folded: how `deny`,
    /// `hold` and `hold_if`'s tool globs match.
    public static func matchesAnyReading(_ glob: String, _ name: String) -> Bool {
        let g = glob.lowercased()
        return readings(of: name).contains { Self.glob(g, matches: $0.lowercased()) }
    }

    /// The name as sent, NFKC-normalised without default-ignorable characters, and that with
    /// surrounding white space and control characters trimmed (a server may trim): distinct.
    public static func readings(of name: String) -> [String] {
        var normalised = ""
        for scalar in name.precomposedStringWithCompatibilityMapping.unicodeScalars where !scalar.properties.isDefaultIgnorableCodePoint {
            normalised.unicodeScalars.append(scalar)
        }
        let trimmed = normalised.trimmingCharacters(in: .whitespacesAndNewlines.union(.controlCharacters))
        var out = [name]
        for reading in [normalised, trimmed] where !out.contains(reading) { out.append(reading) }
        return out
    }

    /// Whether `glob` matches all of `text` (by Unicode scalar).
    public static func glob(_ glob: String, matches text: String) -> Bool {
        let g = Array(glob.unicodeScalars), t = Array(text.unicodeScalars)
        var gi = 0, ti = 0
        var starG = -1, starT = 0
        while ti < t.count {
            if gi < g.count, g[gi] == "?" || (g[gi] != "*" && g[gi] == t[ti]) {
                gi += 1
                ti += 1
            } else if gi < g.count, g[gi] == "*" {
                starG = gi
                starT = ti
                gi += 1
            } else if starG >= 0 {
                gi = starG + 1
                starT += 1
                ti = starT
            } else {
                return false
            }
        }
        while gi < g.count, g[gi] == "*" { gi += 1 }
        return gi == g.count
    }
}
