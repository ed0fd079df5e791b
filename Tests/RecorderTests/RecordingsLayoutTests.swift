import BusContract
import Foundation
import Pipeline
import Testing
@testable import Recorder

/// 2025-06-01T00:00:00Z and 2025-06-02T00:00:00Z in milliseconds.
let june1: Int64 = 1_748_736_000_000
let june2: Int64 = 1_748_822_400_000

/// A fresh temporary data directory (removed by the caller).
func temporaryDataDir() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("sluice-recordings-\(UUID().uuidString)").path
}

/// The names in a directory, sorted (empty when it does not exist).
func names(in directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}

@Suite("Recordings layout: one file per session per day")
struct RecordingsLayoutTests {
    @Test(arguments: [
        // session, request, time → path under recordings/
        ("s-1", "r-1", june1, "2025-06-01/s-1.jsonl"),
        ("s-1", "r-2", june2 - 1, "2025-06-01/s-1.jsonl"),
        ("s-1", "r-3", june2, "2025-06-02/s-1.jsonl"),
        ("r-9", "r-9", june1 + 43_200_000, "2025-06-01/~requests.jsonl"),
        ("r-10", "r-10", june1 + 1, "2025-06-01/~requests.jsonl"),
        ("r-10", "r-11", june1 + 1, "2025-06-01/r-10.jsonl"),
        ("~requests", "r-1", june1, "2025-06-01/%7Erequests.jsonl"),
        ("../../etc", "r-1", 0, "1970-01-01/%2E.%2F..%2Fetc.jsonl"),
        ("s-1", "r-1", -1, "1969-12-31/s-1.jsonl"),
        ("s-1", "r-1", 951_782_400_000, "2000-02-29/s-1.jsonl"),
        ("s-1", "r-1", Int64.max, "9999-12-31/s-1.jsonl"),
        ("s-1", "r-1", Int64.min, "0000-01-01/s-1.jsonl"),
    ])
    func pathIsAPureFunctionOfIdsAndDay(session: String, request: String, time: Int64, expected: String) {
        #expect(SessionRecordings.relativePath(sessionID: session, requestID: request, timeMillis: time) == expected)
        let store = SessionRecordings(dataDir: "/data")
        #expect(store.path(for: event(.requestReceived, session: session, request: request, time: time)) == "/data/recordings/" + expected)
    }

    @Test(arguments: [
        ("1970-01-01", Int64(0)), ("2025-06-01", june1), ("2000-02-29", 951_782_400_000), ("1969-12-31", -86_400_000),
        ("0000-01-01", RecordingDay.firstDay * 86_400_000), ("9999-12-31", RecordingDay.lastDay * 86_400_000),
    ])
    func dayNamesRoundTrip(name: String, start: Int64) throws {
        let day = try #require(RecordingDay(name: name))
        #expect(day.name == name)
        #expect(day.startMillis == start)
        #expect(day.endMillis == start + 86_400_000)
        #expect(RecordingDay(millis: start) == day)
        #expect(RecordingDay(millis: start + 86_399_999) == day)
    }

    @Test(arguments: ["2025-02-29", "2025-13-01", "2025-00-10", "2025-06-00", "2025-06-31", "2025-6-01", "20250601", "2025-06-01x", "abcd-ef-gh", "", "-001-01-01", "2025_06_01"])
    func nonDayNamesAreRefused(name: String) {
        #expect(RecordingDay(name: name) == nil)
    }

    @Test func thousandSessionlessRequestsOnOneDayMakeOneFile() throws {
        let dir = temporaryDataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = SessionRecordings(dataDir: dir)
        try store.prepare()
        var ids: [String] = []
        for i in 0..<1_000 {
            let id = UUID().uuidString.lowercased()
            ids.append(id)
            let t = june1 + Int64(i) * 60_000
            try store.append(event(.requestReceived, session: id, request: id, time: t))
            try store.append(event(.delivered, session: id, request: id, stage: "forwarder", time: t + 5, status: 200))
        }
        #expect(names(in: store.directory) == ["2025-06-01"])
        #expect(names(in: store.directory + "/2025-06-01") == [SessionRecordings.sessionlessFileName])
        #expect(lines(of: store.sessionlessPath(day: RecordingDay(millis: june1))).count == 2_000)
        // Each request still replays alone, from the shared file.
        let replay = try SessionReplay.load(dataDir: dir, sessionID: ids[500])
        #expect(replay.map(\.kind) == [.requestReceived, .delivered])
        #expect(replay.allSatisfy { $0.requestID == ids[500] })
    }

    @Test func sessionsAndSessionlessRequestsOnTwoDays() throws {
        let dir = temporaryDataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = SessionRecordings(dataDir: dir)
        try store.prepare()
        for e in [
            event(.requestReceived, session: "s-1", request: "r-1", time: june2 - 10),
            event(.requestReceived, session: "s-2", request: "r-2", time: june2 - 5),
            event(.requestReceived, session: "r-3", request: "r-3", time: june2 - 1),
            event(.delivered, session: "s-1", request: "r-1", time: june2 + 10, status: 200),
            event(.requestReceived, session: "r-4", request: "r-4", time: june2 + 20),
        ] { try store.append(e) }
        #expect(names(in: store.directory) == ["2025-06-01", "2025-06-02"])
        #expect(names(in: store.directory + "/2025-06-01") == ["s-1.jsonl", "s-2.jsonl", "~requests.jsonl"])
        #expect(names(in: store.directory + "/2025-06-02") == ["s-1.jsonl", "~requests.jsonl"])
    }
}

@Suite("Session replay across days and layouts")
struct ReplayAcrossDaysTests {
    @Test func sessionSpanningMidnightIsReplayedWholeInOrderWithoutDuplicates() throws {
        let dir = temporaryDataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = SessionRecordings(dataDir: dir)
        try store.prepare()
        let a = event(.requestReceived, request: "r-1", time: june2 - 100, id: "a")
        let b = event(.inspected, request: "r-1", stage: "inspector", time: june2 - 1, id: "b", decision: .allow)
        let c = event(.delivered, request: "r-1", stage: "forwarder", time: june2 + 50, id: "c", status: 200)
        let d = event(.requestReceived, request: "r-2", time: june2 + 60, id: "d")
        for e in [c, a, d, b, a, c] { try store.append(e) }  // redelivered copies go to the same files
        #expect(lines(of: store.path(for: a)).count == 3)
        #expect(lines(of: store.path(for: c)).count == 3)
        #expect(try SessionReplay.load(dataDir: dir, sessionID: "s-1").map(\.eventID) == ["a", "b", "c", "d"])
    }

    @Test func olderLayoutFilesAreStillReplayedWithNewOnes() throws {
        let dir = temporaryDataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = SessionRecordings(dataDir: dir)
        try store.prepare()
        // Recorded before the upgrade: recordings/<name>.jsonl, including a copy later redelivered.
        let old1 = event(.requestReceived, request: "r-1", time: june1, id: "old-1")
        let old2 = event(.delivered, request: "r-1", stage: "forwarder", time: june1 + 200, id: "old-2", status: 200)
        for e in [old1, old2] { try AppendFile.append(AuditEventLine.encode(e), toFileAt: store.legacyPath(forSession: "s-1")) }
        try AppendFile.append(AuditEventLine.encode(event(.requestReceived, session: "s-other", time: june1, id: "x")), toFileAt: store.legacyPath(forSession: "s-other"))
        // After the upgrade: the redelivered copy and a new request, per day.
        let new1 = event(.requestReceived, request: "r-2", time: june2 + 5, id: "new-1")
        for e in [old2, new1] { try store.append(e) }
        #expect(try SessionReplay.load(dataDir: dir, sessionID: "s-1").map(\.eventID) == ["old-1", "old-2", "new-1"])
        #expect(try SessionReplay.load(dataDir: dir, sessionID: "s-other").map(\.eventID) == ["x"])
    }

    @Test func sessionlessRequestIsFoundInTheSharedFilesAndNothingElseLeaksIn() throws {
        let dir = temporaryDataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = SessionRecordings(dataDir: dir)
        try store.prepare()
        let r5a = event(.requestReceived, session: "r-5", request: "r-5", time: june2 - 1, id: "r5a")
        let r5b = event(.delivered, session: "r-5", request: "r-5", stage: "forwarder", time: june2 + 1, id: "r5b", status: 200)
        // A later request whose caller gave r-5 as its session (the id reused as a session id).
        let later = event(.requestReceived, session: "r-5", request: "r-6", time: june2 + 10, id: "later")
        // Lines that mention "r-5" without being its events must not leak in.
        var decoy = event(.requestReceived, session: "r-7", request: "r-7", time: june2 - 2, id: "decoy")
        decoy.path = "/\"r-5\""
        let prefix = event(.requestReceived, session: "r-55", request: "r-55", time: june2 - 3, id: "prefix")
        for e in [decoy, prefix, r5a, r5b, later, r5a] { try store.append(e) }
        #expect(try SessionReplay.load(dataDir: dir, sessionID: "r-5").map(\.eventID) == ["r5a", "r5b", "later"])
        #expect(try SessionReplay.load(dataDir: dir, sessionID: "r-7").map(\.eventID) == ["decoy"])
    }

    @Test(arguments: ["a\"b/c", "é", "", "x\u{0}y", String(repeating: "z", count: 300)])
    func idsThatNeedEscapingAreFound(session: String) throws {
        let dir = temporaryDataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = SessionRecordings(dataDir: dir)
        try store.prepare()
        try store.append(event(.requestReceived, session: session, request: "r-1", time: june1, id: "one"))
        try store.append(event(.requestReceived, session: session + "x", request: "r-2", time: june1, id: "other"))
        // Sessionless: the same id as session and request.
        try store.append(event(.delivered, session: session, request: session, time: june1 + 1, id: "two", status: 200))
        #expect(try SessionReplay.load(dataDir: dir, sessionID: session).map(\.eventID) == ["one", "two"])
    }

    @Test func missingSessionAndUnreadableRecordingAreErrors() throws {
        let dir = temporaryDataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: ReplayError.self) { try SessionReplay.load(dataDir: dir, sessionID: "s-1") }  // no recordings at all
        let store = SessionRecordings(dataDir: dir)
        try store.prepare()
        try store.append(event(.requestReceived, time: june1))
        #expect(throws: ReplayError.self) { try SessionReplay.load(dataDir: dir, sessionID: "s-2") }
        // A file that cannot be read (here a directory in its place) fails the load instead of hiding events.
        try FileManager.default.createDirectory(atPath: store.path(forSession: "s-1", day: RecordingDay(millis: june2)), withIntermediateDirectories: true)
        #expect {
            try SessionReplay.load(dataDir: dir, sessionID: "s-1")
        } throws: { error in
            if case .unreadable(let path)? = error as? ReplayError { return path.hasSuffix("2025-06-02/s-1.jsonl") }
            return false
        }
    }

    @Test func linesLongerThanAReadChunkAndATornTailAreHandled() throws {
        let dir = temporaryDataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = SessionRecordings(dataDir: dir)
        try store.prepare()
        var big = event(.requestReceived, time: june1, id: "big")
        big.details = ["note": String(repeating: "n", count: LineReader.chunkSize + 10)]
        try store.append(big)
        try store.append(event(.delivered, time: june1 + 1, id: "after", status: 200))
        try AppendFile.append(Array("{\"event_id\":\"torn".utf8), toFileAt: store.path(for: big))  // no newline: torn tail
        #expect(try SessionReplay.load(dataDir: dir, sessionID: "s-1").map(\.eventID) == ["big", "after"])
    }
}

@Suite("Recorder files events per day", .serialized)
struct RecorderServiceLayoutTests {
    @Test func serviceFilesSessionsPerDayAndSessionlessRequestsInOneFile() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let yesterday = now - 86_400_000
        let events = [
            event(.requestReceived, session: "s-1", request: "r-1", time: yesterday),
            event(.delivered, session: "s-1", request: "r-1", stage: "forwarder", time: now, status: 200),
        ] + (0..<20).map { i in event(.requestReceived, session: "q-\(i)", request: "q-\(i)", time: now) }
        for e in events { try await env.publish(e) }
        let service = try RecorderService(config: env.config(), context: env.context)
        let task = Task { try await service.run() }
        let store = SessionRecordings(dataDir: env.dataDir)
        let today = RecordingDay(millis: now)
        #expect(await eventually { lines(of: store.sessionlessPath(day: today)).count == 20 && lines(of: store.path(for: events[1])).count == 1 })
        task.cancel()
        try await task.value
        #expect(names(in: store.directory(for: today)) == ["s-1.jsonl", "~requests.jsonl"])
        #expect(lines(of: store.path(for: events[0])).count == 1)
        #expect(try SessionReplay.load(dataDir: env.dataDir, sessionID: "s-1") == Array(events.prefix(2)))
        #expect(try SessionReplay.load(dataDir: env.dataDir, sessionID: "q-7") == [events[9]])
    }
}
