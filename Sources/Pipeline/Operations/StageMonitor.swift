import Logging
import Metrics

/// What a consume loop (`StageConsumer`) reports about itself while it runs: its readiness
/// check (joined its consumer group) and its group's lag per partition.
///
/// Guarantees:
/// - The check `check` is not ready from subscription until the member has joined the group
///   (its first assignment, possibly empty: a member beyond the partition count is healthy and
///   ready), ready then, and not ready again once the loop ends.
/// - `sluice_consumer_lag_events{group,topic,partition}` is recorded once after joining and then
///   every `lagInterval` (on Kafka each query costs broker round trips); every member of a group
///   reports every partition of the group, so dashboards take the max over instances. A failed
///   query is counted in `sluice_consumer_lag_query_failures_total{group}` and logged at debug;
///   the gauges keep their last values and consumption goes on.
public struct StageMonitor: Sendable {
    public let readiness: ReadinessBoard
    /// The readiness check's name (`group:<group>`, unless the stage names it).
    public let check: String
    public let lagInterval: Duration

    public init(readiness: ReadinessBoard, check: String, lagInterval: Duration = .seconds(15)) {
        self.readiness = readiness
        self.check = check
        self.lagInterval = lagInterval
    }

    /// Watches `subscription` until cancelled: readiness once joined, then the lag.
    func watch(_ subscription: BusSubscription, bus: any Bus, group: String, topics: [String], logger: Logger) async {
        readiness.set(check, ready: false, detail: "joining consumer group \(group)")
        while !Task.isCancelled, !(await subscription.hasJoinedGroup()) {
            do { try await Task.sleep(for: .milliseconds(100)) } catch { return }
        }
        guard !Task.isCancelled else { return }
        readiness.set(check, ready: true, detail: "member of consumer group \(group)")
        let failures = Counter(label: "sluice_consumer_lag_query_failures_total", dimensions: [("group", group)])
        while !Task.isCancelled {
            do {
                let lag = try await bus.lag(group: group, topics: topics)
                for (partition, position) in lag {
                    Gauge(label: "sluice_consumer_lag_events", dimensions: [
                        ("group", group), ("topic", partition.topic), ("partition", "\(partition.partition)"),
                    ]).record(position.events)
                }
            } catch {
                failures.increment()
                logger.debug("consumer lag not read", metadata: ["group": "\(group)", "error": "\(error)"])
            }
            do { try await Task.sleep(for: lagInterval) } catch { return }
        }
    }

    /// The loop ended: not ready.
    func stopped(group: String) {
        readiness.set(check, ready: false, detail: "not consuming (consumer group \(group))")
    }
}
