import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Pipeline

/// How one delivery ended.
enum DeliveryResult: Sendable {
    /// The upstream answered (any status); headers as received, body as received.
    case response(status: Int, headers: [HTTPField], body: [UInt8], attempts: Int)
    /// The request was sent but no (complete) answer came before the deadline or the
    /// connection's timeout.
    case timedOut(attempts: Int)
    /// The upstream could not be reached before the deadline, or failed in a way that is
    /// not retried. `kind` is a short error class for audit and logs, never payload.
    case unavailable(kind: String, attempts: Int)
    /// The Forwarder is shutting down; nothing may be published for this message.
    case cancelled
}

/// Sends requests upstream with AsyncHTTPClient.
///
/// Guarantees:
/// - Only connection-establishment failures (refused, unreachable, DNS, connect timeout)
///   are retried, with exponential backoff (`initialBackoff` doubling to `maxBackoff`); a
///   request that reached the upstream is never sent again by this client.
/// - Nothing is sent at or after the deadline, and every attempt (connecting, sending,
///   reading the whole body) is bounded by what remains of it, so `deliver` returns by the
///   deadline (give or take scheduling).
/// - The connection's `timeout` bounds the whole delivery, retries and backoff included: an
///   upstream that refuses, cannot be reached or never answers fails after about `timeout`
///   (`.unavailable` or `.timedOut`), not after the request's whole deadline.
/// - Any status the upstream returns is a `.response`, not retried.
struct UpstreamClient: Sendable {
    let http: HTTPClient
    let options: ForwarderOptions
    let logger: Logger

    func deliver(_ request: HTTPClientRequest, deadlineMillis: Int64, timeout: Duration?, requestID: String) async -> DeliveryResult {
        let deadlineMillis = Self.deliveryDeadline(request: deadlineMillis, timeout: timeout, now: currentMillis())
        var attempts = 0
        var backoff = options.initialBackoff
        var lastConnectError: String?
        while true {
            if Task.isCancelled { return .cancelled }
            let remaining = deadlineMillis - currentMillis()
            guard remaining > 0 else {
                return lastConnectError.map { .unavailable(kind: $0, attempts: attempts) } ?? .timedOut(attempts: attempts)
            }
            let budget = Duration.milliseconds(remaining)
            attempts += 1
            do {
                let (status, headers, body) = try await attempt(request, budget: budget)
                return .response(status: status, headers: headers, body: body, attempts: attempts)
            } catch {
                let failure = Self.classify(error)
                switch failure {
                case .cancelled:
                    return .cancelled
                case .timeout:
                    if Task.isCancelled { return .cancelled }
                    return .timedOut(attempts: attempts)
                case .fatal(let kind):
                    if Task.isCancelled { return .cancelled }
                    return .unavailable(kind: kind, attempts: attempts)
                case .connect(let kind):
                    if Task.isCancelled { return .cancelled }
                    lastConnectError = kind
                    let left = deadlineMillis - currentMillis()
                    guard left > 0 else { return .unavailable(kind: kind, attempts: attempts) }
                    let wait = min(backoff, .milliseconds(left))
                    logger.debug("upstream connect failed, retrying", metadata: [
                        "request_id": "\(requestID)", "attempt": "\(attempts)", "error_kind": "\(kind)", "backoff_ms": "\(wait.milliseconds)",
                    ])
                    do { try await Deadlines.sleep(for: wait) } catch { return .cancelled }
                    backoff = min(backoff * 2, options.maxBackoff)
                }
            }
        }
    }

    /// When a delivery starting at `now` must end: the request's deadline, or `now + timeout`
    /// when the connection's `timeout` ends sooner (every time in epoch milliseconds).
    static func deliveryDeadline(request deadlineMillis: Int64, timeout: Duration?, now: Int64) -> Int64 {
        // Beyond ~34,000 years (where milliseconds could overflow) a timeout bounds nothing.
        guard let timeout, timeout < .seconds(Int64(1) << 40) else { return deadlineMillis }
        let (end, overflow) = now.addingReportingOverflow(max(0, timeout.milliseconds))
        return overflow ? deadlineMillis : min(deadlineMillis, end)
    }

    /// One attempt: connect, send, read the whole body, all within `budget`.
    private func attempt(_ request: HTTPClientRequest, budget: Duration) async throws -> (Int, [HTTPField], [UInt8]) {
        let start = ContinuousClock.now
        let response = try await http.execute(request, deadline: .now() + .nanoseconds(budget.totalNanoseconds), logger: logger)
        let status = Int(response.status.code)
        let headers = response.headers.map { HTTPField($0.name, $0.value) }
        let left = budget - (ContinuousClock.now - start)
        let maxBytes = options.maxResponseBytes
        let body = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            group.addTask {
                var buffer = try await response.body.collect(upTo: maxBytes)
                return buffer.readBytes(length: buffer.readableBytes) ?? []
            }
            group.addTask {
                try await Deadlines.sleep(for: left)
                throw AttemptTimedOut()
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw AttemptTimedOut() }
            return first
        }
        return (status, headers, body)
    }

    enum Failure: Equatable {
        case connect(String)
        case timeout
        case fatal(String)
        case cancelled
    }

    /// Sorts an error from AsyncHTTPClient/NIO into what the retry loop does with it.
    static func classify(_ error: any Error) -> Failure {
        if error is CancellationError { return .cancelled }
        if error is AttemptTimedOut { return .timeout }
        if error is NIOConnectionError { return .connect("connect_failed") }
        if let e = error as? ChannelError, case .connectTimeout = e { return .connect("connect_timeout") }
        if error is NIOTooManyBytesError { return .fatal("response_too_large") }
        if let e = error as? IOError {
            switch e.errnoCode {
            case ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, ECONNABORTED: return .connect("connect_failed")
            default: return .fatal("io_error")
            }
        }
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout: return .connect("connect_timeout")
            // Deadline reached while the request was still queued for a connection: it was never sent.
            case .cancelled, .getConnectionFromPoolTimeout: return Task.isCancelled ? .cancelled : .connect("connect_pending")
            case .deadlineExceeded, .readTimeout, .writeTimeout: return .timeout
            case .remoteConnectionClosed: return .fatal("connection_closed")
            default: return .fatal("http_client_error")
            }
        }
        return .fatal(String(describing: type(of: error)))
    }
}

/// The whole-attempt timer fired (body still streaming at the deadline).
struct AttemptTimedOut: Error {}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
