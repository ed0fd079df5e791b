import Detection
import Foundation
import Logging
import MCP
import Metrics
import Pipeline

/// Tuning for the Inspector worker.
public struct InspectorOptions: Sendable {
    /// The consumer group all inspector processes share.
    public var group: String
    /// Requests inspected at once by this process.
    public var concurrency: Int

    public init(group: String = "sluice.inspector", concurrency: Int = 64) {
        self.group = group
        self.concurrency = max(1, concurrency)
    }
}

/// The Inspector stage: opens each request, runs Detection over body, query, path and
/// headers, masks every finding in place, applies the connection's policy and
/// publishes the verdict (with the masked, re-sealed request) plus audit events.
///
/// Guarantees:
/// - A request's verdict for the Forwarder (`inspected`) and its `inspected` audit event are
///   published atomically with the request's commit (`StageConsumer.Result.commit(publishing:)`:
///   a Kafka transaction, or one append on the embedded bus): a killed inspector leaves
///   neither, and the request's next owner inspects it once more — no second `inspected`
///   message for one input. (Ending outcomes go through the ledger, which dedupes them.)
/// - Exactly one outcome (invariant 8): a request it ends (`blocked`, `failed`, `expired`) is
///   ended through the `OutcomeLedger` before the reply; a redelivered request that already has
///   an outcome (from any process) is skipped — nothing is published for it again.
/// - A request past its deadline is never passed on: it is recorded `expired`.
/// - Nothing it publishes or logs holds a secret in clear: masked copies only, and
///   findings carry rule, location and fingerprint. A block reply carries the masked request
///   (`Reply.blockedRequest`) for the session recording; no other reply carries a request.
/// - A message that cannot be opened or decoded goes to `deadletter`.
/// - The policy sees every finding; the `inspected` message and audit event carry the first
///   `FindingsCarried.limit` (with the total in the audit event's details and a reason on the
///   verdict), so a body packed with secrets cannot make messages larger than the bus takes.
/// - Second line behind the Ingress: a path that is not canonical is blocked
///   (`non-canonical-path`), a body whose content codings cannot be undone is blocked
///   (`undecodable-body`); hold clauses see the canonical path and the decoded body.
public struct InspectorService: Sendable {
    let config: SluiceConfig
    let context: StageContext
    let inspector: RequestInspector
    let options: InspectorOptions
    /// Each connection's hold clauses, compiled once.
    let holdRules: [String: HoldRules]
    /// The MCP rules of each `protocol: mcp` connection.
    let mcpPolicies: [String: MCPPolicy]
    /// Where requests are ended, and where redeliveries of ended requests are recognised.
    let ledger: OutcomeLedger

    /// - Parameter ledger: the process's shared outcome ledger (`sluice run`: one view for all
    ///   its stages, read by `OutcomeLedger.follow()`); `nil` makes one that this stage reads.
    /// - Throws: `ConfigError` when a connection's hold clause does not compile.
    public init(
        config: SluiceConfig, context: StageContext, engine: DetectionEngine, options: InspectorOptions = .init(),
        ledger: OutcomeLedger? = nil
    ) throws {
        self.config = config
        self.context = context
        self.inspector = RequestInspector(engine: engine, maxBodyBytes: config.maxBodyBytes)
        self.options = options
        var rules: [String: HoldRules] = [:]
        for (i, c) in config.connections.enumerated() {
            rules[c.name] = try HoldRules(c.policy.hold, path: "connections[\(i)].policy.hold")
        }
        self.holdRules = rules
        var mcp: [String: MCPPolicy] = [:]
        for (i, c) in config.connections.enumerated() where c.isMCP {
            mcp[c.name] = try MCPPolicy(c.policy, path: "connections[\(i)].policy")
        }
        self.mcpPolicies = mcp
        self.ledger = ledger ?? OutcomeLedger(context: context, retention: config.bus.retention.duration)
    }

    /// Reads the outcome ledger up to date, then consumes `requests` until the task is cancelled
    /// or graceful shutdown has drained it (`StageConsumer`).
    public func run() async throws {
        try await ledger.whileFollowing { try await self.consume() }
    }

    private func consume() async throws {
        context.logger.info("inspector started", metadata: ["group": "\(options.group)"])
        let consumer = StageConsumer(
            bus: context.bus, group: options.group, topics: [context.topics.requests],
            concurrency: options.concurrency, logger: context.logger, monitor: context.monitor("inspector"))
        try await consumer.run(producing: { message in
            do {
                // The verdict for the Forwarder and its audit event are published with the
                // commit of the request, atomically: a killed inspector leaves neither, and the
                // request is inspected again by the partition's next owner (issue 9, item 2).
                return .commit(publishing: try await self.handleRetryingBusFailures(message))
            } catch {
                return .keep  // cancelled before the verdict was published: redelivered
            }
        })
        context.logger.info("inspector stopped")
    }

    /// Handles a message, retrying with backoff while publishing fails (the bus is down or
    /// overloaded). Returns the messages to publish atomically with the message's commit.
    func handleRetryingBusFailures(_ message: BusMessage) async throws -> [OutgoingMessage] {
        var delay = Duration.milliseconds(100)
        while true {
            do {
                return try await handle(message)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                context.logger.error("inspection could not be published; retrying", metadata: [
                    "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
                ])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Inspects one message. Returns what must be published atomically with its commit (the
    /// verdict for the Forwarder and the `inspected` audit event); what ends the request
    /// (outcome, reply) has been published already.
    func handle(_ message: BusMessage) async throws -> [OutgoingMessage] {
        let request: InspectionRequest
        do {
            request = try context.codec.open(InspectionRequest.self, from: message)
        } catch {
            await context.deadletter(message, reason: "\(error)")
            return []
        }
        let started = ContinuousClock.now
        // Its own span of the request's trace: on what it publishes and in its log lines.
        let meta = request.metadata
        let outputs = try await StageSpan.run(
            "sluice.inspector", kind: .consumer, continuing: TraceContext.continuing(message).context,
            [.requestID(meta.requestID), .sessionID(meta.sessionID), .connection(meta.connection), .topic(message.topic)]
        ) {
            try await inspect(request)
        }
        Timer(label: "sluice_inspection_seconds").recordNanoseconds((ContinuousClock.now - started).totalNanoseconds)
        return outputs
    }

    /// Inspects `request`; see ``handle(_:)`` for what it returns.
    func inspect(_ request: InspectionRequest) async throws -> [OutgoingMessage] {
        let meta = request.metadata
        if let outcome = await ledger.outcome(of: meta.requestID) {
            // A redelivery (this or another inspector died before committing): already ended.
            context.logger.info("request already has an outcome; skipped", metadata: [
                "request_id": "\(meta.requestID)", "outcome": "\(outcome.rawValue)",
            ])
            Counter(label: "sluice_outcome_skips_total", dimensions: [("stage", "inspector")]).increment()
            return []
        }
        guard let connection = config.connection(named: meta.connection) else {
            // The Ingress routed to a connection this Inspector does not know: fail closed.
            let event = AuditEvent(
                kind: .failed, stage: "inspector", requestID: meta.requestID, sessionID: meta.sessionID,
                connection: meta.connection, identity: meta.identity.id, status: 502,
                details: ["reason": "connection not configured on the inspector"])
            guard try await ledger.end(event) == .recorded else { return [] }
            try await reply(meta, .jsonError(status: 502, error: "unknown_connection", extra: ["request_id": meta.requestID]))
            return []
        }
        if meta.isExpired() {
            let event = AuditEvent(
                kind: .expired, stage: "inspector", requestID: meta.requestID, sessionID: meta.sessionID,
                connection: meta.connection, identity: meta.identity.id, details: ["reason": "deadline passed before inspection"])
            if try await ledger.end(event) == .recorded { Counter(label: "sluice_inspector_expired_total").increment() }
            return []
        }

        let result = inspector.inspect(request.request, policy: connection.policy, connection: connection.name)
        var input = PolicyInput(inspected: result, original: request.request, groups: meta.identity.groups)
        // An MCP endpoint: its JSON-RPC messages as the server will read them, and the tool rules.
        var mcpBody: JSONRPCBody?
        if connection.isMCP, result.undecodableBody == nil {
            let received = Array(result.decodedBody)
            let bodyMasked = result.findings.contains { $0.location == "body" }
            let evaluation = (mcpPolicies[connection.name] ?? .none).evaluate(
                method: request.request.method, received: received, delivered: bodyMasked ? Array(result.request.body) : received)
            mcpBody = evaluation.body
            input.mcp = evaluation.input
        }
        let mcpDetails = mcpBody.map(MCPAuditDetails.details)
        var verdict = PolicyEvaluator.verdict(
            for: input, policy: connection.policy, hold: holdRules[connection.name] ?? .none, holdSupported: true)
        // The verdict saw every finding; the messages carry at most `FindingsCarried.limit` of them.
        let carried = FindingsCarried(result.findings)
        if carried.omitted > 0 { verdict.reasons.append(carried.reason) }
        // Labels are configured names only (connection, rule ids, decision): bounded, no caller input.
        Counter(label: "sluice_verdicts_total", dimensions: [("decision", verdict.decision.rawValue), ("connection", connection.name)])
            .increment()
        StageSpan.annotate(.decision(verdict.decision.rawValue), .findings(result.findings.count))
        for rule in Set(verdict.rules) {
            Counter(label: "sluice_verdict_rules_total", dimensions: [
                ("rule", rule), ("decision", verdict.decision.rawValue), ("connection", connection.name),
            ]).increment()
        }
        context.logger.debug("request inspected", metadata: [
            "request_id": "\(meta.requestID)", "session_id": "\(meta.sessionID)", "connection": "\(meta.connection)",
            "decision": "\(verdict.decision.rawValue)", "findings": "\(result.findings.count)",
        ])

        let inspectedEvent = AuditEvent(
            kind: .inspected, stage: "inspector", requestID: meta.requestID, sessionID: meta.sessionID,
            connection: meta.connection, identity: meta.identity.id, method: request.request.method,
            path: result.maskedPathAndQuery, decision: verdict.decision, rules: verdict.rules, reasons: verdict.reasons,
            findings: carried.findings,
            details: carried.details(["body_bytes": "\(request.request.body.count)"].merging(mcpDetails ?? [:]) { a, _ in a }))

        switch verdict.decision {
        case .block:
            let rule = verdict.rules.first ?? "policy"
            // An MCP call is answered the way its client understands: a JSON-RPC error per request.
            let rpcErrors = mcpBody.flatMap { MCPReplies.blocked($0, verdict: verdict, requestID: meta.requestID) }
            let blocked = AuditEvent(
                kind: .blocked, stage: "inspector", requestID: meta.requestID, sessionID: meta.sessionID,
                connection: meta.connection, identity: meta.identity.id, decision: .block, rules: verdict.rules,
                status: rpcErrors == nil ? 403 : 200, details: mcpDetails)
            guard try await ledger.end(blocked) == .recorded else { return [] }
            // The masked request rides along for the session recording (the Ingress answers
            // with the response alone): a blocked call's recording shows what was blocked. A
            // body whose codings could not be undone was never scanned: it is left out.
            var masked = result.request
            if result.undecodableBody != nil { masked.body = Data() }
            // A request Detection could not inspect whole is told so (it holds no secret as far as anyone knows).
            let message = PolicyEvaluator.uninspectableRules[rule] == nil ? nil : "The request was blocked: \(verdict.reasons.first ?? rule)."
            let response: HTTPResponseData
            if let rpcErrors {
                response = HTTPResponseData(
                    status: 200, headers: [HTTPField("Content-Type", "application/json"), HTTPField("X-Sluice-Status", "blocked")],
                    body: Data(rpcErrors))
            } else if rule == PolicyEvaluator.mcpInvalidRule {
                response = .jsonError(
                    status: 400, error: "invalid_mcp_message", message: "The request is not an MCP message: \(verdict.reasons.first ?? rule).",
                    extra: ["rule": rule, "request_id": meta.requestID])
            } else {
                response = .jsonError(status: 403, error: "blocked", message: message, extra: ["rule": rule, "request_id": meta.requestID])
            }
            try await reply(meta, response, blockedRequest: MaskedRequest(connection: meta.connection, request: masked))
            return [try context.codec.audit(inspectedEvent)]
        case .allow, .mask, .hold:
            let inspected = InspectedRequest(metadata: meta, verdict: verdict, findings: carried.findings, request: result.request)
            return [try context.codec.inspected(inspected), try context.codec.audit(inspectedEvent)]
        }
    }

    /// Publishes the reply for the waiting caller; `blockedRequest` only on a block (masked).
    private func reply(_ meta: RequestMetadata, _ response: HTTPResponseData, blockedRequest: MaskedRequest? = nil) async throws {
        let reply = Reply(requestID: meta.requestID, sessionID: meta.sessionID, response: response, blockedRequest: blockedRequest)
        try await context.bus.publish(try context.codec.reply(reply, to: meta.replyTo))
    }
}
