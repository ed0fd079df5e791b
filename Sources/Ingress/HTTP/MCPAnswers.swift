import Foundation
import MCP
import Pipeline

/// What an MCP caller gets instead of an answer Sluice made itself (a call still waiting for
/// approval after `hold_wait`, denied by a reviewer, expired, or not delivered): a JSON-RPC
/// error per request, HTTP 200, because an MCP client has no use for a 202 and a poll link or
/// for a Sluice error object. Answers from the server pass as they are.
///
/// Guarantees: the error's `message` is Sluice's sentence (never request content); `data` holds
/// `request_id`, `status` (`pending_approval` or Sluice's error code), the HTTP status Sluice
/// would have answered, the poll path of a pending call and a reviewer's `reason` when given.
/// Codes: `JSONRPCErrors.pendingCode` while pending, -32003 when delivery failed, else
/// `JSONRPCErrors.blockedCode`.
enum MCPAnswers {
    static let deliveryFailedCode = -32003

    static func answer(_ body: JSONRPCBody, reply: HTTPResponseData, pending: Bool, requestID: String) -> HTTPResponseData? {
        let error = reply.headers.first { $0.name.caseInsensitiveCompare(HTTPResponseData.sluiceErrorHeader) == .orderedSame }?.value
        guard pending || error != nil else { return nil }
        let object = (try? JSONSerialization.jsonObject(with: reply.body)) as? [String: Any]
        var data: [(String, MCP.JSONValue)] = [
            ("request_id", .string(requestID)), ("status", .string(pending ? "pending_approval" : error ?? "error")),
            ("http_status", .number(String(reply.status))),
        ]
        let message: String
        let code: Int
        if pending {
            data.append(("poll", .string("/v1/requests/\(requestID)")))
            message = "Sluice holds this call for approval (request \(requestID)) and no reviewer decided while the call waited (hold_wait). If it is approved later it runs then, and its result is kept in the session's recording, not returned here."
            code = JSONRPCErrors.pendingCode
        } else {
            if let reason = object?["reason"] as? String { data.append(("reason", .string(reason))) }
            message = "Sluice: " + ((object?["message"] as? String) ?? "the call was not delivered (\(error ?? "error")).")
            code = ["upstream_unavailable", "upstream_timeout", "response_withheld"].contains(error ?? "") ? deliveryFailedCode : JSONRPCErrors.blockedCode
        }
        guard let errors = JSONRPCErrors.responses(to: body, code: code, data: data, message: { _ in message }) else { return nil }
        var headers = [Pipeline.HTTPField("Content-Type", "application/json")]
        headers.append(Pipeline.HTTPField("X-Sluice-Status", pending ? "pending_approval" : error ?? "error"))
        return HTTPResponseData(status: 200, headers: headers, body: Data(errors))
    }
}
