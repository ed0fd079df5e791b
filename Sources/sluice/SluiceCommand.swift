import ArgumentParser
import Foundation
import KafkaBus
import Pipeline

/// The `sluice` program: wiring and configuration loading only; the stages live in their modules.
@main
struct SluiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A data-path gateway for the function calls of AI agents and CI jobs.",
        discussion: """
            Sluice sits between callers and functions: it authenticates the caller, inspects every \
            request for credentials and other sensitive data, masks what it finds, and delivers the \
            call with credentials the caller never sees, recording everything for audit.

            `sluice run` runs every stage in one process on the embedded bus; `sluice ingress`, \
            `inspector`, `forwarder` and `recorder` run one stage each on Kafka.
            """,
        version: SluiceVersion.current,
        subcommands: [
            RunCommand.self, IngressCommand.self, InspectorCommand.self, ForwarderCommand.self,
            RecorderCommand.self, ScanCommand.self, ReplayCommand.self, AuditCommand.self, ApprovalsCommand.self, ConfigCommand.self,
            APIKeyCommand.self, VersionCommand.self, ProbeCommand.self,
        ]
    )

    /// Sets umask 077 before anything runs (every file Sluice creates is the operator's alone),
    /// then parses and runs the command as ArgumentParser would.
    static func main() async {
        umask(DataDirectory.umaskBits)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // Usage errors (an unknown flag, a bad value, a missing argument) exit 2, as every
            // command's help says, not ArgumentParser's 64; help and version requests stay 0.
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version of sluice and of librdkafka.")

    func run() throws {
        print("sluice \(SluiceVersion.current)")
        print("librdkafka \(KafkaBus.libraryVersion)")
        do { try KafkaBus.checkLibrary() } catch { print("warning: \(error)") }
    }
}
