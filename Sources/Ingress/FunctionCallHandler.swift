import Foundation
import Hummingbird
import Logging
import Pipeline

/// Handles `METHOD /fn/{connection}/{rest}?{query}`: authenticate, route, seal, publish,
/// await the reply.
///
/// Guarantees:
/// - Checks run in this order and each failure publishes nothing: 401 (bad or missing
///   credential), 404 (unknown connection), 403 (identity's groups not allowed),
///   413 (Content-Length or streamed body over `max_body_bytes`; at most that many bytes
///   are buffered), 429 (more than `maxInFlight` requests in flight).
/// - An accepted request is registered for its reply before `requests` is published; a
///   publish failure gives 503; then `request_received` is audited (no path, query,
///   body or header value) and the reply is awaited until the deadline plus the grace,
///   else 504.
/// - Never throws: every outcome is a JSON error or the reply, with `X-Sluice-Request-Id`.
struct FunctionCallHandler: Sendable {
    let connections: [String: ConnectionConfig]
    let maxBodyBytes: Int
    let requestTimeout: Duration
    let context: StageContext
    let authenticator: any Authenticator
    let registry: ReplyRegistry
    let limiter: InFlightLimiter
    let metrics: IngressMetrics
    let options: IngressOptions

    func handle(_ request: Request, target: FunctionTarget, requestID: String) async -> Response {
        let started = ContinuousClock.now
        let metricConnection = connections[target.connection] != nil ? target.connection : IngressMetrics.noConnection
        let response = await process(request, target: target, requestID: requestID)
        metrics.requestFinished(connection: metricConnection, status: response.status.code, duration: ContinuousClock.now - started)
        return response
    }

    private func process(_ request: Request, target: FunctionTarget, requestID: String) async -> Response {
        let receivedAt = currentMillis()
        var logger = context.logger
        logger[metadataKey: "request_id"] = "\(requestID)"

        // 1. Who is calling.
        let identity: CallerIdentity
        do {
            guard let credential = bearerCredential(fromAuthorization: request.headers[.authorization]) else {
                throw AuthenticationError.missing
            }
            identity = try await authenticator.authenticate(bearer: credential)
        } catch let error as AuthenticationError {
            if case .unavailable = error {
                logger.warning("authentication unavailable", metadata: ["error": "\(error)"])
                return Responses.error(.unavailable, requestID: requestID)
            }
            logger.info("authentication failed", metadata: ["error": "\(error)"])
            return Responses.error(.unauthorized, requestID: requestID, extraHeaders: [.wwwAuthenticate: "Bearer"])
        } catch {
            logger.error("authenticator failed", metadata: ["error": "\(error)"])
            return Responses.error(.unauthorized, requestID: requestID, extraHeaders: [.wwwAuthenticate: "Bearer"])
        }
        logger[metadataKey: "identity"] = "\(identity.id)"

        // 2. Where to.
        guard let connection = connections[target.connection] else {
            logger.info("unknown connection")
            return Responses.error(.unknownConnection, requestID: requestID)
        }
        logger[metadataKey: "connection"] = "\(connection.name)"
        guard connection.allows(groups: identity.groups) else {
            logger.info("identity not allowed on connection")
            return Responses.error(.forbidden, requestID: requestID)
        }
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > maxBodyBytes {
            return Responses.error(.bodyTooLarge, requestID: requestID)
        }

        // 3. Room for it.
        guard limiter.tryAcquire() else {
            logger.warning("overloaded", metadata: ["max_in_flight": "\(limiter.limit)"])
            return Responses.error(.overloaded, requestID: requestID)
        }
        metrics.inFlightChanged(to: limiter.current)
        defer {
            limiter.release()
            metrics.inFlightChanged(to: limiter.current)
        }

        let body: Data
        do { body = try await readBody(request.body, limit: maxBodyBytes) } catch is BodyTooLarge {
            return Responses.error(.bodyTooLarge, requestID: requestID)
        } catch {
            logger.info("request body unreadable", metadata: ["error": "\(error)"])
            return Responses.error(.badRequest, requestID: requestID)
        }

        // 4. Seal and publish.
        let sessionID = IngressHeaders.saneSessionID(request.headers[IngressHeaders.session]) ?? requestID
        let deadline = receivedAt + Self.milliseconds(requestTimeout)
        let envelope = InspectionRequest(
            metadata: RequestMetadata(
                requestID: requestID, sessionID: sessionID, identity: identity, connection: connection.name,
                receivedAtMillis: receivedAt, deadlineMillis: deadline, replyTo: options.instanceID),
            request: HTTPRequestData(
                method: request.method.rawValue, path: target.rest, query: target.query,
                headers: HeaderFilter.requestHeaders(request.headers), body: body))
        let message: OutgoingMessage
        do { message = try context.codec.request(envelope) } catch {
            logger.error("cannot seal request", metadata: ["error": "\(error)"])
            return Responses.error(.internalError, requestID: requestID)
        }
        await registry.register(requestID)
        do { try await context.bus.publish(message) } catch {
            await registry.remove(requestID)
            logger.error("publish to requests failed", metadata: ["error": "\(error)"])
            return Responses.error(.unavailable, requestID: requestID)
        }
        await context.audit(AuditEvent(
            kind: .requestReceived, stage: "ingress", requestID: requestID, sessionID: sessionID,
            connection: connection.name, identity: identity.id, method: request.method.rawValue,
            details: ["body_bytes": String(body.count), "auth": identity.method]))

        // 5. Wait for the verdict / delivery.
        let waitMillis = max(0, deadline - currentMillis()) + Self.milliseconds(options.replyGrace)
        guard var reply = await registry.wait(for: requestID, timeout: .milliseconds(waitMillis)) else {
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
        return Responses.make(reply.response, requestID: requestID)
    }

    struct BodyTooLarge: Error {}

    /// Collects the body, failing as soon as it would exceed `limit` bytes.
    private func readBody(_ body: RequestBody, limit: Int) async throws -> Data {
        var collected = Data()
        for try await chunk in body {
            guard collected.count + chunk.readableBytes <= limit else { throw BodyTooLarge() }
            collected.append(contentsOf: chunk.readableBytesView)
        }
        return collected
    }

    static func milliseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}
