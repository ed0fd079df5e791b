import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// The fault suite's harness: steady load from callers that tell transport failures apart, stage
// kills and relaunches, and the invariant-8 accounting over the audit sink and the upstream.

// MARK: - One load call

/// How one load call ended, as its caller saw it.
public enum CallEnd: Sendable, Equatable {
    /// A complete HTTP answer (status line, headers and the whole body).
    case answered(status: Int, requestID: String?)
    /// `connect()` refused: nothing listened on the port, so no connection was accepted.
    case refused
    /// Reset (`ECONNRESET`/`EPIPE`) before a complete answer; `received` bytes had arrived.
    case reset(received: Int)
    /// The server closed the connection (EOF) before a complete answer.
    case closed(received: Int)
    /// No complete answer within the call's timeout (connect or read).
    case timeout(received: Int)
    /// Any other socket error, at `step` (`socket`, `connect`, `send`, `recv`).
    case failed(step: String, errno: Int32)
}

/// One call of the load: what was sent, when, and how it ended.
public struct LoadCall: Sendable {
    /// Unique in the run (`c<caller>-<n>`); the upstream sees it in the path `/load/<phase>/<token>`.
    public var token: String
    public var phase: String
    public var caller: Int
    /// The fake credential in the body, when this call carries one (it must arrive masked).
    public var secret: String?
    public var started: ContinuousClock.Instant
    public var ended: ContinuousClock.Instant
    /// `connect()` succeeded: the Ingress's socket accepted the connection.
    public var connected: Bool
    public var end: CallEnd

    public init(
        token: String, phase: String, caller: Int = 0, secret: String? = nil, started: ContinuousClock.Instant = .now,
        ended: ContinuousClock.Instant = .now, connected: Bool, end: CallEnd
    ) {
        self.token = token
        self.phase = phase
        self.caller = caller
        self.secret = secret
        self.started = started
        self.ended = ended
        self.connected = connected
        self.end = end
    }

    public var status: Int? { if case .answered(let s, _) = end { s } else { nil } }
    public var requestID: String? { if case .answered(_, let id) = end { id } else { nil } }

    /// The connection was accepted but the caller got no complete HTTP answer on it
    /// (reset, closed, timed out or failed after `connect()`).
    public var lostAfterConnect: Bool {
        guard connected else { return false }
        if case .answered = end { return false }
        return true
    }
}

/// One HTTP/1.1 exchange on its own connection (`Connection: close`) over a blocking socket,
/// classifying how it ended.
///
/// Guarantees: `refused` only when `connect()` failed with `ECONNREFUSED`; `answered` only with a
/// complete answer (by `Content-Length`, chunked framing, or EOF); every other end keeps the
/// errno class (reset vs closed vs timeout). Runs on the calling thread, never on the
/// cooperative pool (the load generator calls it from threads of its own).
enum LoadSocket {
    static func exchange(port: Int, request: [UInt8], timeout: Duration) -> (connected: Bool, end: CallEnd) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return (false, .failed(step: "socket", errno: errno)) }
        defer { close(fd) }
        if connectLoopback(fd, port: port, timeout: timeout) != 0 {
            let e = errno
            switch e {
            case ECONNREFUSED: return (false, .refused)
            case EAGAIN, EINPROGRESS, ETIMEDOUT: return (false, .timeout(received: 0))
            default: return (false, .failed(step: "connect", errno: e))
            }
        }
        var sendError: Int32?
        request.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            var sent = 0
            while sent < buf.count {
                let n = send(fd, buf.baseAddress! + sent, buf.count - sent, Int32(MSG_NOSIGNAL))
                if n > 0 { sent += n; continue }
                if n < 0, errno == EINTR { continue }
                sendError = n < 0 ? errno : EPIPE
                return
            }
        }
        // Read even after a failed send: the server may have answered before it closed.
        var raw: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        var readError: Int32?
        var eof = false
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n > 0 {
                raw.append(contentsOf: chunk[0..<n])
                if let answer = HTTPAnswer.parse(raw, atEOF: false), answer.complete { break }
                continue
            }
            if n == 0 { eof = true; break }
            if errno == EINTR { continue }
            readError = errno
            break
        }
        if let answer = HTTPAnswer.parse(raw, atEOF: eof), answer.complete {
            return (true, .answered(status: answer.status, requestID: answer.header("X-Sluice-Request-Id")))
        }
        if let e = readError ?? (eof ? nil : sendError) {
            switch e {
            case ECONNRESET, EPIPE: return (true, .reset(received: raw.count))
            case EAGAIN, EWOULDBLOCK: return (true, .timeout(received: raw.count))
            default: return (true, .failed(step: readError != nil ? "recv" : "send", errno: e))
            }
        }
        return (true, .closed(received: raw.count))
    }
}

/// An HTTP/1.1 answer read from raw bytes: status, headers, and whether the body is complete.
struct HTTPAnswer {
    var status: Int
    var headers: [(String, String)]
    var complete: Bool

    func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    /// `nil` until the head (status line and headers) has arrived. The body is complete when
    /// `Content-Length` bytes arrived, the chunked body ended (`0` chunk), or, with neither, at EOF.
    static func parse(_ raw: [UInt8], atEOF: Bool) -> HTTPAnswer? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard raw.count >= 4, let end = (0...(raw.count - 4)).first(where: { raw[$0..<($0 + 4)].elementsEqual(separator) }) else { return nil }
        let head = String(decoding: raw[..<end], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/"), let status = Int(statusLine[1]) else { return nil }
        let headers: [(String, String)] = lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var answer = HTTPAnswer(status: status, headers: headers, complete: false)
        let body = raw[(end + 4)...]
        if let length = answer.header("Content-Length").flatMap({ Int($0) }) {
            answer.complete = body.count >= length
        } else if answer.header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            answer.complete = body.count >= 5 && (body.starts(with: Array("0\r\n".utf8)) || body.suffix(7).elementsEqual(Array("\r\n0\r\n\r\n".utf8)))
        } else {
            answer.complete = atEOF
        }
        return answer
    }
}

// MARK: - Steady load

/// Steady load on one connection: `callers` concurrent callers, each sending realistic JSON calls
/// one after another (closed loop: a caller waits for its answer before the next call) until
/// stopped; every fourth call (by default) carries a fake GitHub token the Inspector must mask.
///
/// Guarantees: every call has a unique body and a unique path `/load/<phase>/<token>`; every call
/// is recorded with how it ended (`CallEnd`) and whether its connection was accepted; callers
/// run on threads of their own (blocking sockets, never the cooperative pool); after a refused
/// or broken connection a caller pauses `backoff` so a dead Ingress is not hammered.
public final class LoadGenerator: Sendable {
    public struct Options: Sendable {
        public var callers = 8
        public var connection = "billing"
        /// Every `secretEvery`-th call of a caller carries a secret (0: none do).
        public var secretEvery = 4
        public var callTimeout: Duration = .seconds(30)
        public var backoff: Duration = .milliseconds(20)
        public init() {}
    }

    private struct State {
        var phase: String
        var stopping = false
        var running = 0
        var calls: [LoadCall] = []
    }

    private let state: Mutex<State>
    public let port: Int
    public let options: Options
    private let key: String

    /// Starts the callers at once, against `gateway`'s caller port, labelling calls with `phase`.
    public init(gateway: Gateway, phase: String, key: String = Gateway.ciKey, options: Options = Options()) {
        self.port = gateway.port
        self.options = options
        self.key = key
        self.state = Mutex(State(phase: phase, running: options.callers))
        for caller in 0..<options.callers {
            let thread = Thread { [self] in
                self.callerLoop(caller)
                self.state.withLock { $0.running -= 1 }
            }
            thread.name = "fault-load-\(caller)"
            thread.start()
        }
    }

    /// Labels the calls started from now on (their path and their `LoadCall.phase`).
    public func setPhase(_ phase: String) { state.withLock { $0.phase = phase } }

    /// The calls finished so far.
    public var calls: [LoadCall] { state.withLock { $0.calls } }

    /// Lets the load run for `duration`: the length of a load phase, not a wait for a condition.
    public func keepRunning(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }

    /// Waits until some call started after `instant` was answered `status` (the pipeline flows again).
    public func waitAnswered(_ status: Int = 200, startedAfter instant: ContinuousClock.Instant, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let seen = state.withLock { s in s.calls.reversed().contains { $0.started > instant && $0.status == status } }
            if seen { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let recent = state.withLock { s in s.calls.suffix(20).map { "\($0.token): \($0.end)" } }
        throw GatewayError("no call started after the mark was answered \(status) within \(timeout); last calls: \(recent)")
    }

    /// Tells the callers to stop after their call in flight, without waiting (for `defer`).
    public func cancel() { state.withLock { $0.stopping = true } }

    /// Stops the callers (each finishes its call in flight) and returns every call.
    public func stop(timeout: Duration = .seconds(60)) async throws -> [LoadCall] {
        state.withLock { $0.stopping = true }
        let deadline = ContinuousClock.now + timeout
        while state.withLock({ $0.running }) > 0 {
            guard ContinuousClock.now < deadline else { throw GatewayError("load callers still running \(timeout) after stop") }
            try await Task.sleep(for: .milliseconds(20))
        }
        return calls
    }

    private func callerLoop(_ caller: Int) {
        var n = 0
        while true {
            guard let phase = state.withLock({ $0.stopping ? nil : $0.phase }) else { return }
            n += 1
            let token = "c\(caller)-\(n)"
            let secret = options.secretEvery > 0 && n % options.secretEvery == 0 ? Canaries.github("ghp_") : nil
            let body = Self.body(token: token, secret: secret)
            let request = Self.request(
                port: port, path: "/fn/\(options.connection)/load/\(phase)/\(token)", key: key, session: "fault-caller-\(caller)", body: body)
            let started = ContinuousClock.now
            let (connected, end) = LoadSocket.exchange(port: port, request: request, timeout: options.callTimeout)
            let call = LoadCall(
                token: token, phase: phase, caller: caller, secret: secret, started: started, ended: ContinuousClock.now,
                connected: connected, end: end)
            state.withLock { $0.calls.append(call) }
            if case .answered = end { continue }
            let pause = options.backoff.components
            usleep(useconds_t(pause.seconds * 1_000_000 + pause.attoseconds / 1_000_000_000_000))
        }
    }

    /// A realistic billing call: a charge with a customer, items and metadata, unique by `token`.
    static func body(token: String, secret: String?) -> [UInt8] {
        var object: [String: Any] = [
            "call": token,
            "customer": "cus_" + Canaries.random(14, from: Canaries.alnum),
            "amount_cents": Int.random(in: 100...250_000),
            "currency": ["eur", "usd", "gbp"].randomElement()!,
            "description": "fault-suite charge \(token)",
            "items": (0..<Int.random(in: 1...3)).map { i in ["sku": "sku-\(Int.random(in: 1...500))", "qty": i + 1] },
            "metadata": ["order": "ord-\(token)", "channel": "agent"],
        ]
        if let secret { object["github_token"] = secret }
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    static func request(port: Int, path: String, key: String, session: String, body: [UInt8]) -> [UInt8] {
        let head = [
            "POST \(path) HTTP/1.1", "Host: 127.0.0.1:\(port)", "Authorization: Bearer \(key)",
            "Content-Type: application/json", "X-Sluice-Session: \(session)", "Content-Length: \(body.count)",
            "Connection: close",
        ]
        return Array((head.joined(separator: "\r\n") + "\r\n\r\n").utf8) + body
    }
}

// MARK: - Stage faults

extension Gateway {
    func stage(_ name: String) throws -> SluiceProcess {
        guard let p = process(name) else { throw GatewayError("no process named \(name); have \(processes.map(\.name))") }
        return p
    }

    /// kill -9 the stage process `name` (returns once it is dead).
    public func kill9(_ name: String) throws { try stage(name).kill9() }

    /// Starts `name` again with the same command (after a kill or a stop).
    public func relaunch(_ name: String) throws { try stage(name).relaunch() }

    /// SIGTERM to `name` and wait for it to exit (killed past `timeout`; the result says which).
    public func terminate(_ name: String, timeout: Duration) async throws -> SluiceProcess.Termination {
        try await stage(name).terminate(timeout: timeout)
    }

    /// Starts one more inspector process (Kafka mode) named `name`.
    public func addInspector(_ name: String) throws {
        guard mode == .kafka else { throw GatewayError("inspector processes exist only in Kafka mode") }
        try launch(name, command: "inspector")
    }

    /// Removes the inspector `name` gracefully (SIGTERM) and reports how it exited.
    public func removeInspector(_ name: String, timeout: Duration) async throws -> SluiceProcess.Termination {
        try await terminate(name, timeout: timeout)
    }

    /// The audit sink's events, typed for the accounting, and how many lines did not parse.
    public func auditRecords() -> (records: [AuditRecord], unparsable: Int) {
        let url = dataDir.appendingPathComponent("audit.jsonl")
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        var records: [AuditRecord] = []
        var unparsable = 0
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let kind = object["kind"] as? String, let id = object["request_id"] as? String
            else {
                // The hash chain's own lines (docs/audit-chain.md) are not events.
                if line.hasPrefix(#"{"after_offset":"#) || line.hasPrefix(#"{"count":"#) { continue }
                unparsable += 1
                continue
            }
            records.append(AuditRecord(kind: kind, requestID: id, eventID: object["event_id"] as? String ?? "", path: object["path"] as? String))
        }
        return (records, unparsable)
    }

    /// Waits until the pipeline has settled, then accounts.
    ///
    /// Settled: every accepted request (`request_received`) has an outcome, every call answered
    /// 200 has its `request_received`, and neither the audit sink nor the upstream has changed
    /// for `quiet` (so late duplicates are counted). Polls; gives up at `timeout` (the figures
    /// then say `settled: no`, and the unsettled requests show as "without outcome").
    public func settleAndAccount(
        scenario: String, calls: [LoadCall], duplicateWindow: Set<String> = [], shutdowns: [ShutdownFigure] = [],
        timeout: Duration = .seconds(60), quiet: Duration = .seconds(2)
    ) async -> FaultFigures {
        let started = ContinuousClock.now
        let deadline = started + timeout
        var lastSize = (-1, -1)
        var lastChange = started
        var settled = false
        while ContinuousClock.now < deadline {
            let audit = auditRecords()
            let upstreamCount = await upstream.requests.count
            let size = (audit.records.count + audit.unparsable, upstreamCount)
            if size != lastSize { lastSize = size; lastChange = ContinuousClock.now }
            if FaultAccounting.unsettled(records: audit.records, calls: calls) == 0, ContinuousClock.now - lastChange >= quiet {
                settled = true
                break
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
        let audit = auditRecords()
        var figures = FaultAccounting.account(
            scenario: scenario, records: audit.records, unparsableLines: audit.unparsable,
            upstream: await upstream.requests.map(UpstreamDelivery.init), calls: calls, duplicateWindow: duplicateWindow)
        figures.shutdowns = shutdowns
        figures.settled = settled
        figures.settleWait = ContinuousClock.now - started
        return figures
    }
}

// MARK: - Accounting

/// One audit event, as much as the accounting needs.
public struct AuditRecord: Sendable, Equatable {
    public var kind: String
    public var requestID: String
    public var eventID: String
    /// The request's path below the connection (load calls: `/load/<phase>/<token>`).
    public var path: String?
    public init(kind: String, requestID: String, eventID: String, path: String? = nil) {
        self.kind = kind
        self.requestID = requestID
        self.eventID = eventID
        self.path = path
    }
}

/// One request as the upstream received it, as much as the accounting needs.
public struct UpstreamDelivery: Sendable {
    public var path: String
    public var idempotencyKey: String?
    public var body: String
    public init(path: String, idempotencyKey: String?, body: String) {
        self.path = path
        self.idempotencyKey = idempotencyKey
        self.body = body
    }
    public init(_ request: ReceivedRequest) {
        self.init(path: request.path, idempotencyKey: request.header("Idempotency-Key"), body: request.bodyText)
    }
}

/// Requests the upstream received two or more times (load calls by their token; others by
/// their `Idempotency-Key`).
public struct DuplicateDelivery: Sendable {
    public var token: String
    /// The phase the call was started in (`?` for calls that are not load calls).
    public var phase: String
    /// The `Idempotency-Key` of each copy, in arrival order.
    public var keys: [String?]
    public var copies: Int { keys.count }
    public var sameKey: Bool { Set(keys).count == 1 && keys.first! != nil }
}

/// How one process answered SIGTERM.
public struct ShutdownFigure: Sendable {
    public var name: String
    public var termination: SluiceProcess.Termination
    public init(name: String, termination: SluiceProcess.Termination) {
        self.name = name
        self.termination = termination
    }
}

/// The counts of one scenario: the callers' view, the audit sink's, the upstream's.
public struct FaultFigures: Sendable, CustomStringConvertible {
    public var scenario: String
    // Callers.
    public var calls = 0
    public var statuses: [Int: Int] = [:]
    public var refused = 0
    public var resets = 0
    public var closed = 0
    public var timeouts = 0
    public var otherErrors = 0
    /// Calls whose connection had been accepted and that got no complete HTTP answer.
    public var lostAfterConnect: [LoadCall] = []
    /// Of `lostAfterConnect`, the calls the Ingress had taken (their `request_received` is in the
    /// audit, found by the call's token in the path): a request the gateway accepted and never answered.
    public var lostAfterReceived: [LoadCall] = []
    // Audit sink.
    public var auditLines = 0
    public var unparsableAuditLines = 0
    /// Request ids with a `request_received` event.
    public var accepted = 0
    public var withoutOutcome: [String] = []
    public var exactlyOne = 0
    /// Request id → its outcome kinds, for requests with two or more outcome events.
    public var twoOrMore: [String: [String]] = [:]
    /// Of `twoOrMore`, the requests whose outcome events are all one event written again (same `event_id`).
    public var repeatedOutcomeEvent = 0
    /// Request id → number of distinct `inspected` audit events, for requests inspected two or
    /// more times (a second `inspected` for one input: the hand-off was not atomic).
    public var inspectedTwice: [String: Int] = [:]
    /// Request ids with an outcome but no `request_received`.
    public var outcomeWithoutReceived: [String] = []
    /// Request ids answered 200 to their caller that have no `request_received`.
    public var answeredWithoutReceived: [String] = []
    // Upstream.
    public var deliveries = 0
    /// `Idempotency-Key` (the request id: the callers send none) → deliveries.
    public var deliveriesPerRequest: [String: Int] = [:]
    public var duplicates: [DuplicateDelivery] = []
    /// Phases where the Forwarder died mid-call: a duplicate there is allowed with the same key.
    public var duplicateWindow: Set<String> = []
    /// Load deliveries whose `Idempotency-Key` is missing or differs from the id their caller was answered with.
    public var keyMismatches: [String] = []
    /// Load deliveries whose body still holds the caller's secret in clear text.
    public var leakedSecrets = 0
    public var secretCalls = 0
    // Processes.
    public var shutdowns: [ShutdownFigure] = []
    public var settled = false
    public var settleWait: Duration = .zero
    /// Request id → phase, where known (from the caller's answer or the delivery's path).
    public var phaseOf: [String: String] = [:]
    /// The callers' view per phase, in the order the phases ran.
    public var phases: [PhaseCalls] = []

    /// What the callers saw in one phase.
    public struct PhaseCalls: Sendable {
        public var phase: String
        public var calls = 0
        public var statuses: [Int: Int] = [:]
        public var refused = 0
        public var lostAfterConnect = 0
    }

    public var windowDuplicates: [DuplicateDelivery] { duplicates.filter { duplicateWindow.contains($0.phase) } }
    public var strayDuplicates: [DuplicateDelivery] { duplicates.filter { !duplicateWindow.contains($0.phase) } }
    public var lostAfterConnectResets: Int { lostAfterConnect.count(where: { if case .reset = $0.end { true } else { false } }) }

    public static func seconds(_ d: Duration) -> String {
        String(format: "%.2f s", Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }

    func phases(_ ids: some Sequence<String>) -> String {
        let counts = Dictionary(grouping: ids, by: { phaseOf[$0] ?? "?" }).mapValues(\.count)
        return counts.isEmpty ? "" : " by phase " + counts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
    }

    /// Where `call` lies relative to the SIGTERM during whose shutdown it ended, if any.
    func nearestSignal(_ call: LoadCall) -> String {
        func offset(_ d: Duration) -> String {
            let s = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
            return String(format: "%+.3f s", s)
        }
        // Only a SIGTERM whose shutdown the call's end falls in (give or take a second).
        guard let s = shutdowns.first(where: {
            call.ended >= $0.termination.signalled - .seconds(1) && call.ended <= $0.termination.signalled + $0.termination.took + .seconds(1)
        }) else { return "" }
        return " (started \(offset(call.started - s.termination.signalled)), ended \(offset(call.ended - s.termination.signalled)) from SIGTERM \(s.name))"
    }

    public var description: String {
        let answered = statuses.values.reduce(0, +)
        let statusText = statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")
        let window = windowDuplicates
        var lines = [
            "┌ fault figures: \(scenario)",
            "│ load calls          \(calls): answered \(answered) (\(statusText)); refused \(refused), reset \(resets), closed \(closed), timeout \(timeouts), other \(otherErrors)",
            "│ lost after connect  \(lostAfterConnect.count) (reset \(lostAfterConnectResets)); of those taken by the Ingress: \(lostAfterReceived.count)",
            "│ accepted            \(accepted) (request_received); outcome without request_received \(outcomeWithoutReceived.count); answered 200 without request_received \(answeredWithoutReceived.count)",
            "│ outcomes per req    0: \(withoutOutcome.count)   1: \(exactlyOne)   ≥2: \(twoOrMore.count) (one event written again: \(repeatedOutcomeEvent))"
                + phases(withoutOutcome + twoOrMore.keys),
            "│ inspections        requests inspected twice or more: \(inspectedTwice.count)" + phases(inspectedTwice.keys),
            "│ upstream            \(deliveries) deliveries for \(deliveriesPerRequest.count) requests; duplicates \(duplicates.count)"
                + " (Forwarder-kill window \(window.count), same key \(window.count(where: \.sameKey)); outside the window \(strayDuplicates.count))",
            "│ keys, secrets       Idempotency-Key mismatches \(keyMismatches.count); secrets sent \(secretCalls), leaked upstream \(leakedSecrets); unparsable audit lines \(unparsableAuditLines) of \(auditLines)",
        ]
        for p in phases {
            let answered = p.statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")
            lines.append("│   phase \(p.phase): \(p.calls) calls (\(answered.isEmpty ? "none answered" : answered)); refused \(p.refused), lost after connect \(p.lostAfterConnect)")
        }
        for s in shutdowns { lines.append("│ SIGTERM             \(s.name): \(s.termination)") }
        lines.append("│ settled             \(settled ? "yes" : "no") after \(Self.seconds(settleWait))")
        for (id, kinds) in twoOrMore.sorted(by: { $0.key < $1.key }).prefix(10) { lines.append("│   ≥2 outcomes \(id) [\(phaseOf[id] ?? "?")]: \(kinds.joined(separator: ", "))") }
        for id in withoutOutcome.prefix(10) { lines.append("│   no outcome \(id) [\(phaseOf[id] ?? "?")]") }
        for d in duplicates.prefix(10) { lines.append("│   delivered \(d.copies)× \(d.token) [\(d.phase)] keys \(d.keys.map { $0 ?? "none" })") }
        for c in lostAfterConnect.prefix(10) { lines.append("│   lost after connect \(c.token) [\(c.phase)]: \(c.end)\(nearestSignal(c))") }
        lines.append("└")
        return lines.joined(separator: "\n")
    }

    /// One row of the cross-scenario table (see `tableHeader`).
    public var tableRow: String {
        let window = windowDuplicates
        let shutdown = shutdowns.map { "\($0.name) \(Self.seconds($0.termination.took))" }.joined(separator: "; ")
        return "| \(scenario) | \(accepted) | \(withoutOutcome.count) | \(exactlyOne) | \(twoOrMore.count) | \(inspectedTwice.count) | \(deliveries) | "
            + "\(strayDuplicates.count) + window \(window.count) (same key \(window.count(where: \.sameKey))) | \(lostAfterConnectResets) | \(shutdown.isEmpty ? "—" : shutdown) |"
    }

    public static let tableHeader = """
        | scenario | accepted | 0 outcomes | 1 | ≥2 | inspected ≥2 | deliveries | duplicates | resets | shutdown |
        |---|---|---|---|---|---|---|---|---|---|
        """
}

/// Invariant 8's accounting, pure: from the audit sink's events, the upstream's requests and the
/// callers' records to the figures.
///
/// Guarantees: every `request_received` request id is counted once in exactly one of
/// without outcome / exactly one / two or more; a load call's deliveries are grouped by its
/// token (unique per call), so a duplicate is the same call reaching the upstream again, whatever
/// key it carried; other deliveries are grouped by `Idempotency-Key`.
public enum FaultAccounting {
    public static let outcomeKinds: Set<String> = ["delivered", "blocked", "denied", "expired", "failed"]

    /// `/…/load/<phase>/<token>` → (phase, token).
    public static func loadPath(_ path: String) -> (phase: String, token: String)? {
        guard let range = path.range(of: "/load/") else { return nil }
        let parts = path[range.upperBound...].split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        return (parts[0], parts[1])
    }

    /// How many things still keep the run from being settled: accepted requests without an
    /// outcome, and calls answered 200 whose `request_received` has not arrived.
    public static func unsettled(records: [AuditRecord], calls: [LoadCall]) -> Int {
        var received = Set<String>()
        var ended = Set<String>()
        for r in records {
            if r.kind == "request_received" { received.insert(r.requestID) }
            if outcomeKinds.contains(r.kind) { ended.insert(r.requestID) }
        }
        let answered = calls.compactMap { $0.status == 200 ? $0.requestID : nil }
        return received.subtracting(ended).count + answered.count(where: { !received.contains($0) })
    }

    public static func account(
        scenario: String, records: [AuditRecord], unparsableLines: Int, upstream: [UpstreamDelivery], calls: [LoadCall],
        duplicateWindow: Set<String>
    ) -> FaultFigures {
        var f = FaultFigures(scenario: scenario)
        f.duplicateWindow = duplicateWindow
        // Callers.
        f.calls = calls.count
        var phaseIndex: [String: Int] = [:]
        for c in calls {
            let index = phaseIndex[c.phase] ?? {
                f.phases.append(FaultFigures.PhaseCalls(phase: c.phase))
                phaseIndex[c.phase] = f.phases.count - 1
                return f.phases.count - 1
            }()
            f.phases[index].calls += 1
            if let status = c.status { f.phases[index].statuses[status, default: 0] += 1 }
            if c.end == .refused { f.phases[index].refused += 1 }
            if c.lostAfterConnect { f.phases[index].lostAfterConnect += 1 }
            switch c.end {
            case .answered(let status, _): f.statuses[status, default: 0] += 1
            case .refused: f.refused += 1
            case .reset: f.resets += 1
            case .closed: f.closed += 1
            case .timeout: f.timeouts += 1
            case .failed: f.otherErrors += 1
            }
            if c.lostAfterConnect { f.lostAfterConnect.append(c) }
            if c.secret != nil { f.secretCalls += 1 }
            if let id = c.requestID { f.phaseOf[id] = c.phase }
        }
        // Audit.
        f.auditLines = records.count + unparsableLines
        f.unparsableAuditLines = unparsableLines
        var received = Set<String>()
        var outcomes: [String: [AuditRecord]] = [:]
        var inspections: [String: Set<String>] = [:]
        for r in records {
            if r.kind == "request_received" { received.insert(r.requestID) }
            if outcomeKinds.contains(r.kind) { outcomes[r.requestID, default: []].append(r) }
            if r.kind == "inspected" { inspections[r.requestID, default: []].insert(r.eventID) }
        }
        f.inspectedTwice = inspections.filter { $0.value.count > 1 }.mapValues(\.count)
        f.accepted = received.count
        let receivedPaths = Set(records.filter { $0.kind == "request_received" }.compactMap(\.path))
        f.lostAfterReceived = f.lostAfterConnect.filter { c in receivedPaths.contains { $0.hasSuffix("/\(c.token)") } }
        for id in received.sorted() {
            let mine = outcomes[id] ?? []
            switch mine.count {
            case 0: f.withoutOutcome.append(id)
            case 1: f.exactlyOne += 1
            default:
                f.twoOrMore[id] = mine.map(\.kind)
                if Set(mine.map(\.eventID)).count == 1 { f.repeatedOutcomeEvent += 1 }
            }
        }
        f.outcomeWithoutReceived = outcomes.keys.filter { !received.contains($0) }.sorted()
        f.answeredWithoutReceived = calls.compactMap { $0.status == 200 ? $0.requestID : nil }.filter { !received.contains($0) }
        // Upstream.
        let callsByToken = Dictionary(calls.map { ($0.token, $0) }, uniquingKeysWith: { a, _ in a })
        var copies: [String: (phase: String, keys: [String?])] = [:]
        var order: [String] = []
        f.deliveries = upstream.count
        for r in upstream {
            let key = r.idempotencyKey
            if let key { f.deliveriesPerRequest[key, default: 0] += 1 }
            let group: String
            let phase: String
            if let load = loadPath(r.path) {
                group = load.token
                phase = load.phase
                let call = callsByToken[load.token]
                if let key { f.phaseOf[key] = phase }
                if key == nil || (call?.requestID != nil && call?.requestID != key) {
                    f.keyMismatches.append("\(load.token): key \(key ?? "none"), answered id \(call?.requestID ?? "none")")
                }
                if let secret = call?.secret, r.body.contains(secret) { f.leakedSecrets += 1 }
            } else {
                group = key ?? r.path
                phase = "?"
            }
            if copies[group] == nil { order.append(group) }
            copies[group, default: (phase, [])].keys.append(key)
        }
        f.duplicates = order.compactMap { token in
            guard let c = copies[token], c.keys.count > 1 else { return nil }
            return DuplicateDelivery(token: token, phase: c.phase, keys: c.keys)
        }
        return f
    }
}
