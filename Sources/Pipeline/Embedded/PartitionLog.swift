import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One topic partition: a directory of segment files (`<base offset, 20 digits>.log`), the last
/// one active (appended to), the others rolled (read-only until maintenance deletes or
/// compacts them).
///
/// Guarantees:
/// - Offsets are global to the partition and increase by one per append, across segments; they
///   are never reused, also after segments are deleted or compacted (compacted segments keep
///   their records' offsets, so offsets can have gaps).
/// - The active segment rolls (a new file starts at the next offset) as soon as it holds
///   `segmentBytes` or more; appends never wait for maintenance.
/// - On open, every segment is read in order; only the active one may lose a torn tail, a damaged
///   rolled segment is a `.corrupt` error naming the file (see `Segment`). A partition written by
///   the single-file layout (`<partition>.log` next to the partition directory) is adopted as its
///   first segment (renamed, never copied), so nothing it holds is lost.
/// - `read(atOrAfter:)` returns the first retained record at or after an offset, so a reader
///   positioned in a deleted or compacted-away range continues at the first retained offset.
///
/// Not thread-safe: its owner (the `EmbeddedBus` actor) serialises access.
final class PartitionLog {
    let topic: String
    let partition: Int
    let directory: String
    private let segmentBytes: Int
    private let sync: Bool
    private let logger: Logger
    private let crash: SimulatedCrash?
    private(set) var segments: [Segment] = []
    /// Rolled segments whose file is open, least recently read first.
    private var openRolled: [Int64] = []
    private static let maxOpenRolled = 4
    /// Compaction has something to look at (a segment rolled, or the log was just opened).
    var needsCompaction = true
    /// The oldest tombstone compaction kept in a rolled segment: compaction runs again once it expires.
    var oldestKeptTombstoneMillis: Int64?

    init(
        directory: String, topic: String, partition: Int, legacyFile: String?, segmentBytes: Int, sync: Bool,
        logger: Logger, crash: SimulatedCrash? = nil
    ) throws {
        self.directory = directory
        self.topic = topic
        self.partition = partition
        self.segmentBytes = max(1, segmentBytes)
        self.sync = sync
        self.logger = logger
        self.crash = crash
        let fm = FileManager.default
        if let legacyFile, fileSize(legacyFile) != nil { try adopt(legacyFile: legacyFile) }
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw BusError(.io, "cannot create partition directory \(directory): \(error)")
        }
        let bases = try Self.segmentBases(in: directory, removeLeftovers: true, logger: logger)
        if bases.isEmpty {
            segments = [try Segment(path: path(base: 0), baseOffset: 0, mode: .tail, sync: sync, crash: crash)]
            return
        }
        for (i, base) in bases.enumerated() {
            let isLast = i == bases.count - 1
            let segment = try Segment(
                path: path(base: base), baseOffset: base, mode: isLast ? .tail : .sealed(nextBase: bases[i + 1]), sync: sync,
                crash: crash)
            if !isLast { segment.sealIndex() }
            if segment.truncatedBytes > 0 {
                logger.warning(
                    "bus log torn tail cut",
                    metadata: ["topic": "\(topic)", "partition": "\(partition)", "segment": "\(segment.path)", "bytes": "\(segment.truncatedBytes)"])
            }
            segments.append(segment)
        }
        // A crash between filling the active segment and rolling it leaves it full: roll now.
        if active.size >= self.segmentBytes { try roll() }
    }

    var active: Segment { segments[segments.count - 1] }
    /// The offset the next appended record gets.
    var nextOffset: Int64 { active.denseEnd }
    var diskBytes: Int64 { segments.reduce(0) { $0 + $1.size } }
    /// The first offset still retained: the base of the oldest segment (a reader before it
    /// continues there). Records compaction removed after it still count.
    var startOffset: Int64 { segments[0].baseOffset }

    /// Appends one record and returns its offset; rolls the active segment once it is full.
    func append(_ record: LogRecord) throws -> Int64 {
        let offset = try appendWithoutRolling(record)
        rollIfFull()
        return offset
    }

    /// Appends one record to the active segment and returns its offset, never rolling: the
    /// appends of one transaction stay in one segment, so `truncate(toNextOffset:)` can undo
    /// them. Call `rollIfFull()` once they are kept.
    func appendWithoutRolling(_ record: LogRecord) throws -> Int64 {
        try active.append(record)
    }

    /// Rolls the active segment if it holds `segmentBytes` or more; a failed roll is logged and
    /// tried again at the next append (the records are stored either way).
    func rollIfFull() {
        guard active.size >= segmentBytes else { return }
        do {
            try roll()
        } catch {
            logger.error("bus log roll failed", metadata: ["topic": "\(topic)", "partition": "\(partition)", "error": "\(error)"])
        }
    }

    /// Removes the records at `offset` and after from the active segment (appends made with
    /// `appendWithoutRolling` since `nextOffset` was `offset`), so the next append gets `offset`.
    func truncate(toNextOffset offset: Int64) throws {
        guard offset < nextOffset else { return }
        guard offset >= active.baseOffset else {
            throw BusError(.io, "cannot undo appends to \(topic) partition \(partition) from offset \(offset): the segment rolled")
        }
        try active.truncate(toCount: Int(offset - active.baseOffset))
    }

    /// The first record at or after `offset`, with its offset; `nil` when there is none yet.
    func read(atOrAfter offset: Int64) throws -> (offset: Int64, record: LogRecord)? {
        guard offset < nextOffset else { return nil }
        var i = segmentIndex(containing: offset)
        while i < segments.count {
            let s = segments[i]
            if i < segments.count - 1 { try touchRolled(s) }
            if let found = try s.read(atOrAfter: offset) { return found }
            i += 1
        }
        return nil
    }

    /// Starts a new active segment at `nextOffset`.
    func roll() throws {
        let old = active
        guard !old.isEmpty else { return }
        if sync { try old.flush() }
        let base = nextOffset
        let segment = try Segment(path: path(base: base), baseOffset: base, mode: .tail, sync: sync, crash: crash)
        if sync { try syncDirectory(directory) }
        segments.append(segment)
        needsCompaction = true
        old.sealIndex()
        try touchRolled(old)
    }

    // MARK: - Maintenance

    /// What deletion needs to know about each segment, oldest first.
    var segmentFacts: [RetentionRules.SegmentFacts] {
        segments.enumerated().map { i, s in
            RetentionRules.SegmentFacts(
                lastOffset: s.lastOffset, newestTimestampMillis: s.index.newestTimestampMillis, isActive: i == segments.count - 1)
        }
    }

    /// Deletes the `count` oldest segments (never the active one); returns each one's file, size and
    /// a still-open descriptor (see `Segment.unlinkKeepingOpen`) for the caller to close.
    func deleteLeading(_ count: Int) throws -> [(path: String, bytes: Int64, holder: Int32)] {
        var deleted: [(path: String, bytes: Int64, holder: Int32)] = []
        for _ in 0..<min(count, segments.count - 1) {
            let s = segments[0]
            let holder = try s.unlinkKeepingOpen()
            segments.removeFirst()
            openRolled.removeAll { $0 == s.baseOffset }
            deleted.append((s.path, s.size, holder))
        }
        return deleted
    }

    /// The rolled segment starting at `base`, if it is still here.
    func rolledSegment(base: Int64) -> Segment? {
        guard let i = segments.firstIndex(where: { $0.baseOffset == base }), i < segments.count - 1 else { return nil }
        return segments[i]
    }

    /// Renames a compacted copy (written and synced) over the rolled segment at `base` and puts it in
    /// place; returns an open descriptor of the replaced file for the caller to close.
    func install(base: Int64, compacted temporary: String, index: SegmentIndex) throws -> Int32 {
        guard let i = segments.firstIndex(where: { $0.baseOffset == base }), i < segments.count - 1 else {
            throw BusError(.io, "segment \(base) of \(topic) partition \(partition) is gone")
        }
        let old = segments[i]
        let holder = old.detachOpenFile()
        guard rename(temporary, old.path) == 0 else {
            let reason = errnoText()
            if holder >= 0 { close(holder) }
            throw BusError(.io, "cannot install compacted \(temporary) as \(old.path): \(reason)")
        }
        openRolled.removeAll { $0 == base }
        let installed = Segment(path: old.path, baseOffset: base, index: index, sync: sync, crash: crash)
        installed.sealIndex()
        segments[i] = installed
        return holder
    }

    /// Deletes a rolled segment that compaction emptied; returns an open descriptor of it for the caller to close.
    func removeRolled(base: Int64) throws -> Int32 {
        guard let i = segments.firstIndex(where: { $0.baseOffset == base }), i < segments.count - 1 else { return -1 }
        let holder = try segments[i].unlinkKeepingOpen()
        segments.remove(at: i)
        openRolled.removeAll { $0 == base }
        return holder
    }

    func path(base: Int64) -> String { directory + "/" + Self.fileName(base: base) }

    static func fileName(base: Int64) -> String { String(format: "%020lld.log", base) }

    /// Suffix of a compacted copy being written; a leftover one (a crash mid-write) is removed on open.
    static let cleanedSuffix = ".cleaned"

    // MARK: - Private

    private func segmentIndex(containing offset: Int64) -> Int {
        var lo = 0
        var hi = segments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if segments[mid].baseOffset <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// Keeps a few rolled segments' files open for lagging readers; closes the least recently read one beyond that.
    private func touchRolled(_ segment: Segment) throws {
        try segment.openIfNeeded(writable: false)
        openRolled.removeAll { $0 == segment.baseOffset }
        openRolled.append(segment.baseOffset)
        while openRolled.count > Self.maxOpenRolled {
            let base = openRolled.removeFirst()
            if let s = segments.first(where: { $0.baseOffset == base }), s !== active { s.closeFile() }
        }
    }

    /// Moves a single-file partition log into the partition directory as its first segment.
    private func adopt(legacyFile: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: directory) {
            let existing = try Self.segmentBases(in: directory, removeLeftovers: false, logger: logger)
            guard existing.isEmpty else {
                throw BusError(
                    .corrupt,
                    "partition \(partition) of topic \(topic) has both a single-file log \(legacyFile) and segments in \(directory); move one of them away")
            }
        }
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw BusError(.io, "cannot create partition directory \(directory): \(error)")
        }
        let target = path(base: 0)
        guard rename(legacyFile, target) == 0 else {
            throw BusError(.io, "cannot move \(legacyFile) to \(target): \(errnoText())")
        }
        try syncDirectory(directory)
        try syncDirectory((legacyFile as NSString).deletingLastPathComponent)
        logger.info(
            "bus log adopted as first segment",
            metadata: ["topic": "\(topic)", "partition": "\(partition)", "from": "\(legacyFile)", "to": "\(target)"])
    }

    /// The base offsets of the segment files in `directory`, sorted; fails on a `.log` file whose name is not a base offset.
    private static func segmentBases(in directory: String, removeLeftovers: Bool, logger: Logger) throws -> [Int64] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw BusError(.io, "cannot list partition directory \(directory): \(error)")
        }
        var bases: [Int64] = []
        for name in names {
            if name.hasSuffix(".log" + cleanedSuffix) {
                if removeLeftovers {
                    // An unfinished compacted copy: the segment it was made from is still in place.
                    unlink(directory + "/" + name)
                    logger.info("bus removed an unfinished compaction file", metadata: ["file": "\(directory)/\(name)"])
                }
                continue
            }
            guard name.hasSuffix(".log") else { continue }
            let stem = name.dropLast(4)
            guard stem.count == 20, stem.allSatisfy(\.isASCIIDigit), let base = Int64(stem) else {
                throw BusError(.corrupt, "unexpected log file \(directory)/\(name): segment files are named by their 20-digit base offset")
            }
            bases.append(base)
        }
        return bases.sorted()
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
