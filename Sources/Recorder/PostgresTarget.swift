import Foundation
import NIOSSL
import Pipeline
import PostgresNIO

/// Where the postgres recordings store connects, read from `recorder.store.url`:
///
/// ```
/// postgres://USER:PASSWORD@HOST:PORT/DATABASE                  TLS, certificate and name checked
/// postgres://USER:PASSWORD@127.0.0.1:5432/DATABASE?sslmode=disable
/// postgres://USER@/DATABASE?host=/var/run/postgresql            a socket directory (no TLS)
/// ```
///
/// Guarantees:
/// - Recordings never cross a network in the clear: `sslmode` is `verify-full` (the default:
///   TLS, the server's certificate checked against `ca_file` or the system's roots, and its name
///   against the host) or `disable`, which is accepted only for a loopback host or a socket
///   directory. libpq's weaker modes (`prefer`, `require`, `verify-ca`, `allow`) are refused by
///   name, not mapped to something else.
/// - Errors name the config path and never hold the URL's password (the URL is a secret).
/// - Pure: parsing reads nothing; `configuration(caFile:path:)` reads only the CA file.
public struct PostgresTarget: Sendable, Equatable {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The directory holding the server's socket (`.s.PGSQL.<port>` in it).
        case socket(directory: String, port: Int)
    }

    public enum TLSMode: String, Sendable, Equatable { case verifyFull = "verify-full", disable }

    public var endpoint: Endpoint
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    /// Parses `url`; `path` names the config field in errors (`recorder.store.url`).
    public init(url text: String, path: String) throws {
        func fail(_ why: String) -> ConfigError { ConfigError(path: path, message: why + " (the URL is not shown: it is a secret)") }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw fail("is not a URL")
        }
        guard scheme == "postgres" || scheme == "postgresql" else { throw fail("must be a postgres:// URL") }
        guard let user = components.user, !user.isEmpty else { throw fail("names no user (postgres://USER:PASSWORD@HOST/DATABASE)") }
        username = user.removingPercentEncoding ?? user
        password = components.password.map { $0.removingPercentEncoding ?? $0 }
        let dbPath = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !dbPath.isEmpty, !dbPath.contains("/") else { throw fail("names no database (postgres://USER:PASSWORD@HOST/DATABASE)") }
        database = dbPath.removingPercentEncoding ?? dbPath
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw fail("has a port outside 1-65535") }
        var socketDirectory: String?
        var mode: TLSMode = .verifyFull
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value ?? "" {
                case "verify-full": mode = .verifyFull
                case "disable": mode = .disable
                case let other:
                    throw fail("sslmode \(other) is not supported: use verify-full (TLS, certificate and host name checked) or disable (loopback or socket only)")
                }
            case "host":
                guard let value = item.value, value.hasPrefix("/") else { throw fail("host= must be a socket directory (an absolute path)") }
                socketDirectory = value
            default:
                throw fail("query parameter \(item.name) is not supported (only sslmode and host)")
            }
        }
        if let socketDirectory {
            guard (components.host ?? "").isEmpty else { throw fail("gives both a host and a socket directory (host=)") }
            endpoint = .socket(directory: socketDirectory, port: port)
        } else {
            guard let host = components.host, !host.isEmpty else { throw fail("names no host") }
            let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            endpoint = .tcp(host: bare, port: port)
        }
        tls = mode
        if tls == .disable, case .tcp(let host, _) = endpoint, !Self.isLoopback(host) {
            throw fail("sslmode=disable is allowed only for a loopback host or a socket directory: recordings never cross a network in the clear")
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The client configuration: TLS required and verified (`ca_file` PEM roots, or the system's)
    /// unless `sslmode=disable`. Throws naming `path` when the CA file does not read.
    public func configuration(caFile: String?, caPath: String) throws -> PostgresClient.Configuration {
        switch endpoint {
        case .socket(let directory, let port):
            let socket = (directory as NSString).appendingPathComponent(".s.PGSQL.\(port)")
            return PostgresClient.Configuration(unixSocketPath: socket, username: username, password: password, database: database)
        case .tcp(let host, let port):
            let tls: PostgresClient.Configuration.TLS
            switch self.tls {
            case .disable:
                tls = .disable
            case .verifyFull:
                var config = TLSConfiguration.makeClientConfiguration()
                config.certificateVerification = .fullVerification
                if let caFile { config.trustRoots = .certificates(try SinkFactory.caCertificates(caFile, path: caPath)) }
                tls = .require(config)
            }
            // A host name is checked against the certificate and sent as SNI; an IP address must be
            // an IP entry of the certificate (swift-nio-ssl checks the connected address).
            return PostgresClient.Configuration(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
    }
}
