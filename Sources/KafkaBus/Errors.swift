import CRdKafka
import Pipeline

/// Builds `BusError`s from librdkafka error codes, always naming the librdkafka
/// error (`rd_kafka_err2name`, e.g. `_MSG_TIMED_OUT`) and what the bus was doing.
enum KafkaErrors {
    /// The librdkafka name of `code`, e.g. `UNKNOWN_TOPIC_OR_PART` or `_TRANSPORT`.
    static func name(_ code: rd_kafka_resp_err_t) -> String {
        RDKafkaClient.errorName(code)
    }

    /// librdkafka's human-readable description of `code`.
    static func describe(_ code: rd_kafka_resp_err_t) -> String {
        RDKafkaClient.errorDescription(code)
    }

    /// A `BusError` for `code`: "`context`: `description` (`NAME`)[: `detail`]".
    static func error(_ code: rd_kafka_resp_err_t, _ context: String, detail: String? = nil) -> BusError {
        var text = "\(context): \(describe(code)) (\(name(code)))"
        if let detail, !detail.isEmpty { text += ": \(detail)" }
        return BusError(kind(of: code), text)
    }

    /// A `BusError` from an `rd_kafka_error_t`, which this function destroys.
    static func consume(_ error: OpaquePointer, _ context: String) -> BusError {
        let read = RDKafkaClient.takeError(error)
        return Self.error(read.code, context, detail: read.detail)
    }

    /// The `BusError.Kind` that best describes a librdkafka error code.
    static func kind(of code: rd_kafka_resp_err_t) -> BusError.Kind {
        switch code {
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
            return .timedOut
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            return .unknownTopic
        case RD_KAFKA_RESP_ERR__DESTROY, RD_KAFKA_RESP_ERR__PURGE_QUEUE, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
            return .closed
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__RESOLVE:
            return .io
        case RD_KAFKA_RESP_ERR__BAD_MSG, RD_KAFKA_RESP_ERR_INVALID_MSG, RD_KAFKA_RESP_ERR__BAD_COMPRESSION:
            return .corrupt
        case RD_KAFKA_RESP_ERR__INVALID_ARG, RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE, RD_KAFKA_RESP_ERR__SSL,
            RD_KAFKA_RESP_ERR__AUTHENTICATION:
            return .configuration
        default:
            return .broker
        }
    }
}

extension Duration {
    /// Whole milliseconds, clamped to `Int32` (librdkafka timeouts are `int`).
    var milliseconds: Int32 {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: max(ms, 0))
    }
}

extension Array where Element == CChar {
    /// The NUL-terminated C string in this buffer (librdkafka `errstr` buffers).
    var cString: String {
        String(decoding: prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
