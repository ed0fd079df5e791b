import CRdKafka
import Foundation
import Pipeline

/// A consumer group's lag, asked without joining the group.
///
/// Every function here blocks on the network: call them from a dedicated thread
/// (`DedicatedThread.run`), never from the cooperative pool.
extension RDKafkaClient {
    /// Per partition of `topics`: the group's committed offset, then the partition's watermarks.
    ///
    /// The committed offsets are read first, so the lag is never under-reported (a commit made
    /// between the reads makes it read high by that much). Each request is bounded by `timeout`. Throws
    /// `BusError.Kind.unknownTopic` for a topic metadata does not show (with all partitions led).
    func lag(group: String, topics: [String], timeout: Duration) throws -> [BusPartition: PartitionLag] {
        let counts = try partitionCounts(timeout: timeout)
        var partitions: [BusPartition] = []
        for topic in topics {
            guard let count = counts[topic] else {
                throw BusError(.unknownTopic, "lag of group \(group): topic \(topic) does not exist (or has partitions without a leader)")
            }
            partitions += (0..<count).map { BusPartition(topic: topic, partition: $0) }
        }
        guard !partitions.isEmpty else { return [:] }
        let committed = try committedOffsets(group: group, partitions: partitions, timeout: timeout)
        var result: [BusPartition: PartitionLag] = [:]
        for p in partitions {
            var low: Int64 = 0
            var high: Int64 = 0
            let code = rd_kafka_query_watermark_offsets(handle, p.topic, Int32(p.partition), &low, &high, timeout.milliseconds)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaErrors.error(code, "lag of group \(group): watermarks of \(p)", detail: context.lastError.withLock { $0 })
            }
            result[p] = PartitionLag(endOffset: high, startOffset: low, committedOffset: committed[p])
        }
        return result
    }

    /// The offsets `group` committed on `partitions` (Admin API `ListConsumerGroupOffsets`); a
    /// partition the group never committed on, or a group that does not exist, has none.
    func committedOffsets(group: String, partitions: [BusPartition], timeout: Duration) throws -> [BusPartition: Int64] {
        let rk = handle
        var errstr = [CChar](repeating: 0, count: 512)
        guard let list = rd_kafka_topic_partition_list_new(Int32(partitions.count)) else {
            throw BusError(.io, "lag of group \(group): cannot allocate a partition list")
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in partitions { rd_kafka_topic_partition_list_add(list, p.topic, Int32(p.partition)) }
        guard let request = rd_kafka_ListConsumerGroupOffsets_new(group, list) else {
            throw BusError(.io, "lag of group \(group): cannot create the offset request")
        }
        defer { rd_kafka_ListConsumerGroupOffsets_destroy(request) }

        let options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeout.milliseconds, &errstr, errstr.count)
        let queue = rd_kafka_queue_new(rk)
        defer { rd_kafka_queue_destroy(queue) }

        var requests: [OpaquePointer?] = [request]
        requests.withUnsafeMutableBufferPointer { requests in
            rd_kafka_ListConsumerGroupOffsets(rk, requests.baseAddress, requests.count, options, queue)
        }
        let event = try adminResult(on: queue, timeout: timeout, "lag of group \(group): committed offsets")
        defer { rd_kafka_event_destroy(event) }
        var committed: [BusPartition: Int64] = [:]
        guard let result = rd_kafka_event_ListConsumerGroupOffsets_result(event) else { return committed }
        var count = 0
        guard let groups = rd_kafka_ListConsumerGroupOffsets_result_groups(result, &count) else { return committed }
        for i in 0..<count {
            guard let groupResult = groups[i] else { continue }
            if let error = rd_kafka_group_result_error(groupResult) {
                // Owned by the result: read, not destroyed.
                let code = rd_kafka_error_code(error)
                if code == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND { continue }
                throw KafkaErrors.error(
                    code, "lag of group \(group): committed offsets", detail: String(cString: rd_kafka_error_string(error)))
            }
            guard let offsets = rd_kafka_group_result_partitions(groupResult) else { continue }
            for j in 0..<Int(offsets.pointee.cnt) {
                let element = offsets.pointee.elems[j]
                let p = BusPartition(topic: String(cString: element.topic), partition: Int(element.partition))
                guard element.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw KafkaErrors.error(element.err, "lag of group \(group): committed offset of \(p)")
                }
                // RD_KAFKA_OFFSET_INVALID (-1001): nothing committed there.
                if element.offset >= 0 { committed[p] = element.offset }
            }
        }
        return committed
    }
}
