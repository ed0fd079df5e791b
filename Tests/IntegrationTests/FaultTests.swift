import Foundation
import GatewayHarness
import Testing

/// Invariant 8 under faults: steady load on `billing` while stages are killed (-9), restarted,
/// added, removed and stopped (SIGTERM); then, from the audit sink and the recording upstream:
/// every accepted request has exactly one outcome, the upstream saw every call at most once
/// (except calls in flight when the Forwarder died: then again with the same `Idempotency-Key`),
/// and SIGTERM drains within `shutdown_timeout` without resetting an accepted connection.
///
/// `SLUICE_FAULT_SECONDS` sets how long the load runs in each phase (default 3; `make fault`: 60).
@Suite("Faults", .serialized)
struct Faults {
    static let phase: Duration = .seconds(Int(ProcessInfo.processInfo.environment["SLUICE_FAULT_SECONDS"] ?? "") ?? 3)
    static let shutdownTimeout: Duration = .seconds(5)
    /// Time allowed beyond `shutdown_timeout` for a SIGTERM'd process to exit.
    static let shutdownMargin: Duration = .seconds(3)
    static let extraTopLevel = "shutdown_timeout: 5s"

    /// Warm-up (Kafka consumer groups joined), then calls spend 20 ms at the upstream so a
    /// killed Forwarder dies mid-call and SIGTERM finds calls in every stage.
    /// Whether the broker completes a rebalance that a member joining or leaving starts under
    /// load. Tansu 0.6.0 (the test broker, `SLUICE_KAFKA_BROKER_KIND=tansu` from
    /// scripts/with-broker.sh) does not; Apache Kafka does.
    static var brokerCompletesRebalances: Bool {
        ProcessInfo.processInfo.environment["SLUICE_KAFKA_BROKER_KIND"] != "tansu"
    }

    /// Whether read_committed consumers skip aborted transactions: Apache Kafka does, Tansu
    /// 0.6.0 does not.
    static var brokerHidesAbortedTransactions: Bool {
        ProcessInfo.processInfo.environment["SLUICE_KAFKA_BROKER_KIND"] != "tansu"
    }

    static func prepare(_ gw: Gateway) async throws {
        try await gw.waitPipelineFlowing()
        await gw.upstream.setResponse(body: "{\"ok\":true}", headers: [], delay: .milliseconds(20))
    }

    /// Under load labelled `phase`: run a phase, kill -9 `name`, leave it dead for `down`, start
    /// it again and wait until calls are answered 200 again. Calls in flight at the kill are the
    /// ones labelled `phase`; calls started after it are labelled `after-<phase>`.
    static func crashAndRestart(_ gw: Gateway, _ load: LoadGenerator, _ name: String, phase: String, down: Duration? = nil) async throws {
        load.setPhase(phase)
        try await load.keepRunning(for: Self.phase)
        try gw.kill9(name)
        load.setPhase("after-\(phase)")
        if let down { try await load.keepRunning(for: down) }
        let restarted = ContinuousClock.now
        try gw.relaunch(name)
        if name == "ingress" || name == "run" { try await gw.waitReady() }
        await expectFlowing(load, since: restarted, after: "the restart of \(name)")
    }

    /// Calls started after `since` are answered 200 again: the stages continue without operator
    /// action. Recorded as an issue (not thrown) so the scenario still runs and prints its figures.
    static func expectFlowing(_ load: LoadGenerator, since: ContinuousClock.Instant, after event: String) async {
        do { try await load.waitAnswered(startedAfter: since, timeout: .seconds(30)) } catch {
            Issue.record("calls do not flow again after \(event): \(error)")
        }
    }

    static func report(_ f: FaultFigures) {
        print(f)
        print(FaultFigures.tableHeader + "\n" + f.tableRow)
    }

    /// Invariant 8, exactly: no slack but the Forwarder-kill window's same-key duplicates.
    static func expectOneOutcomeEach(_ f: FaultFigures) {
        #expect(f.settled, "not settled within the deadline: \(f.withoutOutcome.count) requests without an outcome")
        #expect(f.accepted > 0 && f.secretCalls > 0, "the load did not run")
        #expect(f.withoutOutcome.isEmpty, "\(f.withoutOutcome.count) accepted requests have no outcome, e.g. \(f.withoutOutcome.prefix(5))")
        #expect(f.twoOrMore.isEmpty, "\(f.twoOrMore.count) accepted requests have two or more outcomes, e.g. \(f.twoOrMore.sorted { $0.key < $1.key }.prefix(5))")
        #expect(f.answeredWithoutReceived.isEmpty, "\(f.answeredWithoutReceived.count) calls answered 200 have no request_received")
        #expect(f.strayDuplicates.isEmpty, "\(f.strayDuplicates.count) calls delivered twice outside the Forwarder-kill window, e.g. \(f.strayDuplicates.prefix(5).map { "\($0.token) [\($0.phase)] ×\($0.copies)" })")
        let differentKeys = f.windowDuplicates.filter { !$0.sameKey }
        #expect(differentKeys.isEmpty, "duplicates in the Forwarder-kill window with different Idempotency-Keys: \(differentKeys.prefix(5).map { "\($0.token) \($0.keys)" })")
        #expect(f.keyMismatches.isEmpty, "\(f.keyMismatches.prefix(5))")
        #expect(f.leakedSecrets == 0, "\(f.leakedSecrets) secrets reached the upstream unmasked")
    }

    /// Atomic hand-off (issue 9, item 2): no input produced two `inspected` verdicts. On Tansu
    /// 0.6.0 read_committed consumers see aborted records, so a killed inspector's aborted
    /// transaction shows there: counted and printed, asserted on every other bus.
    static func expectInspectedOnce(_ f: FaultFigures, kafka: Bool = false) {
        if kafka && !brokerHidesAbortedTransactions {
            if !f.inspectedTwice.isEmpty {
                print("FAULTS: \(f.inspectedTwice.count) requests inspected twice, not asserted: Tansu 0.6.0 shows aborted transactions to read_committed consumers")
            }
            return
        }
        #expect(f.inspectedTwice.isEmpty, "\(f.inspectedTwice.count) requests were inspected twice, e.g. \(f.inspectedTwice.keys.sorted().prefix(5))")
    }

    /// SIGTERM drains: exit status 0 within `shutdown_timeout` + margin.
    static func expectDrained(_ s: ShutdownFigure) {
        #expect(s.termination.exitedInTime && s.termination.took < shutdownTimeout + shutdownMargin,
                "\(s.name): \(s.termination) (shutdown_timeout \(shutdownTimeout) + \(shutdownMargin))")
        #expect(s.termination.status == 0, "\(s.name): \(s.termination)")
    }

    /// No accepted connection lost: every call whose connection was accepted got an HTTP answer, 200, 503 or 504.
    static func expectEveryAcceptedCallAnswered(_ f: FaultFigures) {
        // Every request the Ingress took is answered. A connection the kernel accepted whose request
        // the Ingress had not read yet when it stopped listening may still be reset: counted and
        // printed (`lost after connect`), not asserted (see docs/outcomes.md, "Shutdown").
        #expect(f.lostAfterReceived.isEmpty, "\(f.lostAfterReceived.count) requests the Ingress had taken got no answer, e.g. \(f.lostAfterReceived.prefix(5).map { "\($0.token) [\($0.phase)]: \($0.end)" })")
        let unexpected = f.statuses.filter { ![200, 503, 504].contains($0.key) }
        #expect(unexpected.isEmpty, "answers other than 200/503/504: \(unexpected)")
    }

    /// The counts the accounting must give for one hand-made situation.
    struct Counts: Equatable, Sendable {
        var accepted = 0, withoutOutcome = 0, exactlyOne = 0, twoOrMore = 0, repeatedEvent = 0
        var duplicates = 0, windowSameKey = 0, stray = 0, keyMismatches = 0, leaks = 0, unsettled = 0, inspectedTwice = 0
    }

    struct AccountingCase: Sendable, CustomTestStringConvertible {
        var name: String
        var records: [AuditRecord]
        var upstream: [UpstreamDelivery] = []
        var calls: [LoadCall] = []
        var window: Set<String> = []
        var expected: Counts
        var testDescription: String { name }

        static func received(_ id: String) -> AuditRecord { AuditRecord(kind: "request_received", requestID: id, eventID: "r-\(id)") }
        static func outcome(_ id: String, _ kind: String = "delivered", event: String) -> AuditRecord { AuditRecord(kind: kind, requestID: id, eventID: event) }
        static func inspected(_ id: String, event: String) -> AuditRecord { AuditRecord(kind: "inspected", requestID: id, eventID: event) }
        static func delivery(_ phase: String, _ token: String, key: String?, body: String = "{}") -> UpstreamDelivery {
            UpstreamDelivery(path: "/load/\(phase)/\(token)", idempotencyKey: key, body: body)
        }
        static func call(_ token: String, _ phase: String, status: Int = 200, id: String, secret: String? = nil) -> LoadCall {
            LoadCall(token: token, phase: phase, secret: secret, connected: true, end: .answered(status: status, requestID: id))
        }

        static let all: [AccountingCase] = [
            AccountingCase(
                name: "one request, one outcome, one delivery", records: [received("a"), outcome("a", event: "e1")],
                upstream: [delivery("p", "c0-1", key: "a")], calls: [call("c0-1", "p", id: "a")],
                expected: Counts(accepted: 1, exactlyOne: 1)),
            AccountingCase(
                name: "accepted without an outcome", records: [received("a")], calls: [call("c0-1", "p", status: 504, id: "a")],
                expected: Counts(accepted: 1, withoutOutcome: 1, unsettled: 1)),
            AccountingCase(
                name: "two outcome events for one request", records: [received("a"), outcome("a", event: "e1"), outcome("a", "failed", event: "e2")],
                expected: Counts(accepted: 1, twoOrMore: 1)),
            AccountingCase(
                name: "one outcome event written twice", records: [received("a"), outcome("a", event: "e1"), outcome("a", event: "e1")],
                expected: Counts(accepted: 1, twoOrMore: 1, repeatedEvent: 1)),
            AccountingCase(
                name: "duplicate in the Forwarder-kill window, same key", records: [received("a"), outcome("a", event: "e1")],
                upstream: [delivery("fk", "c0-1", key: "a"), delivery("fk", "c0-1", key: "a")], calls: [call("c0-1", "fk", id: "a")],
                window: ["fk"], expected: Counts(accepted: 1, exactlyOne: 1, duplicates: 1, windowSameKey: 1)),
            AccountingCase(
                name: "duplicate outside the window", records: [received("a"), outcome("a", event: "e1")],
                upstream: [delivery("other", "c0-1", key: "a"), delivery("other", "c0-1", key: "a")], calls: [call("c0-1", "other", id: "a")],
                window: ["fk"], expected: Counts(accepted: 1, exactlyOne: 1, duplicates: 1, stray: 1)),
            AccountingCase(
                name: "duplicate in the window with another key", records: [received("a"), outcome("a", event: "e1")],
                upstream: [delivery("fk", "c0-1", key: "a"), delivery("fk", "c0-1", key: "b")], calls: [call("c0-1", "fk", id: "a")],
                window: ["fk"], expected: Counts(accepted: 1, exactlyOne: 1, duplicates: 1, keyMismatches: 1)),
            AccountingCase(
                name: "a delivery without Idempotency-Key", records: [received("a"), outcome("a", event: "e1")],
                upstream: [delivery("p", "c0-1", key: nil)], calls: [call("c0-1", "p", id: "a")],
                expected: Counts(accepted: 1, exactlyOne: 1, keyMismatches: 1)),
            AccountingCase(
                name: "a secret reached the upstream", records: [received("a"), outcome("a", event: "e1")],
                upstream: [delivery("p", "c0-1", key: "a", body: "{\"github_token\":\"ghp_leak\"}")],
                calls: [call("c0-1", "p", id: "a", secret: "ghp_leak")], expected: Counts(accepted: 1, exactlyOne: 1, leaks: 1)),
            AccountingCase(
                name: "answered 200 but no request_received yet", records: [], calls: [call("c0-1", "p", id: "a")],
                expected: Counts(unsettled: 1)),
            AccountingCase(
                name: "other deliveries grouped by key", records: [received("w"), outcome("w", event: "e1")],
                upstream: [UpstreamDelivery(path: "/warm-up", idempotencyKey: "w", body: ""), UpstreamDelivery(path: "/warm-up", idempotencyKey: "w", body: "")],
                expected: Counts(accepted: 1, exactlyOne: 1, duplicates: 1, stray: 1)),
            AccountingCase(
                name: "inspected twice (two inspected events)", records: [received("a"), inspected("a", event: "i1"), inspected("a", event: "i2"), outcome("a", event: "e1")],
                expected: Counts(accepted: 1, exactlyOne: 1, inspectedTwice: 1)),
            AccountingCase(
                name: "one inspected event written twice is one inspection", records: [received("a"), inspected("a", event: "i1"), inspected("a", event: "i1"), outcome("a", event: "e1")],
                expected: Counts(accepted: 1, exactlyOne: 1)),
        ]
    }

    @Test("accounting: outcomes per accepted request, duplicates in and out of the window, keys, leaks", arguments: AccountingCase.all)
    func accounting(_ c: AccountingCase) {
        let f = FaultAccounting.account(
            scenario: c.name, records: c.records, unparsableLines: 0, upstream: c.upstream, calls: c.calls, duplicateWindow: c.window)
        let counts = Counts(
            accepted: f.accepted, withoutOutcome: f.withoutOutcome.count, exactlyOne: f.exactlyOne, twoOrMore: f.twoOrMore.count,
            repeatedEvent: f.repeatedOutcomeEvent, duplicates: f.duplicates.count, windowSameKey: f.windowDuplicates.count(where: \.sameKey),
            stray: f.strayDuplicates.count, keyMismatches: f.keyMismatches.count, leaks: f.leakedSecrets,
            unsettled: FaultAccounting.unsettled(records: c.records, calls: c.calls), inspectedTwice: f.inspectedTwice.count)
        #expect(counts == c.expected)
    }

    @Test("embedded: kill -9 `sluice run` under load and restart it — one outcome per accepted request, duplicates only in the kill window with the same key")
    func embeddedKill() async throws {
        let gw = try await Gateway(mode: .embedded, extraTopLevel: Self.extraTopLevel)
        defer { Task { await gw.stop() } }
        try await gw.start(logLevel: "info")
        try await Self.prepare(gw)
        let load = LoadGenerator(gateway: gw, phase: "baseline")
        defer { load.cancel() }
        try await load.keepRunning(for: Self.phase)
        // The whole gateway is one process: its death is also the Forwarder's, mid-call.
        try await Self.crashAndRestart(gw, load, "run", phase: "run-kill")
        try await load.keepRunning(for: Self.phase)
        let calls = try await load.stop()
        let f = await gw.settleAndAccount(scenario: "embedded kill -9 run", calls: calls, duplicateWindow: ["run-kill"])
        Self.report(f)
        Self.expectOneOutcomeEach(f)
        Self.expectInspectedOnce(f)
        await gw.stop()
    }

    @Test("Kafka: kill -9 and restart an inspector, the forwarder, the recorder, the ingress; add and remove inspectors — invariant 8 holds",
          .enabled(if: GatewayMode.kafkaBrokers != nil, "set SLUICE_KAFKA_BROKERS (make test does)"))
    func kafkaStageKills() async throws {
        let gw = try await Gateway(mode: .kafka, extraTopLevel: Self.extraTopLevel)
        defer { Task { await gw.stop() } }
        try await gw.start(inspectors: 2, logLevel: "info")
        try await Self.prepare(gw)
        let load = LoadGenerator(gateway: gw, phase: "baseline")
        defer { load.cancel() }
        try await load.keepRunning(for: Self.phase)
        // One of two inspectors crashes: its partitions stall until the session timeout moves them.
        try await Self.crashAndRestart(gw, load, "inspector-0", phase: "inspector-kill", down: Self.phase)
        // The Forwarder dies mid-call: the only window where a second delivery is allowed (same key).
        try await Self.crashAndRestart(gw, load, "forwarder", phase: "forwarder-kill")
        try await Self.crashAndRestart(gw, load, "recorder", phase: "recorder-kill")
        try await Self.crashAndRestart(gw, load, "ingress", phase: "ingress-kill")
        var shutdowns: [ShutdownFigure] = []
        if Self.brokerCompletesRebalances {
            load.setPhase("inspector-add")
            try await load.keepRunning(for: Self.phase)
            let added = ContinuousClock.now
            try gw.addInspector("inspector-2")
            await Self.expectFlowing(load, since: added, after: "adding inspector-2")
            load.setPhase("inspector-remove")
            try await load.keepRunning(for: Self.phase)
            let removing = ContinuousClock.now
            shutdowns.append(ShutdownFigure(
                name: "inspector-1", termination: try await gw.removeInspector("inspector-1", timeout: Self.shutdownTimeout + .seconds(10))))
            await Self.expectFlowing(load, since: removing, after: "removing inspector-1")
        } else {
            print("FAULTS: adding and removing inspectors under load not run: Tansu 0.6.0's group coordinator never completes a rebalance a new member starts while the group is busy (fixed upstream after 0.6.0; run against Apache Kafka with SLUICE_KAFKA_BROKERS)")
        }
        load.setPhase("final")
        try await load.keepRunning(for: Self.phase)
        let calls = try await load.stop()
        let f = await gw.settleAndAccount(
            scenario: "Kafka kill -9 stages", calls: calls, duplicateWindow: ["forwarder-kill"], shutdowns: shutdowns)
        Self.report(f)
        Self.expectOneOutcomeEach(f)
        Self.expectInspectedOnce(f, kafka: true)
        for s in shutdowns { Self.expectDrained(s) }
        await gw.stop()
    }

    @Test("embedded: SIGTERM under full load exits within shutdown_timeout, answers every accepted call, loses nothing")
    func embeddedSigterm() async throws {
        let gw = try await Gateway(mode: .embedded, extraTopLevel: Self.extraTopLevel)
        defer { Task { await gw.stop() } }
        try await gw.start(logLevel: "info")
        try await Self.prepare(gw)
        let load = LoadGenerator(gateway: gw, phase: "steady")
        defer { load.cancel() }
        try await load.keepRunning(for: Self.phase)
        load.setPhase("run-sigterm")
        try await load.keepRunning(for: Self.phase)
        let stopped = ShutdownFigure(name: "run", termination: try await gw.terminate("run", timeout: Self.shutdownTimeout + .seconds(10)))
        let calls = try await load.stop()
        // Started again on the same data: whatever was in the pipeline at the signal ends once.
        try gw.relaunch("run")
        try await gw.waitReady()
        let f = await gw.settleAndAccount(scenario: "embedded SIGTERM run", calls: calls, shutdowns: [stopped])
        Self.report(f)
        Self.expectInspectedOnce(f)
        Self.expectDrained(stopped)
        Self.expectEveryAcceptedCallAnswered(f)
        Self.expectOneOutcomeEach(f)
        await gw.stop()
    }

    @Test("Kafka: SIGTERM the ingress, then the whole deployment in reverse start order, under full load — drains in time, no reset, nothing lost",
          .enabled(if: GatewayMode.kafkaBrokers != nil, "set SLUICE_KAFKA_BROKERS (make test does)"))
    func kafkaSigterm() async throws {
        let gw = try await Gateway(mode: .kafka, extraTopLevel: Self.extraTopLevel)
        defer { Task { await gw.stop() } }
        try await gw.start(inspectors: 2, logLevel: "info")
        try await Self.prepare(gw)
        let load = LoadGenerator(gateway: gw, phase: "steady")
        defer { load.cancel() }
        try await load.keepRunning(for: Self.phase)
        load.setPhase("ingress-sigterm")
        try await load.keepRunning(for: Self.phase)
        var shutdowns = [ShutdownFigure(name: "ingress", termination: try await gw.terminate("ingress", timeout: Self.shutdownTimeout + .seconds(10)))]
        load.setPhase("after-ingress-sigterm")
        let restarted = ContinuousClock.now
        try gw.relaunch("ingress")
        try await gw.waitReady()
        await Self.expectFlowing(load, since: restarted, after: "the restart of the ingress")
        load.setPhase("deployment-sigterm")
        try await load.keepRunning(for: Self.phase)
        // Reverse start order: ingress, inspectors, forwarder, recorder.
        let order = gw.processes.reversed().map(\.name)
        for name in order {
            shutdowns.append(ShutdownFigure(name: name, termination: try await gw.terminate(name, timeout: Self.shutdownTimeout + .seconds(10))))
        }
        let calls = try await load.stop()
        // Started again on the same topics: whatever was in the pipeline at the signals ends once.
        for name in order.reversed() { try gw.relaunch(name) }
        try await gw.waitReady()
        let f = await gw.settleAndAccount(scenario: "Kafka SIGTERM ingress, then all", calls: calls, shutdowns: shutdowns)
        Self.report(f)
        Self.expectInspectedOnce(f, kafka: true)
        for s in shutdowns { Self.expectDrained(s) }
        Self.expectEveryAcceptedCallAnswered(f)
        Self.expectOneOutcomeEach(f)
        await gw.stop()
    }
}
