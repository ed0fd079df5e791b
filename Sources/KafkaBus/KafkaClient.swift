import CRdKafka
import Pipeline
import Synchronization

/// One librdkafka client handle (`rd_kafka_t`) and the context its C callbacks reach.
///
/// `@unchecked Sendable`: the handle pointer is immutable and librdkafka's API is
/// thread-safe for every call made through it; ``destroy()`` runs
/// `rd_kafka_destroy` at most once (guarded by a `Mutex`), and owners call it only
/// after their poll thread has stopped using the handle.
final class KafkaClient: @unchecked Sendable {
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
        Callbacks.install(on: conf, role: role, context: context)
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
}
