import Foundation

/// A secret named in configuration by reference, never by value: `env:NAME` reads an
/// environment variable, `file:/path` reads a file (trailing newline trimmed).
///
/// Resolution errors name the reference (the variable or the path), never a value.
public struct SecretReference: Sendable, Hashable, CustomStringConvertible {
    public enum Source: Sendable, Hashable {
        case environment(String)
        case file(String)
    }

    public let source: Source

    /// Parses `env:NAME` or `file:/path`; anything else is rejected so literals never sneak in.
    public init(parsing text: String) throws {
        if text.hasPrefix("env:"), text.count > 4 {
            source = .environment(String(text.dropFirst(4)))
        } else if text.hasPrefix("file:"), text.count > 5 {
            source = .file(String(text.dropFirst(5)))
        } else {
            throw SecretReferenceError(reference: "(literal)", reason: "must be a reference, env:NAME or file:/path, not a literal value")
        }
    }

    public var description: String {
        switch source {
        case .environment(let name): "env:\(name)"
        case .file(let path): "file:\(path)"
        }
    }

    /// Reads the secret's current value.
    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        switch source {
        case .environment(let name):
            guard let value = environment[name], !value.isEmpty else {
                throw SecretReferenceError(reference: description, reason: "environment variable \(name) is not set")
            }
            return value
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw SecretReferenceError(reference: description, reason: "file \(path) cannot be read")
            }
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else { throw SecretReferenceError(reference: description, reason: "file \(path) is empty") }
            return text
        }
    }
}

/// A secret reference that could not be parsed or read.
public struct SecretReferenceError: Error, CustomStringConvertible, Sendable {
    public let reference: String
    public let reason: String
    public var description: String { "secret reference \(reference): \(reason)" }
}
