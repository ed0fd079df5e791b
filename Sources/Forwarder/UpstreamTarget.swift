import MCP
import Pipeline

/// The credential header a connection's deliveries carry, resolved once at start.
///
/// Never printed: `description`, `debugDescription` and reflection show the header name
/// only, so the value cannot reach a log line by accident (invariant 4).
struct CredentialHeader: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    let name: String
    let value: String

    var description: String { "\(name): <redacted>" }
    var debugDescription: String { description }
    var customMirror: Mirror { Mirror(self, children: ["name": name], displayStyle: .struct) }
}

/// Where and how one connection's requests are delivered, built from the Forwarder's own
/// configuration. Credentials come only from here, never from a message.
struct UpstreamTarget: Sendable {
    let connection: String
    /// The upstream base URL without trailing `/` (it may have a base path).
    let base: String
    let credential: CredentialHeader?
    /// Every form of the injected credential, masked in responses (nil without credentials).
    let injected: InjectedCredential?
    /// Upstream request timeout from `connections[i].timeout`; the deadline bounds it anyway.
    let timeout: Duration?
    let scanResponses: Bool
    let scanPII: Bool
    /// `protocol: mcp`: the upstream URL is the server's MCP endpoint, responses are JSON-RPC
    /// (JSON or an event stream), `tools/list` results are filtered by `tools`.
    let mcp: ToolRules?
    /// The upstream URL as configured (an MCP endpoint is called exactly there).
    let endpoint: String

    init(_ config: ConnectionConfig, index: Int, environment: [String: String], fingerprintKey: [UInt8] = []) throws {
        connection = config.name
        var base = config.upstream
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        if let credentials = config.credentials {
            let value = try credentials.resolvedValue(path: "connections[\(index)].credentials.value", environment: environment)
            let header = CredentialHeader(name: credentials.header, value: value)
            credential = header
            injected = InjectedCredential(header: header, template: credentials.value, fingerprintKey: fingerprintKey)
        } else {
            credential = nil
            injected = nil
        }
        timeout = config.timeout?.duration
        endpoint = config.upstream
        mcp = config.isMCP ? ToolRules(allow: config.policy.tools.allow, deny: config.policy.tools.deny, hold: config.policy.tools.hold) : nil
        scanResponses = config.policy.scanResponses || config.isMCP
        scanPII = config.policy.classes.contains("pii")
    }

    /// `upstream` + path + (`?` + query when non-empty), with path and query exactly as received.
    /// An MCP endpoint (its only path is `/`) is called at `upstream` exactly, plus the query.
    func url(for request: HTTPRequestData) -> String {
        if mcp != nil { return request.query.isEmpty ? endpoint : endpoint + "?" + request.query }
        var url = base
        if !request.path.hasPrefix("/") { url += "/" }
        url += request.path
        if !request.query.isEmpty { url += "?" + request.query }
        return url
    }

    /// Every configured connection by name; resolves every credential (an unresolvable one
    /// fails start-up with an error naming the config path and reference, not a value).
    static func table(_ config: SluiceConfig, environment: [String: String], fingerprintKey: [UInt8] = []) throws -> [String: UpstreamTarget] {
        var table: [String: UpstreamTarget] = [:]
        for (i, c) in config.connections.enumerated() {
            table[c.name] = try UpstreamTarget(c, index: i, environment: environment, fingerprintKey: fingerprintKey)
        }
        return table
    }
}
