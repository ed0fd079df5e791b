#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a segment's records are in its file, and what maintenance needs to know about them.
struct SegmentIndex: Sendable, Equatable {
    /// File position of each record's frame (frames are contiguous: record `i` ends where `i + 1` starts).
    var positions: [Int64] = []
    /// Each record's offset when the segment is sparse (compacted); `nil`: record `i` has offset `base + i`.
    var offsets: [Int64]?
    /// Bytes of the file that hold records.
    var size: Int64 = 0
    var oldestTimestampMillis: Int64?
    var newestTimestampMillis: Int64?
}

/// A rolled segment's index, kept small: the offset and file position of every `stride`-th
/// record (16 bytes for 64 records instead of 8–16 bytes a record), so the memory a partition
/// holds does not grow with its retained history.
struct SparseIndex: Sendable, Equatable {
    static let stride = 64
    /// Offset of record `k * stride`.
    var offsets: [Int64] = []
    /// File position of record `k * stride`.
    var positions: [Int64] = []
    var count = 0
    var lastOffset: Int64?
    /// Whether the records carry their own offsets (a compacted segment).
    var compacted = false
}

/// One file of checksummed `LogRecord` frames whose first offset is `baseOffset`: a piece of a
/// partition's log (or, alone, a consumer group's commit log).
///
/// Guarantees:
/// - `append` returns after the frame is written to the file in one `write` (and, with `sync`,
///   after `fdatasync`), so it survives a crash of the process; a failed append leaves no
///   partial frame behind.
/// - Opened as `.tail` (the active segment, a commit log): frames are read from the start; the
///   first incomplete or corrupt frame and everything after it (a torn tail from a crash) is cut
///   off and never read. Offsets are dense from `baseOffset`; a compacted (`SLU2`) frame there is
///   an error, because it means the segments after it are missing.
/// - Opened as `.sealed(nextBase:)` (a rolled segment): every byte must be a valid frame and the
///   offsets must lie below `nextBase` (all of them, if the segment is not compacted); anything
///   else is a `.corrupt` error naming the file. A rolled segment is never cut.
/// - A record is returned only after its checksum matched, at every read.
/// - Once rolled (``sealIndex()``), only every 64th record's position is kept in memory: a read
///   walks forward at most 63 frames from there, or continues from where one of the last few
///   sequential readers stopped (one frame).
///
/// Not thread-safe: its owner (the `EmbeddedBus` actor) serialises access.
final class Segment {
    enum Mode {
        case tail
        case sealed(nextBase: Int64)
    }

    let path: String
    let baseOffset: Int64
    private let sync: Bool
    /// Test support: cuts writes short as a crash would (see `SimulatedCrash`); `nil` in production.
    private let crash: SimulatedCrash?
    private var fd: Int32 = -1
    private(set) var index: SegmentIndex
    /// Set once the segment is rolled: `index.positions` and `index.offsets` are then empty.
    private(set) var sparse: SparseIndex?
    /// Where the last few sequential readers of a sealed segment stopped: record `index`
    /// (at `offset`) was read, the next frame starts at `next`.
    private var cursors: [(index: Int, offset: Int64, next: Int64)] = []
    private static let maxCursors = 8
    /// Bytes cut off the tail when the segment was opened (0 when it was clean).
    private(set) var truncatedBytes: Int64 = 0

    /// Opens (creating it if missing, for `.tail`) and recovers the file at `path`.
    init(path: String, baseOffset: Int64, mode: Mode, sync: Bool, crash: SimulatedCrash? = nil) throws {
        self.path = path
        self.baseOffset = baseOffset
        self.sync = sync
        self.crash = crash
        self.index = SegmentIndex()
        let flags: Int32
        switch mode {
        case .tail: flags = O_RDWR | O_CREAT | O_CLOEXEC
        case .sealed: flags = O_RDONLY | O_CLOEXEC
        }
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else { throw BusError(.io, "cannot open log segment \(path): \(errnoText())") }
        self.fd = fd
        do {
            try recover(mode: mode)
        } catch {
            close(fd)
            self.fd = -1
            throw error
        }
        // A rolled segment is read rarely: its descriptor is opened again on demand.
        if case .sealed = mode { closeFile() }
    }

    /// A segment whose index is already known (it was just written and synced by compaction).
    init(path: String, baseOffset: Int64, index: SegmentIndex, sync: Bool, crash: SimulatedCrash? = nil) {
        self.path = path
        self.baseOffset = baseOffset
        self.index = index
        self.sync = sync
        self.crash = crash
    }

    deinit { if fd >= 0 { close(fd) } }

    var count: Int { sparse?.count ?? index.positions.count }
    var isEmpty: Bool { count == 0 }
    /// Whether the segment is compacted (its records carry their offsets, with gaps).
    var isSparse: Bool { sparse?.compacted ?? (index.offsets != nil) }
    var size: Int64 { index.size }

    /// The offset of record `i` (a segment with its full index: not sealed).
    func offset(at i: Int) -> Int64 { index.offsets?[i] ?? baseOffset + Int64(i) }
    var lastOffset: Int64? {
        if let sparse { return sparse.lastOffset }
        return isEmpty ? nil : offset(at: count - 1)
    }
    /// The offset after the last record of a dense segment (what the next append gets).
    var denseEnd: Int64 { baseOffset + Int64(count) }

    /// The index of the first record whose offset is `offset` or higher, if any.
    func firstIndex(atOrAfter offset: Int64) -> Int? {
        guard let offsets = index.offsets else {
            let i = max(0, offset - baseOffset)
            return i < Int64(count) ? Int(i) : nil
        }
        var lo = 0
        var hi = offsets.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if offsets[mid] < offset { lo = mid + 1 } else { hi = mid }
        }
        return lo < offsets.count ? lo : nil
    }

    /// Drops the per-record index of a rolled segment, keeping every `SparseIndex.stride`-th
    /// position (see the type's guarantees). Idempotent; the segment is read-only afterwards.
    func sealIndex() {
        guard sparse == nil else { return }
        var sealed = SparseIndex(count: count, lastOffset: lastOffset, compacted: index.offsets != nil)
        for k in stride(from: 0, to: count, by: SparseIndex.stride) {
            sealed.offsets.append(offset(at: k))
            sealed.positions.append(index.positions[k])
        }
        index.positions = []
        index.offsets = nil
        sparse = sealed
    }

    /// The first record at or after `offset`, with its offset; `nil` when the segment has none.
    func read(atOrAfter offset: Int64) throws -> (offset: Int64, record: LogRecord)? {
        guard let sparse else {
            guard let j = firstIndex(atOrAfter: offset) else { return nil }
            return (self.offset(at: j), try read(index: j))
        }
        guard let last = sparse.lastOffset, offset <= last else { return nil }
        try openIfNeeded(writable: false)
        // Start at the checkpoint at or before `offset`, or where a reader stopped, if nearer.
        var lo = 0
        var hi = sparse.offsets.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if sparse.offsets[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        var i = lo * SparseIndex.stride
        var position = sparse.positions[lo]
        var previous = sparse.offsets[lo] - 1
        var cursor: Int?
        for (n, c) in cursors.enumerated() where c.offset < offset && c.offset > previous {
            (i, position, previous, cursor) = (c.index + 1, c.next, c.offset, n)
        }
        while i < sparse.count {
            switch try Frame.read(fd: fd, path: path, at: position, limit: index.size) {
            case .frame(let frame):
                let found = frame.storedOffset ?? previous + 1
                let next = position + Int64(frame.length)
                if found >= offset {
                    let record = try LogRecord.decode(payload: frame.payload)
                    if let cursor {
                        cursors[cursor] = (i, found, next)
                    } else {
                        if cursors.count >= Self.maxCursors { cursors.removeFirst() }
                        cursors.append((i, found, next))
                    }
                    return (found, record)
                }
                (previous, position, i) = (found, next, i + 1)
            case .end:
                throw BusError(.corrupt, "rolled log segment \(path) ends at byte \(position) before its record \(i)")
            case .damaged(let reason):
                throw BusError(.corrupt, "\(reason) at byte \(position) in \(path)")
            }
        }
        return nil
    }

    /// Appends one record (dense segments only) and returns its offset.
    func append(_ record: LogRecord) throws -> Int64 {
        precondition(!isSparse && sparse == nil, "append to a compacted or sealed segment")
        try openIfNeeded(writable: true)
        let frame = record.encodedFrame()
        let end = index.size
        if let crash {
            let allowed = crash.allow(frame.count)
            if allowed < frame.count {
                // A crash mid-write: leave the torn frame as it is (no clean-up runs after a crash).
                let written = frame.withUnsafeBytes { pwriteAll(fd, UnsafeRawBufferPointer(rebasing: $0.prefix(allowed)), at: end) }
                throw SimulatedCrash.error(path, wrote: written, of: frame.count)
            }
        }
        let written = frame.withUnsafeBytes { pwriteAll(fd, $0, at: end) }
        guard written == frame.count else {
            let reason = errnoText()
            // Leave no partial frame behind: the next append overwrites from `end`.
            _ = ftruncate(fd, off_t(end))
            throw BusError(.io, "append to \(path) failed: \(reason)")
        }
        if sync, fdatasync(fd) != 0 { throw BusError(.io, "fdatasync \(path) failed: \(errnoText())") }
        index.positions.append(end)
        index.size = end + Int64(frame.count)
        note(timestamp: record.timestampMillis)
        return offset(at: count - 1)
    }

    /// Cuts the segment back to its first `count` records (undoing appends that must not stay:
    /// a transaction that could not be completed). Dense segments only.
    ///
    /// Guarantees: on return the file ends after record `count - 1` (synced with `sync`) and the
    /// next append writes there; on an error the index is unchanged. The timestamps kept for
    /// retention are not narrowed (the newest may be that of a removed record), except that an
    /// emptied segment forgets them.
    func truncate(toCount count: Int) throws {
        precondition(!isSparse && sparse == nil, "truncate a compacted or sealed segment")
        guard count < self.count else { return }
        try openIfNeeded(writable: true)
        let end = index.positions[count]
        if let crash, crash.allow(1) < 1 { throw SimulatedCrash.error(path, wrote: 0, of: 1) }
        guard ftruncate(fd, off_t(end)) == 0 else { throw BusError(.io, "truncate \(path) to \(end) bytes failed: \(errnoText())") }
        if sync, fdatasync(fd) != 0 { throw BusError(.io, "fdatasync \(path) failed: \(errnoText())") }
        index.positions.removeLast(self.count - count)
        index.size = end
        if count == 0 {
            index.oldestTimestampMillis = nil
            index.newestTimestampMillis = nil
        }
    }

    /// Reads the record at index `i`, checking its checksum.
    func read(index i: Int) throws -> LogRecord {
        precondition(sparse == nil && i >= 0 && i < count)
        try openIfNeeded(writable: false)
        let position = index.positions[i]
        let end = i + 1 < count ? index.positions[i + 1] : index.size
        let bytes = try readExactly(fd: fd, path: path, count: Int(end - position), at: position)
        switch Frame.decode(bytes, position: position) {
        case .frame(let frame): return try LogRecord.decode(payload: frame.payload)
        case .end: throw BusError(.corrupt, "empty frame at offset \(offset(at: i)) in \(path)")
        case .damaged(let reason): throw BusError(.corrupt, "\(reason) at offset \(offset(at: i)) in \(path)")
        }
    }

    /// `fdatasync`s the file (before it is rolled, with `sync`).
    func flush() throws {
        guard fd >= 0 else { return }
        if fdatasync(fd) != 0 { throw BusError(.io, "fdatasync \(path) failed: \(errnoText())") }
    }

    func closeFile() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// Deletes the file, returning an open descriptor of it (or -1) for the caller to close later:
    /// the file system frees a large file's blocks when its last reference goes, which can take
    /// tens of milliseconds, so the bus does that off its actor.
    func unlinkKeepingOpen() throws -> Int32 {
        let holder = detachOpenFile()
        guard unlink(path) == 0 || errno == ENOENT else {
            let reason = errnoText()
            if holder >= 0 { close(holder) }
            throw BusError(.io, "cannot delete segment \(path): \(reason)")
        }
        return holder
    }

    /// Hands over an open descriptor of the file (opening one if needed; -1 if that fails) and
    /// forgets it, so that replacing or deleting the file frees nothing until the caller closes it.
    func detachOpenFile() -> Int32 {
        if fd < 0 { try? openIfNeeded(writable: false) }
        let holder = fd
        fd = -1
        return holder
    }

    func openIfNeeded(writable: Bool) throws {
        guard fd < 0 else { return }
        let fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)
        guard fd >= 0 else { throw BusError(.io, "cannot open log segment \(path): \(errnoText())") }
        self.fd = fd
    }

    private func note(timestamp: Int64) {
        index.oldestTimestampMillis = min(index.oldestTimestampMillis ?? timestamp, timestamp)
        index.newestTimestampMillis = max(index.newestTimestampMillis ?? timestamp, timestamp)
    }

    /// Scans the file and indexes its frames (see the type's guarantees).
    private func recover(mode: Mode) throws {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw BusError(.io, "stat \(path): \(errnoText())") }
        let fileSize = Int64(st.st_size)
        var position: Int64 = 0
        var previous: Int64?
        var offsets: [Int64]?
        scan: while true {
            switch try Frame.read(fd: fd, path: path, at: position, limit: fileSize) {
            case .end:
                break scan
            case .damaged(let reason):
                guard case .tail = mode else {
                    throw BusError(
                        .corrupt,
                        "rolled log segment \(path) is corrupt at byte \(position) (\(reason)); a rolled segment is never cut: restore the file or move it away")
                }
                break scan
            case .frame(let frame):
                let offset: Int64
                if let stored = frame.storedOffset {
                    guard case .sealed = mode else {
                        throw BusError(.corrupt, "active log segment \(path) holds compacted records: the segments after it are missing")
                    }
                    guard stored >= baseOffset, stored > previous ?? Int64.min else {
                        throw BusError(.corrupt, "rolled log segment \(path): offset \(stored) out of order at byte \(position)")
                    }
                    if offsets == nil { offsets = (0..<index.positions.count).map { baseOffset + Int64($0) } }
                    offset = stored
                } else {
                    offset = (previous ?? (baseOffset - 1)) + 1
                }
                if case .sealed(let nextBase) = mode, offset >= nextBase {
                    throw BusError(.corrupt, "rolled log segment \(path): offset \(offset) reaches into the next segment (base \(nextBase))")
                }
                guard let timestamp = LogRecord.timestamp(ofPayload: frame.payload) else {
                    if case .tail = mode { break scan }
                    throw BusError(.corrupt, "rolled log segment \(path): short record at byte \(position)")
                }
                index.positions.append(position)
                offsets?.append(offset)
                note(timestamp: timestamp)
                previous = offset
                position += Int64(frame.length)
            }
        }
        index.offsets = offsets
        index.size = position
        if case .sealed(let nextBase) = mode, offsets == nil, denseEnd != nextBase {
            throw BusError(
                .corrupt,
                "rolled log segment \(path) holds offsets \(baseOffset)..<\(denseEnd) but the next segment starts at \(nextBase): records are missing")
        }
        if position < fileSize {
            truncatedBytes = fileSize - position
            guard ftruncate(fd, off_t(position)) == 0 else { throw BusError(.io, "truncate \(path): \(errnoText())") }
        }
    }
}
