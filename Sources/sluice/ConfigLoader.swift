import Foundation
import Pipeline
import Yams

/// Reads the YAML configuration file into `SluiceConfig`; every problem becomes a
/// `ConfigError` naming the key path (or the file, for YAML syntax errors).
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
        do {
            return try YAMLDecoder().decode(SluiceConfig.self, from: yaml)
        } catch let error as ConfigError {
            throw error
        } catch let error as DecodingError {
            throw ConfigError(error)
        } catch let error as YamlError {
            throw ConfigError(path: source, message: "invalid YAML: \(error)")
        } catch {
            throw ConfigError(path: source, message: "\(error)")
        }
    }
}
