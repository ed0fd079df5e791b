import Synchronization
import Tracing

/// A stage's span of its work on one request: exported when the process installed a tracer
/// (``install(_:)``: the executable does, with swift-otel's, when `telemetry.otlp_endpoint` is
/// set), and a ``TraceContext`` alone otherwise.
///
/// Guarantees:
/// - The ids the stage propagates (``TraceContext/current``: the `traceparent` bus header, the
///   upstream's `traceparent`, `trace_id`/`span_id` in log lines) are those of the exported
///   span: its trace, its own span id, the incoming span as its parent. Every stage's span of
///   a request is therefore in one trace, each the child of the stage before it.
/// - Without a tracer the work runs in `trace` exactly as given: nothing is recorded, nothing
///   is sent anywhere.
/// - A span's attributes are only what ``Attribute`` can express: ids, names, decisions,
///   counts and statuses. Never a payload, a header value, a URL or an error's text (an error
///   thrown by the work is recorded by its type name only).
/// - The span ends when the work returns or throws; the export itself (batching, the OTLP
///   request) happens off the request's path, in the tracer's service.
public enum StageSpan {
    /// What a span may say about a request.
    public enum Attribute: Sendable {
        case requestID(String)
        case sessionID(String)
        case connection(String)
        /// The Inspector's verdict (`allow`, `mask`, `hold`, `block`).
        case decision(String)
        /// How the request ended (`delivered`, `blocked`, ...), where a stage knows it.
        case outcome(String)
        /// The HTTP status the stage answered (Ingress) or got from the upstream (Forwarder).
        case httpStatus(Int)
        /// The bus topic the stage read the request from.
        case topic(String)
        /// How many findings the Inspector made.
        case findings(Int)

        var key: String {
            switch self {
            case .requestID: "sluice.request_id"
            case .sessionID: "sluice.session_id"
            case .connection: "sluice.connection"
            case .decision: "sluice.decision"
            case .outcome: "sluice.outcome"
            case .httpStatus: "http.response.status_code"
            case .topic: "messaging.destination.name"
            case .findings: "sluice.findings"
            }
        }

        var value: SpanAttribute {
            switch self {
            case .requestID(let v), .sessionID(let v), .connection(let v), .decision(let v), .outcome(let v), .topic(let v):
                .string(v)
            case .httpStatus(let v), .findings(let v):
                .int64(Int64(v))
            }
        }
    }

    /// The span's kind: the Ingress serves the caller, the other stages consume from the bus.
    public enum Kind: Sendable {
        case server, consumer

        var spanKind: SpanKind {
            switch self {
            case .server: .server
            case .consumer: .consumer
            }
        }
    }

    private static let installed = Mutex<(any Tracer)?>(nil)

    /// Makes `tracer` record every stage span of this process from now on (once, at start-up).
    public static func install(_ tracer: any Tracer) { installed.withLock { $0 = tracer } }

    /// The installed tracer, if any.
    static var tracer: (any Tracer)? { installed.withLock { $0 } }

    /// The span the current task works in, if a tracer records one.
    @TaskLocal static var active: (any Span)?

    /// Runs `work` in a span named `name` that continues `trace` (its trace id and parent span),
    /// with ``TraceContext/current`` set to the span's ids for the work's duration.
    public static func run<T>(
        _ name: String, kind: Kind, continuing trace: TraceContext, _ attributes: [Attribute] = [],
        _ work: () async throws -> T
    ) async rethrows -> T {
        guard let tracer else {
            return try await TraceContext.$current.withValue(trace) { try await work() }
        }
        let parent = parentContext(trace, tracer: tracer)
        let span = tracer.startSpan(name, context: parent, ofKind: kind.spanKind)
        defer { span.end() }
        for attribute in attributes { span.attributes[attribute.key] = attribute.value }
        var carrier: [String: String] = [:]
        tracer.inject(span.context, into: &carrier, using: HeaderCarrier())
        var own = trace
        if let header = carrier[TraceContext.headerName], case .success(let ids) = TraceParent.parse(header) {
            own = TraceContext(traceID: ids.traceID, spanID: ids.parentID, parentSpanID: trace.parentSpanID, flags: ids.flags)
        }
        do {
            return try await InstrumentationContext.withValue(span.context) {
                try await $active.withValue(span) {
                    try await TraceContext.$current.withValue(own) { try await work() }
                }
            }
        } catch {
            failed(span, error)
            throw error
        }
    }

    /// Runs `work` once for a batch of messages, in one span per message that continues the
    /// message's `traceparent` (e.g. the Recorder: one span per request it records, all ending
    /// when the batch is stored). Without a tracer it only runs `work`.
    public static func runBatch<T>(
        _ name: String, messages: [BusMessage], attributes: (BusMessage) -> [Attribute], _ work: () async throws -> T
    ) async rethrows -> T {
        guard let tracer, !messages.isEmpty else { return try await work() }
        let spans = messages.map { message in
            let trace = TraceContext.continuing(message).context
            let span = tracer.startSpan(name, context: parentContext(trace, tracer: tracer), ofKind: .consumer)
            for attribute in [Attribute.topic(message.topic)] + attributes(message) { span.attributes[attribute.key] = attribute.value }
            return span
        }
        defer { for span in spans { span.end() } }
        do { return try await work() } catch {
            for span in spans { failed(span, error) }
            throw error
        }
    }

    /// Adds `attributes` to the current task's span; nothing without one.
    public static func annotate(_ attributes: Attribute...) {
        guard let span = active, span.isRecording else { return }
        for attribute in attributes { span.attributes[attribute.key] = attribute.value }
    }

    /// Marks `span` failed by `error`'s type name only: an error's text may quote what it failed on.
    static func failed(_ span: any Span, _ error: any Error) {
        span.attributes["error.type"] = SpanAttribute.string(String(describing: type(of: error)))
        span.setStatus(SpanStatus(code: .error))
    }

    /// The tracer's context for a span whose parent is `trace`'s parent span (top level when it has none).
    static func parentContext(_ trace: TraceContext, tracer: any Tracer) -> InstrumentationContext {
        var parent = InstrumentationContext.topLevel
        if let parentID = trace.parentSpanID {
            let header = TraceParent(validTraceID: trace.traceID, parentID: parentID, flags: trace.flags).format()
            tracer.extract([TraceContext.headerName: header], into: &parent, using: HeaderCarrier())
        }
        return parent
    }

    /// Whether spans are recorded (a tracer is installed): lets a stage skip building
    /// attributes it would throw away.
    public static var recording: Bool { tracer != nil }
}

/// `traceparent`/`tracestate` in a dictionary: how the stage hands its ids to and from the tracer.
struct HeaderCarrier: Extractor, Injector {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}
