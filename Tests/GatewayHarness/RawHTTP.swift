import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP/1.1 exchange over a plain TCP socket, bytes exactly as given: for attacks that an
/// HTTP client library would normalise away (dot segments, `//`, duplicate `Content-Length`,
/// `Transfer-Encoding` tricks, pipelined requests).
///
/// Guarantees: the request bytes reach the server unchanged; the answer is read until the
/// server closes the connection or `timeout` passes (what arrived by then is returned); the
/// blocking socket calls run on a thread of their own, never on the cooperative pool.
public enum RawHTTP {
    public struct Response: Sendable {
        /// Every byte the server sent.
        public var raw: Data
        public init(raw: Data) { self.raw = raw }
        /// The first response's status, `nil` when the server sent nothing parseable (e.g. it closed the connection).
        public var status: Int? {
            guard let line = text.split(separator: "\r\n", maxSplits: 1).first else { return nil }
            let parts = line.split(separator: " ")
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/") else { return nil }
            return Int(parts[1])
        }
        public var text: String { String(decoding: raw, as: UTF8.self) }
        /// The first response's header value (case-insensitive name).
        public func header(_ name: String) -> String? {
            guard let end = text.range(of: "\r\n\r\n") else { return nil }
            for line in text[..<end.lowerBound].split(separator: "\r\n").dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                if line[..<colon].caseInsensitiveCompare(name) == .orderedSame {
                    return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
        /// The first response's body (everything after the first blank line; fine with `Connection: close`).
        public var body: Data {
            guard let r = raw.range(of: Data("\r\n\r\n".utf8)) else { return Data() }
            return raw[r.upperBound...]
        }
        public var json: [String: Any]? {
            // Tolerate chunked framing: take the outermost JSON object in the body.
            let t = String(decoding: body, as: UTF8.self)
            guard let a = t.firstIndex(of: "{"), let b = t.lastIndex(of: "}") else { return nil }
            return (try? JSONSerialization.jsonObject(with: Data(t[a...b].utf8))) as? [String: Any]
        }
    }

    /// Sends `request` to 127.0.0.1:`port` and reads the answer.
    public static func exchange(port: Int, _ request: Data, timeout: Duration = .seconds(30)) async throws -> Response {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Response, any Error>) in
            let thread = Thread {
                continuation.resume(with: Result { try blockingExchange(port: port, request, timeout: timeout) })
            }
            thread.start()
        }
    }

    /// A request with CRLF line ends: `head` lines joined, a blank line, then `body`.
    public static func request(_ head: [String], body: Data = Data()) -> Data {
        var data = Data((head.joined(separator: "\r\n") + "\r\n\r\n").utf8)
        data.append(body)
        return data
    }

    static func blockingExchange(port: Int, _ request: Data, timeout: Duration) throws -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw GatewayError("socket: errno \(errno)") }
        defer { close(fd) }
        guard connectLoopback(fd, port: port, timeout: timeout) == 0 else { throw GatewayError("connect to port \(port): errno \(errno)") }
        var sent = 0
        try request.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            while sent < buf.count {
                let n = send(fd, buf.baseAddress! + sent, buf.count - sent, Int32(MSG_NOSIGNAL))
                if n <= 0 {
                    // The server may refuse and close before reading everything: keep what it answered.
                    if errno == EPIPE || errno == ECONNRESET { return }
                    throw GatewayError("send: errno \(errno)")
                }
                sent += n
            }
        }
        var raw = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n > 0 {
                raw.append(contentsOf: chunk[0..<n])
            } else {
                break  // closed, reset or timed out
            }
        }
        return Response(raw: raw)
    }
}

/// Sets `fd`'s send and receive timeouts to `timeout` and connects it to 127.0.0.1:`port`;
/// `connect`'s result (`errno` holds the reason when it is not 0).
func connectLoopback(_ fd: Int32, port: Int, timeout: Duration) -> Int32 {
    var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}
