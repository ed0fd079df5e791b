import Foundation
import Pipeline
import Testing
@testable import Recorder

/// `RecordingContent.json()` and `Line.json()` are written by hand; they must be byte for byte
/// what `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` writes (the encoding recording
/// lines had before, and what readers decode).
@Suite("Recorder: recording content JSON")
struct RecordingContentJSONTests {
    static func foundation<T: Encodable>(_ value: T) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try e.encode(value))
    }

    static func request(body: String, headers: [HTTPField], query: String, maxBodyBytes: Int) -> RecordingContent {
        let meta = RequestMetadata(
            requestID: "r-1", sessionID: "s/1", identity: CallerIdentity(id: "ci-bot", groups: [], method: "api_key"),
            connection: "billing", receivedAtMillis: 1, deadlineMillis: 2, replyTo: "ingress-1")
        let http = HTTPRequestData(method: "POST", path: "/v1/charges", query: query, headers: headers, body: Data(body.utf8))
        return RecordingContent(
            inspected: InspectedRequest(metadata: meta, verdict: Verdict(decision: .mask), findings: [], request: http),
            timeMillis: 1_764_000_000_123, maxBodyBytes: maxBodyBytes)
    }

    static func response(body: [UInt8], status: Int, headers: [HTTPField]) -> RecordingContent {
        RecordingContent(
            reply: Reply(requestID: "r-\"2\"", sessionID: "s\\2", response: HTTPResponseData(status: status, headers: headers, body: Data(body))),
            timeMillis: -5, maxBodyBytes: 64)
    }

    static let table: [RecordingContent] = [
        request(body: #"{"note":"a/b","token":"[MASKED:github-pat:3fa9]"}"#, headers: [HTTPField("Content-Type", "application/json")], query: "dry_run=1", maxBodyBytes: 1 << 20),
        request(body: "", headers: [], query: "", maxBodyBytes: 16),
        request(body: String(repeating: "x", count: 100), headers: [HTTPField("X-Ctl", "tab\there\u{1}\u{1f}\"q\"\\"), HTTPField("X-Uni", "é✓😀")], query: "", maxBodyBytes: 10),
        response(body: Array(0...255), status: 200, headers: [HTTPField("Content-Type", "application/octet-stream")]),
        response(body: [], status: 502, headers: []),
    ]

    @Test("the hand-written content JSON is Foundation's", arguments: table)
    func contentMatchesFoundation(_ content: RecordingContent) throws {
        #expect(content.json() == (try Self.foundation(content)))
    }

    @Test("random contents and lines match Foundation")
    func randomMatchesFoundation() throws {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("ab/\\\"\n\t\r\u{0}\u{8}\u{c}\u{1b}é✓😀 {}[]:,".unicodeScalars)
        func text(_ max: Int) -> String {
            String(String.UnicodeScalarView((0..<Int.random(in: 0...max, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }))
        }
        for i in 0..<300 {
            let headers = (0..<Int.random(in: 0...4, using: &rng)).map { _ in HTTPField(text(8), text(20)) }
            let content = i % 2 == 0
                ? Self.request(body: text(80), headers: headers, query: text(10), maxBodyBytes: Int.random(in: 0...100, using: &rng))
                : Self.response(body: (0..<Int.random(in: 0...90, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, status: Int.random(in: 100...599, using: &rng), headers: headers)
            #expect(content.json() == (try Self.foundation(content)), "case \(i)")
            let line = RecordingContent.Line(
                kind: RecordingContent.lineKind, part: content.part, requestID: text(12), sessionID: text(12),
                timeMillis: Int64.random(in: Int64.min...Int64.max, using: &rng), keyID: text(6), sealed: Data(text(40).utf8).base64EncodedString())
            #expect(line.json() == (try Self.foundation(line)), "line \(i)")
        }
    }

    @Test("a line written by hand opens as before")
    func lineOpens() throws {
        let sealer = try PayloadSealer(keys: [PayloadSealer.Key(id: "k1", bytes: Array(repeating: 7, count: 32))])
        let content = Self.table[0]
        let line = try content.line(sealer: sealer)
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(try RecordingContent.open(line: line.dropLast(), sealer: sealer) == content)
    }
}
