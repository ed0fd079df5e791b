import Foundation
import Logging
import NIOSSL
import Pipeline

/// Builds the configured sinks (`recorder.sinks`), in order.
enum SinkFactory {
    /// One sink per configured entry (wrapped in an ``OCSFSink`` for `schema: ocsf`). A syslog
    /// sink's TLS files are read here (a bad one fails start-up); it connects at its first write.
    /// Secret references (a HEC token, webhook header values) are resolved here: one that cannot
    /// be read fails start-up naming its path, never printing a value. A hec or webhook sink's
    /// `ca_file` is read here too (unreadable, not PEM or holding no certificate: start-up fails
    /// naming `recorder.sinks[i].ca_file` and the file).
    static func makeSinks(
        _ configs: [RecorderConfig.Sink], logger: Logger = Logger(label: "sluice.recorder"),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> [any AuditSink] {
        try configs.enumerated().map { index, config in
            let path = "recorder.sinks[\(index)]"
            let sink: any AuditSink
            switch config.kind {
            case .file:
                guard let file = config.path, !file.isEmpty else {
                    throw ConfigError(path: path + ".path", message: "required for a file sink")
                }
                let rotation = FileSink.Rotation(
                    maxBytes: config.rotateBytes, interval: config.rotateInterval?.duration, keep: config.keep)
                do { sink = try FileSink(path: file, rotation: rotation, logger: logger) } catch {
                    throw ConfigError(path: path + ".path", message: "\(error)")
                }
            case .syslog:
                sink = try SyslogSink(options: SyslogSink.Options(config: config, path: path), configPath: path, logger: logger)
            case .hec:
                guard let url = config.url, let token = config.token else {
                    throw ConfigError(path: path + ".url", message: "url and token are required for a hec sink")
                }
                let secret = try token.resolve(path: path + ".token", environment: environment)
                sink = HTTPBatchSink(
                    label: HTTPBatchSink.label(kind: "hec", url: url), url: url, headers: [("Authorization", "Splunk \(secret)")],
                    format: .hec(index: config.index, sourcetype: config.sourcetype, source: config.source, host: Self.hostName()),
                    tlsConfiguration: try Self.tls(caFile: config.caFile, path: path + ".ca_file"))
            case .webhook:
                guard let url = config.url else { throw ConfigError(path: path + ".url", message: "required for a webhook sink") }
                let headers = try config.headers.sorted { $0.key < $1.key }.map { name, value in
                    (name, try value.resolve(path: path + ".headers." + name, environment: environment))
                }
                sink = HTTPBatchSink(
                    label: HTTPBatchSink.label(kind: "webhook", url: url), url: url, headers: headers, format: .jsonArray,
                    tlsConfiguration: try Self.tls(caFile: config.caFile, path: path + ".ca_file"))
            }
            switch config.schema {
            case .sluice: return sink
            case .ocsf: return OCSFSink(inner: sink, productVersion: SluiceVersion.current)
            }
        }
    }

    /// A client TLS configuration trusting only the CA certificates in `caFile` (`nil`: none
    /// configured, the system's trust roots). Errors name `path` and the file.
    static func tls(caFile: String?, path: String) throws -> TLSConfiguration? {
        guard let caFile else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try caCertificates(caFile, path: path))
        return tls
    }

    /// The PEM CA certificates of a sink's `ca_file` (syslog, hec, webhook); unreadable, not PEM
    /// or holding none throws naming `path` (`recorder.sinks[i].ca_file`) and the file.
    static func caCertificates(_ caFile: String, path: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMFile(caFile) } catch {
            throw ConfigError(path: path, message: "cannot read PEM certificates from \(caFile): \(error)")
        }
        guard !certificates.isEmpty else { throw ConfigError(path: path, message: "no PEM certificate in \(caFile)") }
        return certificates
    }

    /// This machine's name, for HEC's `host`.
    static func hostName() -> String {
        let name = ProcessInfo.processInfo.hostName
        return name.isEmpty ? "sluice" : name
    }
}
