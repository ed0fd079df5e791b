import Foundation

/// A `host:port` listen address (`[v6-address]:port` for IPv6); port 0 asks for an ephemeral port.
public struct ListenAddress: Sendable, Hashable {
    public var host: String
    public var port: Int

    /// Parses `listen` (or `admin_listen`) from the configuration; errors name `key`.
    public init(parsing text: String, key: String = "listen") throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let colon = trimmed.lastIndex(of: ":") else {
            throw ConfigError(path: key, message: "\"\(text)\" is not host:port")
        }
        var host = String(trimmed[..<colon])
        let portText = trimmed[trimmed.index(after: colon)...]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigError(path: key, message: "\"\(text)\" has no host") }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw ConfigError(path: key, message: "\"\(text)\" has no valid port (0-65535)")
        }
        self.host = host
        self.port = port
    }
}
