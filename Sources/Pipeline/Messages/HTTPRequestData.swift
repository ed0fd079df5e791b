import Foundation

/// An HTTP request as it travels between stages (always sealed on a topic).
public struct HTTPRequestData: Codable, Sendable, Hashable {
    public var method: String
    /// The path below the connection (`{rest}` of `/fn/{connection}/{rest}`), starting with `/`.
    public var path: String
    /// The raw query string without `?`, empty when there is none.
    public var query: String
    /// Header fields in order; names as received.
    public var headers: [HTTPField]
    public var body: Data

    public init(method: String, path: String, query: String, headers: [HTTPField], body: Data) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// One HTTP header field.
public struct HTTPField: Codable, Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// An HTTP response as it travels back to the caller (sealed on `replies`).
public struct HTTPResponseData: Codable, Sendable, Hashable {
    public var status: Int
    public var headers: [HTTPField]
    public var body: Data

    public init(status: Int, headers: [HTTPField], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON error response: `{"error": code, ...extra}`.
    public static func jsonError(status: Int, error: String, extra: [String: String] = [:]) -> HTTPResponseData {
        var object = extra
        object["error"] = error
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{\"error\":\"\(error)\"}".utf8)
        return HTTPResponseData(status: status, headers: [HTTPField("Content-Type", "application/json")], body: body)
    }
}
