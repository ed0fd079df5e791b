import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Pipeline

/// One HTTP call of a command-line tool (the reviewer CLI, `sluice probe`): a person or a health
/// check is waiting, so a gateway that is not there is said at once.
///
/// Guarantees:
/// - A refused connection, an unresolvable host or a failed TLS handshake fails the call at once:
///   the connection is not retried with backoff until the deadline (as the shared client does,
///   which made `approvals list` against a closed port wait 30 s to say "connection refused").
/// - The whole call, connect included, ends within `timeout`; the connect itself within
///   `connectTimeout` (never longer than `timeout`).
/// - The body read is capped at `maxBody` bytes (more is an error, never a truncated answer).
/// - The client is shut down before the call returns or throws.
/// - ``sentence(for:)`` turns a network error into one readable sentence.
enum CLIHTTP {
    struct Answer: Sendable {
        var status: UInt
        var headers: HTTPHeaders
        var body: Data
    }

    static func execute(
        _ request: HTTPClientRequest, timeout: Duration, connectTimeout: Duration = .seconds(10), maxBody: Int = 16 << 20
    ) async throws -> Answer {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .nanoseconds(min(connectTimeout, timeout).totalNanoseconds)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let result: Result<Answer, any Error>
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(timeout.totalNanoseconds))
            let body = try await response.body.collect(upTo: maxBody)
            result = .success(Answer(status: response.status.code, headers: response.headers, body: Data(body.readableBytesView)))
        } catch {
            result = .failure(error)
        }
        try? await client.shutdown()
        return try result.get()
    }

    /// A network failure in one readable sentence (the error's own text as the last resort).
    static func sentence(for error: any Error) -> String {
        let text = "\(error)"
        let lower = text.lowercased()
        if lower.contains("connection refused") || lower.contains("econnrefused") {
            return "connection refused (is the gateway running there, and is the port right?)"
        }
        if lower.contains("connecttimeout") || lower.contains("connect timeout") || lower.contains("deadlineexceeded") || lower.contains("timed out") {
            return "no answer in time (a firewall, or the wrong host?)"
        }
        if lower.contains("unknown host") || lower.contains("name or service not known") || lower.contains("nodename nor servname") || lower.contains("no address") {
            return "the host name does not resolve"
        }
        if lower.contains("ssl") || lower.contains("tls") || lower.contains("certificate") || lower.contains("handshake") {
            return "the TLS handshake failed (\(text))"
        }
        if lower.contains("unsupported scheme") || lower.contains("invalidurl") || lower.contains("emptyhost") {
            return "the URL is not a valid http(s) address"
        }
        return text
    }
}
