import Pipeline

/// Builds the configured sinks (`recorder.sinks`), in order.
enum SinkFactory {
    /// One sink per configured entry. A kind this build cannot send to yet (syslog, HEC,
    /// webhook) is a start-up error naming the entry, rather than a silently dropped feed.
    static func makeSinks(_ configs: [RecorderConfig.Sink]) throws -> [any AuditSink] {
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
            case .syslog, .hec, .webhook:
                throw ConfigError(
                    path: path + ".kind",
                    message: "sink kind \"\(config.kind.rawValue)\" is not supported by this build yet (supported: file)")
            }
        }
    }
}
