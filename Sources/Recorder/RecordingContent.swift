import Foundation
import Pipeline

/// What a session recording holds of a request's content, besides its events: the request as
/// the Inspector let it through or blocked it (findings masked, the caller's `Authorization`
/// never included: the Ingress drops it) and the response as the caller got it (findings
/// masked), each body cut at `recorder.max_body_bytes` (`truncated`).
///
/// Guarantees:
/// - Only masked content: it is built from `inspected` (the masked request the Forwarder sends
///   upstream, before the Forwarder adds its own credential) and `replies` (what the caller
///   receives, and for a blocked call the Inspector's masked copy of the request,
///   `Reply.blockedRequest`); the raw `requests` topic is never read.
/// - Sealed at rest: a recording line holds the content only as AES-GCM ciphertext under the
///   sealing key ring's first key, bound to `<session>/<request>/<part>` (a line moved to another
///   request or session does not open). Its clear members are the ids, the part and the time,
///   which the events carry anyway.
public struct RecordingContent: Codable, Sendable, Equatable {
    public enum Part: String, Codable, Sendable { case request, response }

    public var part: Part
    public var requestID: String
    public var sessionID: String
    public var timeMillis: Int64
    /// request: the method, the path below the connection, the raw query; the connection.
    public var method: String?
    public var path: String?
    public var query: String?
    public var connection: String?
    /// response: the status the caller got.
    public var status: Int?
    public var headers: [HTTPField]
    /// The body, at most `max_body_bytes` of it.
    public var body: Data
    /// The whole body's size.
    public var bodyBytes: Int
    public var truncated: Bool

    /// The request of an `inspected` message, its body cut at `maxBodyBytes`.
    public init(inspected: InspectedRequest, timeMillis: Int64, maxBodyBytes: Int) {
        self.init(
            request: inspected.request, connection: inspected.metadata.connection, requestID: inspected.metadata.requestID,
            sessionID: inspected.metadata.sessionID, timeMillis: timeMillis, maxBodyBytes: maxBodyBytes)
    }

    /// The blocked request a block reply carries (masked by the Inspector), its body cut at
    /// `maxBodyBytes`; `nil` for a reply without one.
    public init?(blockedRequestOf reply: Reply, timeMillis: Int64, maxBodyBytes: Int) {
        guard let blocked = reply.blockedRequest else { return nil }
        self.init(
            request: blocked.request, connection: blocked.connection, requestID: reply.requestID, sessionID: reply.sessionID,
            timeMillis: timeMillis, maxBodyBytes: maxBodyBytes)
    }

    private init(request: HTTPRequestData, connection: String, requestID: String, sessionID: String, timeMillis: Int64, maxBodyBytes: Int) {
        self.init(
            part: .request, requestID: requestID, sessionID: sessionID, timeMillis: timeMillis,
            headers: request.headers, body: request.body, maxBodyBytes: maxBodyBytes)
        method = request.method
        path = request.path
        query = request.query
        self.connection = connection
    }

    /// The response of a `replies` message, its body cut at `maxBodyBytes`.
    public init(reply: Reply, timeMillis: Int64, maxBodyBytes: Int) {
        self.init(
            part: .response, requestID: reply.requestID, sessionID: reply.sessionID, timeMillis: timeMillis,
            headers: reply.response.headers, body: reply.response.body, maxBodyBytes: maxBodyBytes)
        status = reply.response.status
    }

    private init(part: Part, requestID: String, sessionID: String, timeMillis: Int64, headers: [HTTPField], body: Data, maxBodyBytes: Int) {
        self.part = part
        self.requestID = requestID
        self.sessionID = sessionID
        self.timeMillis = timeMillis
        self.headers = headers
        self.body = body.count > maxBodyBytes ? body.prefix(maxBodyBytes) : body
        self.bodyBytes = body.count
        self.truncated = body.count > maxBodyBytes
    }

    enum CodingKeys: String, CodingKey {
        case part, method, path, query, connection, status, headers, body, truncated
        case requestID = "request_id"
        case sessionID = "session_id"
        case timeMillis = "time_ms"
        case bodyBytes = "body_bytes"
    }

    /// A recording line's members in the clear.
    struct Line: Codable {
        var kind: String
        var part: Part
        var requestID: String
        var sessionID: String
        var timeMillis: Int64
        var keyID: String
        /// Base64 of the sealed JSON of the content.
        var sealed: String

        enum CodingKeys: String, CodingKey {
            case kind, part, sealed
            case requestID = "request_id"
            case sessionID = "session_id"
            case timeMillis = "time_ms"
            case keyID = "key_id"
        }

        /// As `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` writes it (see ``RecordingContent/json()``).
        func json() -> [UInt8] {
            var writer = JSONObjectWriter()
            writer.out.reserveCapacity(160 + sealed.utf8.count)
            // Keys in sorted order: key_id, kind, part, request_id, sealed, session_id, time_ms.
            writer.string("key_id", keyID)
            writer.string("kind", kind)
            writer.string("part", part.rawValue)
            writer.string("request_id", requestID)
            writer.string("sealed", sealed)
            writer.string("session_id", sessionID)
            writer.integer("time_ms", timeMillis)
            return writer.finish()
        }
    }

    /// The `kind` of a content line (no audit event has it).
    static let lineKind = "content"

    /// What the seal is bound to.
    static func associatedData(sessionID: String, requestID: String, part: Part) -> String {
        "recording/\(sessionID)/\(requestID)/\(part.rawValue)"
    }

    /// The recording line (with its newline): the ids in the clear, the content sealed.
    func line(sealer: PayloadSealer) throws -> [UInt8] {
        let (sealed, keyHeader) = try sealer.seal(json(), associatedData: Self.associatedData(sessionID: sessionID, requestID: requestID, part: part))
        let line = Line(
            kind: Self.lineKind, part: part, requestID: requestID, sessionID: sessionID, timeMillis: timeMillis,
            keyID: String(decoding: keyHeader.value, as: UTF8.self), sealed: Data(sealed).base64EncodedString())
        var bytes = line.json()
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// The content's JSON, written by hand: byte for byte what `JSONEncoder` with
    /// `[.sortedKeys, .withoutEscapingSlashes]` writes (`RecordingContentJSONTests` compares them;
    /// Foundation's encoder was ~4 % of `sluice run`'s CPU under load, two encodes a part).
    func json() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + body.count * 4 / 3 + headers.count * 48)
        var writer = JSONObjectWriter(into: out)
        // Keys in sorted order: body, body_bytes, connection, headers, method, part, path, query,
        // request_id, session_id, status, time_ms, truncated.
        writer.string("body", body.base64EncodedString())
        writer.integer("body_bytes", bodyBytes)
        if let connection { writer.string("connection", connection) }
        writer.key("headers")
        writer.out.append(UInt8(ascii: "["))
        for (i, field) in headers.enumerated() {
            if i > 0 { writer.out.append(UInt8(ascii: ",")) }
            writer.out.append(contentsOf: #"{"name":"#.utf8)
            AuditEventJSON.string(field.name, into: &writer.out)
            writer.out.append(contentsOf: #","value":"#.utf8)
            AuditEventJSON.string(field.value, into: &writer.out)
            writer.out.append(UInt8(ascii: "}"))
        }
        writer.out.append(UInt8(ascii: "]"))
        if let method { writer.string("method", method) }
        writer.string("part", part.rawValue)
        if let path { writer.string("path", path) }
        if let query { writer.string("query", query) }
        writer.string("request_id", requestID)
        writer.string("session_id", sessionID)
        if let status { writer.integer("status", status) }
        writer.integer("time_ms", timeMillis)
        writer.key("truncated")
        writer.out.append(contentsOf: (truncated ? "true" : "false").utf8)
        return writer.finish()
    }

    /// The content of a recording line, or `nil` when the line is not a content line. Throws when
    /// it is one that does not open (another key ring, a changed or moved line).
    static func open<C: Collection>(line bytes: C, sealer: PayloadSealer) throws -> RecordingContent? where C.Element == UInt8 {
        guard let line = try? JSONDecoder().decode(Line.self, from: Data(bytes)), line.kind == lineKind else { return nil }
        guard let sealed = Data(base64Encoded: line.sealed) else {
            throw RecorderError("recording content of request \(line.requestID) (\(line.part.rawValue)) is not base64")
        }
        let plain: [UInt8]
        do {
            plain = try sealer.open(
                Array(sealed), keyID: line.keyID,
                associatedData: associatedData(sessionID: line.sessionID, requestID: line.requestID, part: line.part))
        } catch {
            throw RecorderError("recording content of request \(line.requestID) (\(line.part.rawValue)) does not open with the configured sealing keys (key \(line.keyID)): \(error)")
        }
        let content = try JSONDecoder().decode(RecordingContent.self, from: Data(plain))
        guard content.requestID == line.requestID, content.sessionID == line.sessionID, content.part == line.part else {
            throw RecorderError("recording content of request \(line.requestID) does not match its line")
        }
        return content
    }
}
