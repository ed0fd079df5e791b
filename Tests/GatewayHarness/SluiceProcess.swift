import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The built `sluice` binary run as a child process, its output captured to a file
/// (so tests can search the process logs for leaks).
public final class SluiceProcess: @unchecked Sendable {
    // @unchecked: `process` is only started and signalled from the test that owns it.
    public let process = Process()
    public let logFile: URL
    public let name: String

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
        logFile = logDirectory.appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        process.executableURL = Self.binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
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

    /// SIGKILL: a crash, as far as Sluice can tell.
    public func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public var output: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }
}
