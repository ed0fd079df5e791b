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
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run every stage in one process (the embedded bus unless the config says kafka).")

    @OptionGroup var options: StageOptions

    func run() async throws {
        let runtime = try await Runtime.start(options: options, role: "all")
        try await runtime.run(stages: [.recorder, .forwarder, .inspector, .ingress])
    }
}

struct IngressCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ingress", abstract: "Run the HTTP edge (one process of a Kafka deployment).")
    @OptionGroup var options: StageOptions
    func run() async throws {
        let runtime = try await Runtime.start(options: options, role: "ingress")
        try await runtime.run(stages: [.ingress])
    }
}

struct InspectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspector", abstract: "Run an inspector worker; start more to share the work.")
    @OptionGroup var options: StageOptions
    func run() async throws {
        let runtime = try await Runtime.start(options: options, role: "inspector")
        try await runtime.run(stages: [.inspector])
    }
}

struct ForwarderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "forwarder", abstract: "Run the forwarder (delivery with credential injection).")
    @OptionGroup var options: StageOptions
    func run() async throws {
        let runtime = try await Runtime.start(options: options, role: "forwarder")
        try await runtime.run(stages: [.forwarder])
    }
}

struct RecorderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recorder", abstract: "Run the recorder (session recordings and audit sinks).")
    @OptionGroup var options: StageOptions
    func run() async throws {
        let runtime = try await Runtime.start(options: options, role: "recorder")
        try await runtime.run(stages: [.recorder])
    }
}
