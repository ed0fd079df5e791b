import Foundation
import MCP
import Pipeline

/// What the MCP rules say about one request to an MCP endpoint; it joins the policy's other
/// inputs (`PolicyInput.mcp`). Pure data; never contains argument values.
public struct MCPInput: Sendable, Equatable {
    /// Why the body is not an MCP message (one sentence, no body content); set: blocked.
    public var invalid: String?
    /// One reason per refused tool call (`tool delete_repo: tools.deny[0] "delete_*"`); any: blocked.
    public var denied: [String]
    /// One reason per matching hold rule (`tool transfer_funds: tools.hold[0] "transfer_*"`).
    public var holdReasons: [String]

    public init(invalid: String? = nil, denied: [String] = [], holdReasons: [String] = []) {
        self.invalid = invalid
        self.denied = denied
        self.holdReasons = holdReasons
    }
}

/// A connection's `policy.tools` and `policy.hold_if`, compiled once, applied to the JSON-RPC
/// messages of a request to an MCP endpoint. Pure and synchronous.
///
/// Guarantees:
/// - The rules see the body the server will read, decoded (content codings undone) both as the
///   caller sent it and as it will be delivered (masked); a call is refused or held when either
///   reading says so, and the two must parse to the same messages, else the request is invalid.
/// - Reasons name the tool as delivered (masked), the rule and its index, never an argument value.
/// - `hold_if` matches every decoded view of the argument (`BodyViews`: JSON inside JSON,
///   percent-encoding, NFKC), so an encoding does not hide a pattern; when the views cannot be
///   built the call is held (fails closed) with that reason.
public struct MCPPolicy: Sendable {
    public struct Condition: Sendable {
        let tool: String?
        let argument: String?
        let regex: NSRegularExpression
    }

    public let tools: ToolRules
    public let conditions: [Condition]

    public static let none = MCPPolicy(tools: .none, conditions: [])

    init(tools: ToolRules, conditions: [Condition]) {
        self.tools = tools
        self.conditions = conditions
    }

    public init(_ policy: PolicyConfig, path configPath: String = "policy") throws {
        tools = ToolRules(allow: policy.tools.allow, deny: policy.tools.deny, hold: policy.tools.hold)
        conditions = try policy.holdIf.enumerated().map { k, c in
            do { return Condition(tool: c.tool, argument: c.argument, regex: try NSRegularExpression(pattern: c.pattern)) } catch {
                throw ConfigError(path: "\(configPath).hold_if[\(k)].pattern", message: "invalid pattern \"\(c.pattern)\"")
            }
        }
    }

    /// The parsed body (as delivered) and what the rules say. `received` is the decoded body as
    /// sent; `delivered` the decoded body as it will be delivered (they differ when masked).
    public func evaluate(method: String, received: [UInt8], delivered: [UInt8]) -> (body: JSONRPCBody?, input: MCPInput) {
        switch method.uppercased() {
        case "POST": break
        case "DELETE":
            // Ends the MCP session; a body would be messages no rule read.
            return (nil, received.isEmpty ? MCPInput() : MCPInput(invalid: "a DELETE to an MCP endpoint carries no body"))
        default: return (nil, MCPInput(invalid: "an MCP endpoint takes POST and DELETE only"))
        }
        let deliveredBody: JSONRPCBody, receivedBody: JSONRPCBody
        do {
            deliveredBody = try JSONRPCBody.parse(delivered)
            receivedBody = received == delivered ? deliveredBody : try JSONRPCBody.parse(received)
        } catch {
            return (nil, MCPInput(invalid: error.reason))
        }
        guard receivedBody.messages.count == deliveredBody.messages.count,
              zip(receivedBody.messages, deliveredBody.messages).allSatisfy({ $0.kind == $1.kind && ($0.tool == nil) == ($1.tool == nil) })
        else {
            return (deliveredBody, MCPInput(invalid: "masking changed the messages of the body"))
        }
        var input = MCPInput()
        for (sent, out) in zip(receivedBody.messages, deliveredBody.messages) where out.isToolCall {
            guard let shown = out.tool else { continue }
            var names = [shown]
            if let original = sent.tool, original != shown { names.append(original) }
            var held: [String] = []
            for name in names {
                for r in tools.holdReasons(for: name) where !held.contains(r) { held.append(r) }
            }
            // Refused under either reading; a deny rule is the more precise reason.
            let refusals = names.compactMap(tools.refusal(of:))
            let denied = refusals.first { $0.hasPrefix("tools.deny") } ?? refusals.first
            for (k, c) in conditions.enumerated() {
                if let glob = c.tool, !names.contains(where: { ToolRules.matchesAnyReading(glob, $0) }) { continue }
                let reason = "hold_if[\(k)]"
                if held.contains(reason) { continue }
                for args in [sent.arguments, out.arguments] {
                    guard let text = Self.text(of: args, argument: c.argument) else { continue }
                    do throws(BodyViews.Unbuildable) {
                        let views = try BodyViews.views(of: Array(text.utf8))
                        if views.contains(where: { c.regex.firstMatch(in: $0, range: NSRange($0.startIndex..., in: $0)) != nil }) {
                            held.append(reason)
                            break
                        }
                    } catch {
                        held.append(reason + " (its argument's decoded views cannot be built: \(error.reason))")
                        break
                    }
                }
            }
            let label = "tool \(Self.quoted(shown))"
            if let denied { input.denied.append("\(label): \(denied)") }
            input.holdReasons += held.map { "\(label): \($0)" }
        }
        return (deliveredBody, input)
    }

    /// The text a condition matches: the named argument (a string as is, anything else as
    /// JSON), or the whole arguments object; nil when the argument is absent.
    static func text(of arguments: JSONValue?, argument: String?) -> String? {
        guard let argument else { return String(decoding: (arguments ?? .object([])).serialized(), as: UTF8.self) }
        guard let value = arguments?[argument] else { return nil }
        if let s = value.stringValue { return s }
        return String(decoding: value.serialized(), as: UTF8.self)
    }

    /// A tool name for a reason: quoted, at most 128 characters, control characters escaped.
    static func quoted(_ name: String) -> String {
        let short = name.count > 128 ? String(name.prefix(128)) + "…" : name
        return String(decoding: JSONValue.string(short).serialized(), as: UTF8.self)
    }
}

/// What the audit trail says of an MCP request: methods, tool names and ids as delivered
/// (masked), never arguments. At most 32 messages are listed, each item at most 128 characters.
public enum MCPAuditDetails {
    public static func details(_ body: JSONRPCBody) -> [String: String] {
        let listed = body.messages.prefix(32)
        func clip(_ s: String) -> String { s.count > 128 ? String(s.prefix(128)) + "…" : s }
        var out: [String: String] = [:]
        let methods = listed.compactMap(\.method)
        if !methods.isEmpty { out["mcp_method"] = methods.map(clip).joined(separator: ",") }
        let tools = listed.compactMap(\.tool)
        if !tools.isEmpty { out["mcp_tool"] = tools.map(clip).joined(separator: ",") }
        let ids = listed.compactMap(\.id)
        if !ids.isEmpty { out["mcp_id"] = ids.map(clip).joined(separator: ",") }
        if body.isBatch { out["mcp_messages"] = "\(body.messages.count)" }
        return out
    }
}

/// The JSON-RPC answers the Inspector gives MCP calls it blocks.
public enum MCPReplies {
    /// One JSON-RPC error per request of `body` for a blocked verdict (an array for a batch),
    /// or nil when the body holds no request. Each error's `data` has `rule` and `request_id`;
    /// a denied call's message names its tool and rule, the other requests of its batch say
    /// they were not sent because of it. Messages hold no argument value.
    public static func blocked(_ body: JSONRPCBody, verdict: Verdict, requestID: String) -> [UInt8]? {
        let rule = verdict.rules.first ?? "policy"
        let data: [(String, JSONValue)] = [("rule", .string(rule)), ("request_id", .string(requestID))]
        let deniedLabels = verdict.reasons
        return JSONRPCErrors.responses(to: body, code: JSONRPCErrors.blockedCode, data: data) { request in
            if rule == PolicyEvaluator.mcpDeniedRule {
                if let tool = request.tool, let reason = deniedLabels.first(where: { $0.hasPrefix("tool \(MCPPolicy.quoted(tool)):") }) {
                    return "Sluice denied this call: \(reason)."
                }
                return "Sluice did not send this message: another call in its batch was denied (\(deniedLabels.first ?? rule))."
            }
            return "Sluice blocked this call (rule \(rule)): \(verdict.reasons.first ?? rule)."
        }
    }
}
