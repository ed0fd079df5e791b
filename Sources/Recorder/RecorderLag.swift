import Logging
import Metrics
import Pipeline

/// How many events the Recorder's readers are behind, in events, from the bus's own offsets
/// (`Bus.lag(group:topics:)`): `sluice_recorder_lag_events` for the recordings' group and
/// `sluice_sink_lag_events{sink}` for each sink's group, each the sum over the group's partitions.
///
/// Guarantees:
/// - The gauges are updated once every `interval` (and once at start), not per batch: on Kafka
///   each query costs round trips to the broker. One query per group, one group after the other.
/// - A failed query is logged at debug and counted in `sluice_recorder_lag_query_failures_total`;
///   the gauge keeps its last value. Nothing else depends on the queries: the readers go on.
/// - `run` returns when its task is cancelled (a query in flight then finishes first: on Kafka
///   within 5 s).
struct RecorderLag: Sendable {
    /// One consumer group and the gauge its lag goes to.
    struct Target: Sendable {
        var group: String
        var topics: [String]
        var gauge: Gauge
    }

    let bus: any Bus
    let targets: [Target]
    let interval: Duration
    let logger: Logger
    private let failures: Counter

    /// The recordings' group (`<prefix>recorder`) on the topics its reader consumes (`audit` and
    /// `outcomes`, plus `inspected` and `replies` when recordings hold `content`) and each lane's
    /// group on `audit` and `outcomes`.
    init(context: StageContext, content: Bool, lanes: [SinkLane], interval: Duration, metricsFactory: (any MetricsFactory)?) {
        let factory = metricsFactory ?? MetricsSystem.factory
        bus = context.bus
        logger = context.logger
        self.interval = interval
        failures = Counter(label: "sluice_recorder_lag_query_failures_total", factory: factory)
        let topics = context.topics
        let recordingTopics = [topics.audit, topics.outcomes] + (content ? [topics.inspected, topics.replies] : [])
        targets = [
            Target(
                group: topics.consumerGroup("recorder"), topics: recordingTopics,
                gauge: Gauge(label: "sluice_recorder_lag_events", factory: factory))
        ]
            + lanes.map { lane in
                Target(
                    group: lane.group, topics: [context.topics.audit, context.topics.outcomes],
                    gauge: Gauge(label: "sluice_sink_lag_events", dimensions: [("sink", lane.sink.label)], factory: factory))
            }
    }

    /// Updates the gauges every `interval` until cancelled.
    func run() async {
        while !Task.isCancelled {
            for target in targets {
                guard !Task.isCancelled else { return }
                await update(target)
            }
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }

    /// Queries one group's lag and records its sum; on failure logs, counts and leaves the gauge.
    func update(_ target: Target) async {
        do {
            let lag = try await bus.lag(group: target.group, topics: target.topics)
            target.gauge.record(lag.values.reduce(Int64(0)) { $0 + $1.events })
        } catch {
            failures.increment()
            logger.debug("consumer lag not read", metadata: [
                "group": "\(target.group)", "topics": "\(target.topics)", "error": "\(error)",
            ])
        }
    }
}
