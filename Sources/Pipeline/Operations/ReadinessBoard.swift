import Metrics
import Synchronization

/// What a process's `/readyz` answers: the named checks its stages keep up to date.
///
/// Each stage sets its own checks (`set`) as its state changes: the Ingress when its `replies`
/// reader runs and the holds changelog is read, each consume loop when its member has joined its
/// consumer group (`StageConsumer`), the Forwarder per upstream it can reach, the Recorder per
/// sink and store. `/readyz` renders ``report``.
///
/// Guarantees:
/// - The process is ready only when at least one check is registered and every gating check is
///   ready: a process whose stages have not started yet is never reported ready.
/// - A `.stage` check always gates. A `.dependency` check (an upstream, a sink) gates only when
///   the board was made with `dependenciesGate: true` — a process without the Ingress. In a
///   process that also serves callers, one unreachable function must not take the whole caller
///   port out of its load balancer; the check still shows, not ready, in the report.
/// - A stage check announced with ``expect(_:detail:)`` gates from then on, so a process is not
///   ready between start-up and the moment the stage itself reports.
/// - Every `set` also records `sluice_ready{check}` (1 or 0), so dashboards see which check
///   holds a process back. Check names are stage, group, connection or sink names from the
///   configuration: bounded, never a value a caller sends.
/// - Thread-safe; `set` never blocks on I/O.
public final class ReadinessBoard: Sendable {
    /// Whether a check is the stage's own state or the reachability of something outside.
    public enum Kind: String, Sendable, Hashable {
        case stage
        case dependency
    }

    /// One check's state.
    public struct Check: Sendable, Hashable {
        public var name: String
        public var kind: Kind
        public var ready: Bool
        /// Why it is not ready (or what it checked), for operators: never a secret or payload.
        public var detail: String
        /// Whether this check decides the process's readiness on this board.
        public var gates: Bool
    }

    /// What `/readyz` reports.
    public struct Report: Sendable, Hashable {
        public var ready: Bool
        /// Every check, by name.
        public var checks: [Check]
    }

    /// Whether `.dependency` checks gate readiness (see the type's guarantees).
    public let dependenciesGate: Bool
    private let checks = Mutex<[String: Check]>([:])
    private let factory: (any MetricsFactory)?

    public init(dependenciesGate: Bool = true, metricsFactory: (any MetricsFactory)? = nil) {
        self.dependenciesGate = dependenciesGate
        self.factory = metricsFactory
    }

    /// Registers or updates the check `name`.
    public func set(_ name: String, kind: Kind = .stage, ready: Bool, detail: String = "") {
        let gates = kind == .stage || dependenciesGate
        checks.withLock { $0[name] = Check(name: name, kind: kind, ready: ready, detail: detail, gates: gates) }
        Gauge(label: "sluice_ready", dimensions: [("check", name)], factory: factory ?? MetricsSystem.factory).record(ready ? 1 : 0)
    }

    /// Registers the stage check `name` as not ready (`detail`), unless a stage already set it.
    ///
    /// The wiring calls this for every stage a process runs before any stage starts: otherwise a
    /// dependency check set first (an upstream probed, a sink lane made) would make the board
    /// ready while a stage has not yet registered its own check.
    public func expect(_ name: String, detail: String = "starting") {
        let registered = checks.withLock { checks -> Bool in
            if checks[name] != nil { return false }
            checks[name] = Check(name: name, kind: .stage, ready: false, detail: detail, gates: true)
            return true
        }
        if registered {
            Gauge(label: "sluice_ready", dimensions: [("check", name)], factory: factory ?? MetricsSystem.factory).record(0)
        }
    }

    /// The current state of every check, and whether the process is ready.
    public var report: Report {
        let all = checks.withLock { Array($0.values) }.sorted { $0.name < $1.name }
        let ready = !all.isEmpty && all.allSatisfy { $0.ready || !$0.gates }
        return Report(ready: ready, checks: all)
    }

    /// The check `name`, if registered.
    public func check(_ name: String) -> Check? {
        checks.withLock { $0[name] }
    }
}
