import Foundation

/// How a command run to completion ended: its exit status and what it printed.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `executable ARGS` to completion with `environment` added to this process's and stdin
/// closed; stdout and stderr are captured through files (no pipe to fill up), in `directory`
/// (kept) or in a temporary directory (removed). `workingDirectory`: the process's current
/// directory (default: this process's).
public func runToCompletion(
    _ executable: URL, _ args: [String], environment: [String: String] = [:], in directory: URL? = nil,
    workingDirectory: URL? = nil
) throws -> CommandResult {
    let dir = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("sluice-run-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { if directory == nil { try? FileManager.default.removeItem(at: dir) } }
    let out = dir.appendingPathComponent("stdout-\(UUID().uuidString.prefix(6))")
    let err = dir.appendingPathComponent("stderr-\(UUID().uuidString.prefix(6))")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    let process = Process()
    process.executableURL = executable
    process.arguments = args
    if let workingDirectory { process.currentDirectoryURL = workingDirectory }
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let outHandle = try FileHandle(forWritingTo: out)
    let errHandle = try FileHandle(forWritingTo: err)
    process.standardOutput = outHandle
    process.standardError = errHandle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    try outHandle.close()
    try errHandle.close()
    return CommandResult(
        status: process.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8),
        stderr: try String(contentsOf: err, encoding: .utf8))
}
