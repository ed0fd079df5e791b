import CRdKafka
import Pipeline
import Synchronization

/// One librdkafka client handle (`rd_kafka_t`) and the context its C callbacks reach:
/// the only type that calls librdkafka's C API. Every `rd_kafka_*` call of the bus is a
/// member of it (this file: the handle and generic calls; `RDKafkaClient+Producer`,
/// `+Consumer`, `+Admin`, `+Callbacks`, `+Errors`: the rest). The producer, transactional
/// producer and consumer classes drive it from their explicit state machines
/// (``Producer/StateMachine``, ``TransactionalProducer/StateMachine``,
/// ``Consumer/StateMachine``) and never see a C pointer except as an opaque token.
///
/// `@unchecked Sendable`: the handle pointer is immutable and librdkafka's API is
/// thread-safe for every call made through it; ``destroy()`` runs
/// `rd_kafka_destroy` at most once (guarded by a `Mutex`), and owners call it only
/// after their poll thread has stopped using the handle.
final class RDKafkaClient: @unchecked Sendable {
    /// The `rd_kafka_t *`.
    let handle: OpaquePointer
    /// Reached by the C callbacks through the client opaque; kept alive here at
    /// least until the handle is destroyed.
    let context: CallbackContext
    /// librdkafka's name for this client (`client.id#producer-1`), for logs and errors.
    let name: String

    private let destroyed = Mutex(false)

    /// Creates a client of `role` with `settings`, applying each with `rd_kafka_conf_set`.
    ///
    /// Throws `BusError.Kind.configuration` naming the offending key when librdkafka
    /// rejects a setting, or the whole configuration.
    init(role: KafkaBusConfiguration.ClientRole, settings: [String: String], context: CallbackContext) throws {
        guard let conf = rd_kafka_conf_new() else { throw BusError(.configuration, "rd_kafka_conf_new failed") }
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, key, value, &errstr, errstr.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let reason = errstr.cString
                let what = result == RD_KAFKA_CONF_UNKNOWN ? "unknown librdkafka setting" : "invalid librdkafka setting"
                throw BusError(.configuration, "\(what) \"\(key)\": \(reason)")
            }
        }
        Self.installCallbacks(on: conf, role: role, context: context)
        let type = role == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER
        guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)  // not taken over on failure
            throw BusError(.configuration, "cannot create librdkafka \(role) client: \(errstr.cString)")
        }
        self.handle = handle
        self.context = context
        self.name = String(cString: rd_kafka_name(handle))
    }

    /// `rd_kafka_destroy`: blocks until librdkafka's threads have stopped, so call it
    /// on a dedicated thread. Later calls do nothing.
    func destroy() {
        let first = destroyed.withLock { destroyed in
            defer { destroyed = true }
            return !destroyed
        }
        if first { rd_kafka_destroy(handle) }
    }

    deinit {
        // Owners destroy explicitly on a dedicated thread; this is only a safety net.
        destroy()
    }

    // MARK: Generic calls

    /// `rd_kafka_poll`: serves the main queue's callbacks for up to `timeoutMillis`.
    func poll(timeoutMillis: Int32) {
        rd_kafka_poll(handle, timeoutMillis)
    }

    /// `rd_kafka_flush`: waits up to `timeout` for outstanding messages; `true` when none is left.
    func flush(timeout: Duration) -> Bool {
        rd_kafka_flush(handle, timeout.milliseconds) == RD_KAFKA_RESP_ERR_NO_ERROR
    }

    /// Messages (and requests) still in librdkafka's queues.
    var outstanding: Int { Int(rd_kafka_outq_len(handle)) }

    /// Fails every queued and in-flight message (`rd_kafka_purge`); their delivery
    /// reports come on the next poll or flush.
    func purgeAll() {
        _ = rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    }

    /// The fatal error that made the client unusable (`rd_kafka_fatal_error`).
    func fatalBusError(_ context: String) -> BusError {
        var errstr = [CChar](repeating: 0, count: 512)
        let original = rd_kafka_fatal_error(handle, &errstr, errstr.count)
        return KafkaErrors.error(original, context, detail: errstr.cString)
    }

    // MARK: Library version

    /// `rd_kafka_version()`: the librdkafka loaded at run time, `0xMMmmrrpp`.
    static var runtimeVersion: Int { Int(rd_kafka_version()) }
    /// `RD_KAFKA_VERSION` of the headers this module was compiled against.
    static var compiledVersion: Int { Int(sluice_rdkafka_compiled_version()) }
    /// `rd_kafka_version_str()`, e.g. "2.8.0".
    static var runtimeVersionString: String { String(cString: rd_kafka_version_str()) }
}
