import Foundation

/// Compresses test bodies with the real command-line tools (`gzip`, `brotli`, `zstd`; `make test`
/// provisions them), so the encoders are independent of the decoders under test.
public enum Compress {
    public enum Tool: String, Sendable, CaseIterable {
        case gzip, br, zstd
        var command: [String] {
            switch self {
            case .gzip: ["gzip", "-c", "-n"]
            case .br: ["brotli", "-c", "-q", "6"]
            case .zstd: ["zstd", "-c", "-q"]
            }
        }
    }

    /// `data` compressed with `tool`; throws when the tool is missing or fails (never a silent skip).
    public static func run(_ tool: Tool, _ data: Data) throws -> Data {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-compress-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in")
        let output = dir.appendingPathComponent("out")
        try data.write(to: input)
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = tool.command + [input.path]
        let out = try FileHandle(forWritingTo: output)
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try out.close()
        guard process.terminationStatus == 0 else {
            throw GatewayError("\(tool.command.joined(separator: " ")) failed with status \(process.terminationStatus): is it installed?")
        }
        return try Data(contentsOf: output)
    }

    /// Each stage applied in order (the first listed is applied first, as in `Content-Encoding`).
    public static func stacked(_ tools: [Tool], _ data: Data) throws -> Data {
        try tools.reduce(data) { try run($1, $0) }
    }
}
