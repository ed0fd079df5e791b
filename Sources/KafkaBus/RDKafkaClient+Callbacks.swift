import CRdKafka
import Logging
import Pipeline
import Synchronization

// Every C callback that librdkafka calls lives in this file. Each one finds its
// `CallbackContext` through the client opaque (`rd_kafka_opaque`), which the
// owning `RDKafkaClient` keeps alive until after `rd_kafka_destroy`.
//
// Where they run:
// - log: any librdkafka thread (internal broker threads included);
// - error, delivery report: the thread serving the main queue — the producer's
//   poll thread (`rd_kafka_poll`) or a consumer's poll thread (`rd_kafka_consumer_poll`);
// - rebalance, commit result: the consumer's poll thread (inside
//   `rd_kafka_consumer_poll` or `rd_kafka_consumer_close`).

/// What the C callbacks of one client reach. Immutable apart from `Mutex`-guarded state.
final class CallbackContext: Sendable {
    let logger: Logger
    /// Producer: publishes waiting for their delivery report, keyed by message opaque.
    let deliveries = PendingOperations()
    /// Consumer: commits waiting for their result, keyed by commit opaque.
    let commits = PendingOperations()
    /// Consumer: the state the rebalance callback updates; `nil` for the producer.
    let consumer: ConsumerState?
    /// The last error librdkafka reported through the error callback (for example
    /// "Connect to ipv4#127.0.0.1:1 failed"), added to failures it likely explains.
    let lastError = Mutex<String?>(nil)

    init(logger: Logger, consumer: ConsumerState? = nil) {
        self.logger = logger
        self.consumer = consumer
    }

}

/// Installs and issues the C callbacks.
extension RDKafkaClient {
    /// The context installed on `rk` by ``installCallbacks(on:role:context:)``.
    static func context(of rk: OpaquePointer?) -> CallbackContext? {
        guard let rk, let opaque = rd_kafka_opaque(rk) else { return nil }
        return Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
    }

    /// Sets the opaque and the callbacks `role` needs on `conf` (before `rd_kafka_new`).
    static func installCallbacks(on conf: OpaquePointer, role: KafkaBusConfiguration.ClientRole, context: CallbackContext) {
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(conf, logCallback)
        rd_kafka_conf_set_error_cb(conf, errorCallback)
        switch role {
        case .producer:
            rd_kafka_conf_set_dr_msg_cb(conf, deliveryCallback)
        case .consumer:
            rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        }
    }

    /// Starts an asynchronous commit of `offsets`; its result is reported through
    /// `context.commits` under `id` once the consumer's poll thread serves `queue`.
    static func commit(_ rk: OpaquePointer, _ offsets: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>,
                       queue: OpaquePointer, id: UInt) -> rd_kafka_resp_err_t {
        rd_kafka_commit_queue(rk, offsets, queue, commitCallback, id.opaque)
    }

    /// Applies a rebalance event (on the consumer's poll thread): the consumer's state
    /// records it first (``ConsumerState/rebalanceAssigned(_:)`` / ``ConsumerState/revoked(_:)``),
    /// then the handle takes or gives up the partitions (`rd_kafka_assign`, or
    /// `rd_kafka_incremental_assign`/`_unassign` under the cooperative protocol).
    fileprivate static func rebalance(
        _ rk: OpaquePointer, _ code: rd_kafka_resp_err_t, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
        state: ConsumerState
    ) {
        let partitions = list.map { Self.partitions(of: $0) } ?? []
        let cooperative = rd_kafka_rebalance_protocol(rk).map { String(cString: $0) } == "COOPERATIVE"
        let logger = state.logger
        switch code {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let resume = state.rebalanceAssigned(partitions)
            if cooperative {
                if let error = rd_kafka_incremental_assign(rk, list) {
                    logger.error("\(KafkaErrors.consume(error, "incremental assign of \(partitions)"))")
                }
            } else {
                let result = rd_kafka_assign(rk, list)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    logger.error("\(KafkaErrors.error(result, "assign of \(partitions)"))")
                }
            }
            // Pausing is sticky per partition in librdkafka: start new partitions
            // fetching; the poll loop pauses again if the buffer is still full.
            if resume, let list { _ = rd_kafka_resume_partitions(rk, list) }
            logger.debug("assigned \(partitions)")
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let dropped = state.revoked(partitions)
            let lost = rd_kafka_assignment_lost(rk) != 0
            if cooperative {
                if let error = rd_kafka_incremental_unassign(rk, list) {
                    logger.error("\(KafkaErrors.consume(error, "incremental unassign of \(partitions)"))")
                }
            } else {
                _ = rd_kafka_assign(rk, nil)
            }
            logger.debug("revoked \(partitions)\(lost ? " (lost)" : ""), dropped \(dropped) buffered messages")
        default:
            logger.error("rebalance failed: \(KafkaErrors.describe(code)) (\(KafkaErrors.name(code)))")
            state.rebalanceFailed()
            _ = rd_kafka_assign(rk, nil)
        }
    }
}

// The C callbacks themselves: members of the client type, so that every librdkafka
// call of the bus lives in `RDKafkaClient`.
extension RDKafkaClient {
    /// librdkafka log lines, at the matching `Logger` level (syslog severities).
    private static let logCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
        rk, level, facility, line in
        guard let context = context(of: rk) else { return }
        let loggerLevel: Logger.Level
        switch level {
        case ...2: loggerLevel = .critical
        case 3: loggerLevel = .error
        case 4: loggerLevel = .warning
        case 5: loggerLevel = .notice
        case 6: loggerLevel = .info
        default: loggerLevel = .debug
        }
        let client = rk.map { String(cString: rd_kafka_name($0)) } ?? "?"
        context.logger.log(
            level: loggerLevel, "\(line.map { String(cString: $0) } ?? "")",
            metadata: ["kafka.client": "\(client)", "kafka.facility": "\(facility.map { String(cString: $0) } ?? "")"])
    }

    /// Client-level errors (broker connections, authentication, fatal idempotence errors).
    private static let errorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
        rk, code, reason, _ in
        guard let rk, let context = context(of: rk) else { return }
        let error = rd_kafka_resp_err_t(code)
        var text = "\(reason.map { String(cString: $0) } ?? KafkaErrors.describe(error)) (\(KafkaErrors.name(error)))"
        let fatal = error == RD_KAFKA_RESP_ERR__FATAL
        if fatal {
            var errstr = [CChar](repeating: 0, count: 512)
            let original = rd_kafka_fatal_error(rk, &errstr, errstr.count)
            text = "fatal: \(errstr.cString) (\(KafkaErrors.name(original)))"
        }
        context.lastError.withLock { $0 = text }
        context.logger.log(level: fatal ? .critical : .warning, "librdkafka: \(text)",
                           metadata: ["kafka.client": "\(String(cString: rd_kafka_name(rk)))"])
        if fatal { context.consumer?.fail(BusError(.broker, "librdkafka client failed: \(text)")) }
    }

    /// Producer delivery reports: completes the waiting `publish` whose id is the message opaque.
    private static let deliveryCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
        rk, message, _ in
        guard let context = context(of: rk), let message else { return }
        let id = UInt(opaque: message.pointee._private)
        let code = message.pointee.err
        if code == RD_KAFKA_RESP_ERR_NO_ERROR {
            context.deliveries.complete(id, .success(()))
            return
        }
        let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
        var detail: String?
        if KafkaErrors.kind(of: code) == .timedOut, let last = context.lastError.withLock({ $0 }) {
            detail = "last client error: \(last)"
        }
        context.deliveries.complete(id, .failure(KafkaErrors.error(code, "publish to \(topic)", detail: detail)))
    }

    /// Group rebalances: hands the assigned or revoked partitions to the consumer's state.
    private static let rebalanceCallback: @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
    ) -> Void = { rk, code, partitions, _ in
        guard let rk else { return }
        guard let state = context(of: rk)?.consumer else {
            _ = rd_kafka_assign(rk, nil)
            return
        }
        RDKafkaClient.rebalance(rk, code, partitions, state: state)
    }

    /// Results of `rd_kafka_commit_queue`: completes the waiting `commit` whose id is the opaque.
    private static let commitCallback: @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
    ) -> Void = { rk, code, offsets, opaque in
        guard let context = context(of: rk) else { return }
        var failure = code
        // The request may succeed as a whole while a partition fails.
        if failure == RD_KAFKA_RESP_ERR_NO_ERROR, let offsets {
            for i in 0..<Int(offsets.pointee.cnt) where offsets.pointee.elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR {
                failure = offsets.pointee.elems[i].err
            }
        }
        context.consumer?.commitFinished(id: UInt(opaque: opaque), failure, context: context)
    }
}
