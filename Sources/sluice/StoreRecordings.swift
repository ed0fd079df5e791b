import Foundation
import Logging
import Pipeline
import Recorder

/// The console's view of the Recorder's store (`recorder.store`): the file store under
/// `data_dir/recordings` when this process's disk holds it (`sluice run`, or an Ingress beside
/// the Recorder), else the postgres store. Content is opened with the configuration's sealing
/// key ring; what the store holds is masked already.
///
/// Guarantees: reads only the one session asked for (its id has the `X-Sluice-Session` form,
/// checked by the caller); a session the store does not hold is `nil`, a store that cannot be
/// read throws (the console answers 503).
struct StoreRecordings: SessionRecordingSource {
    let config: SluiceConfig
    let sealer: PayloadSealer
    let logger: Logger

    func session(_ sessionID: String) async throws -> RecordedSession? {
        let events: [AuditEvent]
        let content: [RecordingContent]
        do {
            if config.recorder.store.kind == .postgres {
                let database = try PostgresRecordings(store: config.recorder.store, logger: logger)
                (events, content) = try await database.withRunning { [sealer] in
                    try await SessionReplay.load(database: $0, sessionID: sessionID, sealer: sealer)
                }
            } else {
                events = try SessionReplay.load(dataDir: config.dataDir, sessionID: sessionID)
                content = try SessionReplay.loadContent(dataDir: config.dataDir, sessionID: sessionID, sealer: sealer)
            }
        } catch ReplayError.sessionNotFound {
            return nil
        }
        return RecordedSession(events: events, exchanges: content.map(Self.exchange))
    }

    static func exchange(_ c: RecordingContent) -> RecordedExchange {
        RecordedExchange(
            part: c.part == .request ? .request : .response, requestID: c.requestID, timeMillis: c.timeMillis, method: c.method,
            path: c.path, query: c.query, connection: c.connection, status: c.status, headers: c.headers, body: c.body,
            bodyBytes: c.bodyBytes, truncated: c.truncated)
    }
}
