import Foundation

/// The parts of a `/fn/{connection}/{rest}?{query}` request target, taken from the raw
/// target exactly as sent.
///
/// Guarantees: `rest` keeps its percent-encoding and starts with `/` (`/` when the target
/// stops after the connection); `query` is the raw text after the first `?` (empty when
/// absent); `connection` is the percent-decoded first segment.
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
        connection = String(rawConnection).removingPercentEncoding ?? String(rawConnection)
    }

    /// Whether `target` is in the `/fn/` namespace at all (so it is never handled by other routes).
    static func isFunctionCall(_ target: String) -> Bool {
        target.hasPrefix(prefix) || target == "/fn" || target.hasPrefix("/fn?")
    }
}
