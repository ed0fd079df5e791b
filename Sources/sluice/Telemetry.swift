import Logging
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
///   label `swift-otel`) and never holds back a request: spans are queued and dropped when the
///   queue is full.
enum Telemetry {
    static func bootstrap(_ telemetry: TelemetryConfig, role: String, logger: Logger) throws -> (any Service)? {
        guard let url = telemetry.tracesURL else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = telemetry.serviceName
        configuration.resourceAttributes["sluice.role"] = role
        configuration.resourceAttributes["service.version"] = SluiceVersion.current
        configuration.diagnosticLogger = .custom(Logger(label: "swift-otel"))
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
