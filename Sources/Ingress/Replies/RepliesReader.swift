import Logging
import Pipeline

/// Reads the `replies` partition this instance's id maps to (`IngressService.run` assigns it),
/// keeps the messages keyed with this instance's id, and hands each reply to the ``ReplyRegistry``.
///
/// Guarantees: every message read is counted (`sluice_ingress_replies_read_total`), every reply
/// handed to a waiting request too (`sluice_ingress_replies_answered_total`), so their ratio
/// is the fan-out; messages for other instances (sharing the partition) are skipped without being opened; a message
/// for this instance that fails to open or decode (tampered, wrong key, malformed) goes
/// to `deadletter` with the reason; every reply is offered to the ``IdempotencyTable`` first
/// (so a late reply still becomes the outcome of a request claimed with an `Idempotency-Key`);
/// a reply nobody waits for and no claim needs is dropped with a debug log.
struct RepliesReader: Sendable {
    let context: StageContext
    let instanceID: String
    let registry: ReplyRegistry
    let metrics: IngressMetrics
    let idempotency: IdempotencyTable

    /// Consumes `subscription` until it ends (returns) or fails (throws).
    func run(_ subscription: BusSubscription) async throws {
        for try await message in subscription {
            metrics.replyRead()
            guard message.keyString == instanceID else { continue }
            await handle(message)
        }
    }

    func handle(_ message: BusMessage) async {
        let reply: Reply
        do { reply = try context.codec.open(Reply.self, from: message) } catch {
            metrics.replyDropped(reason: "undecodable")
            await context.deadletter(message, reason: "ingress cannot open reply: \(error)")
            return
        }
        guard message.header(MessageHeader.requestID).flatMap({ String(validating: $0, as: UTF8.self) }) == reply.requestID else {
            metrics.replyDropped(reason: "mismatched")
            await context.deadletter(message, reason: "reply request id does not match its \(MessageHeader.requestID) header")
            return
        }
        let recorded = await idempotency.record(reply)
        let delivered = await registry.deliver(reply)
        if delivered { metrics.replyAnswered() }
        if !delivered, !recorded {
            metrics.replyDropped(reason: "unknown_request")
            context.logger.debug("reply for unknown or timed-out request dropped", metadata: ["request_id": "\(reply.requestID)"])
        }
    }
}
