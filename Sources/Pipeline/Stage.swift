import Logging

/// What every stage gets from the wiring in `sluice`: the bus, the codec (topics and
/// sealing) and a logger. Stages depend on this and on `Bus`, never on each other.
public struct StageContext: Sendable {
    public let bus: any Bus
    public let codec: MessageCodec
    public let logger: Logger
    /// The process's readiness checks (rendered at `/readyz` on `admin_listen`): each stage sets
    /// its own. A context made without one gets a board of its own (tests, embedders).
    public var readiness = ReadinessBoard()
    /// How often a consume loop records its group's lag (``StageMonitor``).
    public var lagInterval: Duration = .seconds(15)

    public init(bus: any Bus, codec: MessageCodec, logger: Logger) {
        self.bus = bus
        self.codec = codec
        self.logger = logger
    }

    public var topics: Topics { codec.topics }

    /// The readiness check and lag gauges of a consume loop, the check named `check`.
    public func monitor(_ check: String) -> StageMonitor {
        StageMonitor(readiness: readiness, check: check, lagInterval: lagInterval)
    }

    /// Publishes an audit event; a failure is logged, never thrown (audit must not break the data path),
    /// and returns whether it was published. Outcomes (`delivered`, `blocked`, ...) never come
    /// here: they go through the `OutcomeLedger`.
    @discardableResult
    public func audit(_ event: AuditEvent) async -> Bool {
        assert(!event.kind.isOutcome, "outcome \(event.kind) must go through the OutcomeLedger")
        do {
            try await bus.publish(try codec.audit(event))
            return true
        } catch {
            logger.error("audit publish failed", metadata: ["request_id": "\(event.requestID)", "kind": "\(event.kind.rawValue)", "error": "\(error)"])
            return false
        }
    }

    /// Moves a message that cannot be processed to `deadletter` with the reason.
    public func deadletter(_ message: BusMessage, reason: String) async {
        logger.warning("message sent to deadletter", metadata: ["topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "reason": "\(reason)"])
        do { try await bus.publish(codec.deadletter(message, reason: reason)) } catch {
            logger.error("deadletter publish failed", metadata: ["error": "\(error)"])
        }
    }
}
