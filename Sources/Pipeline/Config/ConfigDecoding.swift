import Foundation

/// A coding key for any string, used to see every key a mapping has.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

extension Decoder {
    /// Reports each key of the mapping being decoded that is outside `allowed`, naming its full
    /// path (recorded when collecting, else the first is thrown).
    public func rejectUnknownKeys<K: CodingKey & CaseIterable>(_ keys: K.Type) throws {
        let allowed = Set(K.allCases.map(\.stringValue))
        let container = try container(keyedBy: AnyCodingKey.self)
        // Every unknown key, by name (the loader puts them in the file's order by location).
        for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) where !allowed.contains(key.stringValue) {
            try report(ConfigError(path: (codingPath + [key]).configPath, message: "unknown key (allowed: \(allowed.sorted().joined(separator: ", ")))"))
        }
    }
}

extension [any CodingKey] {
    /// `connections[0].policy.on_secret` style path.
    var configPath: String {
        var out = ""
        for key in self {
            if let i = key.intValue { out += "[\(i)]" } else { out += out.isEmpty ? key.stringValue : ".\(key.stringValue)" }
        }
        return out.isEmpty ? "(top level)" : out
    }
}

/// A configuration problem, naming the key path (`connections[1].upstream`) and, once the loader
/// has found it in the file, where it is.
///
/// Guarantees: `description` is one line: `FILE:LINE:COL: <path>: <message>` when located (a YAML
/// syntax error has no path: `FILE:LINE:COL: <message>`), else `config <path>: <message>`.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String
    public var location: ConfigLocation?

    public init(path: String, message: String, location: ConfigLocation? = nil) {
        self.path = path
        self.message = message
        self.location = location
    }

    public var description: String {
        guard let location else { return "config \(path): \(message)" }
        return path.isEmpty ? "\(location): \(message)" : "\(location): \(path): \(message)"
    }
}

/// A duration written as `250ms`, `30s`, `10m`, `1h` or `2d` (a bare number is seconds).
public struct ConfigDuration: Codable, Sendable, Hashable, CustomStringConvertible {
    public let duration: Duration

    public init(_ duration: Duration) { self.duration = duration }

    /// The longest duration a configuration may give: 100 years (every deadline computed from
    /// one stays far inside `Int64` milliseconds).
    public static let maxMilliseconds: Double = 100 * 365 * 86_400_000

    /// Parses `250ms`, `30s`, `10m`, `1h`, `2d` or plain seconds; a number that is negative, not
    /// finite (`inf`, `nan`) or beyond ``maxMilliseconds`` is refused, never trapped on.
    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        var number: (Double, Double)? = nil
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            if let n = Double(t.dropLast(suffix.count)) {
                number = (n, scale)
                break
            }
        }
        if number == nil, let n = Double(t) { number = (n, 1) }
        guard let (n, scale) = number, n.isFinite, n >= 0 else {
            throw ConfigError(path: "", message: "\"\(text)\" is not a duration (use e.g. 250ms, 30s, 10m, 1h)")
        }
        let ms = (n * scale * 1000).rounded()
        guard ms <= Self.maxMilliseconds else {
            throw ConfigError(path: "", message: "\"\(text)\" is longer than the 100 years a duration may be")
        }
        duration = .milliseconds(Int64(ms))
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text: String
        if let n = try? c.decode(Double.self) { text = "\(n)" } else { text = try c.decode(String.self) }
        do { try self.init(parsing: text) } catch let e as ConfigError {
            throw ConfigError(path: decoder.codingPath.configPath, message: e.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public var milliseconds: Int64 { duration.totalMilliseconds }

    public var description: String { "\(milliseconds)ms" }
}

/// A `SecretReference` read from configuration: must be `env:NAME` or `file:/path`.
public struct ConfigSecret: Codable, Sendable, Hashable, CustomStringConvertible {
    public let reference: SecretReference

    public init(_ reference: SecretReference) { self.reference = reference }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { reference = try SecretReference(parsing: text) } catch let e as SecretReferenceError {
            throw ConfigError(path: decoder.codingPath.configPath, message: e.reason)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(reference.description)
    }

    public var description: String { reference.description }

    /// Reads the value; errors name the config path and the reference, never a value.
    public func resolve(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        do { return try reference.resolve(environment: environment) } catch let e as SecretReferenceError {
            throw ConfigError(path: path, message: e.description)
        }
    }
}

extension ConfigError {
    /// A `DecodingError` restated with the key path it happened at.
    public init(_ error: DecodingError) {
        switch error {
        case .keyNotFound(let key, let context):
            self.init(path: (context.codingPath + [key]).configPath, message: "required key is missing")
        case .typeMismatch(let type, let context):
            self.init(path: context.codingPath.configPath, message: "expected \(Self.kindName(type))")
        case .valueNotFound(let type, let context):
            self.init(path: context.codingPath.configPath, message: "expected \(Self.kindName(type)), found null")
        case .dataCorrupted(let context):
            if let underlying = context.underlyingError as? ConfigError {
                self = underlying
            } else {
                self.init(path: context.codingPath.configPath, message: context.debugDescription)
            }
        @unknown default:
            self.init(path: "(top level)", message: "\(error)")
        }
    }
}

extension Duration {
    /// Whole milliseconds (truncated).
    public var totalMilliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }

    /// Whole nanoseconds, saturating at `Int64.max`/`.min` (about 292 years).
    public var totalNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }
}
