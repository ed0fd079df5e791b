import AsyncHTTPClient
import Detection
import Foundation
import Hummingbird
import Logging
import NIOCore
import Operations
import Pipeline
import Prometheus
import ServiceLifecycle

/// The HTTP edge of Sluice: authenticates callers, routes `/fn/{connection}/...` requests,
/// publishes them sealed on `requests`, and answers each caller with the reply that comes
/// back on `replies` for this instance.
///
/// Guarantees:
/// - The `replies` reader (all partitions, from the end) starts before the server accepts
///   requests, so no reply for an accepted request can be missed; the `ingress` check of the
///   process's `ReadinessBoard` (`/readyz`) turns ready then.
/// - Bad input publishes nothing and gets a JSON error (see `docs/ingress.md`); nothing a
///   caller sends can crash the process.
/// - Credentials, bodies, header values, paths and queries are never logged or used as
///   metric labels.
/// - Operations endpoints (`/metrics`, `/readyz`, `/healthz`) are served on `admin_listen`; the
///   caller port serves only `/fn/...`, `/v1/...` and its own `/healthz`.
/// - Every connection that sends no complete request head within `header_read_timeout` is closed.
/// - Graceful shutdown (ServiceLifecycle's, e.g. SIGTERM in `sluice`) drains: `/readyz` turns
///   503, the caller port keeps its listener open but answers new calls 503 `shutting_down`
///   (`Connection: close`, `Retry-After: 1`) and closes each connection after its current call
///   (the listener closes once no call is in progress),
///   and the calls in flight still get their replies (the `replies` reader runs until the last
///   one is answered). Whatever still waits `shutdown_timeout` after the signal is answered 504
///   at once, so `run` returns within about `shutdown_timeout`. An accepted connection is never
///   reset. Cancellation instead stops everything at once.
public final class IngressService: Sendable {
    private let listen: ListenAddress
    private let adminListen: ListenAddress
    private let headerReadTimeout: Duration
    private let shutdownTimeout: Duration
    private let metrics: IngressMetrics
    private let context: StageContext
    private let options: IngressOptions
    private let registry: PrometheusCollectorRegistry
    private let replyRegistry = ReplyRegistry()
    private let functions: FunctionCallHandler
    private let repliesReader: RepliesReader
    private let holdsView: HoldsView
    private let approvals: ApprovalsRoutes
    /// The reviewer console (`nil` when `console.enabled` is false).
    private let console: ConsoleRoutes?
    /// The caller port's calls in progress and whether it drains (graceful shutdown).
    private let drain = DrainGate()

    /// - Parameters:
    ///   - config: the whole configuration; the Ingress reads `listen`, `admin_listen`,
    ///     `max_body_bytes`, `request_timeout`, the limits (`max_in_flight`,
    ///     `max_in_flight_per_identity`, `body_read_timeout`, `header_read_timeout`,
    ///     `max_held_per_identity`), `identities` and `connections`.
    ///   - registry: the process's Prometheus registry, rendered at `/metrics` on `admin_listen`.
    ///   - httpClient: used to fetch the OIDC JWKS; `HTTPClient.shared` when `nil`.
    ///   - engine: masks approvers' reasons (`sluice` passes the process's engine, with the
    ///     configured rules and allow-list); `nil` makes one with the built-in rules, keyed by
    ///     `options.idempotencySecret` (tests and embedders).
    /// - Throws: `ConfigError` or ``IngressError`` naming the unusable setting.
    public init(
        config: SluiceConfig, context: StageContext, registry: PrometheusCollectorRegistry, options: IngressOptions,
        httpClient: HTTPClient? = nil, engine: DetectionEngine? = nil, recordings: (any SessionRecordingSource)? = nil
    ) throws {
        guard !options.instanceID.isEmpty else { throw IngressError(.configuration, "instanceID must not be empty") }
        self.listen = try ListenAddress(parsing: config.listen, key: "listen")
        self.adminListen = try ListenAddress(parsing: config.adminListen, key: "admin_listen")
        if listen == adminListen, listen.port != 0 {
            throw ConfigError(path: "admin_listen", message: "must differ from listen: operations endpoints are never served on the caller port")
        }
        self.headerReadTimeout = config.headerReadTimeout.duration
        self.shutdownTimeout = config.shutdownTimeout.duration
        self.context = context
        self.options = options
        self.registry = registry

        let apiKeys: (any Authenticator)? = config.identities.apiKeys.isEmpty ? nil : try APIKeyAuthenticator(keys: config.identities.apiKeys)
        var oidc: (any Authenticator)? = nil
        var consoleOIDC: ConsoleOIDC? = nil
        if let oidcConfig = config.identities.oidc {
            try IdentitiesConfig.OIDC.checkJWKSURL(
                oidcConfig.jwksURL, allowInsecure: oidcConfig.allowInsecureJWKS, path: "identities.oidc.jwks_url")
            let source = HTTPJWKSKeySource(
                url: oidcConfig.jwksURL, client: httpClient ?? HTTPClient.shared,
                minRefreshInterval: options.jwksMinRefreshInterval, fetchTimeout: options.jwksFetchTimeout, logger: context.logger)
            oidc = OIDCAuthenticator(config: oidcConfig, keySource: source)
            if config.console.enabled, let client = config.console.oidc {
                // The console's ID tokens: the same issuer and keys, `client_id` as audience.
                let publicBase = (config.publicURL ?? "http://\(config.listen)").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
                consoleOIDC = ConsoleOIDC(
                    clientID: client.clientID, clientSecret: try client.clientSecret?.resolve(path: "console.oidc.client_secret"),
                    authorizationEndpoint: client.authorizationEndpoint, tokenEndpoint: client.tokenEndpoint,
                    issuer: oidcConfig.issuer, allowInsecureEndpoints: client.allowInsecureEndpoints,
                    redirectURL: client.redirectURL ?? publicBase + "/console/oidc/callback", scopes: client.scopes,
                    verifier: OIDCAuthenticator(config: oidcConfig, keySource: source, audience: client.clientID),
                    http: httpClient ?? HTTPClient.shared)
            }
        }
        let metrics = IngressMetrics(registry: registry)
        self.metrics = metrics
        let authenticator = CompositeAuthenticator(apiKeys: apiKeys, oidc: oidc)
        let connections = Dictionary(config.connections.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.holdsView = HoldsView(retention: config.holdsRetention.duration)
        let authAudit = AuthFailureAudit()
        let reasonEngine: DetectionEngine
        if let engine { reasonEngine = engine } else {
            do {
                reasonEngine = try DetectionEngine(
                    fingerprintKey: options.idempotencySecret.isEmpty ? Array(options.instanceID.utf8) : options.idempotencySecret)
            } catch {
                throw IngressError(.configuration, "the detection engine for approvers' reasons failed: \(error)")
            }
        }
        self.approvals = ApprovalsRoutes(
            view: holdsView, connections: connections, authenticator: authenticator, context: context,
            decisionEcho: options.decisionEcho, authAudit: authAudit, reasons: ReasonMasker(engine: reasonEngine))
        let drain = self.drain
        self.console = config.console.enabled
            ? ConsoleRoutes(
                approvals: approvals, sessions: ConsoleSessions(ttl: config.console.sessionTTL.duration, idle: config.console.idleTimeout.duration),
                authenticator: authenticator, authAudit: authAudit, context: context,
                secureCookies: config.publicURL?.lowercased().hasPrefix("https://") ?? false, draining: { drain.isDraining },
                oidc: consoleOIDC, recordings: recordings)
            : nil
        // Callers' Idempotency-Keys (Idempotency/): shared by the handler and the replies reader.
        let idempotency = IdempotencyTable(
            limits: .init(ttl: config.idempotencyTTL.duration, maxEntries: options.idempotencyMaxEntries), secret: options.idempotencySecret)
        self.functions = FunctionCallHandler(
            connections: Dictionary(config.connections.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first }),
            maxBodyBytes: config.maxBodyBytes,
            requestTimeout: config.requestTimeout.duration,
            bodyReadTimeout: config.bodyReadTimeout.duration,
            maxHeldPerIdentity: config.maxHeldPerIdentity,
            context: context,
            authenticator: authenticator,
            registry: replyRegistry,
            limiter: InFlightLimiter(limit: config.maxInFlight, perIdentity: config.maxInFlightPerIdentity),
            holds: holdsView,
            metrics: metrics,
            options: options,
            idempotency: idempotency,
            mcpSessions: MCPSessionBinding(secret: options.idempotencySecret),
            authAudit: authAudit)
        self.repliesReader = RepliesReader(
            context: context, instanceID: options.instanceID, registry: replyRegistry, metrics: metrics, idempotency: idempotency)
    }

    /// The caller port's routes besides `/fn/...`: its own `/healthz`, the caller's poll and the
    /// reviewer API (`/v1/...`). Nothing else: `/metrics` and `/readyz` answer 404 here.
    private func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        OperationalRoutes.addHealth(to: router)
        approvals.add(to: router)
        console?.add(to: router)
        return router
    }

    /// The admin port's routes: `/healthz`, `/readyz`, `/metrics`.
    private func makeAdminRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        OperationalRoutes.addHealth(to: router)
        OperationalRoutes.addOperations(to: router, readiness: context.readiness, registry: registry)
        return router
    }

    /// Runs the caller server on `config.listen` and the operations server on `admin_listen`
    /// (host:port; port 0 = ephemeral) until the task is cancelled; calls `onListening` with the
    /// caller port once accepting, `onAdminListening` with the admin port.
    ///
    /// The admin server runs from the start (so `/readyz` can answer 503 while the holds
    /// changelog is read); the caller server starts once the Ingress is ready.
    ///
    /// - Throws: when a server cannot bind, the bus cannot be read, or the `replies`
    ///   reader or a server stops while the task is not cancelled.
    public func run(
        onListening: @Sendable @escaping (Int) async -> Void = { _ in },
        onAdminListening: @Sendable @escaping (Int) async -> Void = { _ in }
    ) async throws {
        let logger = context.logger
        // Only the partition this instance's key hashes to: its replies are all there, so N
        // Ingresses read N partitions' worth, not N × all (adding partitions to `replies` needs
        // the Ingresses restarted, as before).
        let repliesTopic = context.topics.replies
        let repliesPartition = partition(
            forKey: Array(options.instanceID.utf8), partitions: try await context.bus.partitionCount(topic: repliesTopic))
        let subscription = try await context.bus.read(
            topic: repliesTopic, partitions: [repliesPartition], from: .end, pace: .requestPath)
        logger.info("reading replies", metadata: ["topic": "\(repliesTopic)", "partition": "\(repliesPartition)", "key": "\(options.instanceID)"])
        let drain = self.drain
        // The Ingress's own check on the process's board (`/readyz` also waits for the stages
        // this process runs besides it): ready once the caller port listens, which it does only
        // after the holds changelog was read.
        let readiness = context.readiness
        let setReady: @Sendable (Bool, String) -> Void = { readiness.set("ingress", ready: $0, detail: $1) }
        setReady(false, "reading the holds changelog")
        defer { setReady(false, "stopped") }
        let app = makeApplication(
            listen,
            responder: IngressResponder(functions: functions, routes: makeRouter().buildResponder(), logger: logger, drain: drain),
            name: "ingress",
            onListening: { port in
                setReady(true, "replies reader running, holds changelog read, caller port listening")
                await onListening(port)
            })
        let adminApp = makeApplication(
            adminListen, responder: IngressResponder(functions: nil, routes: makeAdminRouter().buildResponder(), logger: logger),
            name: "admin", onListening: onAdminListening)
        let reader = repliesReader
        let view = holdsView
        let changelog = HoldsChangelog(context: context)
        let (caughtUp, caughtUpSignal) = AsyncStream.makeStream(of: Void.self)

        let callerServices = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let adminServices = ServiceGroup(configuration: .init(services: [adminApp], logger: logger))
        let replies = replyRegistry
        let shutdownTimeout = shutdownTimeout
        let (shutdownSignal, shutdownTrigger) = AsyncStream.makeStream(of: Void.self)

        let outcome: Result<Void, any Error> = await withGracefulShutdownHandler {
            await withTaskGroup(of: Result<Void, any Error>.self) { group in
                group.addTask {
                    // The held requests, for polls and reviewers: read up to date before serving.
                    do {
                        try await changelog.follow(
                            pace: .requestPath, apply: { await view.apply($0) },
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
                    await Self.serve(adminServices, name: "admin")
                }
                group.addTask {
                    var ready = false
                    for await _ in caughtUp { ready = true }
                    guard ready else {
                        return Task.isCancelled ? .success(()) : .failure(IngressError(.serverStopped, "the holds changelog could not be read"))
                    }
                    setReady(false, "holds changelog read, opening the caller port")
                    return await Self.serve(callerServices, name: "caller")
                }
                group.addTask {
                    // The drain: on graceful shutdown refuse new calls (503 `shutting_down`,
                    // `Connection: close`) while the listener stays open, and keep answering the
                    // calls in flight (the replies reader still runs); past `shutdown_timeout`,
                    // answer the rest 504. Once no call is in progress, stop the caller server
                    // (listener, then idle connections). Ends only with the caller server.
                    var signalled = false
                    for await _ in shutdownSignal { signalled = true }
                    guard signalled, !Task.isCancelled else { return .success(()) }
                    setReady(false, "draining for shutdown")
                    drain.startDraining()
                    logger.notice("graceful shutdown: draining calls in flight", metadata: [
                        "shutdown_timeout_ms": "\(Self.milliseconds(shutdownTimeout))", "in_flight": "\(drain.inProgress)",
                    ])
                    let drained = await drain.waitUntilIdle(timeout: shutdownTimeout)
                    if !drained {
                        logger.warning("shutdown timeout reached: answering the calls still waiting", metadata: ["in_flight": "\(drain.inProgress)"])
                        await replies.abandonAll()
                    }
                    await callerServices.triggerGracefulShutdown()
                    return .success(())
                }
                // The first child to end decides: normally the caller server, after a drain.
                let first = await group.next() ?? .success(())
                group.cancelAll()
                shutdownTrigger.finish()
                await subscription.close()
                while await group.next() != nil {}
                return first
            }
        } onGracefulShutdown: {
            shutdownTrigger.yield()
            shutdownTrigger.finish()
        }
        try outcome.get()
    }

    /// A Hummingbird application on `address` whose connections are guarded by ``ConnectionGuard``
    /// (`header_read_timeout`; `Connection: close` answers close).
    private func makeApplication(
        _ address: ListenAddress, responder: IngressResponder, name: String, onListening: @Sendable @escaping (Int) async -> Void
    ) -> Application<IngressResponder> {
        let logger = context.logger
        let metrics = metrics
        let headTimeout = TimeAmount.nanoseconds(Self.nanoseconds(headerReadTimeout))
        return Application(
            responder: responder,
            server: .http1(configuration: .init(
                additionalChannelHandlers: [ConnectionGuard(headTimeout: headTimeout, onHeadTimeout: { metrics.headTimedOut() })])),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("\(name) server listening", metadata: ["port": "\(port)"])
                await onListening(port)
            },
            logger: logger)
    }

    /// Runs a server's service group until it stops (a failure unless the task was cancelled or a
    /// graceful shutdown was triggered). Cancellation becomes a graceful shutdown too: stop
    /// accepting, finish the calls in flight.
    private static func serve(_ services: ServiceGroup, name: String) async -> Result<Void, any Error> {
        do {
            // Detached, so neither the cancellation of `run` nor the process's graceful shutdown
            // reaches the server directly (cancelling it aborts connections mid-response, and the
            // caller server must stop only when `run`'s drain says so): both arrive as the
            // graceful shutdown triggered below or by the drain.
            let server = Task.detached { try await services.run() }
            try await withTaskCancellationHandler {
                try await server.value
            } onCancel: {
                Task { await services.triggerGracefulShutdown() }
            }
            return .success(())
        } catch {
            return Task.isCancelled ? .success(()) : .failure(IngressError(.serverStopped, "the \(name) HTTP server failed: \(error)"))
        }
    }

    static func milliseconds(_ d: Duration) -> Int64 { nanoseconds(d) / 1_000_000 }

    static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
