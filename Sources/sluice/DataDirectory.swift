import Foundation
import Pipeline
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `data_dir` (embedded bus, recordings, file sinks, holds), private to the operator.
///
/// Guarantees: after `prepare`, the directory exists with mode 0700 (created so, or an existing
/// one tightened); with the CLI's umask 077 everything Sluice then creates under it is 0700
/// (directories) or 0600 (files). Errors name `data_dir` and the path.
enum DataDirectory {
    /// The umask every `sluice` process sets at start: group and others get nothing.
    static let umaskBits: mode_t = 0o077

    static func prepare(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ConfigError(path: "data_dir", message: "\(path) exists and is not a directory") }
        } else {
            do {
                try FileManager.default.createDirectory(
                    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw ConfigError(path: "data_dir", message: "cannot create \(path): \(error.localizedDescription)")
            }
        }
        guard chmod(path, 0o700) == 0 else {
            throw ConfigError(path: "data_dir", message: "cannot set mode 0700 on \(path) (errno \(errno))")
        }
    }
}
