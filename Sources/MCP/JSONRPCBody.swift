/// One JSON-RPC 2.0 message of an MCP exchange, classified.
public struct JSONRPCMessage: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// `method` and `id`: expects a response.
        case request
        /// `method`, no `id`.
        case notification
        /// `id` and exactly one of `result` or `error`.
        case response
    }

    public var kind: Kind
    /// The method of a request or notification.
    public var method: String?
    /// The id as JSON text (`7`, `"abc"`): ids compare by their text, so `1` and `"1"` differ.
    public var id: String?
    /// For `tools/call`: the tool's name (`params.name`).
    public var tool: String?
    /// For `tools/call`: `params.arguments` (an object), when present.
    public var arguments: JSONValue?
    /// The whole message.
    public var value: JSONValue

    /// A `tools/call`, as a request or as a notification (a server may run one without
    /// answering it).
    public var isToolCall: Bool { kind != .response && method == MCPMethod.toolsCall }
}

/// MCP method names Sluice treats specially.
public enum MCPMethod {
    public static let toolsCall = "tools/call"
    public static let toolsList = "tools/list"

    /// Whether `method` reads as `name` to a lenient server: equal once NFKC-normalised, without
    /// invisible characters, trimmed of white space and control characters, and case-folded.
    public static func isSpelledLike(_ method: String, _ name: String) -> Bool {
        ToolRules.readings(of: method).contains { $0.lowercased() == name }
    }
}

/// The JSON-RPC messages of one HTTP body sent to an MCP endpoint: one message or a batch.
///
/// Guarantees (`parse` refuses rather than guesses, so a policy reads what the server reads):
/// - The body is strict JSON (``JSONValue``: no duplicate member names anywhere).
/// - Every message is an object with `"jsonrpc": "2.0"` and is a request, a notification or a
///   response; ids are strings or numbers, unique among the requests of a batch.
/// - A method spelled like `tools/call` in another way (case, fullwidth or invisible characters,
///   surrounding white space) is refused: a lenient server must not run a tool the policy never saw.
/// - A `tools/call` has an object `params` with a string `name`; `arguments`, when present, is
///   an object.
public struct JSONRPCBody: Sendable, Equatable {
    public var messages: [JSONRPCMessage]
    public var isBatch: Bool

    /// Why a body is not a JSON-RPC message an MCP server would accept; never quotes it.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        /// The body is not JSON at all (JSON-RPC "parse error") rather than an invalid message.
        public var notJSON: Bool
        public var description: String { reason }
    }

    /// The requests (messages that expect a response).
    public var requests: [JSONRPCMessage] { messages.filter { $0.kind == .request } }

    public static func parse(_ bytes: [UInt8]) throws(Invalid) -> JSONRPCBody {
        let document: JSONValue
        do { document = try JSONValue.parse(bytes) } catch {
            throw Invalid(reason: "the body is not valid JSON: \(error)", notJSON: true)
        }
        switch document {
        case .object:
            return JSONRPCBody(messages: [try message(document, index: nil)], isBatch: false)
        case .array(let items):
            guard !items.isEmpty else { throw Invalid(reason: "an empty batch", notJSON: false) }
            var messages: [JSONRPCMessage] = []
            var ids = Set<String>()
            for (k, item) in items.enumerated() {
                let m = try message(item, index: k)
                if m.kind == .request, let id = m.id, !ids.insert(id).inserted {
                    throw Invalid(reason: "message \(k) repeats the id of an earlier request in the batch", notJSON: false)
                }
                messages.append(m)
            }
            return JSONRPCBody(messages: messages, isBatch: true)
        default:
            throw Invalid(reason: "the body is neither a JSON-RPC message nor a batch", notJSON: false)
        }
    }

    static func message(_ value: JSONValue, index: Int?) throws(Invalid) -> JSONRPCMessage {
        let which = index.map { "message \($0)" } ?? "the message"
        func invalid(_ why: String) -> Invalid { Invalid(reason: "\(which) \(why)", notJSON: false) }
        guard case .object = value else { throw invalid("is not an object") }
        guard value["jsonrpc"]?.stringValue == "2.0" else { throw invalid("lacks \"jsonrpc\": \"2.0\"") }
        var id: String?
        if let raw = value["id"] {
            switch raw {
            case .string, .number: id = String(decoding: raw.serialized(), as: UTF8.self)
            default: throw invalid("has an id that is neither a string nor a number")
            }
        }
        if let methodValue = value["method"] {
            guard let method = methodValue.stringValue else { throw invalid("has a method that is not a string") }
            if method != MCPMethod.toolsCall, MCPMethod.isSpelledLike(method, MCPMethod.toolsCall) {
                throw invalid("names tools/call in another spelling")
            }
            guard value["result"] == nil, value["error"] == nil else { throw invalid("is both a call and a response") }
            var m = JSONRPCMessage(kind: id == nil ? .notification : .request, method: method, id: id, value: value)
            if method == MCPMethod.toolsCall {
                guard let params = value["params"], case .object = params else { throw invalid("is a tools/call without params") }
                guard let name = params["name"]?.stringValue else { throw invalid("is a tools/call without a tool name") }
                if let arguments = params["arguments"] {
                    guard case .object = arguments else { throw invalid("is a tools/call whose arguments are not an object") }
                    m.arguments = arguments
                }
                m.tool = name
            }
            return m
        }
        guard let id else { throw invalid("has neither a method nor an id") }
        guard (value["result"] == nil) != (value["error"] == nil) else { throw invalid("is a response without exactly one of result and error") }
        return JSONRPCMessage(kind: .response, method: nil, id: id, value: value)
    }
}
