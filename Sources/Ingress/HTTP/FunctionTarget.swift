import Foundation
import Pipeline

/// The parts of a `/fn/{connection}/{rest}?{query}` request target, taken from the raw
/// target exactly as sent.
///
/// Guarantees: `rest` keeps its percent-encoding and starts with `/` (`/` when the target
/// stops after the connection); `query` is the raw text after the first `?` (empty when
/// absent); `connection` is the raw first segment (not decoded). ``canonical()`` turns them
/// into the one spelling every later check uses, or refuses.
struct FunctionTarget: Sendable, Equatable {
    static let prefix = "/fn/"

    var connection: String
    var rest: String
    var query: String

    init(connection: String, rest: String, query: String) {
        self.connection = connection
        self.rest = rest
        self.query = query
    }

    /// `nil` when `target` is not under `/fn/` or names no connection.
    init?(requestTarget target: String) {
        let pathPart: Substring
        if let q = target.firstIndex(of: "?") {
            pathPart = target[..<q]
            query = String(target[target.index(after: q)...])
        } else {
            pathPart = target[...]
            query = ""
        }
        guard pathPart.hasPrefix(Self.prefix) else { return nil }
        let afterPrefix = pathPart.dropFirst(Self.prefix.count)
        let rawConnection: Substring
        if let slash = afterPrefix.firstIndex(of: "/") {
            rawConnection = afterPrefix[..<slash]
            rest = String(afterPrefix[slash...])
        } else {
            rawConnection = afterPrefix
            rest = "/"
        }
        guard !rawConnection.isEmpty else { return nil }
        connection = String(rawConnection)
    }

    /// The target as every later check sees it: the connection name (escapes of unreserved
    /// characters decoded; anything else odd refused), the canonical path and query
    /// (``CanonicalPath``).
    struct Canonical: Sendable, Equatable {
        var connection: String
        var path: String
        var query: String
    }

    /// Refuses a connection segment that is not plain after decoding unreserved escapes (an
    /// encoded `/`, `%`, control or non-ASCII character, a dot segment), and whatever
    /// ``CanonicalPath`` refuses in the path or query.
    func canonical() throws(CanonicalPath.Refusal) -> Canonical {
        Canonical(connection: try Self.connectionName(connection), path: try CanonicalPath.canonicalize(rest),
                  query: try CanonicalPath.canonicalizeQuery(query))
    }

    static func connectionName(_ raw: String) throws(CanonicalPath.Refusal) -> String {
        let refusal = CanonicalPath.Refusal(reason: "The connection name must be plain ASCII without escapes, slashes or dot segments.")
        let canonical: String
        do { canonical = try CanonicalPath.canonicalize("/" + raw) } catch { throw refusal }
        let name = canonical.dropFirst()
        guard !name.isEmpty, !name.contains("%"), !name.contains("/") else { throw refusal }
        return String(name)
    }

    /// Whether `target` is in the `/fn/` namespace at all (so it is never handled by other routes).
    static func isFunctionCall(_ target: String) -> Bool {
        target.hasPrefix(prefix) || target == "/fn" || target.hasPrefix("/fn?")
    }
}
