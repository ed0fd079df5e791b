import BusContract
import Foundation
import Logging
import Metrics
import Pipeline
import Synchronization
import Testing
@testable import Recorder

/// 2025-06-10T12:00:00Z.
private let now: Int64 = 1_749_513_600_000 + 43_200_000
private let hour: Int64 = 3_600_000
private let day: Int64 = 86_400_000

@Suite("Recordings retention decision")
struct RecordingsRetentionTests {
    @Test(arguments: [
        // name, is a directory, modified, retention → deleted
        ("2025-06-10", true, now, Int64(1), false),            // today: never
        ("2025-06-11", true, now, Int64(1), false),            // a later day (clock skew): never
        ("2025-06-09", true, now, 60_000, true),               // yesterday, retention 1 minute
        ("2025-06-09", true, now, day, false),                 // yesterday noon is younger than 1 d
        ("2025-06-09", true, now, 12 * hour, true),            // its end is exactly the cutoff
        ("2025-06-09", true, now, 12 * hour + 1, false),
        ("2025-05-11", true, now, 30 * day, false),            // 2025-05-11 12:00 is the cutoff: part younger
        ("2025-05-10", true, now, 30 * day, true),
        ("2025-05-10", false, 0, 30 * day, false),             // a file with a day's name is not a day
        ("s-1.jsonl", false, now - 30 * day - 1, 30 * day, true),  // older layout, by modification time
        ("s-1.jsonl", false, now - 30 * day, 30 * day, false),
        ("s-1.jsonl", false, now + hour, Int64(1), false),     // modified in the future
        ("s-1.jsonl", true, 0, Int64(1), false),               // a directory named like a recording
        ("notes.txt", false, 0, Int64(1), false),              // not ours
        ("2025-5-10", true, 0, Int64(1), false),
    ])
    func decision(name: String, isDirectory: Bool, modified: Int64, retention: Int64, deleted: Bool) {
        let entry = RecordingsEntry(
            name: name, kind: RecordingsEntry.kind(name: name, isDirectory: isDirectory, isRegularFile: !isDirectory), modifiedMillis: modified)
        #expect(RecordingsRetention.isExpired(entry, nowMillis: now, retentionMillis: retention) == deleted)
    }

    @Test func expiredKeepsListingOrderAndOnlyExpiredEntries() {
        let entries = [
            RecordingsEntry(name: "2025-04-01", kind: .day(RecordingDay(name: "2025-04-01")!), modifiedMillis: now),
            RecordingsEntry(name: "2025-06-10", kind: .day(RecordingDay(name: "2025-06-10")!), modifiedMillis: now),
            RecordingsEntry(name: "README", kind: .other, modifiedMillis: 0),
            RecordingsEntry(name: "a.jsonl", kind: .legacyFile, modifiedMillis: now - 40 * day),
            RecordingsEntry(name: "b.jsonl", kind: .legacyFile, modifiedMillis: now),
        ]
        #expect(RecordingsRetention.expired(entries, nowMillis: now, retentionMillis: 30 * day).map(\.name) == ["2025-04-01", "a.jsonl"])
        #expect(RecordingsRetention.expired(entries, nowMillis: now, retentionMillis: 1_000 * day).map(\.name) == [])
    }
}

@Suite("Recordings janitor", .serialized)
struct RecordingsJanitorTests {
    /// Recordings on five days, two older-layout files and two entries that are not recordings.
    struct Fixture {
        let dataDir = temporaryDataDir()
        let store: SessionRecordings

        init() throws {
            store = SessionRecordings(dataDir: dataDir)
            try store.prepare()
            for (session, request, time) in [
                ("s-1", "r-1", now), ("s-2", "r-2", now), ("r-3", "r-3", now - hour),  // today: 3 files
                ("s-1", "r-4", now - day),                                          // yesterday
                ("s-5", "r-5", now - 40 * day), ("r-6", "r-6", now - 40 * day),     // 2025-05-01: 2 files
                ("s-7", "r-7", now - 31 * day),                                     // 2025-05-10
            ] {
                try store.append(event(.requestReceived, session: session, request: request, time: time))
            }
            for (session, modified) in [("old", now - 31 * day), ("new", now - hour)] {
                let path = store.legacyPath(forSession: session)
                try AppendFile.append(AuditEventLine.encode(event(.requestReceived, session: session, time: modified)), toFileAt: path)
                try FileManager.default.setAttributes(
                    [.modificationDate: Date(timeIntervalSince1970: Double(modified) / 1000)], ofItemAtPath: path)
            }
            FileManager.default.createFile(atPath: store.directory + "/README", contents: Data("not a recording".utf8))
            try FileManager.default.createDirectory(atPath: store.directory + "/tmp", withIntermediateDirectories: false)
        }

        func size(_ relative: String) -> Int64 {
            let path = store.directory + "/" + relative
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return 0 }
            if !isDirectory.boolValue { return (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0 }
            return names(in: path).reduce(0) { $0 + size(relative + "/" + $1) }
        }

        func janitor(
            retention: Duration = .seconds(30 * 86_400), probe: MetricsProbe, interval: Duration = .seconds(600),
            clock: @escaping @Sendable () -> Int64 = { now },
            remove: @escaping @Sendable (String) throws -> Void = { try FileManager.default.removeItem(atPath: $0) }
        ) -> RecordingsJanitor {
            RecordingsJanitor(
                recordings: store, retention: retention, logger: Logger(label: "janitor-test"), interval: interval,
                metricsFactory: probe, nowMillis: clock, sleep: { try await Task.sleep(for: $0) }, remove: remove)
        }

        func cleanUp() { try? FileManager.default.removeItem(atPath: dataDir) }
    }

    @Test func passDeletesExpiredDaysAndOldFilesKeepsTheRestAndUpdatesMetrics() throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        #expect(names(in: f.store.directory) == ["2025-05-01", "2025-05-10", "2025-06-09", "2025-06-10", "README", "new.jsonl", "old.jsonl", "tmp"])
        let deletedBytes = f.size("2025-05-01") + f.size("2025-05-10") + f.size("old.jsonl")
        let keptBytes = f.size("2025-06-09") + f.size("2025-06-10") + f.size("new.jsonl")
        let probe = MetricsProbe()
        let janitor = f.janitor(probe: probe)

        let pass = janitor.prune()
        #expect(pass.deleted == ["2025-05-01", "2025-05-10", "old.jsonl"])
        #expect(pass.deletedFiles == 4)
        #expect(pass.deletedBytes == deletedBytes)
        #expect(pass.failed == [])
        #expect(pass.files == 5)
        #expect(pass.bytes == keptBytes)
        #expect(names(in: f.store.directory) == ["2025-06-09", "2025-06-10", "README", "new.jsonl", "tmp"])
        #expect(probe.value("sluice_recordings_files") == 5)
        #expect(probe.value("sluice_recordings_disk_bytes") == keptBytes)
        #expect(probe.value("sluice_recordings_deleted_total") == 4)
        // What is kept still replays.
        #expect(try SessionReplay.load(dataDir: f.dataDir, sessionID: "s-1").count == 2)
        #expect(try SessionReplay.load(dataDir: f.dataDir, sessionID: "new").count == 1)
        #expect(throws: ReplayError.self) { try SessionReplay.load(dataDir: f.dataDir, sessionID: "s-5") }

        // A second pass finds nothing to delete; the gauges are set again, the counter does not move.
        let again = janitor.prune()
        #expect(again.deleted == [])
        #expect(again.files == 5)
        #expect(probe.value("sluice_recordings_deleted_total") == 4)
        #expect(probe.value("sluice_recordings_files") == 5)
    }

    @Test func failedDeleteIsLoggedCountedAndDoesNotStopThePass() throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        let probe = MetricsProbe()
        let stuckBytes = f.size("2025-05-01")
        let keptBytes = f.size("2025-06-09") + f.size("2025-06-10") + f.size("new.jsonl")
        let janitor = f.janitor(probe: probe, remove: { path in
            if path.hasSuffix("/2025-05-01") { throw CocoaError(.fileWriteNoPermission) }
            try FileManager.default.removeItem(atPath: path)
        })
        let pass = janitor.prune()
        #expect(pass.failed == ["2025-05-01"])
        #expect(pass.deleted == ["2025-05-10", "old.jsonl"])
        #expect(pass.files == 5 + 2)
        #expect(pass.bytes == keptBytes + stuckBytes)
        #expect(probe.value("sluice_recordings_janitor_failures_total", [("operation", "delete")]) == 1)
        #expect(probe.value("sluice_recordings_files") == 7)
        #expect(probe.value("sluice_recordings_deleted_total") == 2)
    }

    @Test func unlistableDirectoryIsCountedAndLeavesTheGaugesAlone() throws {
        let dataDir = temporaryDataDir()
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let store = SessionRecordings(dataDir: dataDir)
        FileManager.default.createFile(atPath: store.directory, contents: Data())  // a file where the directory should be
        let probe = MetricsProbe()
        let janitor = RecordingsJanitor(recordings: store, retention: .seconds(60), logger: Logger(label: "janitor-test"), metricsFactory: probe)
        let pass = janitor.prune()
        #expect(pass.failed == [store.directory])
        #expect(pass.files == nil)
        #expect(probe.value("sluice_recordings_janitor_failures_total", [("operation", "list")]) == 1)
        #expect(probe.value("sluice_recordings_files") == nil)
        // No recordings directory yet is not a failure: nothing on disk.
        let empty = RecordingsJanitor(
            recordings: SessionRecordings(dataDir: dataDir + "/absent"), retention: .seconds(60), logger: Logger(label: "janitor-test"),
            metricsFactory: probe)
        #expect(empty.prune().files == 0)
        #expect(probe.value("sluice_recordings_files") == 0)
    }

    @Test func runPrunesAtStartThenPeriodicallyUntilCancelled() async throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        let probe = MetricsProbe()
        let janitor = f.janitor(probe: probe, interval: .milliseconds(20))
        let task = Task { await janitor.run() }
        #expect(await eventually { names(in: f.store.directory) == ["2025-06-09", "2025-06-10", "README", "new.jsonl", "tmp"] })
        // A day past retention appears after the first pass (moved in whole, so no pass sees it
        // half made); a later pass deletes it.
        let staging = SessionRecordings(dataDir: f.dataDir + "/staging")
        try staging.prepare()
        let late = event(.requestReceived, session: "late", request: "r-late", time: now - 60 * day)
        try staging.append(late)
        try FileManager.default.moveItem(
            atPath: staging.directory(for: RecordingDay(millis: late.timeMillis)), toPath: f.store.directory + "/2025-04-11")
        #expect(await eventually { !names(in: f.store.directory).contains("2025-04-11") })
        #expect(await eventually { probe.value("sluice_recordings_deleted_total") == 5 })
        #expect(names(in: f.store.directory(for: RecordingDay(millis: now))).count == 3)
        task.cancel()
        await task.value
    }

    @Test func runKeepsGoingWhenDeletesFail() async throws {
        let f = try Fixture()
        defer { f.cleanUp() }
        let probe = MetricsProbe()
        let attempts = Tally()
        let janitor = f.janitor(probe: probe, interval: .milliseconds(10), remove: { _ in
            attempts.add()
            throw CocoaError(.fileWriteNoPermission)
        })
        let task = Task { await janitor.run() }
        // Three expired entries a pass: several passes ran, each trying every one again.
        #expect(await eventually { attempts.count >= 9 })
        #expect(await eventually { (probe.value("sluice_recordings_janitor_failures_total", [("operation", "delete")]) ?? 0) >= 9 })
        task.cancel()
        await task.value
        #expect(names(in: f.store.directory).count == 8)
    }
}

@Suite("Recorder runs the recordings janitor", .serialized)
struct RecorderServiceRetentionTests {
    @Test func serviceDeletesDaysPastRecorderRetention() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let store = SessionRecordings(dataDir: env.dataDir)
        try store.prepare()
        let wallNow = Int64(Date().timeIntervalSince1970 * 1000)
        let old = event(.requestReceived, session: "s-old", request: "r-old", time: wallNow - 3 * day)
        try store.append(old)
        #expect(FileManager.default.fileExists(atPath: store.path(for: old)))
        let json = """
            {"data_dir": "\(env.dataDir)",
             "sealing": {"keys": [{"id": "test", "secret": "env:UNUSED"}], "fingerprint_key": "env:UNUSED"},
             "recorder": {"sinks": [], "retention": "1d"}}
            """
        let config = try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))
        let current = event(.requestReceived, session: "s-now", request: "r-now", time: wallNow)
        try await env.publish(current)
        let task = Task { try await RecorderService(config: config, context: env.context).run() }
        #expect(await eventually { !FileManager.default.fileExists(atPath: store.directory(for: RecordingDay(millis: old.timeMillis))) })
        #expect(await eventually { lines(of: store.path(for: current)).count == 1 })
        task.cancel()
        try await task.value
        #expect(try SessionReplay.load(dataDir: env.dataDir, sessionID: "s-now") == [current])
    }
}

/// A counter shared with `@Sendable` closures.
final class Tally: Sendable {
    private let value = Mutex(0)
    var count: Int { value.withLock { $0 } }
    func add() { value.withLock { $0 += 1 } }
}

/// A `MetricsFactory` that keeps the last value of every gauge and the total of every counter,
/// keyed by label and dimensions, for tests to read.
final class MetricsProbe: MetricsFactory {
    private let values = Mutex<[String: Int64]>([:])

    /// The current value, or `nil` when the metric was never set.
    func value(_ label: String, _ dimensions: [(String, String)] = []) -> Int64? {
        values.withLock { $0[Self.key(label, dimensions)] }
    }

    static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        label + dimensions.sorted { $0.0 < $1.0 }.map { "{\($0.0)=\($0.1)}" }.joined()
    }

    fileprivate func update(_ key: String, _ change: (inout Int64) -> Void) {
        values.withLock { change(&$0[key, default: 0]) }
    }

    final class Handler: CounterHandler, RecorderHandler, TimerHandler, Sendable {
        let key: String
        let probe: MetricsProbe
        init(key: String, probe: MetricsProbe) {
            self.key = key
            self.probe = probe
        }
        func increment(by amount: Int64) { probe.update(key) { $0 += amount } }
        func reset() { probe.update(key) { $0 = 0 } }
        func record(_ value: Int64) { probe.update(key) { $0 = value } }
        func record(_ value: Double) { probe.update(key) { $0 = Int64(value) } }
        func recordNanoseconds(_ duration: Int64) { probe.update(key) { $0 = duration } }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(key: Self.key(label, dimensions), probe: self)
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(key: Self.key(label, dimensions), probe: self)
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(key: Self.key(label, dimensions), probe: self)
    }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
