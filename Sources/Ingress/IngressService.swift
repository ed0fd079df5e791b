import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import Pipeline
import Prometheus
import ServiceLifecycle

/// The HTTP edge of Sluice: authenticates callers, routes `/fn/{connection}/...` requests,
/// publishes them sealed on `requests`, and answers each caller with the reply that comes
/// back on `replies` for this instance.
///
/// Guarantees:
/// - The `replies` reader (all partitions, from the end) starts before the server accepts
///   requests, so no reply for an accepted request can be missed; `/readyz` turns 200 then.
/// - Bad input publishes nothing and gets a JSON error (see `docs/ingress.md`); nothing a
///   caller sends can crash the process.
/// - Credentials, bodies, header values, paths and queries are never logged or used as
///   metric labels.
public final class IngressService: Sendable {
    private let listen: ListenAddress
    private let context: StageContext
    private let options: IngressOptions
    private let registry: PrometheusCollectorRegistry
    private let readiness = Readiness()
    private let replyRegistry = ReplyRegistry()
    private let functions: FunctionCallHandler
    private let repliesReader: RepliesReader
    private let holdsView: HoldsView
    private let approvals: ApprovalsRoutes

    /// - Parameters:
    ///   - config: the whole configuration; the Ingress reads `listen`, `max_body_bytes`,
    ///     `request_timeout`, `identities` and `connections`.
    ///   - registry: the process's Prometheus registry, rendered at `/metrics`.
    ///   - httpClient: used to fetch the OIDC JWKS; `HTTPClient.shared` when `nil`.
    /// - Throws: `ConfigError` or ``IngressError`` naming the unusable setting.
    public init(config: SluiceConfig, context: StageContext, registry: PrometheusCollectorRegistry, options: IngressOptions, httpClient: HTTPClient? = nil) throws {
        guard !options.instanceID.isEmpty else { throw IngressError(.configuration, "instanceID must not be empty") }
        guard options.maxInFlight > 0 else { throw IngressError(.configuration, "maxInFlight must be positive, got \(options.maxInFlight)") }
        self.listen = try ListenAddress(parsing: config.listen)
        self.context = context
        self.options = options
        self.registry = registry

        let apiKeys: (any Authenticator)? = config.identities.apiKeys.isEmpty ? nil : try APIKeyAuthenticator(keys: config.identities.apiKeys)
        var oidc: (any Authenticator)? = nil
        if let oidcConfig = config.identities.oidc {
            guard let url = URL(string: oidcConfig.jwksURL), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw ConfigError(path: "identities.oidc.jwks_url", message: "\"\(oidcConfig.jwksURL)\" is not an http(s) URL")
            }
            let source = HTTPJWKSKeySource(
                url: oidcConfig.jwksURL, client: httpClient ?? HTTPClient.shared,
                minRefreshInterval: options.jwksMinRefreshInterval, fetchTimeout: options.jwksFetchTimeout, logger: context.logger)
            oidc = OIDCAuthenticator(config: oidcConfig, keySource: source)
        }
        let metrics = IngressMetrics(registry: registry)
        let authenticator = CompositeAuthenticator(apiKeys: apiKeys, oidc: oidc)
        let connections = Dictionary(config.connections.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.holdsView = HoldsView(retention: config.holdsRetention.duration)
        self.approvals = ApprovalsRoutes(
            view: holdsView, connections: connections, authenticator: authenticator, context: context,
            decisionEcho: options.decisionEcho)
        self.functions = FunctionCallHandler(
            connections: Dictionary(config.connections.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first }),
            maxBodyBytes: config.maxBodyBytes,
            requestTimeout: config.requestTimeout.duration,
            context: context,
            authenticator: authenticator,
            registry: replyRegistry,
            limiter: InFlightLimiter(limit: options.maxInFlight),
            metrics: metrics,
            options: options)
        self.repliesReader = RepliesReader(context: context, instanceID: options.instanceID, registry: replyRegistry, metrics: metrics)
    }

    /// The routes besides `/fn/...`: health and metrics, the caller's poll and the reviewer API.
    private func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        OperationalRoutes.add(to: router, readiness: readiness, registry: registry)
        approvals.add(to: router)
        return router
    }

    /// Runs the HTTP server on `config.listen` (host:port; port 0 = ephemeral) until the task
    /// is cancelled; calls `onListening` with the bound port once accepting.
    ///
    /// - Throws: when the server cannot bind, the bus cannot be read, or the `replies`
    ///   reader or the server stops while the task is not cancelled.
    public func run(onListening: @Sendable @escaping (Int) async -> Void = { _ in }) async throws {
        let logger = context.logger
        let subscription = try await context.bus.read(topic: context.topics.replies, from: .end)
        let responder = IngressResponder(functions: functions, routes: makeRouter().buildResponder(), logger: logger)
        let app = Application(
            responder: responder,
            configuration: ApplicationConfiguration(address: .hostname(listen.host, port: listen.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("ingress listening", metadata: ["port": "\(port)"])
                await onListening(port)
            },
            logger: logger)
        let reader = repliesReader
        let readiness = readiness
        defer { readiness.set(false) }
        let view = holdsView
        let changelog = HoldsChangelog(context: context)
        let (caughtUp, caughtUpSignal) = AsyncStream.makeStream(of: Void.self)

        let outcome: Result<Void, any Error> = await withTaskGroup(of: Result<Void, any Error>.self) { group in
            group.addTask {
                // The held requests, for polls and reviewers: read up to date before serving.
                do {
                    try await changelog.follow(
                        apply: { await view.apply($0) },
                        onCaughtUp: { caughtUpSignal.yield(); caughtUpSignal.finish() })
                    caughtUpSignal.finish()
                    return Task.isCancelled ? .success(()) : .failure(IngressError(.repliesReaderStopped, "the holds stream ended"))
                } catch {
                    caughtUpSignal.finish()
                    return .failure(IngressError(.repliesReaderStopped, "reading the holds topic failed: \(error)"))
                }
            }
            group.addTask {
                do {
                    try await reader.run(subscription)
                    return Task.isCancelled ? .success(()) : .failure(IngressError(.repliesReaderStopped, "the replies stream ended"))
                } catch {
                    return .failure(IngressError(.repliesReaderStopped, "reading the replies topic failed: \(error)"))
                }
            }
            group.addTask {
                var ready = false
                for await _ in caughtUp { ready = true }
                guard ready else {
                    return Task.isCancelled ? .success(()) : .failure(IngressError(.serverStopped, "the holds changelog could not be read"))
                }
                readiness.set(true)
                do {
                    // Cancellation becomes a graceful shutdown: stop accepting, finish the calls in flight.
                    let services = ServiceGroup(configuration: .init(services: [app], logger: logger))
                    // An unstructured task, so the cancellation of `run` reaches the server only as the
                    // graceful shutdown below (cancelling it directly aborts connections mid-response).
                    let server = Task { try await services.run() }
                    try await withTaskCancellationHandler {
                        try await server.value
                    } onCancel: {
                        Task { await services.triggerGracefulShutdown() }
                    }
                    return Task.isCancelled ? .success(()) : .failure(IngressError(.serverStopped, "the HTTP server stopped"))
                } catch {
                    return Task.isCancelled ? .success(()) : .failure(IngressError(.serverStopped, "the HTTP server failed: \(error)"))
                }
            }
            let first = await group.next() ?? .success(())
            group.cancelAll()
            await subscription.close()
            while await group.next() != nil {}
            return first
        }
        try outcome.get()
    }
}
