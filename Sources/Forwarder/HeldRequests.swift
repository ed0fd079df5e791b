import Logging
import Pipeline

/// What the Forwarder does with a request the Inspector held (`verdict: hold`).
///
/// The seam for the held-request store: the next implementation persists the request,
/// joins it with decisions on `approvals` (co-partitioned with `inspected`), and on
/// approval hands it to the same delivery path as an allowed request
/// (`ForwarderService.deliver`); on denial or hold timeout it publishes the `denied` or
/// `expired` outcome. Whatever it does, it must leave exactly one outcome per request.
protocol HeldRequestHandling: Sendable {
    /// Takes charge of a held request. Returns `true` when the message may be committed
    /// (the request is now owned elsewhere), `false` to leave it uncommitted (redelivered).
    func hold(_ request: InspectedRequest, message: BusMessage) async -> Bool
}

/// This build has no held-request store: a held request is treated like a blocked one —
/// never delivered, nothing published by the Forwarder — and committed.
struct HoldsNotDelivered: HeldRequestHandling {
    let logger: Logger

    func hold(_ request: InspectedRequest, message: BusMessage) async -> Bool {
        logger.warning("held request not delivered: held-request store not available in this build", metadata: [
            "request_id": "\(request.metadata.requestID)", "connection": "\(request.metadata.connection)",
        ])
        return true
    }
}
