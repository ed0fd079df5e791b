import AsyncHTTPClient
import Detection
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Pipeline

/// The Forwarder stage: consumes `inspected` in the consumer group `sluice-forwarder` and
/// delivers allowed and masked requests to their connection's upstream, with the
/// connection's credential injected.
///
/// Guarantees:
/// - Fail closed (invariant 3): only `allow` and `mask` verdicts are delivered; a request
///   whose deadline has passed is never delivered (outcome `expired`, no reply); nothing is
///   sent upstream at or after the deadline.
/// - Credentials (invariant 4) come only from this stage's configuration, are resolved once
///   in `init`, replace any same-named header of the request, and are never published or
///   logged; every form of the injected value is masked in responses (`ResponseInspector`).
///   Every delivery carries `Idempotency-Key`: the key derived from the caller's own
///   (`RequestMetadata.idempotencyKey`), else the request id, so a redelivery after a crash is
///   safe (invariant 8).
/// - A response that cannot be checked is withheld: 502 `response_withheld`.
/// - Clean requests are delivered byte-identical: method, path, query, body and
///   `Content-Type` exactly as in the envelope (which holds the masked request).
/// - Exactly one outcome per delivered-or-attempted request (`delivered`, `failed` or
///   `expired`), recorded in the `OutcomeLedger` before the reply (the upstream's response with
///   findings masked, or 502/504; none when expired); the message is committed only after
///   both are published. A request whose outcome is already in the ledger (a redelivery after
///   a crash or rebalance, a second `inspected` from a re-run inspection) is skipped and
///   committed: never delivered again. Two messages of one request id are never worked on at
///   once in this process (`OutcomeLedger.claim`). Block verdicts publish nothing here (the
///   Inspector replied and ended them).
/// - Hold verdicts are parked, joined with decisions on `approvals` and delivered, denied or
///   expired; see `HeldRequests.swift` and `docs/approvals.md`. Any number of Forwarders may
///   run in the group: each follows `holds`, and only the owner of a request's partition
///   expires, resumes, repairs or prunes it (`HoldsMaintenance.swift`).
/// - Messages are processed concurrently (`maxInFlight`) but committed in offset order per
///   partition (`CommitCoordinator`).
/// - A message that cannot be opened or decoded goes to `deadletter` and is committed.
/// - Logs carry ids, statuses and error classes only: never bodies, header values or
///   credentials.
public struct ForwarderService: Sendable {
    let context: StageContext
    let targets: [String: UpstreamTarget]
    private let client: UpstreamClient
    private let inspector: ResponseInspector
    /// Held requests and their decisions (read from `holds` at start, then kept up to date with
    /// every Forwarder's changes).
    let holds: HoldStore
    let holdPolicies: [String: HoldPolicy]
    let notifier: ApprovalNotifier
    /// The deadline a released request's delivery gets when its connection has no `timeout`.
    let requestTimeout: Duration
    /// How long final held requests stay in the changelog.
    let holdsRetention: Duration
    let options: ForwarderOptions
    let logger: Logger
    /// Where requests are ended, and where requests that already ended are recognised.
    let ledger: OutcomeLedger
    /// How long the ledger remembers an outcome (`bus.retention`): older final holds are never
    /// given a recovered outcome (the ledger could no longer tell it already has one).
    let outcomeRetention: Duration
    /// The consume loop over `inspected` and `approvals`; its assignment decides which held
    /// requests this Forwarder owns (`HoldOwnership`).
    let consumer: StageConsumer

    /// Prepares the stage; resolves every connection's credential now (an unresolvable
    /// reference throws a `ConfigError` naming the config path and reference).
    ///
    /// `httpClient` is shared and owned by the caller; see
    /// `recommendedHTTPClientConfiguration` for how it should be configured.
    ///
    /// `ledger`: the process's shared outcome ledger (`sluice run`: one view for all its stages,
    /// read by `OutcomeLedger.follow()`); `nil` makes one that this stage reads.
    public init(
        config: SluiceConfig, context: StageContext, engine: DetectionEngine, httpClient: HTTPClient,
        options: ForwarderOptions = .init(), ledger: OutcomeLedger? = nil
    ) throws {
        var logger = context.logger
        logger[metadataKey: "stage"] = "forwarder"
        self.context = context
        // The fingerprint key only labels masked injected credentials in the audit; without it
        // (a test environment) a random key still masks, with fingerprints of this process only.
        let fingerprintKey: [UInt8]
        do { fingerprintKey = try config.sealing.fingerprintKeyBytes(environment: options.environment) } catch {
            logger.warning("fingerprint key unavailable; injected-credential fingerprints are per process", metadata: ["error": "\(error)"])
            fingerprintKey = (0..<32).map { _ in UInt8.random(in: .min ... .max) }
        }
        self.targets = try UpstreamTarget.table(config, environment: options.environment, fingerprintKey: fingerprintKey)
        self.client = UpstreamClient(http: httpClient, options: options, logger: logger)
        self.inspector = ResponseInspector(engine: engine, maxDecodedBytes: options.maxResponseBytes)
        self.holds = HoldStore(context: context, logger: logger, initialBackoff: options.initialBackoff, maxBackoff: options.maxBackoff)
        self.holdPolicies = Dictionary(config.connections.map { ($0.name, HoldPolicy($0.policy)) }, uniquingKeysWith: { a, _ in a })
        // Links go to the console at the Ingress's public URL (`http://<listen>` when unset).
        let publicBase = (config.publicURL ?? "http://\(config.listen)").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.notifier = ApprovalNotifier(
            targets: config.notify.map(\.url), console: config.console.enabled ? publicBase + "/console" : nil, http: httpClient, logger: logger)
        self.requestTimeout = config.requestTimeout.duration
        self.holdsRetention = config.holdsRetention.duration
        self.options = options
        self.logger = logger
        self.ledger = ledger ?? OutcomeLedger(
            context: context, retention: config.bus.retention.duration,
            initialBackoff: options.initialBackoff, maxBackoff: options.maxBackoff)
        self.outcomeRetention = config.bus.retention.duration
        self.consumer = StageConsumer(
            bus: context.bus, group: options.group, topics: [context.topics.inspected, context.topics.approvals],
            concurrency: options.maxInFlight, logger: logger, monitor: context.monitor("forwarder"))
    }

    /// Reads the outcome ledger up to date, then consumes `inspected` and `approvals` until the
    /// task is cancelled, the bus ends the subscription, or graceful shutdown has drained it
    /// (deliveries in flight finish and are committed; `StageConsumer`). Deliveries in flight at
    /// cancellation are abandoned uncommitted (they are redelivered, with the same
    /// `Idempotency-Key`). Throws when subscribing fails or the
    /// bus fails.
    public func run() async throws {
        try await ledger.whileFollowing { try await self.consume() }
    }

    private func consume() async throws {
        // Held requests first: read `holds` up to date, then take new requests and decisions
        // (one group over both co-partitioned topics) while following `holds` and maintaining
        // the held requests this member owns (`HoldsMaintenance.swift`).
        let (caughtUp, signal) = AsyncStream.makeStream(of: Void.self)
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                defer { signal.finish() }
                do { try await self.followHolds(onCaughtUp: { signal.yield() }) } catch where Task.isCancelled {
                    return false  // stopping: the reader's end is not a failure
                }
                if Task.isCancelled { return false }
                throw BusError(.closed, "the holds changelog reader ended while the forwarder runs")
            }
            var isCaughtUp = false
            for await _ in caughtUp {
                isCaughtUp = true
                break
            }
            guard isCaughtUp else {
                // The reader ended before it was up to date: throw its error.
                while try await group.next() != nil {}
                try Task.checkCancellation()
                throw BusError(.closed, "the holds changelog ended before it was read up to date")
            }
            let restored = await holds.count
            logger.info("held requests restored", metadata: ["records": "\(restored)"])
            logger.info("forwarder started", metadata: ["group": "\(options.group)", "max_in_flight": "\(options.maxInFlight)", "connections": "\(targets.keys.sorted())"])
            group.addTask {
                await self.maintainHolds()
                return false
            }
            group.addTask {
                await UpstreamProbe(
                    targets: self.targets, readiness: self.context.readiness, interval: self.options.upstreamProbeInterval,
                    timeout: self.options.upstreamProbeTimeout, logger: self.logger
                ).run()
                return false
            }
            group.addTask {
                try await self.consumer.run { message in await self.process(message) }
                return true
            }
            // The consumer ending (drained, cancelled, subscription ended) ends the stage; the
            // holds reader failing first throws here and cancels the rest.
            while let consumerEnded = try await group.next() {
                if consumerEnded { break }
            }
            group.cancelAll()
        }
        logger.info("forwarder stopped")
    }

    /// Handles one message. Returns `true` when it may be committed, `false` when the stage
    /// is shutting down before its outcome was published.
    func process(_ message: BusMessage) async -> Bool {
        // Its own span of the request's trace: on what it publishes, upstream and in its log lines.
        await StageSpan.run("sluice.forwarder", kind: .consumer, continuing: TraceContext.continuing(message).context, [.topic(message.topic)]) {
            await processTraced(message)
        }
    }

    private func processTraced(_ message: BusMessage) async -> Bool {
        if message.topic == context.topics.approvals { return await processApprovals(message) }
        let request: InspectedRequest
        do { request = try context.codec.open(InspectedRequest.self, from: message) } catch {
            await context.deadletter(message, reason: "\(error)")
            return true
        }
        StageSpan.annotate(
            .requestID(request.metadata.requestID), .sessionID(request.metadata.sessionID), .connection(request.metadata.connection),
            .decision(request.verdict.decision.rawValue))
        if request.verdict.decision == .block {
            logger.debug("blocked request not delivered", metadata: ["request_id": "\(request.metadata.requestID)"])
            return true
        }
        let id = request.metadata.requestID
        if case .ended(let outcome) = await ledger.claim(id) {
            logger.info("request already has an outcome; not delivered again", metadata: ["request_id": "\(id)", "outcome": "\(outcome.rawValue)"])
            Counter(label: "sluice_outcome_skips_total", dimensions: [("stage", "forwarder")]).increment()
            return true
        }
        let done: Bool
        switch request.verdict.decision {
        case .allow, .mask, .block: done = await deliver(request)
        case .hold: done = await park(request)
        }
        await ledger.release(id)
        return done
    }

    /// Delivers an allowed (or approved) request and publishes its reply and outcome.
    /// Returns `false` only when cancelled before the outcome was published.
    func deliver(_ inspected: InspectedRequest) async -> Bool {
        var log = logger
        log[metadataKey: "request_id"] = "\(inspected.metadata.requestID)"
        log[metadataKey: "session_id"] = "\(inspected.metadata.sessionID)"
        log[metadataKey: "connection"] = "\(inspected.metadata.connection)"
        guard let outcome = await deliveryOutcome(inspected, log: log) else { return false }
        return await publish(reply: outcome.reply, audit: outcome.event, meta: inspected.metadata, log: log)
    }

    /// What delivering `inspected` produced: the reply for the caller (none when expired) and
    /// the outcome event, not yet published. `nil` when cancelled first.
    func deliveryOutcome(_ inspected: InspectedRequest, log: Logger) async -> (reply: Reply?, event: AuditEvent)? {
        let meta = inspected.metadata
        let started = ContinuousClock.now

        if meta.isExpired() {
            log.info("request expired before delivery")
            let event = outcomeEvent(.expired, inspected, details: ["deadline_ms": "\(meta.deadlineMillis)"])
            return (nil, event)
        }
        guard let target = targets[meta.connection] else {
            log.error("connection not configured in the forwarder")
            return await fail(inspected, status: 502, error: "upstream_unavailable", kind: "connection_not_configured", attempts: 0, started: started, log: log)
        }

        let result = await client.deliver(
            makeRequest(inspected.request, target: target, requestID: meta.requestID, idempotencyKey: meta.idempotencyKey),
            deadlineMillis: meta.deadlineMillis, timeout: target.timeout, requestID: meta.requestID)

        switch result {
        case .cancelled:
            log.info("delivery abandoned: forwarder stopping")
            return nil
        case .timedOut(let attempts):
            log.warning("upstream timed out", metadata: ["attempts": "\(attempts)"])
            return await fail(inspected, status: 504, error: "upstream_timeout", kind: "upstream_timeout", attempts: attempts, started: started, log: log)
        case .unavailable(let kind, let attempts):
            log.warning("upstream unavailable", metadata: ["attempts": "\(attempts)", "error_kind": "\(kind)"])
            return await fail(inspected, status: 502, error: "upstream_unavailable", kind: kind, attempts: attempts, started: started, log: log)
        case .response(let status, let headers, let body, let attempts):
            let exchange = target.mcp.map { ResponseInspector.MCPExchange(request: MCPRequestReader.body(of: inspected.request), rules: $0) }
            let checked = inspector.inspect(body: body, headers: HeaderFilter.replyHeaders(headers), target: target, mcp: exchange)
            if let reason = checked.withheld {
                log.warning("upstream response withheld", metadata: ["status": "\(status)", "reason": "\(reason)"])
                return await fail(
                    inspected, status: 502, error: "response_withheld", kind: reason, attempts: attempts, started: started,
                    findings: checked.findings, log: log,
                    message: "The upstream's response was withheld: it could not be checked for secrets (\(reason)).")
            }
            var replyHeaders = checked.headers
            if checked.decoded { replyHeaders.removeAll { $0.name.lowercased() == "content-encoding" } }
            let reply = Reply(
                requestID: meta.requestID, sessionID: meta.sessionID,
                response: HTTPResponseData(status: status, headers: replyHeaders, body: Data(checked.body)))
            var details = ["attempts": "\(attempts)", "response_bytes": "\(body.count)"]
            if !checked.findings.isEmpty { details["response_masked"] = "true" }
            // Every finding was masked; the event lists the first `FindingsCarried.limit`.
            let carried = FindingsCarried(checked.findings)
            let event = outcomeEvent(
                .delivered, inspected, status: status, duration: ContinuousClock.now - started,
                findings: carried.findings.isEmpty ? nil : carried.findings, details: carried.details(details))
            log.info("delivered", metadata: ["status": "\(status)", "attempts": "\(attempts)", "response_findings": "\(checked.findings.count)"])
            return (reply, event)
        }
    }

    private func fail(
        _ inspected: InspectedRequest, status: Int, error: String, kind: String, attempts: Int, started: ContinuousClock.Instant,
        findings: [FindingSummary] = [], log: Logger, message: String? = nil
    ) async -> (reply: Reply?, event: AuditEvent)? {
        let meta = inspected.metadata
        let reply = Reply(
            requestID: meta.requestID, sessionID: meta.sessionID,
            response: .jsonError(
                status: status, error: error, message: message ?? Self.failureMessage(status: status, error: error),
                extra: ["request_id": meta.requestID]))
        let carried = FindingsCarried(findings)
        let event = outcomeEvent(
            .failed, inspected, status: status, duration: ContinuousClock.now - started,
            findings: carried.findings.isEmpty ? nil : carried.findings,
            details: carried.details(["error_kind": kind, "attempts": "\(attempts)"]))
        return (reply, event)
    }

    /// One sentence for a failed delivery's error body.
    static func failureMessage(status: Int, error: String) -> String {
        switch status {
        case 504: "The upstream did not answer before the request's deadline."
        default: "The upstream could not be reached or did not answer usably."
        }
    }

    /// The upstream request: see `HeaderFilter.upstreamRequestHeaders` for the headers;
    /// method, path, query and body are the envelope's, unchanged. `idempotencyKey` is the
    /// key derived from the caller's own (`RequestMetadata.idempotencyKey`), else the request id.
    func makeRequest(_ request: HTTPRequestData, target: UpstreamTarget, requestID: String, idempotencyKey: String? = nil) -> HTTPClientRequest {
        var out = HTTPClientRequest(url: target.url(for: request))
        out.method = HTTPMethod(rawValue: request.method)
        var headers = HTTPHeaders()
        for field in HeaderFilter.upstreamRequestHeaders(
            request.headers, credential: target.credential, idempotencyKey: idempotencyKey ?? requestID,
            traceparent: (TraceContext.current ?? .root()).traceparent)
        {
            headers.add(name: field.name, value: field.value)
        }
        out.headers = headers
        if !request.body.isEmpty {
            out.body = .bytes(ByteBuffer(bytes: request.body))
        }
        return out
    }

    func outcomeEvent(
        _ kind: AuditEvent.Kind, _ inspected: InspectedRequest, status: Int? = nil, duration: Duration? = nil,
        findings: [FindingSummary]? = nil, details: [String: String]
    ) -> AuditEvent {
        let meta = inspected.metadata
        return AuditEvent(
            kind: kind, stage: "forwarder", requestID: meta.requestID, sessionID: meta.sessionID, connection: meta.connection,
            identity: meta.identity.id, method: inspected.request.method, path: inspected.request.path,
            decision: inspected.verdict.decision, findings: findings, status: status,
            durationMillis: duration.map(\.milliseconds), details: details)
    }

    /// Ends the request in the `OutcomeLedger` with `event`, then publishes the reply (if any),
    /// each retried with backoff until it is accepted. When the request already had an outcome,
    /// nothing is published. Returns `false` when cancelled first (the message then stays
    /// uncommitted and is redelivered).
    func publish(reply: Reply?, audit event: AuditEvent, meta: RequestMetadata, log: Logger) async -> Bool {
        StageSpan.annotate(.outcome(event.kind.rawValue))
        if let status = event.status { StageSpan.annotate(.httpStatus(status)) }
        do {
            switch try await ledger.end(event) {
            case .alreadyEnded(let kind):
                log.info("request already has an outcome; this one is not recorded", metadata: ["outcome": "\(kind.rawValue)", "dropped": "\(event.kind.rawValue)"])
                Counter(label: "sluice_outcome_skips_total", dimensions: [("stage", "forwarder")]).increment()
                return true
            case .recorded:
                Counter(label: "sluice_forwarder_outcomes_total", dimensions: [("outcome", event.kind.rawValue)]).increment()
            }
        } catch is CancellationError {
            return false
        } catch {
            // Encoding failed: retrying cannot help. Leaving the message uncommitted would stall
            // the partition, so give up on it loudly.
            log.critical("cannot encode the outcome; dropping it", metadata: ["error": "\(error)"])
            return true
        }
        if let reply {
            return await publishReliably("reply", log: log) {
                try await context.bus.publish(try context.codec.reply(reply, to: meta.replyTo))
            }
        }
        return true
    }

    func publishReliably(_ what: String, log: Logger, _ operation: () async throws -> Void) async -> Bool {
        var delay = options.initialBackoff
        while true {
            do {
                try await operation()
                return true
            } catch let error as MessageCodecError {
                // Encoding or sealing failed: retrying cannot help. Not publishing leaves the
                // message uncommitted, which would stall the partition, so give up on it loudly.
                log.critical("cannot encode \(what); dropping it", metadata: ["error": "\(error)"])
                return true
            } catch {
                log.error("\(what) publish failed; retrying", metadata: ["error": "\(error)"])
            }
            do { try await Task.sleep(for: delay) } catch { return false }
            delay = min(delay * 2, options.maxBackoff)
        }
    }
}
