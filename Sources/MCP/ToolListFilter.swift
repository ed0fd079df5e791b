/// Removes from `tools/list` results the tools a caller may not call.
///
/// Guarantees:
/// - In a response whose id answers one of the body's `tools/list` requests, every entry of
///   `result.tools` whose `name` is not visible under the rules is removed, and so is every
///   entry without a string `name` (it cannot be judged). A response with an id the request did
///   not send whose result has a `tools` array is filtered too (a server answering out of turn).
/// - Everything else in the message is kept as it was, members in order.
public enum ToolListFilter {
    /// `message` filtered, and the number of tools removed.
    public static func filter(_ message: JSONValue, listIDs: Set<String>, knownIDs: Set<String>, rules: ToolRules) -> (JSONValue, removed: Int) {
        guard case .object(var members) = message, let id = message["id"],
              let result = message["result"], case .object(var resultMembers) = result,
              let toolsIndex = resultMembers.firstIndex(where: { $0.0 == "tools" }),
              case .array(let tools) = resultMembers[toolsIndex].1
        else { return (message, 0) }
        let idText = String(decoding: id.serialized(), as: UTF8.self)
        guard listIDs.contains(idText) || !knownIDs.contains(idText) else { return (message, 0) }
        let kept = tools.filter { tool in
            guard let name = tool["name"]?.stringValue else { return false }
            return rules.isVisible(name)
        }
        guard kept.count != tools.count else { return (message, 0) }
        resultMembers[toolsIndex].1 = .array(kept)
        if let r = members.firstIndex(where: { $0.0 == "result" }) { members[r].1 = .object(resultMembers) }
        return (.object(members), tools.count - kept.count)
    }
}

/// JSON-RPC error responses that Sluice sends in place of the server's.
public enum JSONRPCErrors {
    /// Sluice's policy refused the call (a denied tool, a blocked message).
    public static let blockedCode = -32001
    /// The call waits for approval and was not decided while the caller waited.
    public static let pendingCode = -32002

    /// One error response per request of `body` (an array when the body was a batch), or nil
    /// when the body holds no request (notifications and responses get no JSON-RPC answer).
    /// `message(for:)` gives each request's message; `data` is added to every error.
    public static func responses(
        to body: JSONRPCBody, code: Int, data: [(String, JSONValue)], message: (JSONRPCMessage) -> String
    ) -> [UInt8]? {
        let requests = body.requests
        guard !requests.isEmpty else { return nil }
        let errors: [JSONValue] = requests.map { request in
            let id: JSONValue = request.value["id"] ?? .null
            return .object([
                ("jsonrpc", .string("2.0")), ("id", id),
                ("error", .object([("code", .number(String(code))), ("message", .string(message(request))), ("data", .object(data))])),
            ])
        }
        return (body.isBatch ? JSONValue.array(errors) : errors[0]).serialized()
    }
}
