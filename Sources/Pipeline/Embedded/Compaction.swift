#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Compaction of one partition's rolled segments: the file work, done off the bus actor so that
/// publishes go on meanwhile. The bus then installs the results (`EmbeddedBus.runMaintenance`).
///
/// Guarantees:
/// - Only reads files: the rolled segments (immutable until the bus installs the results) and
///   the active segment up to `activeLimit` (bytes already written, never rewritten).
/// - A compacted copy keeps exactly the records `RetentionRules.keeps` keeps, with their offsets,
///   headers and timestamps, in order, in `SLU2` frames; every record copied had its checksum
///   verified. The copy is written next to the segment (`<segment>.cleaned`) and `fsync`ed
///   before `run` returns; the bus renames it over the segment (atomic), so a crash leaves the
///   old segment or the new one.
/// - Every rolled segment that is not yet compacted is rewritten once (so compacted segments are
///   always sparse, and a segment emptied by compaction can be dropped without breaking the
///   offset checks on open); an already compacted one only when it loses records.
/// - On an error or cancellation no copy is left behind.
struct CompactionJob: Sendable {
    struct Input: Sendable {
        var path: String
        var base: Int64
        var isSparse: Bool
        var bytes: Int64
    }

    var rolled: [Input]
    var activePath: String
    var activeBase: Int64
    /// Bytes of the active segment to look at (its size when the job was planned).
    var activeLimit: Int64
    var nowMillis: Int64
    var retentionMillis: Int64

    struct Output: Sendable {
        enum Result: Sendable {
            case unchanged
            case rewritten(temporaryPath: String, index: SegmentIndex)
            case emptied
        }

        var base: Int64
        var path: String
        var result: Result
        var bytesBefore: Int64
        var recordsRemoved: Int
    }

    struct Outcome: Sendable {
        var outputs: [Output]
        /// The oldest tombstone kept in a rolled segment (compaction runs again once it expires).
        var oldestKeptTombstoneMillis: Int64?
    }

    private struct Located {
        var record: RetentionRules.Record
        var position: Int64
        var length: Int
    }

    func run() throws -> Outcome {
        var segments: [[Located]] = []
        var latest: [[UInt8]: Int64] = [:]
        for input in rolled {
            let located = try scan(path: input.path, base: input.base, limit: input.bytes)
            for l in located {
                if let key = l.record.key { latest[key] = max(latest[key] ?? l.record.offset, l.record.offset) }
            }
            segments.append(located)
        }
        for l in try scan(path: activePath, base: activeBase, limit: activeLimit) {
            if let key = l.record.key { latest[key] = max(latest[key] ?? l.record.offset, l.record.offset) }
        }

        var outputs: [Output] = []
        var oldestTombstone: Int64?
        do {
            for (input, located) in zip(rolled, segments) {
                if Task.isCancelled { throw CancellationError() }
                let kept = located.filter {
                    RetentionRules.keeps($0.record, latest: latest, nowMillis: nowMillis, retentionMillis: retentionMillis)
                }
                for k in kept where k.record.isTombstone {
                    oldestTombstone = min(oldestTombstone ?? k.record.timestampMillis, k.record.timestampMillis)
                }
                let removed = located.count - kept.count
                let result: Output.Result
                if kept.isEmpty {
                    result = .emptied
                } else if input.isSparse && removed == 0 {
                    result = .unchanged
                } else {
                    let temporary = input.path + PartitionLog.cleanedSuffix
                    result = .rewritten(temporaryPath: temporary, index: try write(kept, from: input.path, to: temporary))
                }
                outputs.append(Output(base: input.base, path: input.path, result: result, bytesBefore: input.bytes, recordsRemoved: removed))
            }
        } catch {
            for case .rewritten(let temporary, _) in outputs.map(\.result) { unlink(temporary) }
            throw error
        }
        return Outcome(outputs: outputs, oldestKeptTombstoneMillis: oldestTombstone)
    }

    /// Every record of a segment file up to `limit`, with its offset and place.
    private func scan(path: String, base: Int64, limit: Int64) throws -> [Located] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BusError(.io, "compaction cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        var out: [Located] = []
        var position: Int64 = 0
        var previous = base - 1
        while true {
            switch try Frame.read(fd: fd, path: path, at: position, limit: limit) {
            case .end:
                return out
            case .damaged(let reason):
                throw BusError(.corrupt, "compaction: \(path) is damaged at byte \(position) (\(reason))")
            case .frame(let frame):
                let offset = frame.storedOffset ?? previous + 1
                let record = try LogRecord.decode(payload: frame.payload)
                out.append(Located(
                    record: RetentionRules.Record(
                        offset: offset, key: record.key, timestampMillis: record.timestampMillis, isTombstone: record.value.isEmpty),
                    position: position, length: frame.length))
                previous = offset
                position += Int64(frame.length)
            }
        }
    }

    /// Writes the kept records of `source` to `target` as `SLU2` frames and syncs it.
    private func write(_ kept: [Located], from source: String, to target: String) throws -> SegmentIndex {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw BusError(.io, "compaction cannot open \(source): \(errnoText())") }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw BusError(.io, "compaction cannot create \(target): \(errnoText())") }
        var index = SegmentIndex(positions: [], offsets: [], size: 0)
        var buffer: [UInt8] = []
        var flushed: Int64 = 0
        func flush() throws {
            guard !buffer.isEmpty else { return }
            let written = buffer.withUnsafeBytes { pwriteAll(output, $0, at: flushed) }
            guard written == buffer.count else { throw BusError(.io, "compaction cannot write \(target): \(errnoText())") }
            flushed += Int64(buffer.count)
            buffer.removeAll(keepingCapacity: true)
        }
        do {
            for k in kept {
                let bytes = try readExactly(fd: input, path: source, count: k.length, at: k.position)
                guard case .frame(let frame) = Frame.decode(bytes, position: k.position) else {
                    throw BusError(.corrupt, "compaction: record at offset \(k.record.offset) in \(source) no longer matches its checksum")
                }
                let copy = frame.storedOffset != nil
                    ? bytes
                    : LogRecord.offsetFrame(payload: frame.payload, payloadCRC: frame.payloadCRC, offset: k.record.offset)
                index.positions.append(index.size)
                index.offsets!.append(k.record.offset)
                index.size += Int64(copy.count)
                index.oldestTimestampMillis = min(index.oldestTimestampMillis ?? k.record.timestampMillis, k.record.timestampMillis)
                index.newestTimestampMillis = max(index.newestTimestampMillis ?? k.record.timestampMillis, k.record.timestampMillis)
                buffer += copy
                if buffer.count >= 1 << 20 { try flush() }
            }
            try flush()
            guard fsync(output) == 0 else { throw BusError(.io, "compaction cannot fsync \(target): \(errnoText())") }
        } catch {
            close(output)
            unlink(target)
            throw error
        }
        close(output)
        return index
    }
}
