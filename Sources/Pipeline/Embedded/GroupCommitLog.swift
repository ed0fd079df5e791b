import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A consumer group's committed offsets: `groups/<name>.log`, one record per commit (key: topic,
/// value: partition u32 | next offset i64, timestamp: when), replayed on open.
///
/// Guarantees:
/// - A commit returns after its record is appended (see `Segment`), so reopening the directory
///   resumes the group where it committed; committed offsets only move forward.
/// - `rewrite()` replaces the file by one holding only the latest commit per partition: written
///   to a temporary file, synced, then renamed over the log (a crash leaves the old or the new
///   file, never a mix); a leftover temporary file is removed on open.
/// - The file name encodes the group name reversibly, so every group found on disk is known by
///   name at start-up (and holds back deletion of what it has not consumed).
final class GroupCommitLog {
    let name: String
    let path: String
    private let sync: Bool
    private let crash: SimulatedCrash?
    private var log: Segment
    private(set) var committed: [TopicPartition: Int64] = [:]
    /// When the group last committed (ms since 1970); from the file's modification time for commits written without a time.
    private(set) var lastCommitMillis: Int64 = 0

    init(groupsDirectory: URL, name: String, sync: Bool, crash: SimulatedCrash? = nil) throws {
        self.name = name
        self.sync = sync
        self.crash = crash
        path = groupsDirectory.appendingPathComponent(Self.fileName(for: name)).path
        unlink(path + Self.temporarySuffix)
        let existedBefore = fileSize(path) != nil
        log = try Segment(path: path, baseOffset: 0, mode: .tail, sync: sync, crash: crash)
        var undated = false
        for i in 0..<log.count {
            let record = try log.read(index: i)
            guard let topic = record.key.map({ String(decoding: $0, as: UTF8.self) }), record.value.count == 12 else { continue }
            var r = ByteReader(record.value)
            let p = Int(try r.u32())
            let next = Int64(bitPattern: try r.u64())
            committed[TopicPartition(topic: topic, partition: p)] = next
            if record.timestampMillis > 0 { lastCommitMillis = max(lastCommitMillis, record.timestampMillis) } else { undated = true }
        }
        if undated, existedBefore, let modified = try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date {
            lastCommitMillis = max(lastCommitMillis, Int64(modified.timeIntervalSince1970 * 1000))
        }
    }

    /// Every group with a commit log in `groupsDirectory`.
    static func loadAll(groupsDirectory: URL, sync: Bool, crash: SimulatedCrash? = nil) throws -> [GroupCommitLog] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: groupsDirectory.path)
        } catch {
            throw BusError(.io, "cannot list \(groupsDirectory.path): \(error)")
        }
        return try names.sorted().filter { $0.hasSuffix(".log") }.map { file in
            guard let name = groupName(fromFileName: file) else {
                throw BusError(.corrupt, "unexpected file \(groupsDirectory.path)/\(file): not a group commit log name")
            }
            return try GroupCommitLog(groupsDirectory: groupsDirectory, name: name, sync: sync, crash: crash)
        }
    }

    var bytes: Int64 { log.size }
    /// Records in the file (commits since the last rewrite).
    var recordCount: Int { log.count }

    /// Whether the group has ever committed a partition of `topic`.
    func commits(on topic: String) -> Bool { committed.keys.contains { $0.topic == topic } }

    func commit(_ tp: TopicPartition, next: Int64, nowMillis: Int64) throws {
        guard next > committed[tp] ?? 0 else { return }
        _ = try log.append(Self.record(tp, next: next, timestampMillis: nowMillis))
        committed[tp] = next
        lastCommitMillis = max(lastCommitMillis, nowMillis)
    }

    /// Rewrites the log to its latest commit per partition; returns the bytes freed.
    func rewrite() throws -> Int64 {
        let before = log.size
        let temporary = path + Self.temporarySuffix
        var bytes: [UInt8] = []
        for tp in committed.keys.sorted() {
            bytes += Self.record(tp, next: committed[tp]!, timestampMillis: lastCommitMillis).encodedFrame()
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BusError(.io, "cannot create \(temporary): \(errnoText())") }
        let written = bytes.withUnsafeBytes { pwriteAll(fd, $0, at: 0) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else {
            unlink(temporary)
            throw BusError(.io, "cannot write \(temporary): \(errnoText())")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw BusError(.io, "cannot rename \(temporary) to \(path): \(errnoText())")
        }
        try syncDirectory((path as NSString).deletingLastPathComponent)
        log.closeFile()
        log = try Segment(path: path, baseOffset: 0, mode: .tail, sync: sync, crash: crash)
        return before - log.size
    }

    private static let temporarySuffix = ".rewrite"

    private static func record(_ tp: TopicPartition, next: Int64, timestampMillis: Int64) -> LogRecord {
        var value: [UInt8] = []
        value.appendLE(UInt32(tp.partition))
        value.appendLE(UInt64(bitPattern: next))
        return LogRecord(timestampMillis: timestampMillis, key: Array(tp.topic.utf8), headers: [], value: value)
    }

    /// Group names are free text; file names keep only safe characters and hex-encode the rest (`%XX`).
    static func fileName(for group: String) -> String {
        var out = ""
        for b in group.utf8 {
            let c = Character(Unicode.Scalar(b))
            if c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == ".") && !(out.isEmpty && c == ".") {
                out.append(c)
            } else {
                out += String(format: "%%%02X", b)
            }
        }
        return out + ".log"
    }

    /// The inverse of `fileName(for:)`; `nil` for a name it cannot have produced.
    static func groupName(fromFileName file: String) -> String? {
        guard file.hasSuffix(".log") else { return nil }
        let encoded = Array(file.utf8.dropLast(4))
        var bytes: [UInt8] = []
        var i = 0
        while i < encoded.count {
            if encoded[i] == UInt8(ascii: "%") {
                guard i + 2 < encoded.count, let b = UInt8(String(decoding: encoded[i + 1...i + 2], as: UTF8.self), radix: 16) else {
                    return nil
                }
                bytes.append(b)
                i += 3
            } else {
                bytes.append(encoded[i])
                i += 1
            }
        }
        guard let name = String(validating: bytes, as: UTF8.self), fileName(for: name) == file else { return nil }
        return name
    }
}
