import Foundation
import Hummingbird
import Pipeline

/// Error codes the Ingress answers with, as `{"error": "<code>", "request_id": ...}`.
enum ErrorCode: String, Sendable {
    case unauthorized
    case unknownConnection = "unknown_connection"
    case forbidden
    case bodyTooLarge = "body_too_large"
    case overloaded
    case unavailable
    case timeout
    case badRequest = "bad_request"
    case badReply = "bad_reply"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case internalError = "internal"

    var status: Int {
        switch self {
        case .unauthorized: 401
        case .unknownConnection, .notFound: 404
        case .forbidden: 403
        case .bodyTooLarge: 413
        case .overloaded: 429
        case .unavailable: 503
        case .timeout: 504
        case .badRequest: 400
        case .badReply: 502
        case .methodNotAllowed: 405
        case .internalError: 500
        }
    }
}

/// Builds the responses the Ingress sends; every one carries `X-Sluice-Request-Id`.
enum Responses {
    /// `{"error": code, "request_id": id}` with the code's status.
    static func error(_ code: ErrorCode, requestID: String, extraHeaders: HTTPFields = [:]) -> Response {
        var response = make(HTTPResponseData.jsonError(status: code.status, error: code.rawValue, extra: ["request_id": requestID]), requestID: requestID)
        response.headers.append(contentsOf: extraHeaders)
        return response
    }

    /// A JSON object answer.
    static func json(status: Int, _ object: [String: String], requestID: String) -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return make(HTTPResponseData(status: status, headers: [Pipeline.HTTPField("Content-Type", "application/json")], body: body), requestID: requestID)
    }

    /// A reply (or locally built response) as sent to the caller: hop-by-hop headers removed.
    static func make(_ data: HTTPResponseData, requestID: String) -> Response {
        var headers = HeaderFilter.responseHeaders(data.headers)
        headers[IngressHeaders.requestID] = requestID
        return Response(
            status: HTTPResponse.Status(code: data.status),
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data.body)))
    }
}
