import Foundation

/// One atomic commit of the embedded bus: the outputs to publish, each with the partition and
/// offset it gets, and the consumer-group commit that goes with them.
///
/// Encoded as the value of one `LogRecord` in the `TransactionJournal`, little-endian:
/// `version u8 (1) | group str | topic str | partition u32 | next i64 | outputCount u32 |
/// (topic str | partition u32 | offset i64 | payloadLength u32 | payload)*`, where `str` is
/// `length u32 | UTF-8 bytes` and `payload` is the output's `LogRecord` payload as the partition
/// log stores it (timestamp, key, headers, value).
struct BusTransaction: Sendable, Equatable {
    struct Output: Sendable, Equatable {
        var partition: TopicPartition
        /// The offset the output gets in its partition: the partition's next offset when the
        /// transaction was written (plus the outputs before it to the same partition).
        var offset: Int64
        var record: LogRecord
    }

    var group: String
    /// The input partition the group commits.
    var commit: TopicPartition
    /// The group's committed position after the transaction (the input's offset + 1).
    var next: Int64
    var outputs: [Output]

    static let version: UInt8 = 1

    func encoded() -> [UInt8] {
        var out: [UInt8] = [Self.version]
        Self.append(string: group, to: &out)
        Self.append(string: commit.topic, to: &out)
        out.appendLE(UInt32(commit.partition))
        out.appendLE(UInt64(bitPattern: next))
        out.appendLE(UInt32(outputs.count))
        for output in outputs {
            Self.append(string: output.partition.topic, to: &out)
            out.appendLE(UInt32(output.partition.partition))
            out.appendLE(UInt64(bitPattern: output.offset))
            let payload = output.record.encodedPayload()
            out.appendLE(UInt32(payload.count))
            out.append(contentsOf: payload)
        }
        return out
    }

    /// Decodes a journal record's value (whose frame checksum matched).
    static func decode(_ bytes: [UInt8]) throws -> BusTransaction {
        var r = ByteReader(bytes)
        let version = try r.bytes(1)[0]
        guard version == Self.version else { throw BusError(.corrupt, "transaction record version \(version) is not \(Self.version)") }
        let group = try string(&r)
        let topic = try string(&r)
        let partition = Int(try r.u32())
        let next = Int64(bitPattern: try r.u64())
        let count = Int(try r.u32())
        var outputs: [Output] = []
        outputs.reserveCapacity(min(count, 1024))
        for _ in 0..<count {
            let outTopic = try string(&r)
            let outPartition = Int(try r.u32())
            let offset = Int64(bitPattern: try r.u64())
            let payload = try r.bytes(Int(try r.u32()))
            outputs.append(
                Output(
                    partition: TopicPartition(topic: outTopic, partition: outPartition), offset: offset,
                    record: try LogRecord.decode(payload: payload)))
        }
        guard r.isAtEnd else { throw BusError(.corrupt, "trailing bytes in transaction record") }
        return BusTransaction(group: group, commit: TopicPartition(topic: topic, partition: partition), next: next, outputs: outputs)
    }

    private static func append(string: String, to out: inout [UInt8]) {
        let bytes = Array(string.utf8)
        out.appendLE(UInt32(bytes.count))
        out.append(contentsOf: bytes)
    }

    private static func string(_ r: inout ByteReader) throws -> String {
        let bytes = try r.bytes(Int(try r.u32()))
        guard let s = String(validating: bytes, as: UTF8.self) else { throw BusError(.corrupt, "transaction record holds a name that is not UTF-8") }
        return s
    }
}

/// The embedded bus's transaction journal, `transactions.log` in the bus directory: how
/// `commit(_:publishing:)` publishes its outputs and commits its input in one append.
///
/// A transaction is written as one checksummed frame (a `LogRecord` whose value is a
/// `BusTransaction`), in one `write`, `fdatasync`ed with `bus.sync` as every log append is.
/// Only then are its outputs appended to their partitions and the group commit to the group's
/// commit log, all in the same turn of the bus actor, before the next transaction is written.
/// So only the journal's **last** record can have effects missing; the ones before it are
/// applied. The journal is emptied once it holds `truncateBytes` or more after an applied
/// transaction (emptying it at every commit costs an `ftruncate` each: it made commits about
/// three times slower), and on open after recovery.
///
/// Guarantees:
/// - A torn or corrupt frame (a crash in the middle of the write) is cut off on open and never
///   replayed, so a transaction either is in the journal whole or not at all; it is in the
///   journal before any of its effects is on disk.
/// - On open, the bus replays the last record (`EmbeddedBus.init`). Replay is idempotent: an
///   output is appended only if its partition's next offset is still the offset recorded for it
///   (offsets are never reused, so a higher next offset means it was appended), and group
///   commits only move forward. A replay interrupted by another crash is simply replayed again,
///   and each output ends up in its partition exactly once.
///
/// Not thread-safe: its owner (the `EmbeddedBus` actor) serialises access.
final class TransactionJournal {
    let path: String
    private let segment: Segment

    static let fileName = "transactions.log"

    /// Opens (creating it if missing) the journal in `directory`, cutting a torn tail.
    init(directory: URL, sync: Bool, crash: SimulatedCrash?) throws {
        path = directory.appendingPathComponent(Self.fileName).path
        let existed = fileSize(path) != nil
        segment = try Segment(path: path, baseOffset: 0, mode: .tail, sync: sync, crash: crash)
        if sync, !existed { try syncDirectory(directory.path) }
    }

    /// Transactions in the journal (all applied, except possibly the last one after a crash).
    var count: Int { segment.count }

    /// Bytes of the journal.
    var bytes: Int64 { segment.size }

    /// The journal is emptied after an applied transaction once it holds this many bytes.
    static let truncateBytes: Int64 = 1 << 20

    /// Bytes a torn tail took when the journal was opened (0 when it was clean).
    var truncatedBytes: Int64 { segment.truncatedBytes }

    /// The journal's last transaction: the only one whose effects can be missing.
    func last() throws -> BusTransaction? {
        guard segment.count > 0 else { return nil }
        let i = segment.count - 1
        do {
            return try BusTransaction.decode(segment.read(index: i).value)
        } catch let error as BusError {
            throw BusError(error.kind, "\(path), transaction \(i): \(error.message); move the file away to open the bus without it")
        }
    }

    /// The journal frame of `transaction`, checked against the frame size limit (an oversized
    /// frame could not be read back, so it is refused before anything is written).
    static func record(_ transaction: BusTransaction, timestampMillis: Int64) throws -> LogRecord {
        let record = LogRecord(timestampMillis: timestampMillis, key: nil, headers: [], value: transaction.encoded())
        let size = record.value.count + 20  // the payload: timestamp, key length, header count, value length, value
        guard size <= LogRecord.maxPayload else {
            throw BusError(
                .configuration,
                "an atomic commit of \(transaction.outputs.count) outputs takes \(size) bytes, more than the \(LogRecord.maxPayload) one journal record holds: nothing was published nor committed")
        }
        return record
    }

    /// Appends one transaction's record (see `record(_:timestampMillis:)`); on an error nothing is left in the journal.
    func append(_ record: LogRecord) throws {
        _ = try segment.append(record)
    }

    /// Keeps only the first `count` transactions (0: empties the journal).
    func truncate(toCount count: Int) throws {
        try segment.truncate(toCount: count)
    }
}
