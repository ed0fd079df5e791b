import ArgumentParser
import CHyperscan
import Detection
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
            RecorderCommand.self, ScanCommand.self, ReplayCommand.self, AuditCommand.self, ApprovalsCommand.self, GrantsCommand.self, ConfigCommand.self,
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
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print the version of sluice and of librdkafka (--verbose: build commit, Hyperscan, AVX2).")

    @Flag(name: .shortAndLong, help: "Also print the build commit and what accelerates detection (Hyperscan, AVX2).")
    var verbose = false

    func run() throws {
        print("sluice \(SluiceVersion.current)")
        if verbose { print("commit \(BuildInfo.commit)") }
        print("librdkafka \(KafkaBus.libraryVersion)")
        if verbose {
            print("hyperscan \(BuildInfo.hyperscanStatus)")
            print("avx2 \(BuildInfo.avx2Status)")
        }
        do { try KafkaBus.checkLibrary() } catch { print("warning: \(error)") }
    }
}

/// What `sluice version --verbose` reports about this binary and the machine it runs on.
enum BuildInfo {
    /// `git rev-parse --short HEAD` of the build (`make`, the Dockerfile), else "unknown".
    static var commit: String {
        let value = String(cString: sluice_build_commit())
        return value.isEmpty ? "unknown" : value
    }

    /// `in use`, or why not.
    static var hyperscanStatus: String {
        if DetectionAcceleration.hyperscan { return "in use" }
        if DetectionAcceleration.hyperscanDisabled { return "not in use (SLUICE_DISABLE_HYPERSCAN is set)" }
        return "not in use (libhs.so.5 not found or CPU not supported; detection uses its pure-Swift prefilter)"
    }

    /// Whether the CPU has AVX2 and whether the structural scanner uses it.
    static var avx2Status: String {
        guard DetectionAcceleration.cpuHasAVX2 else { return "no (the CPU lacks it; SSE2 or scalar scanning)" }
        return DetectionAcceleration.structuralUsesAVX2 ? "yes (in use)" : "yes, not in use (SLUICE_DISABLE_AVX2 is set)"
    }
}
