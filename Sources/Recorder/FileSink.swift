import Foundation
import Logging
import Pipeline
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The `file` sink: every event as one JSON line (see `AuditEventLine`) appended to `path`,
/// for a SIEM agent to tail, with optional rotation.
///
/// Guarantees: the line is exactly the event's JSON encoding; lines are appended whole
/// (`AppendFile`), a batch's lines in order as one write; the file is opened once at start, so
/// a bad path fails start-up.
/// - No line twice after a crash: the lines of the file's last `resumeWindowBytes` are read at
///   open (and, when the file is shorter than that, of the newest rotated file's end), and a
///   line already among them (written, then redelivered because the Recorder died before
///   committing it) is not appended again. Lines are compared whole: a redelivered event
///   chained anew (a new chain segment, its `chain` differs) is written again, so the chain in
///   the file stays continuous.
/// - Rotation (``Rotation``) happens only between batches: the file is renamed (one atomic
///   `rename(2)`, never over an existing file) to `<path>.<UTC yyyyMMddTHHmmssZ>` (`-001`,
///   `-002`… appended when that name exists, so names sort in rotation order) and a new file is
///   created at `path` for the batch. A crash at any point loses nothing: before the rename the
///   lines are in the old name, after it in the new one, and the next start creates `path`.
///   The rotated files followed by `path`, in name order, hold every line once, in order, as
///   one stream (`sluice audit verify` checks them as one chain).
/// - A rotated file is deleted only with `keep` set, only beyond the newest `keep`, and each
///   deletion is logged (warning) with the file's name.
public final class FileSink: AuditSink {
    /// When the file is rotated (all `nil`: never).
    public struct Rotation: Sendable, Equatable {
        /// Rotate before a batch that would take the file past this size (a batch larger than
        /// this on its own still goes whole into one file).
        public var maxBytes: Int?
        /// Rotate at the first batch this long after the file was started.
        public var interval: Duration?
        /// Rotated files kept (the newest); `nil`: all.
        public var keep: Int?

        public init(maxBytes: Int? = nil, interval: Duration? = nil, keep: Int? = nil) {
            self.maxBytes = maxBytes
            self.interval = interval
            self.keep = keep
        }

        var isOn: Bool { maxBytes != nil || interval != nil }
    }

    private struct Current {
        var file: AppendFile
        var size: Int
        /// When the current file was started (the newest rotation, else the sink's start).
        var startedAt: Date
    }

    public let path: String
    let rotation: Rotation
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let current: Mutex<Current>
    /// The whole lines (without their newline) found at the end of the file when it was opened.
    private let writtenBeforeStart: Set<[UInt8]>

    /// How much of an existing file's end is read at open for its lines (well beyond what one
    /// Recorder can have written and not yet committed).
    static let resumeWindowBytes = 1 << 20

    /// Opens (creating if needed) the file at `path` for appending.
    public init(
        path: String, rotation: Rotation = Rotation(), logger: Logger = Logger(label: "sluice.recorder"),
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.path = path
        self.rotation = rotation
        self.logger = logger
        self.now = now
        let file = try AppendFile(path: path)
        let size = Self.size(of: path)
        var lines = Self.lines(inTailOf: path, bytes: Self.resumeWindowBytes)
        let rotated = Self.rotatedFiles(of: path)
        if size < Self.resumeWindowBytes, let newest = rotated.last {
            lines.formUnion(Self.lines(inTailOf: newest, bytes: Self.resumeWindowBytes - size))
        }
        writtenBeforeStart = lines
        let started = rotated.last.flatMap { try? FileManager.default.attributesOfItem(atPath: $0)[.modificationDate] as? Date }
        current = Mutex(Current(file: file, size: size, startedAt: started ?? now()))
    }

    public var label: String { "file:\(path)" }

    public func write(_ event: AuditEvent) async throws {
        try await write(event, line: AuditEventLine.encode(event))
    }

    public func write(_ event: AuditEvent, line: [UInt8]) async throws {
        try await write(batch: [event], lines: [line])
    }

    public func write(batch events: [AuditEvent], lines: [[UInt8]]) async throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(lines.reduce(0) { $0 + $1.count })
        if writtenBeforeStart.isEmpty {
            for line in lines { bytes += line }
        } else {
            for chunk in lines {
                for line in chunk.split(separator: UInt8(ascii: "\n")) where !writtenBeforeStart.contains(Array(line)) {
                    bytes += line
                    bytes.append(UInt8(ascii: "\n"))
                }
            }
        }
        guard !bytes.isEmpty else { return }
        try current.withLock { current in
            if rotation.isOn, current.size > 0, isDue(current, adding: bytes.count) {
                current = try rotate()
            }
            try current.file.append(bytes)
            current.size += bytes.count
        }
    }

    private func isDue(_ current: Current, adding count: Int) -> Bool {
        if let max = rotation.maxBytes, current.size + count > max { return true }
        if let interval = rotation.interval, now().timeIntervalSince(current.startedAt) * 1000 >= Double(interval.totalMilliseconds) {
            return true
        }
        return false
    }

    /// Renames the file to its rotated name, opens a new one at `path`, then deletes rotated
    /// files beyond `keep` (logged). Called between batches, under the lock.
    private func rotate() throws -> Current {
        let time = now()
        // A rotation whose new file could not be opened has renamed the file already: only the open is left to do.
        if access(path, F_OK) == 0 {
            let target = try Self.rotatedName(of: path, at: time)
            guard rename(path, target) == 0 else {
                throw RecorderError("\(label): cannot rotate \(path) to \(target): \(errnoText())")
            }
            logger.info("audit file rotated", metadata: ["sink": "\(label)", "rotated_to": "\(target)"])
        }
        let file = try AppendFile(path: path)
        if let keep = rotation.keep {
            let rotated = Self.rotatedFiles(of: path)
            for old in rotated.dropLast(keep) {
                if unlink(old) == 0 {
                    logger.warning("deleted a rotated audit file beyond keep", metadata: ["sink": "\(label)", "file": "\(old)", "keep": "\(keep)"])
                } else {
                    logger.error("cannot delete a rotated audit file", metadata: ["sink": "\(label)", "file": "\(old)", "error": "\(errnoText())"])
                }
            }
        }
        return Current(file: file, size: 0, startedAt: time)
    }

    /// `<path>.<UTC yyyyMMddTHHmmssZ>`, or with `-001`, `-002`… when that exists (at most 999 per second).
    static func rotatedName(of path: String, at time: Date) throws -> String {
        let base = path + "." + stamp(time)
        if !FileManager.default.fileExists(atPath: base) { return base }
        for n in 1...999 {
            let candidate = base + "-" + String(format: "%03d", n)
            if !FileManager.default.fileExists(atPath: candidate) { return candidate }
        }
        throw RecorderError("file:\(path): no free rotated name for \(base)")
    }

    static func stamp(_ time: Date) -> String {
        var t = time_t(time.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(
            format: "%04d%02d%02dT%02d%02d%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    /// The rotated files of `path` (`<path>.<yyyyMMddTHHmmssZ>[-NNN]`), oldest first (name order).
    public static func rotatedFiles(of path: String) -> [String] {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let prefix = url.lastPathComponent + "."
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { name in
            guard name.hasPrefix(prefix) else { return false }
            return isStamp(name.dropFirst(prefix.count).utf8)
        }.sorted().map { directory + "/" + $0 }
    }

    /// `yyyyMMddTHHmmssZ` optionally followed by `-NNN`.
    private static func isStamp(_ s: Substring.UTF8View) -> Bool {
        let b = Array(s)
        guard b.count == 16 || (b.count == 20 && b[16] == UInt8(ascii: "-")) else { return false }
        let digit: (UInt8) -> Bool = { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard b[0..<8].allSatisfy(digit), b[8] == UInt8(ascii: "T"), b[9..<15].allSatisfy(digit), b[15] == UInt8(ascii: "Z") else { return false }
        return b.count == 16 || b[17...].allSatisfy(digit)
    }

    static func size(of path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    /// The whole lines (without newline) in the last `bytes` of the file (none when it cannot be read).
    static func lines(inTailOf path: String, bytes: Int) -> Set<[UInt8]> {
        guard bytes > 0, let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), size > 0 else { return [] }
        let start = size > UInt64(bytes) ? size - UInt64(bytes) : 0
        guard (try? handle.seek(toOffset: start)) != nil, let data = try? handle.readToEnd() else { return [] }
        var lines = Array(data).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
        if start > 0, !lines.isEmpty { lines.removeFirst() }  // cut mid-line
        if data.last != UInt8(ascii: "\n"), !lines.isEmpty { lines.removeLast() }  // torn by a crash
        return Set(lines.map(Array.init))
    }
}
