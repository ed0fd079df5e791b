import CRdKafka
import Foundation
import Pipeline

/// Metadata queries and topic creation over the client's handle.
///
/// Every function here blocks on the network: call them from a dedicated thread
/// (`DedicatedThread.run`) or a poll thread, never from the cooperative pool.
extension RDKafkaClient {
    /// Partition counts of every topic in the cluster (topics the broker reports
    /// with an error are left out). Asks for all topics rather than one, because a
    /// metadata request naming a missing topic can make the broker auto-create it.
    func partitionCounts(timeout: Duration) throws -> [String: Int] {
        let rk = handle
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let code = rd_kafka_metadata(rk, 1, nil, &metadata, timeout.milliseconds)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaErrors.error(code, "metadata request", detail: context.lastError.withLock { $0 })
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var counts: [String: Int] = [:]
        for i in 0..<Int(metadata.pointee.topic_cnt) {
            let topic = metadata.pointee.topics[i]
            guard topic.err == RD_KAFKA_RESP_ERR_NO_ERROR, let name = topic.topic else { continue }
            // A partition without a leader yet (just created) is not usable.
            let ready = (0..<Int(topic.partition_cnt)).allSatisfy {
                topic.partitions[$0].err == RD_KAFKA_RESP_ERR_NO_ERROR && topic.partitions[$0].leader >= 0
            }
            if ready { counts[String(cString: name)] = Int(topic.partition_cnt) }
        }
        return counts
    }

    /// The number of partitions of `topic`; throws `.unknownTopic` when it does not exist.
    func partitionCount(topic: String, timeout: Duration) throws -> Int {
        guard let count = try partitionCounts(timeout: timeout)[topic] else {
            throw BusError(.unknownTopic, "topic \(topic) does not exist (or has partitions without a leader)")
        }
        return count
    }

    /// Creates `specs` with the Admin API (`rd_kafka_CreateTopics`), treating
    /// `TOPIC_ALREADY_EXISTS` as success, then waits until metadata shows every topic
    /// with all its partitions led. `defaults` is topic configuration below each
    /// spec's own `config`.
    func createTopics(
        _ specs: [TopicSpec], defaults: [String: String], replicationFactor: Int, timeout: Duration
    ) throws {
        let rk = handle
        guard !specs.isEmpty else { return }
        let deadline = ContinuousClock.now + timeout
        var errstr = [CChar](repeating: 0, count: 512)

        var newTopics: [OpaquePointer?] = []
        defer { for topic in newTopics { rd_kafka_NewTopic_destroy(topic) } }
        for spec in specs {
            guard spec.partitions > 0 else {
                throw BusError(.configuration, "topic \(spec.name): partition count must be positive, not \(spec.partitions)")
            }
            guard let topic = rd_kafka_NewTopic_new(
                spec.name, Int32(spec.partitions), Int32(replicationFactor), &errstr, errstr.count)
            else {
                throw BusError(.configuration, "topic \(spec.name): \(errstr.cString)")
            }
            newTopics.append(topic)
            for (key, value) in defaults.merging(spec.config, uniquingKeysWith: { _, own in own }).sorted(by: { $0.key < $1.key }) {
                let code = rd_kafka_NewTopic_set_config(topic, key, value)
                guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw KafkaErrors.error(code, "topic \(spec.name): config \(key)=\(value)")
                }
            }
        }

        let options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeout.milliseconds, &errstr, errstr.count)
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, timeout.milliseconds, &errstr, errstr.count)
        let queue = rd_kafka_queue_new(rk)
        defer { rd_kafka_queue_destroy(queue) }

        newTopics.withUnsafeMutableBufferPointer { topics in
            rd_kafka_CreateTopics(rk, topics.baseAddress, topics.count, options, queue)
        }
        let event = try adminResult(on: queue, timeout: timeout, "creating topics \(specs.map(\.name))")
        defer { rd_kafka_event_destroy(event) }
        var failures: [String] = []
        if let result = rd_kafka_event_CreateTopics_result(event) {
            var count = 0
            if let results = rd_kafka_CreateTopics_result_topics(result, &count) {
                for i in 0..<count {
                    let code = rd_kafka_topic_result_error(results[i])
                    guard code != RD_KAFKA_RESP_ERR_NO_ERROR, code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS else { continue }
                    let name = String(cString: rd_kafka_topic_result_name(results[i]))
                    let message = rd_kafka_topic_result_error_string(results[i]).map { String(cString: $0) } ?? ""
                    failures.append("\(name): \(message.isEmpty ? KafkaErrors.describe(code) : message) (\(KafkaErrors.name(code)))")
                }
            }
        }
        if !failures.isEmpty {
            throw BusError(.broker, "creating topics failed: \(failures.joined(separator: "; "))")
        }
        try waitForTopics(specs.map(\.name), deadline: deadline)
    }

    /// Waits for the result event of an Admin API request on `queue` (up to `timeout` and 5 s
    /// more, the request's own timeout being `timeout`); throws `.timedOut` without one, or the
    /// event's error, both naming `what`. The caller destroys the event (`rd_kafka_event_destroy`).
    func adminResult(on queue: OpaquePointer?, timeout: Duration, _ what: String) throws -> OpaquePointer {
        guard let event = rd_kafka_queue_poll(queue, timeout.milliseconds + 5000) else {
            throw BusError(.timedOut, "\(what): no answer within \(timeout)")
        }
        let code = rd_kafka_event_error(event)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            let detail = rd_kafka_event_error_string(event).map { String(cString: $0) }
            rd_kafka_event_destroy(event)
            throw KafkaErrors.error(code, what, detail: detail)
        }
        return event
    }

    /// Polls metadata until every topic in `names` is visible with led partitions.
    func waitForTopics(_ names: [String], deadline: ContinuousClock.Instant) throws {
        while true {
            let remaining = deadline - ContinuousClock.now
            let counts = try partitionCounts(timeout: max(remaining, .milliseconds(100)))
            let missing = names.filter { counts[$0] == nil }
            if missing.isEmpty { return }
            guard ContinuousClock.now + .milliseconds(100) < deadline else {
                throw BusError(.timedOut, "topics \(missing) created but not visible in metadata in time")
            }
            usleep(100_000)
        }
    }
}
