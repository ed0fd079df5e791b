import CRdKafka

extension RDKafkaClient {
    /// An `rd_kafka_error_t` read into Swift.
    struct ErrorObject: Sendable {
        var code: rd_kafka_resp_err_t
        var detail: String
        var isFatal: Bool
        var isRetriable: Bool
        var requiresAbort: Bool
    }

    /// Reads `error` and destroys it (`rd_kafka_error_destroy`).
    static func takeError(_ error: OpaquePointer) -> ErrorObject {
        defer { rd_kafka_error_destroy(error) }
        return ErrorObject(
            code: rd_kafka_error_code(error), detail: String(cString: rd_kafka_error_string(error)),
            isFatal: rd_kafka_error_is_fatal(error) != 0, isRetriable: rd_kafka_error_is_retriable(error) != 0,
            requiresAbort: rd_kafka_error_txn_requires_abort(error) != 0)
    }

    /// `rd_kafka_err2name`, e.g. `UNKNOWN_TOPIC_OR_PART` or `_TRANSPORT`.
    static func errorName(_ code: rd_kafka_resp_err_t) -> String {
        String(cString: rd_kafka_err2name(code))
    }

    /// `rd_kafka_err2str`: librdkafka's human-readable description of `code`.
    static func errorDescription(_ code: rd_kafka_resp_err_t) -> String {
        String(cString: rd_kafka_err2str(code))
    }
}
