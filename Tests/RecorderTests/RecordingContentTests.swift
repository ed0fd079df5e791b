import BusContract
import Foundation
import Pipeline
import Testing
@testable import Recorder

/// Recordings hold each request's masked request and response, sealed at rest, capped per body,
/// and `SessionReplay` gives them back (issue 11, item 5).
@Suite("Recorder: recorded content", .serialized)
struct RecordingContentTests {
    let now = Int64(Date().timeIntervalSince1970 * 1000)

    func inspected(_ env: RecorderTestEnv, session: String, request: String, body: String) throws -> OutgoingMessage {
        let meta = RequestMetadata(
            requestID: request, sessionID: session, identity: CallerIdentity(id: "ci-bot", groups: [], method: "api_key"),
            connection: "billing", receivedAtMillis: now, deadlineMillis: now + 30_000, replyTo: "ingress-1")
        let http = HTTPRequestData(
            method: "POST", path: "/v1/charges", query: "dry_run=1",
            headers: [HTTPField("Content-Type", "application/json"), HTTPField("X-Trace", "t-1")], body: Data(body.utf8))
        return try env.context.codec.inspected(InspectedRequest(metadata: meta, verdict: Verdict(decision: .mask), findings: [], request: http))
    }

    func reply(_ env: RecorderTestEnv, session: String, request: String, body: String, status: Int = 200) throws -> OutgoingMessage {
        try env.context.codec.reply(
            Reply(requestID: request, sessionID: session, response: HTTPResponseData(status: status, headers: [HTTPField("Content-Type", "application/json")], body: Data(body.utf8))),
            to: "ingress-1")
    }

    @Test("the masked request and response of a call are in its session's recording, sealed; replay opens them, bodies cut at max_body_bytes")
    func contentIsRecordedSealedAndReplayed() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let visible = "plain-text-marker-7f3a"
        let requestBody = #"{"note":"\#(visible)","token":"[MASKED:github-pat:3fa9c2d1e0b7]"}"#
        let longBody = String(repeating: "x", count: 300) + visible
        for message in [
            try inspected(env, session: "s-1", request: "r-1", body: requestBody),
            try reply(env, session: "s-1", request: "r-1", body: longBody),
        ] { try await env.bus.publish(message) }
        try await env.publish(event(.requestReceived, session: "s-1", request: "r-1", time: now, id: "e-1"))
        // Redelivered (or a second reply for one request): replay keeps the first copy.
        try await env.bus.publish(try inspected(env, session: "s-1", request: "r-1", body: requestBody))
        let service = try RecorderService(config: env.config(sinks: "[]", recorder: #""max_body_bytes": 256"#), context: env.context)
        let recordings = SessionRecordings(dataDir: env.dataDir)
        let file = recordings.path(forSession: "s-1", day: RecordingDay(millis: now))
        try await RecorderBatchTests.running(service) {
            #expect(await eventually { lines(of: file).filter { $0.contains(#""kind":"content""#) }.count == 3 })
        }
        // Sealed at rest: the body's text is nowhere in the file.
        let bytes = String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
        #expect(!bytes.contains(visible) && !bytes.contains("X-Trace") && !bytes.contains("dry_run"))

        let content = try SessionReplay.loadContent(dataDir: env.dataDir, sessionID: "s-1", sealer: env.context.codec.sealer)
        #expect(content.map(\.part) == [.request, .response])
        let request = try #require(content.first)
        #expect(request.method == "POST" && request.path == "/v1/charges" && request.query == "dry_run=1" && request.connection == "billing")
        #expect(request.headers == [HTTPField("Content-Type", "application/json"), HTTPField("X-Trace", "t-1")])
        #expect(String(decoding: request.body, as: UTF8.self) == requestBody && !request.truncated)
        let response = try #require(content.last)
        #expect(response.status == 200 && response.bodyBytes == longBody.utf8.count && response.truncated)
        #expect(response.body == Data(longBody.utf8.prefix(256)))
        let text = SessionReplay.render(content: content)
        #expect(text.contains("request r-1 ") && text.contains("POST /v1/charges?dry_run=1") && text.contains("    | " + requestBody))
        #expect(text.contains("status=200") && text.contains("(body cut at 256 of \(longBody.utf8.count) bytes)"))
        // The events are replayed as before, content lines left aside.
        #expect(try SessionReplay.load(dataDir: env.dataDir, sessionID: "s-1").map(\.eventID) == ["e-1"])
    }

    @Test("content that does not open is an error naming the file, never a silent gap: another key ring, a line moved to another session")
    func unopenableContentIsAnError() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        try await env.bus.publish(try inspected(env, session: "s-2", request: "r-2", body: "{}"))
        try await env.publish(event(.requestReceived, session: "s-2", request: "r-2", time: now, id: "e-2"))
        try await env.publish(event(.requestReceived, session: "s-3", request: "r-3", time: now, id: "e-3"))
        let service = try RecorderService(config: env.config(sinks: "[]"), context: env.context)
        let recordings = SessionRecordings(dataDir: env.dataDir)
        let file = recordings.path(forSession: "s-2", day: RecordingDay(millis: now))
        try await RecorderBatchTests.running(service) {
            #expect(await eventually { lines(of: file).contains { $0.contains(#""kind":"content""#) } })
        }
        let other = try PayloadSealer(keys: [PayloadSealer.Key(id: "test", bytes: Array(repeating: 9, count: 32))])
        #expect(throws: ReplayError.self) { try SessionReplay.loadContent(dataDir: env.dataDir, sessionID: "s-2", sealer: other) }

        // The content line copied into session s-3's recording, its session id changed.
        let line = try #require(lines(of: file).first { $0.contains(#""kind":"content""#) })
        let moved = line.replacingOccurrences(of: #""session_id":"s-2""#, with: #""session_id":"s-3""#)
        try AppendFile.append(Array((moved + "\n").utf8), toFileAt: recordings.path(forSession: "s-3", day: RecordingDay(millis: now)))
        do {
            _ = try SessionReplay.loadContent(dataDir: env.dataDir, sessionID: "s-3", sealer: env.context.codec.sealer)
            Issue.record("a moved content line opened")
        } catch let error as ReplayError {
            #expect("\(error)".contains("does not open"), "\(error)")
        }
    }

    /// A reply on `replies`: a block (403 with the masked request) or an ordinary one.
    struct ReplyCase: Sendable, CustomStringConvertible {
        var description: String
        var blocked: Bool
        var parts: [RecordingContent.Part]
    }

    @Test(
        "a block reply is recorded as the masked request and the 403, sealed; the unmasked request on `requests` is never read",
        arguments: [
            ReplyCase(description: "block reply", blocked: true, parts: [.request, .response]),
            ReplyCase(description: "reply without a blocked request", blocked: false, parts: [.response]),
        ])
    func blockedRequestIsRecordedMasked(_ c: ReplyCase) async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        let canary = "AKIA" + String((0..<16).map { _ in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")[Int.random(in: 0..<32)] })
        let visible = "blocked-marker-9d2e"
        let masked = #"{"note":"\#(visible)","key":"[MASKED:aws-access-key-id:0a1b2c3d4e5f]"}"#
        let meta = RequestMetadata(
            requestID: "r-5", sessionID: "s-5", identity: CallerIdentity(id: "ci-bot", groups: [], method: "api_key"),
            connection: "strict", receivedAtMillis: now, deadlineMillis: now + 30_000, replyTo: "ingress-1")
        func request(body: String) -> HTTPRequestData {
            HTTPRequestData(method: "POST", path: "/v1/keys", query: "", headers: [HTTPField("Content-Type", "application/json")], body: Data(body.utf8))
        }
        // The request as received (with the secret) is on `requests`, as the Ingress publishes it.
        try await env.bus.publish(try env.context.codec.request(
            InspectionRequest(metadata: meta, request: request(body: #"{"note":"\#(visible)","key":"\#(canary)"}"#))))
        let forbidden = HTTPResponseData.jsonError(status: 403, error: "blocked", extra: ["rule": "aws-access-key-id", "request_id": "r-5"])
        try await env.bus.publish(try env.context.codec.reply(
            Reply(
                requestID: "r-5", sessionID: "s-5", response: forbidden,
                blockedRequest: c.blocked ? MaskedRequest(connection: "strict", request: request(body: masked)) : nil),
            to: "ingress-1"))
        try await env.publish(event(.blocked, session: "s-5", request: "r-5", stage: "inspector", time: now, id: "e-5", status: 403, decision: .block))
        let service = try RecorderService(config: env.config(sinks: "[]"), context: env.context)
        let file = SessionRecordings(dataDir: env.dataDir).path(forSession: "s-5", day: RecordingDay(millis: now))
        try await RecorderBatchTests.running(service) {
            #expect(await eventually { lines(of: file).filter { $0.contains(#""kind":"content""#) }.count == c.parts.count })
        }
        // Sealed at rest, and the secret nowhere: not in the file, not in what opens.
        let bytes = String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
        #expect(!bytes.contains(canary) && !bytes.contains(visible) && !bytes.contains("MASKED") && !bytes.contains("/v1/keys"))
        let content = try SessionReplay.loadContent(dataDir: env.dataDir, sessionID: "s-5", sealer: env.context.codec.sealer)
        #expect(content.map(\.part) == c.parts)
        for part in content { #expect(!String(decoding: part.body, as: UTF8.self).contains(canary)) }
        let response = try #require(content.last)
        #expect(response.status == 403 && response.body == forbidden.body)
        guard c.blocked else { return }
        let blocked = try #require(content.first)
        #expect(blocked.requestID == "r-5" && blocked.connection == "strict" && blocked.method == "POST" && blocked.path == "/v1/keys")
        #expect(String(decoding: blocked.body, as: UTF8.self) == masked && !blocked.truncated)
        let text = SessionReplay.render(content: content)
        #expect(text.contains("request r-5 ") && text.contains("POST /v1/keys") && text.contains("status=403") && !text.contains(canary))
    }

    @Test("recorder.content: false records no content")
    func contentCanBeTurnedOff() async throws {
        let env = try RecorderTestEnv()
        defer { Task { await env.cleanUp() } }
        try await env.bus.publish(try inspected(env, session: "s-4", request: "r-4", body: "{}"))
        try await env.publish(event(.requestReceived, session: "s-4", request: "r-4", time: now, id: "e-4"))
        let service = try RecorderService(config: env.config(sinks: "[]", recorder: #""content": false"#), context: env.context)
        let file = SessionRecordings(dataDir: env.dataDir).path(forSession: "s-4", day: RecordingDay(millis: now))
        try await RecorderBatchTests.running(service) {
            #expect(await eventually { !lines(of: file).isEmpty })
        }
        #expect(lines(of: file).count == 1)
        #expect(try SessionReplay.loadContent(dataDir: env.dataDir, sessionID: "s-4", sealer: env.context.codec.sealer).isEmpty)
    }
}
