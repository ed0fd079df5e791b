import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The built `sluice` binary run as a child process, its output captured to a file
/// (so tests can search the process logs for leaks).
///
/// Guarantees: a relaunch runs the same command line and environment again and appends to the
/// same log file (what the killed process wrote stays there, after a `--- relaunched ---` line).
public final class SluiceProcess: @unchecked Sendable {
    // @unchecked: `process` is only started, signalled and replaced (`relaunch`) from the test
    // that owns it, one step at a time; nothing else holds it.
    public private(set) var process: Process
    public let logFile: URL
    public let name: String
    /// How many times this process has been started (1 after `init`).
    public private(set) var launches = 0
    private let arguments: [String]
    private let environment: [String: String]

    /// `.build/debug/sluice` next to the test bundle, or `$SLUICE_BIN`.
    public static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["SLUICE_BIN"] { return URL(fileURLWithPath: path) }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // swift-testing may run from inside the .xctest bundle on some platforms.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("sluice").path), dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("sluice")
    }

    public init(name: String, arguments: [String], environment: [String: String], logDirectory: URL) throws {
        self.name = name
        self.arguments = arguments
        self.environment = environment
        logFile = logDirectory.appendingPathComponent("\(name).log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process = Process()
        try start()
    }

    private func start() throws {
        let handle = try FileHandle(forWritingTo: logFile)
        handle.seekToEndOfFile()
        let next = Process()
        next.executableURL = Self.binary
        next.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        next.environment = env
        next.standardOutput = handle
        next.standardError = handle
        try next.run()
        process = next
        launches += 1
    }

    /// Starts the same command again (same name, arguments, environment and log file) once
    /// the previous run has ended (killed or stopped); throws if it is still running.
    public func relaunch() throws {
        guard !process.isRunning else { throw GatewayError("\(name) is still running: stop or kill it before relaunching") }
        if let handle = try? FileHandle(forWritingTo: logFile) {
            handle.seekToEndOfFile()
            handle.write(Data("--- relaunched (start \(launches + 1)) ---\n".utf8))
            try? handle.close()
        }
        try start()
    }

    public var isRunning: Bool { process.isRunning }

    /// SIGTERM, then wait for exit (SIGKILL after `timeout`).
    public func stop(timeout: Duration = .seconds(10)) async {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { kill9() }
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
    }

    /// How a SIGTERM ended: whether the process exited by itself within the allowed time, how
    /// long it took, and its exit status (`nil` when it had to be killed).
    public struct Termination: Sendable, CustomStringConvertible {
        public var exitedInTime: Bool
        /// When the SIGTERM was sent.
        public var signalled: ContinuousClock.Instant
        public var took: Duration
        public var status: Int32?
        public var description: String {
            let seconds = String(format: "%.2f s", Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
            return exitedInTime ? "exited \(status.map(String.init) ?? "?") after \(seconds)" : "still running \(seconds) after SIGTERM (killed)"
        }
    }

    /// SIGTERM, then polls until the process exits; past `timeout` it is killed (SIGKILL) and
    /// the result says so. Unlike `stop`, it reports what happened instead of hiding it.
    public func terminate(timeout: Duration) async -> Termination {
        let signalled = ContinuousClock.now
        guard process.isRunning else { return Termination(exitedInTime: true, signalled: signalled, took: .zero, status: process.terminationStatus) }
        process.terminate()
        while process.isRunning, ContinuousClock.now - signalled < timeout { try? await Task.sleep(for: .milliseconds(20)) }
        let took = ContinuousClock.now - signalled
        if process.isRunning {
            kill9()
            return Termination(exitedInTime: false, signalled: signalled, took: took, status: nil)
        }
        return Termination(exitedInTime: true, signalled: signalled, took: took, status: process.terminationStatus)
    }

    /// SIGKILL: a crash, as far as Sluice can tell.
    public func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public var output: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }
}
