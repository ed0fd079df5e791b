import AsyncHTTPClient
import BusContract
import Foundation

/// A real Model Context Protocol server for the MCP tests: Tests/mcp/server.py (the Python
/// SDK's FastMCP, Streamable HTTP transport, endpoint `/mcp`) in `.deps/venv`
/// (`scripts/provision.sh test` installs it). It appends each tool call it runs to `callLog`.
///
/// `@unchecked Sendable`: its stored properties are constants; the `Process` is only asked
/// `isRunning`, told `terminate()` and waited on, which Foundation allows from any thread.
public final class MCPTestServer: @unchecked Sendable {
    public let port: Int
    public let callLog: URL
    let process: Process
    let output: URL

    public var endpoint: String { "http://127.0.0.1:\(port)/mcp" }

    /// The interpreter with the `mcp` package, and the test scripts' directory.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static var python: URL { root.appendingPathComponent(".deps/venv/bin/python") }
    public static var scripts: URL { root.appendingPathComponent("Tests/mcp") }

    /// Starts the server (answers as event streams, or as JSON with `jsonResponse`) and waits
    /// until it answers HTTP. `secretResult`: the secret its `get_config` tool returns.
    public static func start(secretResult: String, jsonResponse: Bool = false) async throws -> MCPTestServer {
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw GatewayError("\(python.path) is missing: run scripts/provision.sh test (make test does)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-mcp-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let port = try freePort()
        let log = dir.appendingPathComponent("calls.jsonl")
        let output = dir.appendingPathComponent("server.out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let process = Process()
        process.executableURL = python
        process.arguments = [scripts.appendingPathComponent("server.py").path, "--port", "\(port)", "--log", log.path]
            + (jsonResponse ? ["--json-response"] : [])
        process.environment = ProcessInfo.processInfo.environment.merging(["SECRET_RESULT": secretResult]) { $1 }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let server = MCPTestServer(port: port, callLog: log, process: process, output: output)
        let answers = try await eventually(timeout: .seconds(30)) {
            guard process.isRunning else { throw GatewayError("the MCP test server exited:\n\(server.log)") }
            var request = HTTPClientRequest(url: server.endpoint)
            request.method = .GET
            guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)) else { return false }
            _ = try? await response.body.collect(upTo: 1 << 20)
            return true
        }
        if answers { return server }
        server.stop()
        throw GatewayError("the MCP test server did not answer within 30 s:\n\(server.log)")
    }

    init(port: Int, callLog: URL, process: Process, output: URL) {
        self.port = port
        self.callLog = callLog
        self.process = process
        self.output = output
    }

    /// What the server printed.
    public var log: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }

    /// The tool calls the server ran, in order: `(tool, arguments as JSON text)`.
    public var calls: [(tool: String, arguments: String)] {
        let text = (try? String(contentsOf: callLog, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let tool = object["tool"] as? String,
                  let args = object["arguments"].flatMap({ try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) })
            else { return nil }
            return (tool, String(decoding: args, as: UTF8.self))
        }
    }

    /// Kills the server (uvicorn's graceful stop waits for open keep-alive connections).
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A command running in the background; `finish` waits for it without blocking a thread.
///
/// `@unchecked Sendable`: constants only; the `Process` is only asked `isRunning`,
/// `terminationStatus` after exit and told `terminate()`, which Foundation allows from any thread.
public final class BackgroundCommand: @unchecked Sendable {
    let process: Process
    let stdoutURL: URL
    let stderrURL: URL

    public init(_ executable: URL, _ args: [String]) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-bg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        stdoutURL = dir.appendingPathComponent("stdout")
        stderrURL = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process = Process()
        process.executableURL = executable
        process.arguments = args
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var isRunning: Bool { process.isRunning }

    /// Waits until the command exits (`eventually`), or throws after `timeout` (the command is
    /// then terminated).
    public func finish(timeout: Duration = .seconds(60)) async throws -> CommandResult {
        guard await eventually(timeout: timeout, { !self.process.isRunning }) else {
            process.terminate()
            throw GatewayError("still running after \(timeout): \((try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "")")
        }
        return CommandResult(
            status: process.terminationStatus, stdout: (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "")
    }
}
