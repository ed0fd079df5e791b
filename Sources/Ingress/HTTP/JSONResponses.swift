import Foundation
import Hummingbird
import Pipeline

/// Error codes the Ingress answers with, as `{"error": code, "message": sentence, "request_id": id}`.
///
/// Guarantees: every code has a status and a one-sentence message a caller can act on; 429 and
/// 503 always carry `Retry-After`.
enum ErrorCode: String, Sendable, CaseIterable {
    case badPath = "bad_path"
    case badSession = "bad_session"
    case undecodableBody = "undecodable_body"
    case badRequest = "bad_request"
    case unauthorized
    case forbidden
    case unknownConnection = "unknown_connection"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case bodyTimeout = "body_timeout"
    case bodyTooLarge = "body_too_large"
    case unsupportedEncoding = "unsupported_encoding"
    case idempotencyKeyReused = "idempotency_key_reused"
    case overloaded
    case internalError = "internal"
    case badReply = "bad_reply"
    case unavailable
    case shuttingDown = "shutting_down"
    case timeout

    var status: Int {
        switch self {
        case .badPath, .badSession, .undecodableBody, .badRequest: 400
        case .unauthorized: 401
        case .forbidden: 403
        case .unknownConnection, .notFound: 404
        case .methodNotAllowed: 405
        case .bodyTimeout: 408
        case .bodyTooLarge: 413
        case .unsupportedEncoding: 415
        case .idempotencyKeyReused: 422
        case .overloaded: 429
        case .internalError: 500
        case .badReply: 502
        case .unavailable, .shuttingDown: 503
        case .timeout: 504
        }
    }

    /// The standard sentence for this code (a call site passes a more precise one when it has it).
    var message: String { ErrorMessages.standard(for: rawValue) }
}

/// Builds the responses the Ingress sends; every one carries `X-Sluice-Request-Id`.
enum Responses {
    /// `{"error": code, "message": sentence, "request_id": id}` with the code's status.
    /// - Parameters:
    ///   - message: a sentence more precise than the code's standard one (never a secret, body or header value).
    ///   - retryAfterSeconds: `Retry-After` for 429/503 (default 1).
    ///   - closeConnection: adds `Connection: close`, and the connection is closed once the answer is
    ///     written (``ConnectionGuard``): for answers given before the request body was read.
    static func error(
        _ code: ErrorCode, requestID: String, message: String? = nil, retryAfterSeconds: Int? = nil,
        extraHeaders: HTTPFields = [:], closeConnection: Bool = false
    ) -> Response {
        let data = HTTPResponseData.jsonError(
            status: code.status, error: code.rawValue, message: message ?? code.message, extra: ["request_id": requestID],
            retryAfterSeconds: retryAfterSeconds)
        var response = make(data, requestID: requestID)
        response.headers.append(contentsOf: extraHeaders)
        if closeConnection { response.headers[.connection] = "close" }
        return response
    }

    /// A JSON object answer.
    static func json(status: Int, _ object: [String: String], requestID: String) -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return make(HTTPResponseData(status: status, headers: [Pipeline.HTTPField("Content-Type", "application/json")], body: body), requestID: requestID)
    }

    /// A reply (or locally built response) as sent to the caller: hop-by-hop headers removed;
    /// a 429 or 503 without `Retry-After` gets `Retry-After: 1`.
    static func make(_ data: HTTPResponseData, requestID: String) -> Response {
        var headers = HeaderFilter.responseHeaders(data.headers)
        headers[IngressHeaders.requestID] = requestID
        if data.status == 429 || data.status == 503, headers[IngressHeaders.retryAfter] == nil {
            headers[IngressHeaders.retryAfter] = "1"
        }
        return Response(
            status: HTTPResponse.Status(code: data.status),
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data.body)))
    }
}
