import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Pipeline

/// Whether the Forwarder can reach each connection's upstream: a TCP connect to its host and
/// port (no request: a function's health path is unknown, and a probe must never reach its
/// handlers), once at start and then every `interval`.
///
/// Guarantees:
/// - Each connection has the readiness check `upstream:<connection>` (a dependency, see
///   ``ReadinessBoard``) and the gauge `sluice_upstream_up{connection}` (1 reachable, 0 not),
///   both updated after every probe. Connections that share a host and port share one connect.
/// - A connect is bounded by `timeout`; a change of state is logged once (notice when it comes
///   back, warning when it goes), never each probe.
/// - Nothing about the requests depends on it: delivery goes on whatever a probe said, and a
///   failed delivery is still a `failed` outcome with its 502.
/// - `run` returns when its task is cancelled.
struct UpstreamProbe: Sendable {
    /// One host and port, and the connections behind it.
    struct Endpoint: Sendable, Hashable {
        var host: String
        var port: Int
        var connections: [String]
    }

    let endpoints: [Endpoint]
    let readiness: ReadinessBoard
    let interval: Duration
    let timeout: Duration
    let logger: Logger

    init(targets: [String: UpstreamTarget], readiness: ReadinessBoard, interval: Duration, timeout: Duration, logger: Logger) {
        var byAddress: [String: Endpoint] = [:]
        for target in targets.values.sorted(by: { $0.connection < $1.connection }) {
            guard let (host, port) = Self.address(of: target.base) else { continue }
            byAddress["\(host):\(port)", default: Endpoint(host: host, port: port, connections: [])].connections.append(target.connection)
        }
        endpoints = byAddress.keys.sorted().compactMap { byAddress[$0] }
        self.readiness = readiness
        self.interval = interval
        self.timeout = timeout
        self.logger = logger
    }

    /// Host and port of an `http`/`https` URL (the scheme's port when none is given).
    static func address(of url: String) -> (host: String, port: Int)? {
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else { return nil }
        let port = components.port ?? (components.scheme?.lowercased() == "https" ? 443 : 80)
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return (bare, port)
    }

    /// Probes every endpoint, then again every `interval`, until cancelled.
    func run() async {
        for endpoint in endpoints {
            for connection in endpoint.connections {
                readiness.set(Self.check(connection), kind: .dependency, ready: false, detail: "not probed yet")
            }
        }
        var last: [Endpoint: Bool] = [:]
        while !Task.isCancelled {
            for endpoint in endpoints {
                let reachable = await Self.connects(host: endpoint.host, port: endpoint.port, timeout: timeout)
                guard !Task.isCancelled else { return }
                for connection in endpoint.connections {
                    readiness.set(
                        Self.check(connection), kind: .dependency, ready: reachable,
                        detail: reachable ? "TCP connect to \(endpoint.host):\(endpoint.port) succeeded" : "no TCP connection to \(endpoint.host):\(endpoint.port)")
                    Gauge(label: "sluice_upstream_up", dimensions: [("connection", connection)]).record(reachable ? 1 : 0)
                }
                if last[endpoint] != reachable {
                    let metadata: Logger.Metadata = ["upstream": "\(endpoint.host):\(endpoint.port)", "connections": "\(endpoint.connections)"]
                    if reachable {
                        logger.notice("upstream reachable", metadata: metadata)
                    } else {
                        logger.warning("upstream unreachable (TCP connect failed)", metadata: metadata)
                    }
                    last[endpoint] = reachable
                }
            }
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }

    static func check(_ connection: String) -> String { "upstream:\(connection)" }

    /// Whether a TCP connection to `host:port` opens within `timeout` (it is closed at once).
    static func connects(host: String, port: Int, timeout: Duration) async -> Bool {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.nanoseconds(max(1, timeout.totalNanoseconds)))
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            try? await channel.close().get()
            return true
        } catch {
            return false
        }
    }
}
