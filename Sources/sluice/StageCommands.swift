import ArgumentParser
import Foundation
import Logging
import Pipeline

/// Options every stage command takes.
struct StageOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The configuration file (YAML).")
    var config: String

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log format on standard error: text, or json (one object per line: ts, level, label, message, source, and the metadata such as request_id and trace_id).")
    var logFormat: LogFormat = .text
}

/// How log lines are written to standard error.
enum LogFormat: String, CaseIterable, ExpressibleByArgument, Sendable {
    /// swift-log's `StreamLogHandler`: `timestamp level label: metadata [source] message`.
    case text
    /// `JSONLogHandler`: one JSON object per line.
    case json
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run every stage in one process (the embedded bus unless the config says kafka).")

    @OptionGroup var options: StageOptions

    func run() async throws {
        let stages: [StageKind] = [.recorder, .forwarder, .inspector, .ingress]
        try await options.reportingErrors(role: "all") {
            let runtime = try await Runtime.start(options: options, role: "all", stages: stages)
            try await runtime.run(stages: stages)
        }
    }
}

extension StageOptions {
    /// Runs `body`. With `--log-format json`, an error that ends the command is written as one
    /// JSON line (`critical`, with `error` and `role`) instead of the CLI's plain `Error:` line,
    /// and the command exits 1 as before: standard error stays JSON to its last line.
    func reportingErrors(role: String, _ body: () async throws -> Void) async throws {
        do { try await body() } catch where logFormat == .json && !(error is CancellationError) {
            let line = JSONLogHandler.line(
                millis: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)), level: .critical, label: "sluice",
                message: "sluice stopped with an error", source: "sluice", metadata: ["role": "\(role)", "error": "\(error)"])
            FileHandle.standardError.write(Data(line.utf8))
            throw ExitCode.failure
        }
    }
}

/// A command that runs one stage of a Kafka deployment in this process.
protocol SingleStageCommand: AsyncParsableCommand {
    static var stage: StageKind { get }
    var options: StageOptions { get }
}

extension SingleStageCommand {
    func run() async throws {
        try await options.reportingErrors(role: Self.stage.rawValue) {
            let runtime = try await Runtime.start(options: options, role: Self.stage.rawValue, stages: [Self.stage])
            try await runtime.run(stages: [Self.stage])
        }
    }
}

struct IngressCommand: SingleStageCommand {
    static let configuration = CommandConfiguration(commandName: "ingress", abstract: "Run the HTTP edge (one process of a Kafka deployment).")
    static let stage = StageKind.ingress
    @OptionGroup var options: StageOptions
}

struct InspectorCommand: SingleStageCommand {
    static let configuration = CommandConfiguration(commandName: "inspector", abstract: "Run an inspector worker; start more to share the work.")
    static let stage = StageKind.inspector
    @OptionGroup var options: StageOptions
}

struct ForwarderCommand: SingleStageCommand {
    static let configuration = CommandConfiguration(commandName: "forwarder", abstract: "Run the forwarder (delivery with credential injection).")
    static let stage = StageKind.forwarder
    @OptionGroup var options: StageOptions
}

struct RecorderCommand: SingleStageCommand {
    static let configuration = CommandConfiguration(commandName: "recorder", abstract: "Run the recorder (session recordings and audit sinks).")
    static let stage = StageKind.recorder
    @OptionGroup var options: StageOptions
}
