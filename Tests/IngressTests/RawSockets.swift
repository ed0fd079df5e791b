import Foundation
import GatewayHarness
#if canImport(Glibc)
import Glibc
#endif

/// Plain TCP connections to the Ingress, bytes exactly as given: for request targets an HTTP
/// client would normalise, and for slow or stalled callers.
///
/// Guarantees: blocking socket calls run on a thread of their own, never on the cooperative
/// pool; every socket is closed before a function returns; sends never raise SIGPIPE.
enum RawSockets {
    struct Outcome: Sendable {
        /// Every byte the server sent.
        var bytes: Data
        /// Whether the server closed the connection (EOF or reset) before the deadline.
        var closed: Bool
        /// When the first byte, and the close, arrived (from the moment this connection's payload was sent).
        var firstByteAfter: Duration?
        var closedAfter: Duration?

        /// The answer parsed by the harness's one HTTP/1.1 response reader.
        var response: RawHTTP.Response { RawHTTP.Response(raw: bytes) }
        var text: String { response.text }
        var status: Int? { response.status }
        func header(_ name: String) -> String? { response.header(name) }
        var json: [String: Any] { response.json ?? [:] }
    }

    /// Runs `work` on a new thread and returns its result.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw HarnessError("connect to port \(port): errno \(errno)")
        }
        return fd
    }

    static func send(_ fd: Int32, _ data: Data) throws {
        var offset = 0
        while offset < data.count {
            let n = data.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, data.count - offset, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw HarnessError("send: errno \(errno)") }
            offset += n
        }
    }

    /// Sends `payload` on `count` new connections (then sends nothing more), and reads each until
    /// the server closes it or `timeout` passes. `onSent` runs once every payload is sent.
    static func flood(
        port: Int, count: Int, payload: Data, timeout: Duration, onSent: @escaping @Sendable () -> Void = {}
    ) async throws -> [Outcome] {
        try await onThread {
            var fds: [Int32] = []
            var sentAt: [ContinuousClock.Instant] = []
            defer { for fd in fds { close(fd) } }
            for _ in 0..<count {
                let fd = try connect(port: port)
                fds.append(fd)
                try send(fd, payload)
                sentAt.append(.now)
            }
            let allSent = ContinuousClock.now
            onSent()
            var outcomes = Array(repeating: Outcome(bytes: Data(), closed: false), count: count)
            var open = Set(0..<count)
            let deadline = allSent + timeout
            var buffer = [UInt8](repeating: 0, count: 65536)
            while !open.isEmpty, ContinuousClock.now < deadline {
                var polls = open.sorted().map { pollfd(fd: fds[$0], events: Int16(POLLIN), revents: 0) }
                let indices = open.sorted()
                let ready = poll(&polls, nfds_t(polls.count), 50)
                guard ready > 0 else { continue }
                for (k, p) in polls.enumerated() where p.revents != 0 {
                    let i = indices[k]
                    let n = recv(fds[i], &buffer, buffer.count, 0)
                    if n > 0 {
                        if outcomes[i].firstByteAfter == nil { outcomes[i].firstByteAfter = ContinuousClock.now - sentAt[i] }
                        outcomes[i].bytes.append(contentsOf: buffer[0..<n])
                    } else {
                        outcomes[i].closed = true
                        outcomes[i].closedAfter = ContinuousClock.now - sentAt[i]
                        open.remove(i)
                    }
                }
            }
            return outcomes
        }
    }

    /// Sends `payload` one byte every `interval` until the server closes the connection, the
    /// payload is exhausted, or `timeout` passes.
    static func dribble(port: Int, payload: Data, interval: Duration, timeout: Duration) async throws -> Outcome {
        try await onThread {
            let fd = try connect(port: port)
            defer { close(fd) }
            let started = ContinuousClock.now
            var outcome = Outcome(bytes: Data(), closed: false)
            var sent = 0
            var buffer = [UInt8](repeating: 0, count: 4096)
            let intervalMillis = Int32(interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000)
            while ContinuousClock.now - started < timeout {
                if sent < payload.count {
                    let byte = payload[payload.startIndex + sent]
                    let n = withUnsafeBytes(of: byte) { Glibc.send(fd, $0.baseAddress!, 1, Int32(MSG_NOSIGNAL)) }
                    if n < 0 {
                        outcome.closed = true
                        outcome.closedAfter = ContinuousClock.now - started
                        return outcome
                    }
                    sent += 1
                }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, intervalMillis) > 0 {
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n > 0 {
                        outcome.bytes.append(contentsOf: buffer[0..<n])
                    } else {
                        outcome.closed = true
                        outcome.closedAfter = ContinuousClock.now - started
                        return outcome
                    }
                }
            }
            return outcome
        }
    }

    /// One request, bytes as given, read until the server closes the connection or `timeout`.
    static func exchange(port: Int, _ request: String, timeout: Duration = .seconds(10)) async throws -> Outcome {
        try await flood(port: port, count: 1, payload: Data(request.utf8), timeout: timeout)[0]
    }
}
