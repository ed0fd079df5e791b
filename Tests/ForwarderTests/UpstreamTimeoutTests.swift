import BusContract
import Foundation
import Pipeline
import Testing
@testable import Forwarder

#if canImport(Glibc)
import Glibc
#endif

/// `connections[].timeout` bounds the whole delivery (issue 17): an upstream that is down fails
/// in about the timeout, not after the request's whole deadline.
@Suite("Forwarder upstream timeouts", .serialized)
struct UpstreamTimeoutTests {
    @Test(arguments: [
        // (request deadline, connection timeout, expected end) at now = 1_000
        (Int64(21_000), Duration?.some(.seconds(1)), Int64(2_000)),
        (21_000, nil, 21_000),
        (1_500, .seconds(1), 1_500),  // the request's deadline comes first
        (21_000, .milliseconds(250), 1_250),
        (21_000, .seconds(Int64.max / 2), 21_000),  // overflow keeps the deadline
    ])
    func deliveryDeadlineIsTheEarlierOfDeadlineAndTimeout(row: (Int64, Duration?, Int64)) {
        #expect(UpstreamClient.deliveryDeadline(request: row.0, timeout: row.1, now: 1_000) == row.2)
    }

    enum Down: String, CaseIterable, Sendable {
        /// Nothing listens: the connect is refused at once (retried until the timeout).
        case closedPort
        /// A listener whose accept queue is full: SYNs are dropped, the connect hangs.
        case blackholed
        /// Accepts and reads the request, never answers.
        case silent
    }

    /// With `timeout: 1s` and a 20 s deadline every kind of down upstream fails well before the
    /// deadline, with the documented status and error code.
    @Test(arguments: Down.allCases)
    func downUpstreamFailsWithinTheConnectionTimeout(kind: Down) async throws {
        let env = try ForwarderTestEnv()
        var stop: @Sendable () async -> Void = {}
        let port: Int
        switch kind {
        case .closedPort:
            port = try await TestUpstream.freePort()
        case .blackholed:
            let hole = try FullBacklogListener()
            port = hole.port
            stop = { hole.close() }
        case .silent:
            let upstream = try await TestUpstream.start(response: CannedResponse(delay: .seconds(60)))
            port = upstream.port
            stop = { await upstream.stop() }
        }
        let service = try env.service(upstream: "http://127.0.0.1:\(port)", timeout: "1s")
        let request = env.inspected(id: "r-\(kind.rawValue)", deadlineIn: 20_000)
        let started = ContinuousClock.now
        try await env.publish(request)
        let task = Task { try await service.run() }
        #expect(try await eventually(timeout: .seconds(25)) { try await env.auditEvents().contains(where: \.isOutcome) })
        let elapsed = ContinuousClock.now - started
        task.cancel()
        try await task.value
        await stop()
        #expect(elapsed < .seconds(8), "\(kind): failed after \(elapsed), not within the 1 s connection timeout")
        let reply = try #require(try await env.replies().first)
        let json = try JSONSerialization.jsonObject(with: reply.response.body) as? [String: String]
        switch kind {
        case .closedPort:
            #expect(reply.response.status == 502 && json?["error"] == "upstream_unavailable")
        case .silent:
            #expect(reply.response.status == 504 && json?["error"] == "upstream_timeout")
        case .blackholed:
            // Never connected: 502 when the client's connect timeout ran out first, 504 when the
            // delivery's deadline did (the client cannot tell a pending connect from a sent request).
            #expect([502, 504].contains(reply.response.status))
            #expect(["upstream_unavailable", "upstream_timeout"].contains(json?["error"] ?? ""))
        }
        let outcome = try #require(try await env.auditEvents().first(where: \.isOutcome))
        #expect(outcome.kind == .failed && outcome.status == reply.response.status)
        await env.cleanUp()
    }
}

/// A loopback listener with a backlog of 0 whose one queue slot is taken and never accepted:
/// further connects get no answer to their SYN and hang (a blackholed upstream, locally).
final class FullBacklogListener: Sendable {
    let port: Int
    private let listener: Int32
    private let filler: Int32

    init() throws {
        func fail(_ what: String) -> any Error {
            NSError(domain: "FullBacklogListener", code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "\(what): errno \(errno)"])
        }
        let l = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard l >= 0 else { throw fail("socket") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(l, $0, len) == 0 && listen(l, 0) == 0 && getsockname(l, $0, &len) == 0 }
        }
        guard bound else { Glibc.close(l); throw fail("bind/listen") }
        let f = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let connected = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(f, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard f >= 0, connected else { Glibc.close(l); Glibc.close(f); throw fail("fill the accept queue") }
        listener = l
        filler = f
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    func close() {
        Glibc.close(filler)
        Glibc.close(listener)
    }
}
