import Foundation
import Pipeline
import Testing
@testable import Recorder

@Suite("File sink after a restart")
struct FileSinkResumeTests {
    @Test("an event written before a crash and redelivered after it is not written twice; new events are")
    func redeliveredEventIsWrittenOnce() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-filesink-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("audit.jsonl").path
        let delivered = event(.delivered, stage: "forwarder", time: 1, id: "evt-delivered", status: 200)
        let first = try FileSink(path: path)
        try await first.write(event(.requestReceived, time: 0, id: "evt-received"))
        try await first.write(delivered)
        // The Recorder dies before committing `delivered`; the next one gets it again.
        let second = try FileSink(path: path)
        try await second.write(delivered)
        try await second.write(event(.requestReceived, request: "r-2", time: 2, id: "evt-next"))
        let ids = lines(of: path).compactMap { try? JSONDecoder().decode(AuditEvent.self, from: Data($0.utf8)).eventID }
        #expect(ids == ["evt-received", "evt-delivered", "evt-next"])
    }

    @Test("only whole lines of the tail are read: a window that starts mid-line skips that line")
    func tailWindowSkipsTheCutLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-filesink-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("audit.jsonl").path
        let a = AuditEventLine.encode(event(.requestReceived, time: 0, id: "evt-a"))
        let b = AuditEventLine.encode(event(.requestReceived, time: 1, id: "evt-b"))
        FileManager.default.createFile(atPath: path, contents: Data(a + b))
        let lineA = Array(a.dropLast()), lineB = Array(b.dropLast())
        #expect(FileSink.lines(inTailOf: path, bytes: 1 << 20) == [lineA, lineB])
        #expect(FileSink.lines(inTailOf: path, bytes: b.count + 5) == [lineB])
        #expect(FileSink.lines(inTailOf: dir.appendingPathComponent("missing").path, bytes: 100).isEmpty)
    }
}
