import Logging
import Metrics
import OTel
import Pipeline
import ServiceLifecycle

/// Span export for one `sluice` process (`telemetry`, docs/deploy.md "Tracing").
///
/// Guarantees:
/// - Without `telemetry.otlp_endpoint` nothing is bootstrapped: no tracer, no exporter, no
///   connection to anywhere; stages keep propagating trace context (`StageSpan`).
/// - With it, swift-otel's tracer is made once for the process and installed for the stage spans
///   only (`StageSpan.install`; not in `InstrumentationSystem`, so no library adds spans). Traces
///   only: swift-otel's logging and metrics backends are not used (logs stay on standard error,
///   metrics on `/metrics`). Sampling is parent-based, with `sample_ratio` for traces started
///   here; spans are batched and sent over OTLP/HTTP to `<otlp_endpoint>/v1/traces`. The returned
///   service runs the exporter; listed first in the process's service group it stops last, so
///   the stages' last spans are flushed after they drained.
/// - The standard `OTEL_*` environment variables override these settings (swift-otel applies
///   them), e.g. `OTEL_BSP_SCHEDULE_DELAY`.
/// - An export that fails is reported by swift-otel's diagnostic logger (this process's log,
///   label `swift-otel`) and counted on `/metrics` (`TelemetryProblems`), and never holds back a
///   request: spans are queued and dropped when the queue is full (also counted).
enum Telemetry {
    static func bootstrap(_ telemetry: TelemetryConfig, role: String, logger: Logger) throws -> (any Service)? {
        guard let url = telemetry.tracesURL else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = telemetry.serviceName
        configuration.resourceAttributes["sluice.role"] = role
        configuration.resourceAttributes["service.version"] = SluiceVersion.current
        let log = Logger(label: "swift-otel")
        configuration.diagnosticLogger = .custom(Logger(label: "swift-otel") { _ in TelemetryProblems(upstream: log.handler) })
        configuration.diagnosticLogLevel = .warning
        configuration.propagators = [.traceContext]
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.endpoint = url
        configuration.traces.otlpExporter.protocol = switch telemetry.otlpProtocol {
        case .httpProtobuf: .httpProtobuf
        case .httpJSON: .httpJSON
        }
        guard let sampler = OTel.Configuration.TracesConfiguration.SamplerConfiguration.parentBasedTraceIDRatio(ratio: telemetry.sampleRatio) else {
            throw ConfigError(path: "telemetry.sample_ratio", message: "\(telemetry.sampleRatio) is not between 0 and 1")
        }
        configuration.traces.sampler = sampler
        let (tracer, service) = try OTel.makeTracingBackend(configuration: configuration)
        // Installed for the stage spans only, never in InstrumentationSystem: the HTTP client
        // and the server would otherwise add spans of their own, with URLs and queries.
        StageSpan.install(tracer)
        logger.info("exporting spans over OTLP", metadata: [
            "endpoint": "\(url)", "protocol": "\(telemetry.otlpProtocol.rawValue)", "sample_ratio": "\(telemetry.sampleRatio)",
        ])
        return service
    }
}

/// swift-otel's diagnostic log handler: passes records on to this process's log, and counts its
/// warnings on `/metrics` so a collector that is down or refuses spans is visible there, not
/// only in the log: `sluice_telemetry_problems_total{kind}` with `kind` `export_failed` (a batch
/// was not accepted; its spans are lost), `spans_dropped` (`sluice_telemetry_spans_dropped_total`
/// counts them: the queue was full) or `other`.
struct TelemetryProblems: LogHandler {
    var upstream: any LogHandler

    var logLevel: Logger.Level {
        get { upstream.logLevel }
        set { upstream.logLevel = newValue }
    }
    var metadata: Logger.Metadata {
        get { upstream.metadata }
        set { upstream.metadata = newValue }
    }
    var metadataProvider: Logger.MetadataProvider? {
        get { upstream.metadataProvider }
        set { upstream.metadataProvider = newValue }
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { upstream[metadataKey: key] }
        set { upstream[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level >= .warning {
            let kind = Self.kind(of: event.message.description)
            Counter(label: "sluice_telemetry_problems_total", dimensions: [("kind", kind)]).increment()
            if kind == "spans_dropped", let dropped = event.metadata?["dropped_count"].flatMap({ Int("\($0)") }) {
                Counter(label: "sluice_telemetry_spans_dropped_total").increment(by: dropped)
            }
        }
        guard event.level >= upstream.logLevel else { return }
        upstream.log(event: event)
    }

    /// The kind of one of swift-otel's warnings, from its message (swift-otel 1.x wording).
    static func kind(of message: String) -> String {
        if message.hasPrefix("Failed to export") || message.hasPrefix("Force flush failed") { return "export_failed" }
        if message.hasPrefix("Spans were dropped") { return "spans_dropped" }
        return "other"
    }
}
