import Crypto
import Foundation
import Logging
import Metrics
import Pipeline
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a chain stands once every message of its partition up to `offset` is handled.
struct ChainPosition: Equatable, Sendable {
    /// The highest offset of the partition handled (an event, or a message that was skipped).
    var offset: Int64
    /// The chain value of the last line (hex).
    var chain: String
    /// Events chained in the segment so far.
    var count: Int64
    /// `count` at the last checkpoint (or segment start).
    var checkpointCount: Int64
    /// Event time of the last checkpoint (or of the segment's first event).
    var checkpointTime: Int64
}

/// The messages of one partition in a batch: the lowest and highest offsets.
struct ChainSpan: Equatable, Sendable {
    var first: Int64
    var last: Int64

    mutating func include(_ offset: Int64) {
        first = min(first, offset)
        last = max(last, offset)
    }
}

/// A batch's lines for the sinks and the chain positions to save before they are sent.
struct ChainedBatch: Sendable {
    /// Per event: its chained line, preceded by a `chain_start` line when a segment begins there
    /// and followed by a `checkpoint` line when one is due.
    var lines: [[UInt8]]
    /// Per chain id: the positions to keep (oldest first; the last is the batch's end).
    var positions: [String: [ChainPosition]]
    /// The segments begun in this batch: chain id → the offset they start after.
    var segmentStarts: [String: Int64]
}

/// Chains the Recorder's sink lines, per source partition (`AuditChain`). Pure apart from the
/// position history it reads (`ChainStateStore`): the lines of a partition's messages are a
/// function of those messages and the saved position before them, so a redelivered batch gives
/// byte-identical lines, whatever the batch boundaries.
struct AuditChainer: Sendable {
    let checkpointEvery: Int64
    let checkpointIntervalMillis: Int64
    let store: ChainStateStore
    /// A fresh HMAC of the chain key, copied for each line.
    private let mac: HMAC<SHA256>

    init(key: SymmetricKey, checkpointEvery: Int64, checkpointIntervalMillis: Int64, store: ChainStateStore) {
        self.mac = HMAC<SHA256>(key: key)
        self.checkpointEvery = checkpointEvery
        self.checkpointIntervalMillis = checkpointIntervalMillis
        self.store = store
    }
    /// Positions kept per chain: how far back a redelivery can start and still continue the chain.
    static let keptPositions = 32

    /// `chains[i]` is the chain id of `events[i]` and `offsets[i]` its offset; `spans` holds every
    /// partition of the batch (events or not).
    func chain(
        events: [AuditEvent], lines: [[UInt8]], chains: [String], offsets: [Int64], spans: [String: ChainSpan]
    ) throws -> ChainedBatch {
        struct Cursor {
            var prev: [UInt8]
            var count: Int64
            var checkpointCount: Int64
            var checkpointTime: Int64
            var pendingStart: Int64?
            var kept: [ChainPosition]
        }
        var cursors: [String: Cursor] = [:]
        for (id, span) in spans {
            let kept = try store.positions(id).filter { $0.offset < span.first }
            if let p = kept.last, let prev = AuditChain.unhex(Array(p.chain.utf8)) {
                cursors[id] = Cursor(
                    prev: prev, count: p.count, checkpointCount: p.checkpointCount, checkpointTime: p.checkpointTime,
                    pendingStart: nil, kept: kept)
            } else {
                cursors[id] = Cursor(prev: AuditChain.zero, count: 0, checkpointCount: 0, checkpointTime: 0, pendingStart: span.first - 1, kept: [])
            }
        }
        var out: [[UInt8]] = []
        out.reserveCapacity(events.count)
        var starts: [String: Int64] = [:]
        for i in events.indices {
            let id = chains[i]
            guard var c = cursors[id] else { continue }
            let time = events[i].timeMillis
            var bytes: [UInt8] = []
            if let after = c.pendingStart {
                let start = AuditChain.link(
                    body: AuditChain.chainStartBody(afterOffset: after, timeMillis: time), chainID: id, seq: after, prev: c.prev, mac: mac)
                bytes += start.line
                c.prev = start.chain
                c.checkpointTime = time
                c.pendingStart = nil
                starts[id] = after
            }
            let linked = AuditChain.link(body: AuditChain.eventBody(lines[i]), chainID: id, seq: offsets[i], prev: c.prev, mac: mac)
            bytes += linked.line
            c.prev = linked.chain
            c.count += 1
            if c.count - c.checkpointCount >= checkpointEvery || time - c.checkpointTime >= checkpointIntervalMillis {
                let checkpoint = AuditChain.link(
                    body: AuditChain.checkpointBody(count: c.count, timeMillis: time), chainID: id, seq: offsets[i], prev: c.prev, mac: mac)
                bytes += checkpoint.line
                c.prev = checkpoint.chain
                c.checkpointCount = c.count
                c.checkpointTime = time
            }
            cursors[id] = c
            out.append(bytes)
        }
        var positions: [String: [ChainPosition]] = [:]
        for (id, c) in cursors where c.pendingStart == nil {
            guard let span = spans[id] else { continue }
            let end = ChainPosition(
                offset: span.last, chain: AuditChain.hex(c.prev), count: c.count, checkpointCount: c.checkpointCount,
                checkpointTime: c.checkpointTime)
            positions[id] = Array((c.kept + [end]).suffix(Self.keptPositions))
        }
        return ChainedBatch(lines: out, positions: positions, segmentStarts: starts)
    }
}

/// The saved positions of every chain, one file per chain under `<data_dir>/recorder/chains/`
/// (`<topic>-<partition>`, one `ChainPosition` a line: `offset count checkpoint_count
/// checkpoint_time chain`). Each batch end is appended (one `write(2)` on a descriptor kept
/// open, before the batch's lines go to the sinks); every `rewriteEvery` appends the file is
/// replaced by the kept positions (temporary file, then rename). Read once per chain, then kept
/// in memory.
///
/// Reading folds the lines in order: a line drops the positions at or after its offset (a
/// redelivered batch saved again), then is added. Positions are a function of the partition's
/// messages, so a position left from an earlier attempt is still right. A last line without its
/// newline (torn by a crash) is ignored; any other line that does not parse makes the file
/// unreadable (an error, not a silent new segment).
final class ChainStateStore: Sendable {
    let directory: String
    private struct Chain: Sendable {
        var positions: [ChainPosition]
        var file: AppendFile?
        var appends: Int
    }
    private let cache = Mutex<[String: Chain]>([:])
    /// Appends between two rewrites of a chain's file.
    static let rewriteEvery = 256

    /// `lane`: the sink whose chains these are (`SinkIdentity`): `<data_dir>/recorder/chains/<lane>`.
    init(dataDir: String, lane: String) {
        directory = URL(fileURLWithPath: dataDir).appendingPathComponent("recorder/chains").appendingPathComponent(lane).path
    }

    /// Creates the directory (0700); throws when it cannot.
    func prepare() throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw RecorderError("cannot create the audit chain state directory \(directory): \(error.localizedDescription)")
        }
    }

    /// The file of a chain id (`sluice.audit/3` → `sluice.audit-3`).
    func path(of chainID: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent(chainID.replacingOccurrences(of: "/", with: "-")).path
    }

    /// The saved positions of a chain, oldest first (none when never saved).
    func positions(_ chainID: String) throws -> [ChainPosition] {
        if let cached = cache.withLock({ $0[chainID]?.positions }) { return cached }
        let path = path(of: chainID)
        var loaded: [ChainPosition] = []
        if let data = FileManager.default.contents(atPath: path) {
            guard let positions = Self.decode(Array(data)) else {
                throw RecorderError("audit chain state \(path) is unreadable")
            }
            loaded = positions
        }
        cache.withLock { $0[chainID] = Chain(positions: loaded, file: nil, appends: Self.rewriteEvery) }
        return loaded
    }

    /// Saves a chain's positions (the last is the new batch end): appended to the file, or every
    /// `rewriteEvery` times the file replaced by them.
    func save(_ chainID: String, _ positions: [ChainPosition]) throws {
        guard let end = positions.last else { return }
        let path = path(of: chainID)
        var chain = cache.withLock { $0[chainID] } ?? Chain(positions: [], file: nil, appends: Self.rewriteEvery)
        if chain.appends >= Self.rewriteEvery || chain.file == nil {
            let temporary = path + ".tmp"
            guard unlink(temporary) == 0 || errno == ENOENT else { throw RecorderError("cannot remove \(temporary): \(errnoText())") }
            try AppendFile.append(Self.encode(positions), toFileAt: temporary)
            guard rename(temporary, path) == 0 else {
                throw RecorderError("cannot rename \(temporary) to \(path): \(errnoText())")
            }
            chain.file = try AppendFile(path: path)
            chain.appends = 0
        } else if let file = chain.file {
            try file.append(Self.encode([end]))
            chain.appends += 1
        }
        chain.positions = positions
        let saved = chain
        cache.withLock { $0[chainID] = saved }
    }

    /// `offset count checkpoint_count checkpoint_time chain\n` per position.
    static func encode(_ positions: [ChainPosition]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(positions.count * 120)
        for p in positions {
            out += "\(p.offset) \(p.count) \(p.checkpointCount) \(p.checkpointTime) \(p.chain)\n".utf8
        }
        return out
    }

    /// The positions of a state file's bytes (folded, see the type; the last `AuditChainer.keptPositions`),
    /// or `nil` when a whole line is not a position.
    static func decode(_ bytes: [UInt8]) -> [ChainPosition]? {
        var out: [ChainPosition] = []
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
        if bytes.last != UInt8(ascii: "\n"), !lines.isEmpty { lines.removeLast() }  // torn by a crash
        for line in lines {
            let fields = line.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
            guard fields.count == 5, let offset = Int64(fields[0]), let count = Int64(fields[1]), let checkpointCount = Int64(fields[2]),
                let checkpointTime = Int64(fields[3]), AuditChain.unhex(Array(fields[4].utf8)) != nil
            else { return nil }
            out.removeAll { $0.offset >= offset }
            out.append(ChainPosition(offset: offset, chain: fields[4], count: count, checkpointCount: checkpointCount, checkpointTime: checkpointTime))
        }
        return Array(out.suffix(AuditChainer.keptPositions))
    }

    /// Forgets the cached positions (the next read goes to the files), as after a restart.
    func dropCache() { cache.withLock { $0 = [:] } }
}
