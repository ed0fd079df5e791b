import Foundation
import Pipeline
import Testing
@testable import Recorder

@Suite("Session replay")
struct SessionReplayTests {
    let finding = FindingSummary(rule: "github-pat", ruleClass: "credential", severity: "high", location: "body", start: 12, end: 52, fingerprint: "3fa9c2d1e0b7")

    @Test func loadOrdersByTimeDeduplicatesAndSkipsTornLines() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-replay-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = SessionRecordings(dataDir: dir)
        try store.prepare()
        let a = event(.requestReceived, time: 100, id: "a")
        let b = event(.inspected, stage: "inspector", time: 110, id: "b", findings: [finding], decision: .mask)
        let c = event(.delivered, stage: "forwarder", time: 300, id: "c", status: 200)
        for e in [c, a, b, a] { try store.append(e) }
        try AppendFile.append(Array("{\"kind\":\"deliv".utf8) + [10], toFileAt: store.path(for: c))
        #expect(try SessionReplay.load(dataDir: dir, sessionID: "s-1").map(\.eventID) == ["a", "b", "c"])
        #expect(throws: ReplayError.self) { try SessionReplay.load(dataDir: dir, sessionID: "nope") }
    }

    @Test func renderShowsRequestFindingsVerdictAndStatusInOrder() {
        let events = [
            event(.requestReceived, time: 1_700_000_000_000, id: "a"),
            event(.inspected, stage: "inspector", time: 1_700_000_000_010, id: "b", findings: [finding], decision: .mask),
            event(.delivered, stage: "forwarder", time: 1_700_000_000_250, id: "c", status: 200),
        ]
        let text = SessionReplay.render(events)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 5)
        #expect(lines[0] == "session s-1: 3 events, request r-1")
        #expect(lines[1].hasPrefix("2023-11-14T22:13:20.000Z  ingress    request_received    r-1  POST /v1/charges  connection=billing  identity=ci-bot"))
        #expect(lines[2].contains("inspected") && lines[2].contains("verdict=mask") && lines[2].contains("rules=github-pat"))
        #expect(lines[3] == "    finding github-pat (credential, high) in body [12, 52) fingerprint 3fa9c2d1e0b7")
        #expect(lines[4].contains("delivered") && lines[4].contains("status=200"))
    }

    @Test func renderEscapesControlCharacters() {
        var e = event(.requestReceived, time: 0, id: "a")
        e.path = "/x\u{1B}[2J\nfake line"
        let text = SessionReplay.render([e])
        #expect(!text.contains("\u{1B}"))
        #expect(text.split(separator: "\n").count == 2)
    }

    @Test func jsonRenderingRoundTrips() throws {
        let events = [event(.requestReceived, time: 1, id: "a"), event(.delivered, time: 2, id: "b", status: 204)]
        let json = try SessionReplay.renderJSON(events)
        #expect(try JSONDecoder().decode([AuditEvent].self, from: Data(json.utf8)) == events)
    }

    @Test func fileNamesAreSafeForAnySessionID() {
        for id in ["../../etc/passwd", "", ".hidden", "a/b", String(repeating: "é", count: 300), "s-1"] {
            let name = SessionRecordings.fileName(for: id)
            #expect(!name.contains("/"))
            #expect(!name.hasPrefix("."))
            #expect(name.utf8.count < 255)
            #expect(!name.hasPrefix("~"))  // the sessionless file's prefix
            #expect(name != SessionRecordings.sessionlessFileName)
        }
        #expect(SessionRecordings.fileName(for: "~requests") != SessionRecordings.sessionlessFileName)
        #expect(SessionRecordings.fileName(for: "s-1") == "s-1.jsonl")
        #expect(SessionRecordings.fileName(for: "a/b") != SessionRecordings.fileName(for: "a%2Fb"))
        let long1 = SessionRecordings.fileName(for: String(repeating: "a", count: 300) + "1")
        let long2 = SessionRecordings.fileName(for: String(repeating: "a", count: 300) + "2")
        #expect(long1 != long2)
    }
}
