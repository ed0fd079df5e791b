import Hummingbird
import Logging
import NIOCore
import Pipeline
import Prometheus
import ServiceLifecycle

/// The operations server of a process that does not run the Ingress (`sluice inspector`,
/// `forwarder`, `recorder`): `/healthz`, `/readyz` and `/metrics` on `admin_listen`
/// (``OperationalRoutes``). The Ingress serves the same routes on its own admin server.
///
/// Guarantees:
/// - Serves only those three routes; anything else is 404. Idle connections close after
///   `idleTimeout`, so a client that opens connections and sends nothing cannot pile them up.
/// - Runs until graceful shutdown or cancellation (a swift-service-lifecycle `Service`); a bind
///   failure throws at once, naming the address.
public struct OperationsServer: Service {
    let address: ListenAddress
    let readiness: ReadinessBoard
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    let idleTimeout: Duration
    let onListening: @Sendable (Int) async -> Void

    public init(
        address: ListenAddress, readiness: ReadinessBoard, registry: PrometheusCollectorRegistry, logger: Logger,
        idleTimeout: Duration = .seconds(30), onListening: @Sendable @escaping (Int) async -> Void = { _ in }
    ) {
        self.address = address
        self.readiness = readiness
        self.registry = registry
        self.logger = logger
        self.idleTimeout = idleTimeout
        self.onListening = onListening
    }

    public func run() async throws {
        let router = Router(context: BasicRequestContext.self)
        OperationalRoutes.addHealth(to: router)
        OperationalRoutes.addOperations(to: router, readiness: readiness, registry: registry)
        let logger = logger
        let onListening = onListening
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(idleTimeout.totalNanoseconds))),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("admin server listening", metadata: ["port": "\(port)"])
                await onListening(port)
            },
            logger: logger)
        do {
            // `run()`, not `runService()`: the latter handles SIGTERM itself and would stop this
            // server at the signal, before the stages drained (the process's ServiceGroup stops
            // it last, when its turn in the graceful shutdown comes).
            try await app.run()
        } catch {
            throw OperationsServerError(address: address, underlying: error)
        }
    }
}

/// The operations server could not run (e.g. `admin_listen` is taken).
public struct OperationsServerError: Error, CustomStringConvertible {
    public let address: ListenAddress
    public let underlying: any Error
    public var description: String { "the admin server on \(address.host):\(address.port) (admin_listen) failed: \(underlying)" }
}
