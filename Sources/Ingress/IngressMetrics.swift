import Prometheus

/// The Ingress's Prometheus metrics, registered in the given registry.
///
/// Guarantees: labels are only configured connection names (or `-` when the request did
/// not name a configured connection), HTTP status codes and fixed reason words — never a
/// path, query, identity, key or any other caller-controlled text.
struct IngressMetrics: Sendable {
    static let noConnection = "-"

    let registry: PrometheusCollectorRegistry
    private let inFlight: Gauge
    private let repliesRead: Counter
    private let repliesAnswered: Counter

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        inFlight = registry.makeGauge(descriptor: MetricNameDescriptor(
            namespace: "sluice", subsystem: "ingress", metricName: "in_flight", unitName: "requests",
            helpText: "Requests accepted and awaiting a reply."))
        repliesRead = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "sluice", subsystem: "ingress", metricName: "replies_read", unitName: "total",
            helpText: "Messages read from the replies partition this instance reads, for any instance (with replies_answered_total: the fan-out)."))
        repliesAnswered = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "sluice", subsystem: "ingress", metricName: "replies_answered", unitName: "total",
            helpText: "Replies handed to the request of this instance waiting for them."))
    }

    /// Counts a finished `/fn` request and records its latency.
    func requestFinished(connection: String, status: Int, duration: Duration) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "sluice", subsystem: "ingress", metricName: "requests", unitName: "total",
                                             helpText: "Function-call requests by connection and response status."),
            labels: [("connection", connection), ("code", String(status))]
        ).increment()
        registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(namespace: "sluice", subsystem: "ingress", metricName: "request_duration", unitName: "seconds",
                                             helpText: "Time from receiving a function-call request to answering it."),
            labels: [("connection", connection)],
            buckets: Self.buckets
        ).record(duration)
    }

    func inFlightChanged(to value: Int) { inFlight.set(to: Double(value)) }

    /// Counts a connection closed for not sending a complete request head in time.
    func headTimedOut() {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "sluice", subsystem: "ingress", metricName: "header_timeouts", unitName: "total",
                                             helpText: "Connections closed for not sending a complete request head within header_read_timeout."),
            labels: []
        ).increment()
    }

    /// Counts a request refused for a fairness limit (`in_flight`, `in_flight_identity`, `held_identity`, `body_timeout`).
    func limited(reason: String) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "sluice", subsystem: "ingress", metricName: "limited", unitName: "total",
                                             helpText: "Function-call requests refused by a fairness limit, by limit."),
            labels: [("limit", reason)]
        ).increment()
    }

    /// Counts a message read from `replies`, before its key is looked at.
    func replyRead() { repliesRead.increment() }

    /// Counts a reply handed to the request waiting for it (`ReplyRegistry.deliver` took it).
    func replyAnswered() { repliesAnswered.increment() }

    /// Counts a reply that reached this instance but was not handed to a caller.
    func replyDropped(reason: String) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "sluice", subsystem: "ingress", metricName: "replies_dropped", unitName: "total",
                                             helpText: "Replies for this instance not handed to a caller, by reason."),
            labels: [("reason", reason)]
        ).increment()
    }

    static let buckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]
}
