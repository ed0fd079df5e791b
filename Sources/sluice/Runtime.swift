import Detection
import Forwarder
import Foundation
import Ingress
import Inspector
import KafkaBus
import Logging
import Metrics
import Operations
import Pipeline
import Prometheus
import Recorder
import ServiceLifecycle
import AsyncHTTPClient

/// Which stage to run.
enum StageKind: String, Sendable, CaseIterable {
    case ingress, inspector, forwarder, recorder
}

/// Everything one `sluice` process shares between its stages: the configuration,
/// the bus, the codec, metrics and the HTTP client. Built once at start-up; every
/// configuration problem surfaces here, before anything listens or consumes, and so does a
/// `listen` or `admin_listen` address another process holds (`ListenCheck`).
///
/// Guarantees: a started runtime has published exactly one `config_loaded` audit event for its
/// process (the hash of the configuration file's bytes it parsed, never a value from it); when
/// that publish fails, start-up fails with the reason and the bus is shut down.
struct Runtime: Sendable {
    let config: SluiceConfig
    let bus: any Bus
    let codec: MessageCodec
    let logger: Logger
    let registry: PrometheusCollectorRegistry
    let fingerprintKey: [UInt8]
    /// This process's id: `bus.instance_id` (or `SLUICE_INSTANCE_ID`) when set, else host, pid
    /// and a random suffix. The `instance` of the `config_loaded` event.
    let instanceID: String
    /// `bus.instance_id` (or `SLUICE_INSTANCE_ID`) when set: the Ingress's replies partition follows it.
    var configuredInstance: String? = nil
    /// The process's readiness checks, shared by its stages (`/readyz` on `admin_listen`).
    /// Upstream and sink checks gate it only in a process without the Ingress (``ReadinessBoard``).
    let readiness: ReadinessBoard
    /// The span exporter (`telemetry.otlp_endpoint`), when configured: run first, stopped last.
    var telemetry: (any Service)? = nil

    /// - Parameters:
    ///   - role: `all` for `sluice run`, else the one stage's name.
    ///   - stages: the stages this process will run (for the `config_loaded` event).
    static func start(options: StageOptions, role: String, stages: [StageKind]) async throws -> Runtime {
        // Every line written while a stage works on a request carries its trace_id (and span_id).
        LoggingSystem.bootstrap({ label, provider in
            var handler: any LogHandler = switch options.logFormat {
            case .text: StreamLogHandler.standardError(label: label, metadataProvider: provider)
            case .json: JSONLogHandler.standardError(label: label, metadataProvider: provider)
            }
            handler.logLevel = options.logLevel
            return handler
        }, metadataProvider: TraceContext.loggingMetadataProvider)
        var logger = Logger(label: "sluice")
        logger[metadataKey: "role"] = "\(role)"
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        // Read once: the bytes parsed are the bytes hashed for `config_loaded`.
        var (config, configBytes) = try ConfigLoader.loadWithBytes(path: options.config)
        // Several stage processes on one host (no container per process) need one admin port each.
        if let adminOverride = ProcessInfo.processInfo.environment["SLUICE_ADMIN_LISTEN"], !adminOverride.isEmpty {
            _ = try ListenAddress(parsing: adminOverride, key: "SLUICE_ADMIN_LISTEN")
            config.adminListen = adminOverride
        }
        // Taken ports fail start-up here, before anything is created, joined or started.
        try ListenCheck.check(ListenCheck.addresses(config: config, stages: stages))
        // Held requests nobody can decide would only expire: said at start, never an error.
        for warning in ApproverCoverage.warnings(config) { logger.warning("\(warning)") }
        // Spans are exported only with telemetry.otlp_endpoint (the tracer is process-wide).
        let telemetry = try Telemetry.bootstrap(config.telemetry, role: role, logger: logger)
        // Everything under data_dir is the operator's alone (0700 directories, 0600 files; the
        // CLI set umask 077 at start).
        try DataDirectory.prepare(config.dataDir)
        let sealer = try config.sealing.makeSealer()
        let instance = config.bus.instanceID ?? ProcessInfo.processInfo.environment["SLUICE_INSTANCE_ID"].flatMap { $0.isEmpty ? nil : $0 }
        let fingerprintKey = try config.sealing.fingerprintKeyBytes()
        let topics = Topics(prefix: config.bus.topicPrefix)
        let bus: any Bus
        switch config.bus.kind {
        case .embedded:
            guard role == "all" else {
                throw ConfigError(path: "bus.kind", message: "`sluice \(role)` runs one stage of a Kafka deployment: set bus.kind to kafka, or use `sluice run`")
            }
            let dir = URL(fileURLWithPath: config.dataDir).appendingPathComponent("bus")
            // Segments of bus.segment_bytes; maintenance every 30 s deletes/compacts by bus.retention
            // (metrics sluice_bus_disk_bytes, sluice_bus_segments_deleted_total).
            bus = try EmbeddedBus(
                directory: dir,
                options: EmbeddedBusOptions(
                    defaultPartitions: config.bus.partitions, sync: config.bus.sync, segmentBytes: config.bus.segmentBytes,
                    retention: config.bus.retention.duration, logger: logger))
        case .kafka:
            try KafkaBus.checkLibrary()
            // Secret-bearing librdkafka values are env:/file: references, read here (errors name the key).
            var kafkaConfig = KafkaBusConfiguration(
                brokers: config.bus.brokers ?? "", clientId: "sluice-\(role)", librdkafka: try config.bus.resolvedLibrdkafka(),
                instanceID: instance.map { "\(role)-\($0)" }, transactionTimeout: config.bus.transactionTimeout.duration)
            kafkaConfig.transactions = config.bus.transactions
            kafkaConfig.backgroundFetchWait = config.bus.backgroundFetchWait.duration
            if !config.bus.transactions {
                logger.warning("bus.transactions is off: stage hand-offs are not atomic (a crash can repeat a verdict)")
            }
            bus = try KafkaBus(configuration: kafkaConfig, logger: logger)
        }
        try await bus.ensureTopics(topics.specs(partitions: config.bus.partitions))
        logger.info("bus ready", metadata: ["kind": "\(config.bus.kind.rawValue)", "topic_prefix": "\(topics.prefix)"])
        let runtime = Runtime(
            config: config, bus: bus, codec: MessageCodec(sealer: sealer, topics: topics, binaryEnvelopes: config.bus.envelopes == .binary), logger: logger,
            registry: registry, fingerprintKey: fingerprintKey, instanceID: instance ?? processID(), configuredInstance: instance,
            readiness: readinessBoard(stages: stages), telemetry: telemetry)
        let event = configLoaded(
            configBytes: configBytes, path: options.config, command: role == "all" ? "run" : role, stages: stages, instance: runtime.instanceID)
        do {
            try await bus.publish(try runtime.codec.audit(event))
        } catch {
            await bus.shutdown()
            throw CLIError("cannot publish the config_loaded audit event on \(topics.audit) (start-up stopped): \(error)")
        }
        logger.notice("configuration loaded", metadata: [
            "config_sha256": "\(event.details?["config_sha256"] ?? "")", "event_id": "\(event.eventID)",
        ])
        return runtime
    }

    /// The readiness board of a process running `stages`: each stage's own check (named as the
    /// stage) is registered not ready before anything starts, so an upstream or sink found
    /// reachable first cannot report the process ready while a stage has not joined yet.
    static func readinessBoard(stages: [StageKind]) -> ReadinessBoard {
        let board = ReadinessBoard(dependenciesGate: !stages.contains(.ingress))
        for stage in stages { board.expect(stage.rawValue) }
        return board
    }

    /// The `config_loaded` event of a start: sessionless (its ids are its own), `stage` the
    /// command; the file only as its path and the hex SHA-256 of `configBytes`, never a value.
    static func configLoaded(configBytes: Data, path: String, command: String, stages: [StageKind], instance: String) -> AuditEvent {
        let id = UUID().uuidString.lowercased()
        let sha256 = SHA256.hash(configBytes).map { String(format: "%02x", $0) }.joined()
        return AuditEvent(
            kind: .configLoaded, stage: command, requestID: id, sessionID: id,
            details: [
                "config_sha256": sha256, "config_path": path, "stages": stages.map(\.rawValue).joined(separator: ","),
                "version": SluiceVersion.current, "instance": instance,
            ],
            eventID: id)
    }

    func context(_ stage: StageKind) -> StageContext {
        var l = logger
        l[metadataKey: "stage"] = "\(stage.rawValue)"
        var context = StageContext(bus: bus, codec: codec, logger: l)
        context.readiness = readiness
        return context
    }

    func makeEngine() throws -> DetectionEngine {
        try Self.makeEngine(config: config, fingerprintKey: fingerprintKey, logger: logger)
    }

    /// The detection engine of a configuration (custom rules, allow-list); errors name
    /// `detection.rules` or `detection.allow[i]`. Also `sluice config check`'s check of them.
    static func makeEngine(config: SluiceConfig, fingerprintKey: [UInt8], logger: Logger) throws -> DetectionEngine {
        // The configuration admits only the engine's classes and severities; a value it does not
        // know is refused here too, never read as another.
        let rules = try config.detection.rules.enumerated().map { index, r in
            guard let ruleClass = RuleClass(rawValue: r.ruleClass), let severity = Severity(rawValue: r.severity) else {
                throw ConfigError(
                    path: "detection.rules[\(index)]",
                    message: "class \"\(r.ruleClass)\" or severity \"\(r.severity)\" is not known to the detection engine")
            }
            return RuleSpec(
                id: r.id, pattern: r.pattern, keywords: r.keywords, minEntropy: r.minEntropy ?? 0, ruleClass: ruleClass, severity: severity)
        }
        let allow = config.detection.allow.map { a in
            AllowSpec(rule: a.rule, fingerprint: a.fingerprint, pattern: a.pattern, path: a.path, reason: a.reason)
        }
        do {
            return try DetectionEngine(fingerprintKey: fingerprintKey, customRules: rules, allow: allow) { allowed in
                // Never silent: every silenced finding is counted, by rule and entry.
                Counter(label: "sluice_detection_allowed_total", dimensions: [
                    ("rule", allowed.finding.rule), ("entry", "\(allowed.entry)"),
                ]).increment()
                logger.debug("finding silenced by the allow-list", metadata: [
                    "rule": "\(allowed.finding.rule)", "fingerprint": "\(allowed.finding.fingerprint)", "entry": "detection.allow[\(allowed.entry)]",
                ])
            }
        } catch {
            if case .invalidAllow(let index, let reason) = error {
                throw ConfigError(path: "detection.allow[\(index)]", message: reason)
            }
            throw ConfigError(path: "detection.rules", message: "\(error)")
        }
    }

    /// Runs the stages until SIGINT/SIGTERM, then shuts them down in reverse order and closes the bus.
    func run(stages: [StageKind]) async throws {
        // A connect never outlasts the shortest `connections[].timeout` (each delivery is bounded by
        // its connection's timeout anyway; a shorter connect timeout leaves room for a retry).
        let connectTimeout = min(Duration.seconds(5), config.connections.compactMap { $0.timeout?.duration }.min() ?? .seconds(5))
        let httpClient = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: ForwarderService.recommendedHTTPClientConfiguration(connectTimeout: connectTimeout))
        var services: [any Service] = []
        // Stages of one process that read `outcomes` share one view of it, read once, by a
        // service listed first so that it stops last (services stop in reverse order).
        let ledgerStages = stages.filter { [.inspector, .forwarder, .recorder].contains($0) }
        let sharedLedger: OutcomeLedger? = ledgerStages.count > 1
            ? OutcomeLedger(
                context: context(ledgerStages[0]), retention: config.bus.retention.duration,
                decidesFirstRecords: stages.contains(.recorder), sharedReader: true)
            : nil
        do {
            // One engine for the Inspector and the Forwarder of this process (it is Sendable and
            // scans concurrently): the rules and their Hyperscan database are compiled once.
            // The Ingress uses it to mask approvers' reasons.
            let engine = try stages.contains(where: { $0 == .inspector || $0 == .forwarder || $0 == .ingress }) ? makeEngine() : nil
            // The span exporter stops last: the stages' final spans are flushed after they drained.
            if let telemetry { services.append(telemetry) }
            // The Ingress serves `admin_listen` itself; any other process gets an operations
            // server of its own, listed first so that it stops last.
            if !stages.contains(.ingress) {
                services.append(OperationsServer(
                    address: try ListenAddress(parsing: config.adminListen, key: "admin_listen"), readiness: readiness,
                    registry: registry, logger: logger))
            }
            if let sharedLedger {
                services.append(StageService(name: "outcome-ledger", logger: logger) { try await sharedLedger.follow() })
            }
            for stage in stages {
                let ctx = context(stage)
                switch stage {
                case .ingress:
                    // Its replies partition follows the instance id (numbered instances get
                    // partitions of their own); the key stays unique per process.
                    var ingressOptions = IngressOptions(instanceID: IngressOptions.replyKey(
                        instance: configuredInstance, unique: Self.processID(),
                        partitions: try await bus.partitionCount(topic: ctx.topics.replies)))
                    // Derives the upstream's Idempotency-Key from a caller's own (HMAC, never the raw key).
                    ingressOptions.idempotencySecret = fingerprintKey
                    let ingress = try IngressService(
                        config: config, context: ctx, registry: registry,
                        options: ingressOptions, httpClient: httpClient, engine: engine,
                        recordings: StoreRecordings(config: config, sealer: codec.sealer, logger: ctx.logger))
                    // The Ingress drains on graceful shutdown itself (calls in flight are answered).
                    services.append(StageService(name: "ingress", logger: ctx.logger, drainsOnShutdown: true) {
                        try await ingress.run()
                    })
                case .inspector:
                    let inspector = try InspectorService(
                        config: config, context: ctx, engine: try engine ?? makeEngine(),
                        options: InspectorOptions(group: codec.topics.consumerGroup("inspector")), ledger: sharedLedger)
                    // Inspector, Forwarder and Recorder drain on graceful shutdown themselves
                    // (`StageConsumer`): in-flight messages finish and are committed.
                    services.append(StageService(name: "inspector", logger: ctx.logger, drainsOnShutdown: true) { try await inspector.run() })
                case .forwarder:
                    let forwarder = try ForwarderService(
                        config: config, context: ctx, engine: try engine ?? makeEngine(), httpClient: httpClient,
                        options: ForwarderOptions(group: codec.topics.consumerGroup("forwarder")), ledger: sharedLedger)
                    services.append(StageService(name: "forwarder", logger: ctx.logger, drainsOnShutdown: true) { try await forwarder.run() })
                case .recorder:
                    let recorder = try RecorderService(config: config, context: ctx, ledger: sharedLedger)
                    services.append(StageService(name: "recorder", logger: ctx.logger, drainsOnShutdown: true) { try await recorder.run() })
                }
            }
            // Services shut down one at a time in reverse order (the Ingress first, while the
            // stages behind it still answer its calls); whatever has not finished
            // `shutdown_timeout` + 1 s after the signal is cancelled (uncommitted messages are
            // redelivered to the group).
            var configuration = ServiceGroupConfiguration(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            configuration.maximumGracefulShutdownDuration = config.shutdownTimeout.duration + .seconds(1)
            let group = ServiceGroup(configuration: configuration)
            try await group.run()
        } catch {
            await bus.shutdown()
            try? await httpClient.shutdown()
            throw error
        }
        await bus.shutdown()
        try? await httpClient.shutdown()
        logger.notice("sluice stopped")
    }

    /// Host, pid and a random suffix: unique among running processes.
    static func processID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        return "\(host)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// A stage as a swift-service-lifecycle service: runs until graceful shutdown, then is cancelled
/// — unless it `drainsOnShutdown`, in which case its body handles the graceful shutdown itself
/// (the Ingress answers the calls in flight within `shutdown_timeout`; the consuming stages
/// finish and commit the messages in flight, `StageConsumer`), then returns.
struct StageService: Service {
    let name: String
    let logger: Logger
    var drainsOnShutdown = false
    let body: @Sendable () async throws -> Void

    func run() async throws {
        if drainsOnShutdown {
            try await body()
        } else {
            try await cancelWhenGracefulShutdown {
                try await body()
            }
        }
    }
}
