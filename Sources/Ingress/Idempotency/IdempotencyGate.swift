import Foundation
import Hummingbird
import Pipeline

extension FunctionCallHandler {
    static let idempotencyKeyHeader = WireField.Name("Idempotency-Key")!
    static let idempotentReplayHeader = WireField.Name("X-Sluice-Idempotent-Replay")!

    /// The caller's `Idempotency-Key`, checked just before `envelope` is published.
    ///
    /// Returns `nil` when the request goes on: without a key, or as the first request with its
    /// key (then `envelope.metadata.idempotencyKey` is the derived key the upstream receives).
    /// Otherwise returns the answer and nothing is published: 400 for an unusable key (several
    /// fields, empty, longer than 255, not visible ASCII), 422 `idempotency_key_reused` when the
    /// key came with a different request, 429 when the table is full of requests in flight, or
    /// the first request's outcome (its status, headers and body, its `X-Sluice-Request-Id`,
    /// and `X-Sluice-Idempotent-Replay: true`) — after waiting for it while it is in flight.
    /// Each refusal is audited once as `request_rejected`, each replay as `idempotent_replay`.
    func idempotencyGate(_ headers: HTTPFields, envelope: inout InspectionRequest) async -> Response? {
        let values = headers[values: Self.idempotencyKeyHeader]
        guard !values.isEmpty else { return nil }
        let meta = envelope.metadata
        let method = envelope.request.method
        func audit(_ kind: AuditEvent.Kind, status: Int, _ details: [String: String]) async {
            await context.audit(AuditEvent(
                kind: kind, stage: "ingress", requestID: meta.requestID, sessionID: meta.sessionID, connection: meta.connection,
                identity: meta.identity.id, method: method, status: status, details: details.merging(["auth": meta.identity.method]) { a, _ in a }))
        }
        guard values.count == 1, let key = values.first?.trimmingCharacters(in: .whitespaces), IdempotencyTable.isValid(callerKey: key) else {
            await audit(.requestRejected, status: 400, ["error": "bad_request", "reason": "idempotency_key_invalid"])
            return Responses.error(
                .badRequest, requestID: meta.requestID,
                message: "Idempotency-Key must be one header field of 1 to 255 visible ASCII characters.")
        }
        let request = envelope.request
        let fingerprint = IdempotencyTable.fingerprint(
            method: request.method, connection: meta.connection, path: request.path, query: request.query, body: request.body)
        let grace = Self.milliseconds(options.replyGrace)
        let claim = await idempotency.claim(
            identity: meta.identity.id, callerKey: key, fingerprint: fingerprint, requestID: meta.requestID,
            replyDeadlineMillis: meta.deadlineMillis + grace,
            wait: .milliseconds(max(0, meta.deadlineMillis - currentMillis()) + grace))
        var logger = context.logger
        logger[metadataKey: "request_id"] = "\(meta.requestID)"
        switch claim {
        case .proceed(let upstreamKey):
            envelope.metadata.idempotencyKey = upstreamKey
            return nil
        case .replay(let firstID, let data):
            logger.info("idempotent retry answered with the first request's outcome", metadata: ["first_request_id": "\(firstID)"])
            await audit(.idempotentReplay, status: data.status, ["first_request_id": firstID])
            guard (200...599).contains(data.status) else {
                return Responses.error(.badReply, requestID: firstID)
            }
            var response = Responses.make(data, requestID: firstID)
            response.headers[Self.idempotentReplayHeader] = "true"
            return response
        case .reused(let firstID):
            logger.info("Idempotency-Key reused for a different request", metadata: ["first_request_id": "\(firstID)"])
            await audit(.requestRejected, status: 422, ["error": "idempotency_key_reused", "first_request_id": firstID])
            return Responses.error(.idempotencyKeyReused, requestID: meta.requestID)
        case .full:
            logger.warning("idempotency table full of requests in flight")
            await audit(.requestRejected, status: 429, ["error": "overloaded", "reason": "idempotency_table_full"])
            return Responses.error(
                .overloaded, requestID: meta.requestID,
                message: "Too many requests with an Idempotency-Key are in flight; retry later.", retryAfterSeconds: 1)
        }
    }
}
