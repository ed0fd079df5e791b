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

    /// A JSON error response: `{"error": code, "message": one sentence, ...extra}` (callers put
    /// `request_id` — and `rule` for `blocked` — in `extra`).
    ///
    /// Guarantees: the body always has `error` and a non-empty `message` (`message`, else the
    /// standard sentence for the code from ``ErrorMessages``); `extra` cannot override either;
    /// 429 and 503 always carry `Retry-After` (`retryAfterSeconds`, default 1).
    /// The header on every error answer Sluice makes itself: its `error` code.
    public static let sluiceErrorHeader = "X-Sluice-Error"

    public static func jsonError(
        status: Int, error: String, message: String? = nil, extra: [String: String] = [:], retryAfterSeconds: Int? = nil
    ) -> HTTPResponseData {
        var object = extra
        object["error"] = error
        object["message"] = (message?.isEmpty == false ? message : nil) ?? ErrorMessages.standard(for: error)
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
            ?? Data("{\"error\":\"\(error)\",\"message\":\"The request failed.\"}".utf8)
        // Says the answer is Sluice's own, not the upstream's (an MCP caller gets it as JSON-RPC).
        var headers = [HTTPField("Content-Type", "application/json"), HTTPField(sluiceErrorHeader, error)]
        if status == 429 || status == 503 || retryAfterSeconds != nil {
            headers.append(HTTPField("Retry-After", String(max(0, retryAfterSeconds ?? 1))))
        }
        return HTTPResponseData(status: status, headers: headers, body: body)
    }
}

/// The standard one-sentence message of every error code Sluice answers with (see
/// `docs/ingress.md`); a stage passes its own sentence when it knows more (e.g. which check refused).
public enum ErrorMessages {
    public static func standard(for code: String) -> String {
        switch code {
        case "bad_path": "The request path or query cannot be made unambiguous; send it without encoded slashes, backslashes, control characters or dot segments above the root."
        case "bad_session": "The X-Sluice-Session header must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-', not only dots (or leave it out: the call is then recorded under its request id)."
        case "undecodable_body": "The request body does not decode with the Content-Encoding it declares."
        case "bad_request": "The request is malformed."
        case "unauthorized": "A valid API key or token is required (Authorization: Bearer ...)."
        case "forbidden": "The caller is not allowed to do this."
        case "blocked": "The request was blocked by policy: it contains sensitive data that may not pass."
        case "self_approval": "Nobody may approve their own request."
        case "denied": "A reviewer denied the request; it was not delivered."
        case "expired": "The request was held for approval and expired before a decision; it was not delivered."
        case "unknown_connection": "No connection of that name is configured."
        case "not_found": "Nothing is served at this path."
        case "method_not_allowed": "This method is not allowed here."
        case "body_timeout": "The request body did not arrive in time."
        case "body_too_large": "The request body is larger than allowed (max_body_bytes), as sent or once decoded."
        case "unsupported_encoding": "The request's Content-Encoding is not supported (gzip, x-gzip, deflate, br, zstd)."
        case "overloaded": "Too many requests are in progress; retry after the time in Retry-After."
        case "response_withheld": "The function's response was withheld because it contains sensitive data."
        case "upstream_unavailable": "The function could not be reached."
        case "bad_reply": "The gateway received an invalid reply."
        case "unavailable": "The gateway cannot take the request right now; retry after the time in Retry-After."
        case "shutting_down": "This gateway instance is shutting down and takes no new calls; retry (another instance, or this one once restarted)."
        case "timeout": "No answer arrived before the request's deadline."
        case "upstream_timeout": "The function did not answer in time."
        case "internal": "The gateway failed to process the request."
        case "idempotency_key_reused": "This Idempotency-Key was already used for a different request (method, path, query or body differ)."
        default: "The request failed."
        }
    }
}
