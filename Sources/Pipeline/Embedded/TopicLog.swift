import Foundation
import Logging

/// One embedded topic: `topics/<name>/` holding `partitions` (the partition count), `config`
/// (`cleanup.policy=...`) and a directory per partition.
///
/// Guarantees:
/// - The partition count and the cleanup policy are persisted when the topic is created and read
///   back on open, so a compacted topic stays compacted across restarts.
/// - A topic written before topic configs existed has no policy (`policy == nil`) until
///   `ensureTopics` names it; maintenance neither deletes nor compacts such a topic, so nothing
///   is lost to a policy guessed wrong.
final class TopicLog {
    let name: String
    let directory: URL
    let partitions: [PartitionLog]
    private(set) var policy: CleanupPolicy?

    struct Settings {
        var segmentBytes: Int
        var sync: Bool
        var logger: Logger
        /// Test support (see `SimulatedCrash`); `nil` in production.
        var crash: SimulatedCrash? = nil
    }

    private init(name: String, directory: URL, partitions: [PartitionLog], policy: CleanupPolicy?) {
        self.name = name
        self.directory = directory
        self.partitions = partitions
        self.policy = policy
    }

    /// Opens the topic in `topicsDirectory`, creating it with `partitions` and `policy` when it does not exist.
    ///
    /// - Parameter partitions: `nil` to open an existing topic only (an error when it has no partition count).
    static func open(
        topicsDirectory: URL, name: String, partitions: Int?, policy: CleanupPolicy, settings: Settings
    ) throws -> TopicLog {
        let dir = topicsDirectory.appendingPathComponent(name)
        let countFile = dir.appendingPathComponent("partitions")
        let configFile = dir.appendingPathComponent("config")
        let count: Int
        var persistedPolicy: CleanupPolicy?
        if let text = try? String(contentsOf: countFile, encoding: .utf8),
           let n = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), n > 0 {
            count = n
            persistedPolicy = try readPolicy(configFile)
        } else if let partitions {
            do {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try writePolicy(policy, to: configFile)
                try "\(partitions)\n".write(to: countFile, atomically: true, encoding: .utf8)
            } catch {
                throw BusError(.io, "cannot create topic \(name) in \(dir.path): \(error)")
            }
            count = partitions
            persistedPolicy = policy
        } else {
            throw BusError(.corrupt, "topic directory \(dir.path) has no readable partition count")
        }
        var logger = settings.logger
        logger[metadataKey: "topic"] = "\(name)"
        let logs = try (0..<count).map { p in
            try PartitionLog(
                directory: dir.appendingPathComponent("\(p)").path, topic: name, partition: p,
                legacyFile: dir.appendingPathComponent("\(p).log").path, segmentBytes: settings.segmentBytes,
                sync: settings.sync, logger: logger, crash: settings.crash)
        }
        return TopicLog(name: name, directory: dir, partitions: logs, policy: persistedPolicy)
    }

    /// Records `policy` for the topic (a topic from before topic configs, or a spec that names a different policy).
    func setPolicy(_ policy: CleanupPolicy) throws {
        guard policy != self.policy else { return }
        let file = directory.appendingPathComponent("config")
        do {
            try Self.writePolicy(policy, to: file)
        } catch {
            throw BusError(.io, "cannot write topic config \(file.path): \(error)")
        }
        self.policy = policy
    }

    var diskBytes: Int64 { partitions.reduce(0) { $0 + $1.diskBytes } }

    /// The policy a `TopicSpec` asks for (`delete` when it names none).
    static func policy(of spec: TopicSpec) throws -> CleanupPolicy? {
        guard let text = spec.config[CleanupPolicy.configKey] else { return nil }
        guard let policy = CleanupPolicy(parsing: text) else {
            throw BusError(.configuration, "topic \(spec.name): \(CleanupPolicy.configKey)=\(text) is not delete, compact or compact,delete")
        }
        return policy
    }

    private static func readPolicy(_ file: URL) throws -> CleanupPolicy? {
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        guard let text = try? String(contentsOf: file, encoding: .utf8) else {
            throw BusError(.io, "cannot read topic config \(file.path)")
        }
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, parts[0] == CleanupPolicy.configKey else { continue }
            guard let policy = CleanupPolicy(parsing: parts[1]) else {
                throw BusError(.corrupt, "topic config \(file.path): \(CleanupPolicy.configKey)=\(parts[1]) is not delete, compact or compact,delete")
            }
            return policy
        }
        throw BusError(.corrupt, "topic config \(file.path) names no \(CleanupPolicy.configKey)")
    }

    private static func writePolicy(_ policy: CleanupPolicy, to file: URL) throws {
        try "\(CleanupPolicy.configKey)=\(policy)\n".write(to: file, atomically: true, encoding: .utf8)
    }
}
