import ArgumentParser
import Foundation
import Pipeline
import Recorder

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Print a recorded session: request, findings (never the secret), verdict and response, in order.",
        discussion: """
            Looks in every day's recordings under <data_dir>/recordings (and in files of the older \
            one-file-per-session layout), so a session that spans midnight is shown whole. Recordings \
            older than recorder.retention have been deleted.
            """)

    @Option(name: .shortAndLong, help: "The configuration file (its data_dir holds the recordings).")
    var config: String?

    @Option(help: "The data directory (overrides the config's data_dir).")
    var dataDir: String?

    @Flag(help: "Print the events as JSON lines.")
    var json = false

    @Argument(help: "The session id (the X-Sluice-Session header, or the request id of a call sent without one).")
    var sessionID: String

    func run() throws {
        let dir: String
        if let dataDir { dir = dataDir } else if let config { dir = try ConfigLoader.load(path: config).dataDir } else {
            throw ValidationError("give --config or --data-dir")
        }
        let events = try SessionReplay.load(dataDir: dir, sessionID: sessionID)
        guard !events.isEmpty else {
            FileHandle.standardError.write(Data("no recording for session \(sessionID) in \(dir)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for e in events { print(String(decoding: try encoder.encode(e), as: UTF8.self)) }
        } else {
            print(SessionReplay.render(events), terminator: "")
        }
    }
}
