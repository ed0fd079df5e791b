import Foundation
import Pipeline
import Yams

/// Reads the YAML configuration file into `SluiceConfig`.
///
/// Guarantees: a file that does not load throws `ConfigErrors` listing every problem found, in
/// the file's order, each one line `FILE:LINE:COL: <key path>: <message>` (a YAML syntax error:
/// `FILE:LINE:COL: <message>`); an unreadable file is one `ConfigError` naming it.
enum ConfigLoader {
    static func load(path: String) throws -> SluiceConfig {
        try loadWithBytes(path: path).config
    }

    /// The configuration and the file's bytes it was parsed from (read once: what is hashed for
    /// `config_loaded` is what was parsed).
    static func loadWithBytes(path: String) throws -> (config: SluiceConfig, bytes: Data) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: path, message: "cannot read the configuration file")
        }
        return (try parse(String(decoding: data, as: UTF8.self), source: path), data)
    }

    static func parse(_ yaml: String, source: String = "config") throws -> SluiceConfig {
        try YAMLSource.decode(SluiceConfig.self, from: yaml, source: source)
    }
}

/// A YAML file decoded with every problem located: syntax errors at their mark, decoding
/// problems at the node their key path names. Shared by the configuration and the rules file.
enum YAMLSource {
    /// The document's node (an empty document is an empty mapping); a syntax error is thrown as
    /// `ConfigErrors` with one located problem.
    static func compose(_ yaml: String, source: String) throws(ConfigErrors) -> Node {
        do {
            return try Yams.compose(yaml: yaml) ?? Node.mapping(Node.Mapping([]))
        } catch {
            throw ConfigErrors([syntaxError(error, source: source)])
        }
    }

    /// `T` decoded from `yaml`, every problem gathered, located in `source` and put in file order.
    static func decode<T: Decodable>(_ type: T.Type, from yaml: String, source: String) throws(ConfigErrors) -> T {
        let node = try compose(yaml, source: source)
        do {
            return try ConfigErrorCollector.decode { userInfo in try YAMLDecoder().decode(T.self, from: node, userInfo: userInfo) }
        } catch {
            throw error.located { locate($0.path, in: node, source: source) }.inFileOrder()
        }
    }

    /// A YAML syntax error in one sentence at its place: `FILE:LINE:COL: <problem>` (libyaml's
    /// problem and, when it gives one, what it was reading: "while scanning a quoted scalar").
    static func syntaxError(_ error: any Error, source: String) -> ConfigError {
        let at = { (mark: Mark) in ConfigLocation(file: source, line: mark.line, column: mark.column) }
        switch error as? YamlError {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            let reading = context.map { " \($0.text) at line \($0.mark.line), column \($0.mark.column)" } ?? ""
            return ConfigError(path: "", message: "invalid YAML: \(problem)\(reading)", location: at(mark))
        case let .reader(problem, offset, _, _):
            let at = offset.map { " at byte \($0)" } ?? ""
            return ConfigError(path: "", message: "invalid YAML: \(problem)\(at)", location: ConfigLocation(file: source, line: 1, column: 1))
        case let .duplicatedKeysInMapping(duplicates, context):
            return ConfigError(
                path: "", message: "duplicate key \(duplicates.sorted().joined(separator: ", ")) \(context.text)", location: at(context.mark))
        default:
            return ConfigError(path: "", message: "invalid YAML: \(error)", location: ConfigLocation(file: source, line: 1, column: 1))
        }
    }

    /// Where `path` (`connections[1].policy.on_secret`) is in `root`: the value when it is a
    /// scalar, else its key; for a path that is not in the file (a missing key), the deepest
    /// node on the way.
    static func locate(_ path: String, in root: Node, source: String) -> ConfigLocation? {
        let mark = markOf(path, in: root)
        return mark.map { ConfigLocation(file: source, line: $0.line, column: $0.column) }
    }

    static func markOf(_ path: String, in root: Node) -> Mark? {
        var rest = Substring(path == "(top level)" ? "" : path)
        var node = root
        var keyMark: Mark?
        while !rest.isEmpty {
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]"), let i = Int(rest[rest.index(after: rest.startIndex)..<close]),
                    case .sequence(let sequence) = node, sequence.indices.contains(i)
                else { break }
                node = sequence[i]
                keyMark = nil
                rest = rest[rest.index(after: close)...]
            } else if case .mapping(let mapping) = node {
                // Keys may hold dots (`librdkafka.sasl.password`): the longest key that fits wins.
                let fits = mapping.filter { pair in
                    guard let k = pair.key.string, rest.hasPrefix(k) else { return false }
                    let after = rest.dropFirst(k.count)
                    return after.isEmpty || after.hasPrefix(".") || after.hasPrefix("[")
                }
                guard let (key, value) = fits.max(by: { ($0.key.string ?? "").count < ($1.key.string ?? "").count }) else { break }
                node = value
                keyMark = key.mark
                rest = rest.dropFirst(key.string?.count ?? 0)
            } else {
                break
            }
            if rest.hasPrefix(".") { rest = rest.dropFirst() }
        }
        if rest.isEmpty, case .scalar = node { return node.mark ?? keyMark }
        return keyMark ?? node.mark
    }
}
