import Foundation
import Logging
import Pipeline
import Synchronization
import Testing
@testable import Recorder

/// A clock the test moves.
final class TestClock: Sendable {
    private let time: Mutex<Date>
    init(_ start: Date) { time = Mutex(start) }
    var now: Date { time.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { time.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

@Suite("File sink rotation")
struct FileSinkRotationTests {
    /// 2026-11-29T22:00:00Z
    static let start = Date(timeIntervalSince1970: 1_795_989_600)

    /// A batch of chained lines for the file sink: `lines[i]` one line with its newline.
    static func sinkBatch(_ f: ChainFixture, _ offsets: [Int64]) throws -> (events: [AuditEvent], lines: [[UInt8]]) {
        let lines = try f.batch(offsets).map { Array(($0 + "\n").utf8) }
        return (lines.map { _ in event(.requestReceived, time: 0) }, lines)
    }

    static func contents(_ paths: [String]) -> [[UInt8]] { paths.map { Array(FileManager.default.contents(atPath: $0) ?? Data()) } }

    @Test("rotate_bytes: renamed between batches to <path>.<UTC stamp>[-NNN]; the rotated files then the current one hold every line once and verify as one chain")
    func rotatesBySizeAndVerifiesAsOneChain() async throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let path = f.dir.appendingPathComponent("audit.jsonl").path
        let clock = TestClock(Self.start)
        let sink = try FileSink(path: path, rotation: .init(maxBytes: 3000), now: { clock.now })
        var written: [UInt8] = []
        for b in 0..<10 {
            let (events, lines) = try Self.sinkBatch(f, [Int64(b * 3), Int64(b * 3 + 1), Int64(b * 3 + 2)])
            try await sink.write(batch: events, lines: lines)
            written += lines.joined()
            if b == 4 { clock.advance(1) }
        }
        let rotated = FileSink.rotatedFiles(of: path)
        #expect(rotated.count >= 4, "\(rotated)")
        // Names: the UTC stamp of the rotation, a counter when the second already has one.
        let names = rotated.map { URL(fileURLWithPath: $0).lastPathComponent }
        #expect(names.first == "audit.jsonl.20261129T220000Z")
        #expect(names.contains("audit.jsonl.20261129T220000Z-001"))
        #expect(names.contains("audit.jsonl.20261129T220001Z"))
        #expect(names == names.sorted())
        // Batches are never split; no file beyond rotate_bytes (every batch is smaller).
        let files = Self.contents(rotated + [path])
        for (name, bytes) in zip(rotated + [path], files) {
            #expect(bytes.count <= 3000 && bytes.count > 0, "\(name): \(bytes.count) bytes")
            #expect(bytes.last == UInt8(ascii: "\n"))
        }
        #expect(Array(files.joined()) == written)
        let report = AuditChainVerifier.verify(sources: files, key: f.key)
        #expect(report.verified, "\(String(describing: report.failure))")
        #expect(report.events == 30 && report.duplicates == 0)

        // A rotated file removed from the middle: the check fails at the first line after the
        // gap and names the chain's last good line, in the file before it.
        let gap = rotated.count / 2
        try FileManager.default.removeItem(atPath: rotated[gap])
        let remaining = FileSink.rotatedFiles(of: path) + [path]
        let broken = AuditChainVerifier.verify(sources: Self.contents(remaining), key: f.key)
        let failure = try #require(broken.failure)
        #expect(failure.reason == .missingLineBefore)
        #expect(failure.location == .init(source: gap, line: 1))
        let lastGood = try #require(failure.lastGood)
        #expect(lastGood.source == gap - 1)
        #expect(lastGood.line == Self.contents([remaining[gap - 1]])[0].split(separator: UInt8(ascii: "\n")).count)
    }

    @Test("keep: only the newest rotated files stay; each deletion is logged with its name")
    func keepDeletesTheOldestAndLogs() async throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let path = f.dir.appendingPathComponent("audit.jsonl").path
        let logs = CapturedLogs()
        let clock = TestClock(Self.start)
        let sink = try FileSink(
            path: path, rotation: .init(maxBytes: 10, keep: 2), logger: Logger(label: "t") { _ in CapturingLogHandler(logs: logs) },
            now: { clock.now })
        var batches: [[UInt8]] = []
        for b in 0..<6 {
            let (events, lines) = try Self.sinkBatch(f, [Int64(b)])
            try await sink.write(batch: events, lines: lines)
            batches.append(Array(lines.joined()))
            clock.advance(1)
        }
        // Every batch rotated the one before: 5 rotations, 2 kept, the newest.
        let rotated = FileSink.rotatedFiles(of: path)
        #expect(rotated.count == 2)
        #expect(Self.contents(rotated + [path]) == Array(batches.suffix(3)))
        #expect(logs.messages.filter { $0.contains("deleted a rotated audit file") }.count == 3)
        // What is left verifies with --partial (its first line continues a deleted one).
        #expect(AuditChainVerifier.verify(sources: Self.contents(rotated + [path]), key: f.key, partial: true).verified)
        #expect(!AuditChainVerifier.verify(sources: Self.contents(rotated + [path]), key: f.key).verified)
    }

    @Test("rotate_interval: the first batch that long after the file was started goes to a new file")
    func rotatesByInterval() async throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let path = f.dir.appendingPathComponent("audit.jsonl").path
        let clock = TestClock(Self.start)
        let sink = try FileSink(path: path, rotation: .init(interval: .seconds(3600)), now: { clock.now })
        var (events, lines) = try Self.sinkBatch(f, [0])
        try await sink.write(batch: events, lines: lines)
        clock.advance(3599)
        (events, lines) = try Self.sinkBatch(f, [1])
        try await sink.write(batch: events, lines: lines)
        #expect(FileSink.rotatedFiles(of: path).isEmpty)
        clock.advance(1)
        (events, lines) = try Self.sinkBatch(f, [2])
        try await sink.write(batch: events, lines: lines)
        #expect(FileSink.rotatedFiles(of: path).map { URL(fileURLWithPath: $0).lastPathComponent } == ["audit.jsonl.20261129T230000Z"])
        #expect(eventLines(of: path).count == 1)
        #expect(AuditChainVerifier.verify(sources: Self.contents(FileSink.rotatedFiles(of: path) + [path]), key: f.key).verified)
    }

    @Test("a crash right after the rename: the restarted sink creates the file and does not write the redelivered batch again")
    func crashMidRotationLosesNothing() async throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let path = f.dir.appendingPathComponent("audit.jsonl").path
        let first = try FileSink(path: path)
        let a = try Self.sinkBatch(f, [0, 1])
        let b = try Self.sinkBatch(f, [2, 3])
        try await first.write(batch: a.events, lines: a.lines)
        try await first.write(batch: b.events, lines: b.lines)
        // The rename of a rotation happened; the process died before it opened the new file and
        // before the Recorder committed batch b.
        #expect(rename(path, path + ".20261129T220000Z") == 0)
        let second = try FileSink(path: path, rotation: .init(maxBytes: 1 << 20))
        try await second.write(batch: b.events, lines: b.lines)
        let c = try Self.sinkBatch(f, [4])
        try await second.write(batch: c.events, lines: c.lines)
        let files = Self.contents(FileSink.rotatedFiles(of: path) + [path])
        #expect(files == [Array((a.lines + b.lines).joined()), Array(c.lines.joined())])
        let report = AuditChainVerifier.verify(sources: files, key: f.key)
        #expect(report.verified && report.events == 5 && report.duplicates == 0)
    }

    @Test("SinkFactory: rotate_bytes, rotate_interval and keep reach the file sink")
    func factory() throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let sinks = try SinkFactory.makeSinks(
            try env.config(sinks: #"[{"kind":"file","path":"\#(env.sinkPath)","rotate_bytes":4096,"rotate_interval":"1h","keep":3}]"#).recorder.sinks,
            environment: [:])
        let file = try #require(sinks.first as? FileSink)
        #expect(file.rotation == FileSink.Rotation(maxBytes: 4096, interval: .seconds(3600), keep: 3))
    }
}
