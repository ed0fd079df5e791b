import AsyncHTTPClient
import Foundation
import KafkaBus
import NIOCore
import NIOHTTP1
import Pipeline

/// Helpers for the hold → approve flow: the reviewer API, the caller's poll, restarts.
extension Gateway {
    /// Calls an Ingress API path (not `/fn/...`) with `key`.
    public func api(_ method: HTTPMethod = .GET, _ path: String, key: String?, json: [String: Any]? = nil) async throws -> CallResult {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: self.json(json)))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        return CallResult(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: Data(buffer: bytes))
    }

    public func poll(_ id: String, key: String = Gateway.ciKey) async throws -> CallResult {
        try await api(.GET, "/v1/requests/\(id)", key: key)
    }

    public func approve(_ id: String, key: String, reason: String = "looks fine") async throws -> CallResult {
        try await api(.POST, "/v1/approvals/\(id)/approve", key: key, json: ["reason": reason])
    }

    public func deny(_ id: String, key: String, reason: String = "not today") async throws -> CallResult {
        try await api(.POST, "/v1/approvals/\(id)/deny", key: key, json: ["reason": reason])
    }

    /// The ids `key` sees under `GET /v1/approvals?status=...`.
    public func approvalIDs(key: String = Gateway.aliceKey, status: String = "pending") async throws -> [String] {
        let r = try await api(.GET, "/v1/approvals?status=\(status)", key: key)
        return ((r.json?["approvals"] as? [[String: Any]]) ?? []).compactMap { $0["request_id"] as? String }
    }

    /// Waits until the reviewer API lists `id` as pending.
    public func waitPending(_ id: String, timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await approvalIDs().contains(id) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw GatewayError("\(id) never listed as pending:\n\(processLogs.suffix(4000))")
    }

    /// Polls `GET /v1/requests/<id>` until it is no longer 202.
    public func waitFinal(_ id: String, key: String = Gateway.ciKey, timeout: Duration = .seconds(30)) async throws -> CallResult {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let r = try await poll(id, key: key)
            if r.status != 202 { return r }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw GatewayError("\(id) still pending after \(timeout):\n\(processLogs.suffix(4000))")
    }

    /// Waits until the upstream has received at least `count` requests; returns when it did.
    public func waitUpstream(count: Int = 1, timeout: Duration = .seconds(30)) async throws -> ContinuousClock.Instant {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await upstream.requests.count >= count { return ContinuousClock.now }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw GatewayError("upstream got fewer than \(count) requests:\n\(processLogs.suffix(4000))")
    }

    /// Sends clean calls to `billing` until one is delivered (on Kafka, `/readyz` does not yet mean
    /// every consumer group has its partitions), then forgets them at the upstream.
    /// Returns the request ids it used, so tests can leave them out of their counts.
    @discardableResult
    public func waitPipelineFlowing(timeout: Duration = .seconds(60)) async throws -> Set<String> {
        let deadline = ContinuousClock.now + timeout
        var ids: Set<String> = []
        while ContinuousClock.now < deadline {
            let r = try await call(connection: "billing", path: "/warm-up", timeout: .seconds(30))
            if let id = r.header("X-Sluice-Request-Id") { ids.insert(id) }
            if r.status == 200 {
                await upstream.reset()
                return ids
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw GatewayError("no call delivered within \(timeout):\n\(processLogs.suffix(4000))")
    }

    /// Waits until the audit trail has an outcome (delivered, blocked, denied, expired, failed) for `requestID`.
    public func waitOutcome(_ requestID: String, timeout: Duration = .seconds(30)) async throws -> [String: Any] {
        let kinds: Set<String> = ["delivered", "blocked", "denied", "expired", "failed"]
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let e = auditEvents().first(where: { $0["request_id"] as? String == requestID && kinds.contains($0["kind"] as? String ?? "") }) {
                return e
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw GatewayError("no outcome for \(requestID) within \(timeout)")
    }

    /// Stops every process (SIGTERM) and starts the deployment again on the same data and topics.
    public func restart() async throws {
        for p in processes.reversed() { await p.stop() }
        let names = processes.map { ($0.name, $0.process.arguments?.first ?? "run") }
        processes = []
        for (name, command) in names { try launch(name + "-2", command: command) }
        try await waitReady()
    }

    /// Every audit event of the file sink, parsed.
    public func auditEvents() -> [[String: Any]] {
        let url = dataDir.appendingPathComponent("audit.jsonl")
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Waits until the audit sink holds at least `count` events of `kind`, and returns all of them
    /// (the caller asserts the exact number). Events from several partitions reach the sink in any order.
    public func waitAuditEvents(_ kind: String, count: Int, timeout: Duration = .seconds(20)) async throws -> [[String: Any]] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let events = auditEvents().filter { $0["kind"] as? String == kind }
            if events.count >= count { return events }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw GatewayError("fewer than \(count) \(kind) audit events within \(timeout)")
    }

    /// Waits until the audit sink has an event of `kind` for `requestID`.
    public func waitAudit(_ kind: String, requestID: String, timeout: Duration = .seconds(20)) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let e = auditEvents().first(where: { $0["kind"] as? String == kind && $0["request_id"] as? String == requestID }) { return e }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw GatewayError("no \(kind) audit event for \(requestID)")
    }

    /// Publishes a decision straight to `approvals` (Kafka mode), as the Ingress would.
    public func publishDecision(requestID: String, approve: Bool, approverID: String, groups: [String], reason: String = "direct") async throws {
        guard mode == .kafka, let brokers = GatewayMode.kafkaBrokers else { throw GatewayError("publishDecision needs Kafka") }
        let bus = try KafkaBus(configuration: KafkaBusConfiguration(brokers: brokers))
        let sealer = try PayloadSealer(keys: [PayloadSealer.Key(id: "k1", base64: Self.sealKey)])
        let codec = MessageCodec(sealer: sealer, topics: Topics(prefix: topicPrefix))
        let decision = ApprovalDecision(
            requestID: requestID, vote: approve ? .approve : .deny,
            approver: CallerIdentity(id: approverID, groups: groups, method: "api_key"), reason: reason)
        try await bus.publish(try codec.decision(decision))
        await bus.shutdown()
    }
}

/// A webhook receiver for approval announcements: a `TestUpstream` that records what it is sent.
public typealias WebhookReceiver = TestUpstream

extension Gateway {
    /// Runs `sluice <arguments>` to completion with `SLUICE_TOKEN=token`; returns the exit status and stdout+stderr.
    public func runCLI(_ arguments: [String], token: String) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = SluiceProcess.binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["SLUICE_TOKEN"] = token
        env["SLUICE_URL"] = nil
        process.environment = env
        let out = root.appendingPathComponent("cli-\(UUID().uuidString.prefix(6)).out")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        let handle = try FileHandle(forWritingTo: out)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        try handle.close()
        return (process.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "")
    }
}
