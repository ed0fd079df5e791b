import Codings
import Foundation
import Hummingbird
import Logging
import MCP
import Metrics
import Pipeline

/// Handles `METHOD /fn/{connection}/{rest}?{query}`: authenticate, canonicalise, route, limit,
/// read and check the body, seal, publish, await the reply.
///
/// Guarantees:
/// - Checks run in this order and each failure publishes nothing: 401 (bad or missing
///   credential), 400 `bad_session` (an `X-Sluice-Session` not of the form
///   `IngressHeaders.sessionID` accepts), 400 `bad_path` (connection segment, path or query that ``CanonicalPath``
///   refuses), 404 (unknown connection), 403 (identity's groups not allowed; the message names
///   the identity and the connection), 415 (a `Content-Encoding` other than gzip, x-gzip,
///   deflate, br, zstd, or a `Transfer-Encoding` other than chunked), 413 (declared `Content-Length` over `max_body_bytes`), 429 (the
///   identity's `max_in_flight_per_identity` or the process's `max_in_flight` reached, or the
///   identity already has `max_held_per_identity` requests held), 408 (the body did not arrive
///   within `body_read_timeout` of the request; the connection is closed), 413 (body over
///   `max_body_bytes` as sent — at most that many bytes are buffered — or once decoded), 400
///   `undecodable_body` (a content coding does not decode).
/// - The published request carries the canonical path and query (what hold globs, policy and
///   the Forwarder's URL use) and the body exactly as received, with its `Content-Encoding`:
///   a body is published only once every coding decoded within the cap.
/// - Every 429 and 503 carries `Retry-After`; an answer given before the body was read closes
///   the connection (`Connection: close`), so a stalled body never holds it.
/// - An accepted request is registered for its reply before `requests` is published; a
///   publish failure gives 503; then `request_received` is audited (no path, query,
///   body or header value) and the reply is awaited until the deadline plus the grace,
///   else 504.
/// - Every refusal after authentication is audited once as `request_rejected` (status and error
///   code only); a refused credential (401, or 503 when it cannot be checked) is audited as
///   `request_rejected` without an identity, rate-bounded and never silently (``AuthFailureAudit``).
/// - The call works in a span of the caller's W3C trace when it sent exactly one valid
///   `traceparent`; otherwise in a new trace, and a refused value is counted
///   (`sluice_ingress_traceparent_invalid_total`), never an error. The published request carries
///   the Ingress's span in its `traceparent` bus header, never the caller's `traceparent` among
///   its headers, and the caller's `tracestate` only with the caller's trace.
/// - Never throws: every outcome is a JSON error or the reply, with `X-Sluice-Request-Id`, and
///   with `X-Sluice-Session` naming the session the call is recorded under (the caller's, else
///   the request id) unless the caller's was refused.
struct FunctionCallHandler: Sendable {
    let connections: [String: ConnectionConfig]
    let maxBodyBytes: Int
    let requestTimeout: Duration
    let bodyReadTimeout: Duration
    let maxHeldPerIdentity: Int
    let context: StageContext
    let authenticator: any Authenticator
    let registry: ReplyRegistry
    let limiter: InFlightLimiter
    let holds: HoldsView
    let metrics: IngressMetrics
    let options: IngressOptions
    /// Callers' `Idempotency-Key`s (see `Idempotency/IdempotencyGate.swift`).
    let idempotency: IdempotencyTable
    /// MCP sessions bound to the identity that opened them.
    let mcpSessions: MCPSessionBinding
    /// Audits refused credentials (shared with the approvals API).
    let authAudit: AuthFailureAudit

    func handle(_ request: Request, target: FunctionTarget, requestID: String) async -> Response {
        let started = ContinuousClock.now
        let named = (try? FunctionTarget.connectionName(target.connection)).flatMap { connections[$0] != nil ? $0 : nil }
        // The caller's trace when its `traceparent` is valid, else a new one (counted, never an error).
        let (trace, refusal) = TraceContext.fromCaller(request.headers[values: Self.traceparentField])
        if let refusal {
            Counter(label: "sluice_ingress_traceparent_invalid_total", dimensions: [("reason", refusal)]).increment()
        }
        let session = IngressHeaders.sessionID(request.headers[IngressHeaders.session], default: requestID)
        // Its span (exported with telemetry.otlp_endpoint) carries ids and the status, never the call.
        var response = await StageSpan.run(
            "sluice.ingress", kind: .server, continuing: trace, [.requestID(requestID), .connection(named ?? IngressMetrics.noConnection)]
        ) {
            let response = await process(
                request, target: target, requestID: requestID, session: session, started: started, continuesCallerTrace: trace.parentSpanID != nil)
            StageSpan.annotate(.httpStatus(Int(response.status.code)))
            return response
        }
        // The session the call is recorded under, also when it defaulted to the request id.
        if let session { response.headers[IngressHeaders.session] = session }
        metrics.requestFinished(connection: named ?? IngressMetrics.noConnection, status: response.status.code, duration: ContinuousClock.now - started)
        return response
    }

    static let traceparentField = WireField.Name(TraceContext.headerName)!

    /// The caller's headers as published: never its `traceparent` (the trace travels in the
    /// bus header; the Forwarder sends its own), and its `tracestate` only with the trace it
    /// belongs to (`continuesCallerTrace`).
    /// On an MCP endpoint (`mcp`), `Mcp-Session-Id` travels as the server's own id
    /// (`mcpSession`, checked and untagged by `MCPSessionBinding`), or not at all.
    static func publishedHeaders(
        _ fields: HTTPFields, continuesCallerTrace: Bool, mcp: Bool = false, mcpSession: String? = nil
    ) -> [Pipeline.HTTPField] {
        HeaderFilter.requestHeaders(fields).compactMap { field in
            let name = field.name.lowercased()
            guard name != TraceContext.headerName && (continuesCallerTrace || name != TraceContext.stateHeaderName) else { return nil }
            if mcp, name == "mcp-session-id" { return mcpSession.map { Pipeline.HTTPField(field.name, $0) } }
            return field
        }
    }

    static let mcpSessionField = WireField.Name(MCPSessionBinding.header)!

    private func process(
        _ request: Request, target: FunctionTarget, requestID: String, session: String?, started: ContinuousClock.Instant,
        continuesCallerTrace: Bool
    ) async -> Response {
        let receivedAt = currentMillis()
        var logger = context.logger
        logger[metadataKey: "request_id"] = "\(requestID)"
        // Whether an unread body may follow the head: answers before reading it close the connection.
        let mayHaveBody = request.headers[.contentLength].map { $0.trimmingCharacters(in: .whitespaces) != "0" }
            ?? (request.headers[.transferEncoding] != nil)

        // 1. Who is calling.
        let identity: CallerIdentity
        let credential = bearerCredential(fromAuthorization: request.headers[.authorization])
        // The connection named in the URL, when it exists (for the audit of a refused credential).
        let namedConnection = (try? FunctionTarget.connectionName(target.connection)).flatMap { connections[$0] != nil ? $0 : nil }
        do {
            guard let credential else { throw AuthenticationError.missing }
            identity = try await authenticator.authenticate(bearer: credential)
        } catch {
            let authError = error as? AuthenticationError ?? .invalid(reason: "authenticator failed")
            if case .unavailable = authError {
                logger.warning("authentication unavailable", metadata: ["error": "\(authError)"])
                await authAudit.record(
                    authError, credential: credential, status: 503, code: ErrorCode.unavailable.rawValue, requestID: requestID,
                    method: request.method.rawValue, connection: namedConnection, api: "fn", context: context)
                return Responses.error(
                    .unavailable, requestID: requestID, message: "The identity provider cannot be reached to check the token; retry later.",
                    closeConnection: mayHaveBody)
            }
            if error is AuthenticationError {
                logger.info("authentication failed", metadata: ["error": "\(authError)"])
            } else {
                logger.error("authenticator failed", metadata: ["error": "\(error)"])
            }
            await authAudit.record(
                authError, credential: credential, status: 401, code: ErrorCode.unauthorized.rawValue, requestID: requestID,
                method: request.method.rawValue, connection: namedConnection, api: "fn", context: context)
            return Responses.error(.unauthorized, requestID: requestID, extraHeaders: [.wwwAuthenticate: "Bearer"], closeConnection: mayHaveBody)
        }
        logger[metadataKey: "identity"] = "\(identity.id)"
        // A malformed session is refused below (400 `bad_session`), audited under the request id.
        let sessionID = session ?? requestID
        logger[metadataKey: "session_id"] = "\(sessionID)"
        // Every refusal of an authenticated caller is audited once, as `request_rejected` (status and
        // error code; never the path, query, body or a header value), and publishes nothing else.
        var auditConnection: String? = nil
        func reject(
            _ code: ErrorCode, message: String? = nil, retryAfterSeconds: Int? = nil, extraHeaders: HTTPFields = [:], closeConnection: Bool = false
        ) async -> Response {
            await context.audit(AuditEvent(
                kind: .requestRejected, stage: "ingress", requestID: requestID, sessionID: sessionID,
                connection: auditConnection, identity: identity.id, method: request.method.rawValue, status: code.status,
                details: ["error": code.rawValue, "auth": identity.method]))
            return Responses.error(
                code, requestID: requestID, message: message, retryAfterSeconds: retryAfterSeconds, extraHeaders: extraHeaders,
                closeConnection: closeConnection)
        }

        guard session != nil else { return await reject(.badSession, closeConnection: mayHaveBody) }

        // 2. The one canonical spelling of where to, or a refusal.
        let canonical: FunctionTarget.Canonical
        do { canonical = try target.canonical() } catch {
            logger.info("path refused", metadata: ["reason": "\(error.reason)"])
            return await reject(.badPath, message: error.reason, closeConnection: mayHaveBody)
        }

        // 3. Where to, and whether this caller may go there.
        guard let connection = connections[canonical.connection] else {
            logger.info("unknown connection")
            return await reject(.unknownConnection, closeConnection: mayHaveBody)
        }
        logger[metadataKey: "connection"] = "\(connection.name)"
        auditConnection = connection.name
        guard connection.allows(groups: identity.groups) else {
            logger.info("identity not allowed on connection")
            return await reject(
                .forbidden,
                message: "Identity \(identity.id) is not in a group allowed on connection \(connection.name) (allow_groups).",
                closeConnection: mayHaveBody)
        }

        var mcpServerSession: String?  // the server's own Mcp-Session-Id, once the caller's is checked
        // An MCP connection is one endpoint: JSON-RPC messages are POSTed to it, DELETE ends the
        // MCP session. The server's own GET event stream is not offered (MCP lets an endpoint
        // answer 405 there): its messages would reach the caller uninspected by any request.
        if connection.isMCP {
            guard canonical.path == "/", canonical.query.isEmpty else {
                return await reject(
                    .notFound, message: "Connection \(connection.name) is an MCP endpoint: call /fn/\(connection.name) itself.",
                    closeConnection: mayHaveBody)
            }
            guard request.method == .post || request.method == .delete else {
                return await reject(
                    .methodNotAllowed,
                    message: "An MCP endpoint behind Sluice takes POST (JSON-RPC messages) and DELETE (end the session); it offers no GET event stream.",
                    extraHeaders: [.allow: "POST, DELETE"], closeConnection: mayHaveBody)
            }
            let presented = request.headers[values: Self.mcpSessionField]
            guard presented.count <= 1 else {
                return await reject(.badRequest, message: "Send one Mcp-Session-Id header at most.", closeConnection: mayHaveBody)
            }
            if let id = presented.first {
                guard let serverID = mcpSessions.unbind(id, identity: identity.id) else {
                    logger.info("MCP session not this caller's")
                    return await reject(
                        .notFound, message: "This MCP session is unknown or was opened by another caller; start a new one (initialize).",
                        closeConnection: mayHaveBody)
                }
                mcpServerSession = serverID
            }
        }

        // 4. What the body claims to be.
        // A transfer coding other than chunked would hide the body from every check (and the
        // Forwarder never passes it on): refused like an unknown content coding.
        let transferCodings = request.headers[values: .transferEncoding]
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if transferCodings.contains(where: { $0 != "chunked" && !$0.isEmpty }) {
            logger.info("unsupported transfer coding")
            return await reject(
                .unsupportedEncoding, message: "Transfer-Encoding other than chunked is not supported; use Content-Encoding.",
                closeConnection: true)
        }
        let codings: [ContentCoding]
        do { codings = try ContentCodings.parse(request.headers[values: .contentEncoding]) } catch {
            logger.info("unsupported content coding")
            return await reject(.unsupportedEncoding, closeConnection: mayHaveBody)
        }
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > maxBodyBytes {
            return await reject(
                .bodyTooLarge, message: "The request body is larger than \(maxBodyBytes) bytes (max_body_bytes).",
                closeConnection: mayHaveBody)
        }

        // 5. Room for it: this identity's share, the process, the identity's held requests.
        if let refusal = limiter.tryAcquire(identity: identity.id) {
            switch refusal {
            case .identity:
                metrics.limited(reason: "in_flight_identity")
                logger.warning("identity over its in-flight share", metadata: ["max_in_flight_per_identity": "\(limiter.perIdentity)"])
                return await reject(
                    .overloaded,
                    message: "Identity \(identity.id) has \(limiter.perIdentity) requests in progress (max_in_flight_per_identity); retry after the time in Retry-After.",
                    retryAfterSeconds: 1, closeConnection: mayHaveBody)
            case .total:
                metrics.limited(reason: "in_flight")
                logger.warning("overloaded", metadata: ["max_in_flight": "\(limiter.limit)"])
                return await reject(.overloaded, retryAfterSeconds: 1, closeConnection: mayHaveBody)
            }
        }
        metrics.inFlightChanged(to: limiter.current)
        defer {
            limiter.release(identity: identity.id)
            metrics.inFlightChanged(to: limiter.current)
        }
        let held = await heldCount(identity: identity.id)
        guard held < maxHeldPerIdentity else {
            metrics.limited(reason: "held_identity")
            logger.warning("identity over its held requests", metadata: ["max_held_per_identity": "\(maxHeldPerIdentity)"])
            return await reject(
                .overloaded,
                message: "Identity \(identity.id) has \(held) requests waiting for approval (max_held_per_identity \(maxHeldPerIdentity)); retry once some are decided.",
                retryAfterSeconds: 30, closeConnection: mayHaveBody)
        }

        // 6. The body: in time, within the cap, and decodable within the cap.
        let body: Data
        switch await readBody(request.body, limit: maxBodyBytes, deadline: started + bodyReadTimeout) {
        case .success(let data): body = data
        case .failure(.tooLarge):
            return await reject(
                .bodyTooLarge, message: "The request body is larger than \(maxBodyBytes) bytes (max_body_bytes).",
                closeConnection: true)
        case .failure(.timedOut):
            metrics.limited(reason: "body_timeout")
            logger.info("request body too slow", metadata: ["body_read_timeout_ms": "\(Self.milliseconds(bodyReadTimeout))"])
            return await reject(
                .bodyTimeout,
                message: "The request body did not arrive within \(Self.milliseconds(bodyReadTimeout)) ms (body_read_timeout).",
                closeConnection: true)
        case .failure(.unreadable(let reason)):
            logger.info("request body unreadable", metadata: ["error": "\(reason)"])
            return await reject(.badRequest, message: "The request body could not be read.", closeConnection: true)
        }
        var decodedBody: [UInt8]?  // kept for an MCP endpoint only
        if !codings.isEmpty {
            do {
                let decoded = try ContentCodings.decode(Array(body), codings: codings, maxOutput: maxBodyBytes)
                if connection.isMCP { decodedBody = decoded }
            } catch {
                switch error {
                case .tooLarge:
                    logger.info("decoded body over the cap")
                    return await reject(
                        .bodyTooLarge,
                        message: "The request body decodes to more than \(maxBodyBytes) bytes (max_body_bytes).")
                case .corrupt(let coding, _):
                    logger.info("body does not decode", metadata: ["coding": "\(coding)"])
                    return await reject(
                        .undecodableBody,
                        message: "The request body does not decode as \(coding), the Content-Encoding it declares.")
                case .unsupported:
                    return await reject(.unsupportedEncoding)
                }
            }
        }

        // An MCP call must be JSON-RPC the server would accept (the Inspector checks again).
        var mcpBody: JSONRPCBody?
        if connection.isMCP, request.method == .post {
            do { mcpBody = try JSONRPCBody.parse(decodedBody ?? Array(body)) } catch {
                logger.info("not an MCP message", metadata: ["reason": "\(error.reason)"])
                return await reject(.badRequest, message: "The body is not an MCP JSON-RPC message: \(error.reason).")
            }
        } else if connection.isMCP, !body.isEmpty {
            return await reject(.badRequest, message: "A DELETE to an MCP endpoint ends its session and carries no body.")
        }

        // 7. Seal and publish.
        let deadline = receivedAt + Self.milliseconds(requestTimeout)
        var envelope = InspectionRequest(
            metadata: RequestMetadata(
                requestID: requestID, sessionID: sessionID, identity: identity, connection: connection.name,
                receivedAtMillis: receivedAt, deadlineMillis: deadline, replyTo: options.instanceID),
            request: HTTPRequestData(
                method: request.method.rawValue, path: canonical.path, query: canonical.query,
                headers: Self.publishedHeaders(
                    request.headers, continuesCallerTrace: continuesCallerTrace, mcp: connection.isMCP, mcpSession: mcpServerSession),
                body: body))
        // A retry with the caller's Idempotency-Key gets the first request's outcome; nothing is published.
        if let answer = await idempotencyGate(request.headers, envelope: &envelope) { return answer }
        let message: OutgoingMessage
        do { message = try context.codec.request(envelope) } catch {
            await idempotency.release(requestID: requestID)
            logger.error("cannot seal request", metadata: ["error": "\(error)"])
            return Responses.error(.internalError, requestID: requestID)
        }
        await registry.register(requestID)
        do { try await context.bus.publish(message) } catch {
            await registry.remove(requestID)
            await idempotency.release(requestID: requestID)  // never published: a retry may go through
            logger.error("publish to requests failed", metadata: ["error": "\(error)"])
            return Responses.error(.unavailable, requestID: requestID, retryAfterSeconds: 1)
        }
        await context.audit(AuditEvent(
            kind: .requestReceived, stage: "ingress", requestID: requestID, sessionID: sessionID,
            connection: connection.name, identity: identity.id, method: request.method.rawValue,
            details: ["body_bytes": String(body.count), "auth": identity.method]))

        // 8. Wait for the verdict / delivery.
        let waitMillis = max(0, deadline - currentMillis()) + Self.milliseconds(options.replyGrace)
        guard var reply = await registry.wait(for: requestID, timeout: .milliseconds(waitMillis)) else {
            if await registry.draining {
                logger.info("no reply before the shutdown timeout")
                return Responses.error(
                    .timeout, requestID: requestID,
                    message: "Sluice is shutting down and no answer arrived in time; the call may still be delivered, so retry with the same Idempotency-Key.")
            }
            logger.info("no reply before deadline")
            return Responses.error(.timeout, requestID: requestID)
        }
        if reply.isPendingApproval {
            // Held for approval: wait up to `hold_wait` for the decision and delivery, else answer
            // 202 with the poll link (the pending reply's body).
            logger.info("request held for approval; waiting", metadata: ["hold_wait_ms": "\(connection.policy.holdWait.milliseconds)"])
            if let final = await registry.wait(for: requestID, timeout: connection.policy.holdWait.duration) { reply = final }
            await registry.remove(requestID)
        }
        guard (200...599).contains(reply.response.status) else {
            logger.error("reply has an invalid status", metadata: ["status": "\(reply.response.status)"])
            return Responses.error(.badReply, requestID: requestID)
        }
        if let mcpBody, reply.response.status != 200,
           let answer = MCPAnswers.answer(mcpBody, reply: reply.response, pending: reply.isPendingApproval, requestID: requestID) {
            // An MCP client cannot poll or read Sluice's errors: a JSON-RPC error per call says where it stands.
            return Responses.make(answer, requestID: requestID)
        }
        if connection.isMCP {
            // The server's session id goes back bound to this caller.
            reply.response.headers = mcpSessions.binding(reply.response.headers, identity: identity.id)
        }
        return Responses.make(reply.response, requestID: requestID)
    }

    /// Requests of `identity` waiting for approval, as the `holds` changelog last said.
    private func heldCount(identity: String) async -> Int {
        await holds.pendingByConnection(identity: identity).reduce(0) { $0 + (connections[$1.key] != nil ? $1.value : 0) }
    }

    enum BodyReadError: Error, Equatable {
        case tooLarge
        case timedOut
        case unreadable(String)
    }

    /// Collects the body, failing as soon as it would exceed `limit` bytes, or when `deadline`
    /// passes first (the read is then cancelled; the connection is closed by the 408 answer).
    private func readBody(_ body: RequestBody, limit: Int, deadline: ContinuousClock.Instant) async -> Result<Data, BodyReadError> {
        await withTaskGroup(of: Result<Data, BodyReadError>?.self) { group in
            group.addTask {
                do {
                    var collected = Data()
                    for try await chunk in body {
                        guard collected.count + chunk.readableBytes <= limit else { return .failure(.tooLarge) }
                        collected.append(contentsOf: chunk.readableBytesView)
                    }
                    return .success(collected)
                } catch {
                    return .failure(.unreadable("\(type(of: error))"))
                }
            }
            group.addTask {
                do { try await Deadlines.sleep(until: deadline) } catch { return nil }
                return .failure(.timedOut)
            }
            var outcome: Result<Data, BodyReadError> = .failure(.timedOut)
            for await result in group {
                if let result {
                    outcome = result
                    break
                }
            }
            group.cancelAll()
            return outcome
        }
    }

    static func milliseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}
