import Logging
import Pipeline

/// Builds the configured sinks (`recorder.sinks`), in order.
enum SinkFactory {
    /// One sink per configured entry. A kind this build cannot send to yet (HEC, webhook) is a
    /// start-up error naming the entry, rather than a silently dropped feed. A syslog sink's TLS
    /// files are read here (a bad one fails start-up); it connects at its first write.
    static func makeSinks(_ configs: [RecorderConfig.Sink], logger: Logger = Logger(label: "sluice.recorder")) throws -> [any AuditSink] {
        try configs.enumerated().map { index, config in
            let path = "recorder.sinks[\(index)]"
            switch config.kind {
            case .file:
                guard let file = config.path, !file.isEmpty else {
                    throw ConfigError(path: path + ".path", message: "required for a file sink")
                }
                do { return try FileSink(path: file) } catch {
                    throw ConfigError(path: path + ".path", message: "\(error)")
                }
            case .syslog:
                return try SyslogSink(options: SyslogSink.Options(config: config, path: path), configPath: path, logger: logger)
            case .hec, .webhook:
                throw ConfigError(
                    path: path + ".kind",
                    message: "sink kind \"\(config.kind.rawValue)\" is not supported by this build yet (supported: file, syslog)")
            }
        }
    }
}
