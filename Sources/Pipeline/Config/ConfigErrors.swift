import Foundation
import Synchronization

/// Where a configuration problem is: `FILE:LINE:COL` (line and column from 1).
public struct ConfigLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public static func < (a: Self, b: Self) -> Bool { (a.line, a.column) < (b.line, b.column) }

    public var description: String { "\(file):\(line):\(column)" }
}

/// Every problem of one configuration file, one `ConfigError` each.
///
/// Guarantees: never empty when thrown by `ConfigErrorCollector.decode`; `description` is one
/// line per problem, in the order of `errors`.
public struct ConfigErrors: Error, CustomStringConvertible, Sendable {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) { self.errors = errors }

    public var description: String { errors.map(\.description).joined(separator: "\n") }

    /// Each problem with the location `locate` finds for its path (an existing location is kept).
    public func located(_ locate: (ConfigError) -> ConfigLocation?) -> ConfigErrors {
        ConfigErrors(errors.map { error in
            var error = error
            if error.location == nil { error.location = locate(error) }
            return error
        })
    }

    /// In the file's order: located problems by line and column, then the others in the order found.
    public func inFileOrder() -> ConfigErrors {
        let order = errors.indices.sorted { i, j in
            switch (errors[i].location, errors[j].location) {
            case let (a?, b?): return a < b || (a == b && i < j)
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return i < j
            }
        }
        return ConfigErrors(order.map { errors[$0] })
    }
}

/// Thrown to abandon a value whose problem is already recorded in the collector (never shown).
struct ConfigProblemRecorded: Error {}

/// Gathers every problem found while decoding one configuration, in the order found, so one run
/// reports them all. Put in the decoder's `userInfo` by `decode(_:)`; the config types' decoding
/// records a problem and goes on with the next key instead of throwing. Without a collector they
/// throw the first problem, as plain `Decodable` types do.
///
/// Guarantees: safe to share between threads (its list is behind a `Mutex`); holds only
/// `ConfigError`s, never a raw `DecodingError`.
public final class ConfigErrorCollector: Sendable {
    private let errors = Mutex<[ConfigError]>([])

    static let userInfoKey = CodingUserInfoKey(rawValue: "sluice.configErrorCollector")!

    init() {}

    func record(_ error: ConfigError) { errors.withLock { $0.append(error) } }

    var recorded: [ConfigError] { errors.withLock { $0 } }

    /// Runs `decode` with a collector in the user info it is given; returns the value when no
    /// problem was found, else throws `ConfigErrors` with each problem in the order found.
    public static func decode<T>(_ decode: ([CodingUserInfoKey: any Sendable]) throws -> T) throws(ConfigErrors) -> T {
        let collector = ConfigErrorCollector()
        var value: T?
        do { value = try decode([userInfoKey: collector]) } catch is ConfigProblemRecorded {} catch {
            collector.record(ConfigError(describing: error, at: nil))
        }
        let errors = collector.recorded
        if let value, errors.isEmpty { return value }
        throw ConfigErrors(errors.isEmpty ? [ConfigError(path: "(top level)", message: "could not be read")] : errors)
    }
}

extension Decoder {
    /// The collector of this decoding, if it gathers every problem.
    var configErrors: ConfigErrorCollector? { userInfo[ConfigErrorCollector.userInfoKey] as? ConfigErrorCollector }

    /// A problem found by a check: recorded when collecting (decoding goes on), else thrown.
    func report(_ error: ConfigError) throws {
        guard let collector = configErrors else { throw error }
        collector.record(error)
    }
}

/// A value decoded so that its problem is recorded (and `value` is nil) when collecting; without
/// a collector the problem is thrown.
struct Collected<T: Decodable>: Decodable {
    let value: T?

    init(from decoder: any Decoder) throws {
        do { value = try decoder.singleValueContainer().decode(T.self) } catch {
            guard let collector = decoder.configErrors else { throw error }
            if !(error is ConfigProblemRecorded) { collector.record(ConfigError(describing: error, at: decoder)) }
            value = nil
        }
    }
}

/// A list whose elements are each `Collected`: a bad element is recorded and the next one is
/// still read; then the list as a whole is abandoned (a list missing an element is never used,
/// so no later check sees shifted indices or a shorter list).
public struct CollectedList<T: Decodable>: Decodable {
    public let values: [T]

    public init(from decoder: any Decoder) throws {
        let elements = try decoder.singleValueContainer().decode([Collected<T>].self)
        values = elements.compactMap(\.value)
        guard values.count == elements.count else { throw ConfigProblemRecorded() }
    }
}

extension KeyedDecodingContainer {
    /// `decodeIfPresent`, except that while collecting a bad value is recorded and gives nil.
    public func collect<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        try decodeIfPresent(Collected<T>.self, forKey: key)?.value
    }

    /// A list of `T` where each bad element is recorded on its own (while collecting).
    public func collectList<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> [T]? {
        try collect(CollectedList<T>.self, forKey: key)?.values
    }

    /// A required key's value read earlier with `collect`: nil because the key is missing throws
    /// `keyNotFound` (recorded by the enclosing value), nil because its value was bad (already
    /// recorded) abandons the enclosing value.
    public func required<T: Decodable>(_ value: T?, forKey key: Key) throws -> T {
        if let value { return value }
        if contains(key), try !decodeNil(forKey: key) { throw ConfigProblemRecorded() }
        return try decode(T.self, forKey: key)
    }

    /// `decode` of a required key: a bad value is recorded and abandons the enclosing value
    /// (while collecting); a missing key throws `keyNotFound`, recorded by the enclosing value.
    public func need<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try required(collect(type, forKey: key), forKey: key)
    }
}

/// A configuration enum: decoding a value outside its cases names the allowed ones
/// (`"warn" is not one of mask, block, hold`).
public protocol ConfigEnum: RawRepresentable, CaseIterable, Decodable where RawValue == String {}

extension ConfigEnum {
    public init(from decoder: any Decoder) throws { self = try ConfigChoice<Self>(from: decoder).value }
}

/// A value of an enum another module declares (`Detection.Severity`), decoded with the allowed
/// values named on a mistake, as `ConfigEnum` does for the configuration's own enums.
public struct ConfigChoice<E: RawRepresentable & CaseIterable>: Decodable where E.RawValue == String {
    public let value: E

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = E(rawValue: text) else {
            let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigError(path: decoder.codingPath.configPath, message: "\"\(text)\" is not one of \(allowed)")
        }
        self.value = value
    }
}

extension ConfigError {
    /// Any error met while decoding, restated as a `ConfigError` with the key path. A type
    /// mismatch says what was found at `decoder` (the value itself only where a number or
    /// true/false was expected: a string elsewhere may be a misplaced credential).
    init(describing error: any Error, at decoder: (any Decoder)?) {
        switch error {
        case let error as ConfigError:
            self = error
        case let error as DecodingError:
            self.init(error)
            if case .typeMismatch(let type, let context) = error, let decoder, context.codingPath.configPath == decoder.codingPath.configPath,
                let found = Self.found(at: decoder, showingScalars: Self.isScalarKind(type))
            {
                self = ConfigError(path: path, message: message + ", found \(found)")
            }
        default:
            self.init(path: decoder?.codingPath.configPath ?? "(top level)", message: "\(error)")
        }
    }

    /// What the user wrote, in words: a mapping, a list, null, or the scalar (quoted) when `showingScalars`.
    static func found(at decoder: any Decoder, showingScalars: Bool) -> String? {
        if (try? decoder.container(keyedBy: AnyCodingKey.self)) != nil { return "a mapping" }
        if (try? decoder.unkeyedContainer()) != nil { return "a list" }
        guard let c = try? decoder.singleValueContainer() else { return nil }
        if c.decodeNil() { return "null" }
        if let text = try? c.decode(String.self) { return showingScalars ? "\"\(text)\"" : "a string" }
        if let number = try? c.decode(Double.self) { return showingScalars ? "\(number)" : "a number" }
        if let flag = try? c.decode(Bool.self) { return showingScalars ? "\(flag)" : "true or false" }
        return nil
    }

    /// What a decoded type is called in a message (`a number`, not `Int`).
    static func kindName(_ type: Any.Type) -> String {
        let name = String(describing: type)
        if ["Int", "Int64", "Int32", "UInt", "UInt64", "UInt32", "Double", "Float"].contains(name) { return "a number" }
        if name == "Bool" { return "true or false" }
        if name == "String" { return "a string" }
        if name.hasPrefix("Array") || name.contains("Sequence") { return "a list" }
        if name.contains("Scalar") { return "a single value" }
        return "a mapping"
    }

    static func isScalarKind(_ type: Any.Type) -> Bool { ["a number", "true or false"].contains(kindName(type)) }
}

/// A value written either as one `T` or as a list of them (each bad element recorded on its own).
public struct OneOrList<T: Decodable>: Decodable {
    public let values: [T]

    public init(from decoder: any Decoder) throws {
        if (try? decoder.unkeyedContainer()) != nil {
            values = try CollectedList<T>(from: decoder).values
        } else {
            values = [try T(from: decoder)]
        }
    }
}
