import Crypto
import Foundation
import Pipeline
import Testing
@testable import Recorder

/// Chained lines built by `AuditChainer` over a temporary state directory, one batch per call.
struct ChainFixture {
    let key = SymmetricKey(data: Array("unit-test-chain-key-0123".utf8))
    let dir: URL
    let store: ChainStateStore

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-chain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        store = ChainStateStore(dataDir: dir.path, lane: "file-test")
        try store.prepare()
    }

    func chainer(every: Int64 = 1000, intervalMillis: Int64 = 60_000) -> AuditChainer {
        AuditChainer(key: key, checkpointEvery: every, checkpointIntervalMillis: intervalMillis, store: store)
    }

    /// Events at `offsets` of one partition chained as one batch (positions saved); the sink
    /// lines, split into single lines.
    func batch(
        _ offsets: [Int64], chainID: String = "sluice.audit/0", every: Int64 = 1000, intervalMillis: Int64 = 60_000, timeStep: Int64 = 1
    ) throws -> [String] {
        let events = offsets.map { event(.requestReceived, request: "r-\($0)", time: 1_000 + $0 * timeStep, id: "e-\(chainID)-\($0)") }
        let span = ChainSpan(first: offsets.min()!, last: offsets.max()!)
        let chained = try chainer(every: every, intervalMillis: intervalMillis).chain(
            events: events, lines: events.map(AuditEventLine.encode), chains: Array(repeating: chainID, count: events.count), offsets: offsets,
            spans: [chainID: span])
        for (id, p) in chained.positions { try store.save(id, p) }
        return chained.lines.flatMap { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) }
    }

    func cleanUp() { try? FileManager.default.removeItem(at: dir) }
}

func bytes(_ key: SymmetricKey) -> [UInt8] { key.withUnsafeBytes { Array($0) } }

func verify(_ lines: [String], key: SymmetricKey, partial: Bool = false) -> AuditChainVerifier.Report {
    AuditChainVerifier.verify(sources: [Array(lines.map { $0 + "\n" }.joined().utf8)], key: key, partial: partial)
}

@Suite("Audit hash chain")
struct AuditChainTests {
    @Test("a chained line is the event's line with chain_id, prev, seq and chain appended; chain = HMAC(key, the bytes before the chain member)")
    func lineFormat() throws {
        let key = SymmetricKey(data: Array("unit-test-chain-key-0123".utf8))
        let e = event(.requestReceived, time: 5, id: "evt-1")
        let plain = AuditEventLine.encode(e)
        let prev = [UInt8](repeating: 0xab, count: 32)
        let (line, chain) = AuditChain.link(body: AuditChain.eventBody(plain), chainID: "sluice.audit/2", seq: 41, prev: prev, key: key)
        let canonical = Array(plain.dropLast(2)) + Array(#","chain_id":"sluice.audit/2","prev":"\#(String(repeating: "ab", count: 32))","seq":41"#.utf8)
        #expect(chain == Array(HMAC<SHA256>.authenticationCode(for: canonical, using: key)))
        #expect(line == canonical + Array(#","chain":"\#(AuditChain.hex(chain))"}"#.utf8) + [UInt8(ascii: "\n")])
        // Still the event for any JSON reader.
        #expect(try JSONDecoder().decode(AuditEvent.self, from: Data(line)) == e)
    }

    /// What is done to a verified chain of 6 events (lines: chain_start, e0…e5) and what verify says.
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let change: @Sendable ([String]) -> [String]
        let line: Int?
        let reason: AuditChainVerifier.Reason?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "untouched", change: { $0 }, line: nil, reason: nil),
        Case(name: "an event's path edited", change: { l in var l = l; l[3] = l[3].replacingOccurrences(of: "/v1/charges", with: "/v1/refunds"); return l }, line: 4, reason: .edited),
        Case(name: "a seq edited", change: { l in var l = l; l[2] = l[2].replacingOccurrences(of: #""seq":1,"#, with: #""seq":7,"#); return l }, line: 3, reason: .edited),
        Case(name: "a chain value edited", change: { l in
            var l = l
            let c = l[2].index(l[2].endIndex, offsetBy: -4)
            l[2].replaceSubrange(c...c, with: l[2][c] == "0" ? "1" : "0")
            return l
        }, line: 3, reason: .edited),
        Case(name: "an event deleted", change: { l in var l = l; l.remove(at: 3); return l }, line: 4, reason: .missingLineBefore),
        Case(name: "the chain_start deleted", change: { Array($0.dropFirst()) }, line: 1, reason: .missingLineBefore),
        Case(name: "two events swapped", change: { l in var l = l; l.swapAt(2, 3); return l }, line: 3, reason: .reordered),
        Case(name: "an event moved to the end", change: { l in var l = l; let x = l.remove(at: 1); l.append(x); return l }, line: 2, reason: .reordered),
        Case(name: "a redelivered run of lines (exact duplicates)", change: { $0 + $0[2...4] + ["", ""] }, line: nil, reason: nil),
        Case(name: "a line that is not JSON", change: { l in var l = l; l.insert("{\"kind\":", at: 2); return l }, line: 3, reason: .notJSON),
        Case(name: "an unchained event line", change: { l in
            var l = l
            l.insert(String(decoding: AuditEventLine.encode(event(.inspected, time: 9)).dropLast(), as: UTF8.self), at: 2)
            return l
        }, line: 3, reason: .notChained),
        Case(name: "the tail cut (not detectable)", change: { Array($0.dropLast(2)) }, line: nil, reason: nil),
    ]

    @Test("verify on changed chains", arguments: cases)
    func verifyTable(_ c: Case) throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let lines = try f.batch([0, 1, 2, 3, 4, 5])
        #expect(lines.count == 7)
        #expect(lines[0].hasPrefix(#"{"after_offset":-1,"kind":"chain_start""#))
        let report = verify(c.change(lines), key: f.key)
        #expect(report.failure?.location.line == c.line)
        #expect(report.failure?.reason == c.reason)
        if c.reason == nil {
            #expect(report.chains == 1)
            #expect(report.segmentStarts.count == 1)
        }
    }

    @Test("verify counts events, duplicates and segment starts")
    func counts() throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let lines = try f.batch([0, 1, 2, 3, 4, 5])
        let report = verify(lines + lines[2...4], key: f.key)
        #expect(report.verified)
        #expect(report.events == 6)
        #expect(report.duplicates == 3)
        #expect(report.linesChecked == 10)
    }

    @Test("another key: every line reads as edited")
    func wrongKey() throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let report = verify(try f.batch([0, 1]), key: SymmetricKey(data: Array("another-key-0123456789".utf8)))
        #expect(report.failure == .init(location: .init(source: 0, line: 1), chainID: "sluice.audit/0", reason: .edited))
    }

    @Test("checkpoints every N events carry the running count; a forged count is caught; --partial starts at any line")
    func checkpoints() throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let lines = try f.batch(Array(0..<7), every: 3)
        // chain_start, e0 e1 e2 cp(3), e3 e4 e5 cp(6), e6
        #expect(lines.count == 10)
        #expect(lines[4].hasPrefix(#"{"count":3,"kind":"checkpoint""#))
        #expect(lines[8].hasPrefix(#"{"count":6,"kind":"checkpoint""#))
        #expect(lines[4].contains(#""seq":2,"#))
        #expect(verify(lines, key: f.key).verified)
        // A checkpoint signed with the right key but a wrong count (as a Recorder bug would write).
        var forged = Array(lines[0...3])
        let prev = try #require(AuditChain.unhex(Array(String(forged[3].suffix(66).prefix(64)).utf8)))
        let bad = AuditChain.link(body: AuditChain.checkpointBody(count: 4, timeMillis: 1_002), chainID: "sluice.audit/0", seq: 2, prev: prev, key: f.key)
        forged.append(String(decoding: bad.line.dropLast(), as: UTF8.self))
        #expect(verify(forged, key: f.key).failure?.reason == .badCheckpoint(expected: 3, found: 4))
        // Rotated away: the input starts at e3.
        #expect(verify(Array(lines[5...]), key: f.key).failure?.reason == .missingLineBefore)
        let partial = verify(Array(lines[5...]), key: f.key, partial: true)
        #expect(partial.verified)
        #expect(partial.events == 4)
        #expect(partial.segmentStarts.map(\.afterOffset) == [nil])
        // The last checkpoint and what came after it (to judge a cut tail).
        #expect(partial.tails == [.init(chainID: "sluice.audit/0", lastCheckpointTimeMillis: 1_005, eventsAfterCheckpoint: 1)])
    }

    @Test("a checkpoint is due once the chain's events span checkpoint_interval of event time")
    func checkpointByTime() throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        // Events 400 ms apart, interval 1 s: a checkpoint after the event 1.2 s after the first
        // (the fourth), then none for the fifth (0.4 s after it).
        let lines = try f.batch(Array(0..<5), intervalMillis: 1_000, timeStep: 400)
        #expect(lines.filter { $0.hasPrefix(#"{"count":"#) }.count == 1)
        #expect(lines[5].hasPrefix(#"{"count":4,"kind":"checkpoint","time_ms":2200,"#))
        #expect(verify(lines, key: f.key).verified)
    }

    @Test("the chain does not depend on batch boundaries; a redelivered batch gives the same bytes; lost state starts a segment")
    func determinismAndState() throws {
        let whole = try ChainFixture()
        defer { whole.cleanUp() }
        let all = try whole.batch(Array(0..<9), every: 4)
        let split = try ChainFixture()
        defer { split.cleanUp() }
        var parts = try split.batch([0, 1], every: 4) + split.batch([2, 3, 4, 5], every: 4)
        // The Recorder died before committing offsets 6…8: they come again after a restart
        // (positions read from the files), and once more in other batches.
        split.store.dropCache()
        let first = try split.batch([6, 7, 8], every: 4)
        split.store.dropCache()
        let again = try split.batch([6, 7], every: 4) + split.batch([8], every: 4)
        #expect(first == again)
        parts += first
        #expect(parts == all)
        let report = verify(parts + again, key: whole.key)
        #expect(report.verified)
        #expect(report.duplicates == Int64(again.count))
        // The state is lost: the next batch starts a new segment, after the offset before it.
        try FileManager.default.removeItem(atPath: split.store.directory)
        try split.store.prepare()
        split.store.dropCache()
        let fresh = try split.batch([9, 10], every: 4)
        #expect(fresh[0].hasPrefix(#"{"after_offset":8,"kind":"chain_start""#))
        let afterLoss = verify(parts + fresh, key: whole.key)
        #expect(afterLoss.verified)
        #expect(afterLoss.segmentStarts.map(\.afterOffset) == [-1, 8])
        #expect(afterLoss.events == 11)
    }

    @Test("the saved positions: one line each, read back as written; a damaged file is an error, not a silent new segment")
    func stateFile() throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        _ = try f.batch([3, 4, 5], every: 2)
        let path = f.store.path(of: "sluice.audit/0")
        #expect(path.hasSuffix("/recorder/chains/file-test/sluice.audit-0"))
        let text = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        // offset 5, 3 events, checkpoint after the second (count 2, time 1004), then the chain.
        #expect(text.hasPrefix("5 3 2 1004 "))
        let saved = try f.store.positions("sluice.audit/0")
        f.store.dropCache()
        #expect(try f.store.positions("sluice.audit/0") == saved)
        try Data("5 3 2 1004 not-hex\n".utf8).write(to: URL(fileURLWithPath: path))
        f.store.dropCache()
        #expect(throws: RecorderError.self) { try f.store.positions("sluice.audit/0") }
        #expect(throws: RecorderError.self) { try f.batch([6]) }
    }

    @Test("batch ends are appended to the state file; read back, a redelivery's line replaces the later ones and a torn last line is ignored")
    func stateFileAppends() throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let a = try f.batch([0, 1])
        let b = try f.batch([2, 3])
        let c = try f.batch([4, 5])
        let again = try f.batch([2, 3])  // redelivered: the same lines, the same position at 3
        #expect(again == b)
        let path = f.store.path(of: "sluice.audit/0")
        let text = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        #expect(text.split(separator: "\n").map { $0.split(separator: " ")[0] } == ["1", "3", "5", "3"])
        let inMemory = try f.store.positions("sluice.audit/0")
        f.store.dropCache()
        let read = try f.store.positions("sluice.audit/0")
        #expect(read.map(\.offset) == [1, 3])
        #expect(read == inMemory)
        // A crash mid-append: the torn line is ignored, the chain continues from offset 3.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("5 5 0 10".utf8))
        try handle.close()
        f.store.dropCache()
        #expect(try f.store.positions("sluice.audit/0").map(\.offset) == [1, 3])
        #expect(try f.batch([4, 5]) == c)
        #expect(verify(a + b + c, key: f.key).verified)
    }

    @Test("chains of several partitions interleave; each is checked on its own")
    func interleavedChains() throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let a = try f.batch([0, 1, 2], chainID: "sluice.audit/0")
        let b = try f.batch([0, 1, 2], chainID: "sluice.audit/1")
        let mixed = [a[0], b[0], a[1], b[1], b[2], a[2], a[3], b[3]]
        let report = verify(mixed, key: f.key)
        #expect(report.verified)
        #expect(report.chains == 2)
        #expect(report.events == 6)
        // Swapping lines of two different chains changes nothing; within one chain it does.
        #expect(verify([b[0], a[0], a[1], b[1], b[2], a[2], a[3], b[3]], key: f.key).verified)
        let swapped = verify([a[0], b[0], a[2], b[1], b[2], a[1], a[3], b[3]], key: f.key)
        #expect(swapped.failure == .init(location: .init(source: 0, line: 3), chainID: "sluice.audit/0", reason: .reordered, lastGood: .init(source: 0, line: 1)))
    }

    @Test("files are one stream in the order given; locations name the file")
    func severalFiles() throws {
        let f = try ChainFixture()
        defer { f.cleanUp() }
        let lines = try f.batch(Array(0..<6))
        let older = Array(lines[0...3].map { $0 + "\n" }.joined().utf8)
        let newer = Array(lines[4...].map { $0 + "\n" }.joined().utf8)
        #expect(AuditChainVerifier.verify(sources: [older, newer], key: f.key).verified)
        let wrongOrder = AuditChainVerifier.verify(sources: [newer, older], key: f.key)
        #expect(wrongOrder.failure?.location == .init(source: 0, line: 1))
    }

    @Test("the chain key: recorder.chain_key when set (unreadable fails naming it), else derived from sealing.fingerprint_key")
    func keyResolution() throws {
        func config(_ recorder: String) throws -> SluiceConfig {
            let json = """
            {"sealing": {"keys": [{"id": "k", "secret": "env:K"}], "fingerprint_key": "env:FP"}, "recorder": {\(recorder)}}
            """
            return try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))
        }
        let env = ["FP": "fingerprint-key-0123456789", "CK": "chain-key-0123456789abc"]
        let derived = try AuditChain.key(config: config(""), environment: env)
        #expect(derived.source.contains("fingerprint_key"))
        let expected = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Array("fingerprint-key-0123456789".utf8)), info: Array("sluice audit chain v1".utf8),
            outputByteCount: 32)
        #expect(bytes(derived.key) == bytes(expected))
        let set = try AuditChain.key(config: config(#""chain_key": "env:CK""#), environment: env)
        #expect(bytes(set.key) == Array("chain-key-0123456789abc".utf8))
        #expect(throws: ConfigError.self) { try AuditChain.key(config: config(#""chain_key": "env:MISSING""#), environment: env) }
        do {
            _ = try AuditChain.key(config: config(#""chain_key": "env:MISSING""#), environment: env)
        } catch let error as ConfigError {
            #expect(error.path == "recorder.chain_key")
        }
        #expect(throws: ConfigError.self) { try config(#""checkpoint_every": 0"#) }
    }
}
