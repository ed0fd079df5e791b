import Logging

/// Where one stage is in a request's W3C trace: the trace, this stage's own span, and the span
/// it continues (the caller's, or the stage before). It is the seam for span export: a span
/// is this value plus a name and start/end times (docs/deploy.md, "Tracing").
///
/// The stage handling a request sets ``current`` (a task-local) for as long as it works on it;
/// `MessageCodec` then puts ``traceparent`` on every message it builds for the request
/// (`traceparent` bus header), the Forwarder sends it upstream, and the log metadata provider
/// (``loggingMetadataProvider``) adds `trace_id` to every log line written in that scope.
///
/// Guarantees: `traceID` is 32 and `spanID` 16 lowercase hex digits, neither all zero, and
/// `spanID` is this process's own random id (never an id it received); the ids are the only
/// thing taken from a caller or a message, and only once `TraceParent.parse` accepted them.
public struct TraceContext: Sendable, Hashable {
    /// The trace, as received (or new when none valid was received).
    public let traceID: String
    /// This stage's span: what it sends on as the parent id.
    public let spanID: String
    /// The span this one continues; `nil` when this stage started the trace.
    public let parentSpanID: String?
    /// Trace flags as received (only `sampled` kept; unknown flags are cleared as the
    /// specification asks); `sampled` for a trace started here.
    public let flags: UInt8

    /// The trace of the request the current task works on, if any.
    @TaskLocal public static var current: TraceContext?

    /// The bus header (and HTTP header) name.
    public static let headerName = "traceparent"
    /// The companion header the Forwarder passes on from the caller when it continues its trace.
    public static let stateHeaderName = "tracestate"

    /// A new trace started here: random trace and span ids, `sampled`.
    public static func root() -> TraceContext {
        TraceContext(traceID: randomHex(bytes: 16), spanID: randomHex(bytes: 8), parentSpanID: nil, flags: 0x01)
    }

    /// This stage's span, continuing what `parent` says.
    public static func continuing(_ parent: TraceParent) -> TraceContext {
        TraceContext(traceID: parent.traceID, spanID: randomHex(bytes: 8), parentSpanID: parent.parentID, flags: parent.flags & 0x01)
    }

    /// A span of its own that continues this one (same trace, parent = this span).
    public func child() -> TraceContext {
        TraceContext(traceID: traceID, spanID: Self.randomHex(bytes: 8), parentSpanID: spanID, flags: flags)
    }

    /// The span a stage works in for `message`: continuing its `traceparent` header when it is
    /// valid, else a new trace (a message written before the header existed, or by another
    /// producer). `restarted` says which.
    public static func continuing(_ message: BusMessage) -> (context: TraceContext, restarted: Bool) {
        guard let value = message.header(headerName).flatMap({ String(validating: $0, as: UTF8.self) }),
              case .success(let parent) = TraceParent.parse(value)
        else { return (root(), true) }
        return (continuing(parent), false)
    }

    /// The span the Ingress works in for a caller's `traceparent` header values: continuing
    /// the caller's trace when there is exactly one value and it parses, else a new trace;
    /// `refusal` says why a sent value was not used (`nil` when none was sent or it was used).
    public static func fromCaller(_ values: [String]) -> (context: TraceContext, refusal: String?) {
        guard !values.isEmpty else { return (root(), nil) }
        guard values.count == 1 else { return (root(), "repeated") }
        switch TraceParent.parse(values[0].trimmingWhitespace()) {
        case .success(let parent): return (continuing(parent), nil)
        case .failure(let refusal): return (root(), refusal.rawValue)
        }
    }

    /// What this stage sends on: its trace, its own span as the parent id, its flags.
    public var traceparent: String {
        TraceParent(validTraceID: traceID, parentID: spanID, flags: flags).format()
    }

    /// The `traceparent` bus header for messages this stage builds.
    public var busHeader: BusHeader { BusHeader(Self.headerName, traceparent) }

    /// Adds `trace_id` and `span_id` of ``current`` to every log line (`LoggingSystem.bootstrap`'s
    /// metadata provider); nothing outside a request's scope.
    public static let loggingMetadataProvider = Logger.MetadataProvider {
        guard let trace = TraceContext.current else { return [:] }
        return ["trace_id": .string(trace.traceID), "span_id": .string(trace.spanID)]
    }

    static func randomHex(bytes count: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        while true {
            // Eight bytes per draw: each draw is a getrandom(2) call, one per byte was 24 a new trace.
            var bytes: [UInt8] = []
            bytes.reserveCapacity(count + 7)
            while bytes.count < count { withUnsafeBytes(of: rng.next() as UInt64) { bytes.append(contentsOf: $0) } }
            bytes.removeLast(bytes.count - count)
            // All zeros is invalid (and has probability 2^-64 at worst): draw again.
            if bytes.contains(where: { $0 != 0 }) { return TraceParent.hex(bytes) }
        }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (HTTP optional whitespace).
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
