import Foundation

/// One recorded request or response of a session, as the console shows it: masked content
/// only (what the Recorder keeps, opened with the sealing key ring). The fields of the
/// Recorder's `RecordingContent`, without its file format and sealing: the Ingress does not
/// import the Recorder (stages never import each other), `sluice` maps one to the other.
public struct RecordedExchange: Sendable, Equatable {
    public enum Part: String, Sendable { case request, response }

    public var part: Part
    public var requestID: String
    public var timeMillis: Int64
    /// request: the method, the path below the connection, the raw query, the connection.
    public var method: String?
    public var path: String?
    public var query: String?
    public var connection: String?
    /// response: the status the caller got.
    public var status: Int?
    public var headers: [HTTPField]
    /// At most `recorder.max_body_bytes` of the body.
    public var body: Data
    public var bodyBytes: Int
    public var truncated: Bool

    public init(
        part: Part, requestID: String, timeMillis: Int64, method: String?, path: String?, query: String?, connection: String?,
        status: Int?, headers: [HTTPField], body: Data, bodyBytes: Int, truncated: Bool
    ) {
        self.part = part
        self.requestID = requestID
        self.timeMillis = timeMillis
        self.method = method
        self.path = path
        self.query = query
        self.connection = connection
        self.status = status
        self.headers = headers
        self.body = body
        self.bodyBytes = bodyBytes
        self.truncated = truncated
    }
}

/// A session's recording: its audit events in order and its recorded content.
public struct RecordedSession: Sendable {
    public var events: [AuditEvent]
    public var exchanges: [RecordedExchange]

    public init(events: [AuditEvent], exchanges: [RecordedExchange]) {
        self.events = events
        self.exchanges = exchanges
    }
}

/// Where the console reads session recordings from (the Recorder's store), wired by `sluice`:
/// stages never read each other's state directly.
public protocol SessionRecordingSource: Sendable {
    /// The recording of `sessionID` (already checked to be of the session id form); `nil` when
    /// this process has none (no such session, or the store is not reachable from here).
    func session(_ sessionID: String) async throws -> RecordedSession?
}
