import ArgumentParser
import Foundation
import Logging
import Pipeline
import Recorder

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Print a recorded session: request, findings (never the secret), verdict and response, in order.",
        discussion: """
            With the file store (the default), looks in every day's recordings under \
            <data_dir>/recordings (and in files of the older one-file-per-session layout), so a \
            session that spans midnight is shown whole. With recorder.store.kind postgres (give \
            --config), reads the session's rows from the database. Recordings older than \
            recorder.retention have been deleted.
            """)

    @Option(name: .shortAndLong, help: "The configuration file (its data_dir holds the recordings).")
    var config: String?

    @Option(help: "The data directory (overrides the config's data_dir).")
    var dataDir: String?

    @Flag(help: "Print the events as JSON lines.")
    var json = false

    @Argument(help: "The session id (the X-Sluice-Session header, or the request id of a call sent without one).")
    var sessionID: String

    @Flag(help: "Leave out the recorded requests and responses (shown by default with --config, which holds the sealing keys).")
    var noContent = false

    func run() async throws {
        let dir: String
        var sealer: PayloadSealer?
        var loaded: SluiceConfig?
        if let config {
            let configuration = try ConfigLoader.load(path: config)
            loaded = configuration
            dir = dataDir ?? configuration.dataDir
            if !noContent { sealer = try configuration.sealing.makeSealer() }
        } else if let dataDir {
            dir = dataDir
        } else {
            throw ValidationError("give --config or --data-dir")
        }
        let events: [AuditEvent]
        let content: [RecordingContent]
        if let loaded, loaded.recorder.store.kind == .postgres, dataDir == nil {
            var logger = Logger(label: "sluice.replay")
            logger.logLevel = .critical
            let database = try PostgresRecordings(store: loaded.recorder.store, logger: logger)
            (events, content) = try await database.withRunning { [sealer] in
                try await SessionReplay.load(database: $0, sessionID: sessionID, sealer: sealer)
            }
        } else {
            events = try SessionReplay.load(dataDir: dir, sessionID: sessionID)
            content = try sealer.map { try SessionReplay.loadContent(dataDir: dir, sessionID: sessionID, sealer: $0) } ?? []
        }
        guard !events.isEmpty else {
            FileHandle.standardError.write(Data("no recording for session \(sessionID) in \(dir)\n".utf8))
            throw ExitCode(1)
        }
        if sealer == nil && !noContent {
            FileHandle.standardError.write(Data("recorded requests and responses are sealed: give --config to show them\n".utf8))
        }
        if json {
            // Events exactly as on the audit topic; then each content record as {"content": …}.
            for e in events { print(String(decoding: AuditEventJSON.encode(e), as: UTF8.self)) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for c in content { print(String(decoding: try encoder.encode(["content": c]), as: UTF8.self)) }
        } else {
            print(SessionReplay.render(events), terminator: "")
            if !content.isEmpty { print(SessionReplay.render(content: content), terminator: "") }
        }
    }
}
