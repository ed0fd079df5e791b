import Codings
import MCP
import Pipeline

/// The JSON-RPC messages of a request to an MCP endpoint as the Forwarder delivers it.
enum MCPRequestReader {
    /// The messages of `request`'s body with its content codings undone; nil when it holds none
    /// that parse (the Inspector only passes bodies that do; nil makes response filtering
    /// treat every response id as unknown, which filters more, never less).
    static func body(of request: HTTPRequestData, maxBytes: Int = 16 << 20) -> JSONRPCBody? {
        guard !request.body.isEmpty else { return nil }
        let codings = request.headers.filter { $0.name.lowercased() == "content-encoding" }.map(\.value)
        do {
            let parsed = try ContentCodings.parse(codings)
            let bytes = parsed.isEmpty ? Array(request.body) : try ContentCodings.decode(Array(request.body), codings: parsed, maxOutput: maxBytes)
            return try JSONRPCBody.parse(bytes)
        } catch {
            return nil
        }
    }
}
