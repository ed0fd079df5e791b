import Foundation
import Hummingbird
import NIOCore

/// A request as the test upstream received it.
public struct ReceivedRequest: Sendable {
    public var method: String
    public var path: String
    public var query: String
    public var headers: [(String, String)]
    public var body: Data

    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// A real HTTP server standing in for a function: it records every request and
/// answers with a fixed JSON body (or the answer the test sets).
public final class TestUpstream: Sendable {
    public actor Log {
        public var requests: [ReceivedRequest] = []
        var responseBody = Data("{\"ok\":true}".utf8)
        var status = 200
        /// Extra response headers; values may hold reflection placeholders (see `TestUpstream.reflect`).
        var responseHeaders: [(String, String)] = []
        /// Wait this long before answering.
        var delay: Duration = .zero
        func add(_ r: ReceivedRequest) { requests.append(r) }
        func setResponse(status: Int, body: Data) {
            self.status = status
            self.responseBody = body
        }
        func setResponse(status: Int, body: Data, headers: [(String, String)], delay: Duration) {
            self.status = status
            self.responseBody = body
            self.responseHeaders = headers
            self.delay = delay
        }
        func reset() { requests = [] }
    }

    public let log: Log
    public let port: Int
    private let task: Task<Void, any Error>

    private init(port: Int, task: Task<Void, any Error>, log: Log) {
        self.port = port
        self.task = task
        self.log = log
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    public static func start() async throws -> TestUpstream {
        let log = Log()
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            let body = try await request.body.collect(upTo: 16 << 20)
            let received = ReceivedRequest(
                method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "",
                headers: request.headers.map { ($0.name.rawName, $0.value) }, body: Data(buffer: body))
            await log.add(received)
            let (status, answer, extraHeaders, delay) = await (log.status, log.responseBody, log.responseHeaders, log.delay)
            if delay > .zero { try await Task.sleep(for: delay) }
            var headers: HTTPFields = [.contentType: "application/json"]
            for (name, value) in extraHeaders {
                if let field = HTTPFields.Element.Name(name) { headers.append(HTTPFields.Element(name: field, value: TestUpstream.reflect(value, from: received))) }
            }
            // Only text bodies reflect; a binary (e.g. compressed) body is sent as set.
            let reflected = String(data: answer, encoding: .utf8).map { Data(TestUpstream.reflect($0, from: received).utf8) } ?? answer
            return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: reflected)))
        }
        let app = Application(
            responder: responder,
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "test-upstream"),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: .init(label: "test-upstream"))
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var port = 0
        for await p in portStream { port = p }
        return TestUpstream(port: port, task: task, log: log)
    }

    public var requests: [ReceivedRequest] { get async { await log.requests } }
    public func setResponse(status: Int = 200, body: String) async { await log.setResponse(status: status, body: Data(body.utf8)) }

    /// Sets the answer with extra headers and a delay. Header values and the body may reflect
    /// the request: `{{h:Name}}` is the request header's value, `{{h64:Name}}` its base64,
    /// `{{hurl:Name}}` its percent-encoding (RFC 3986 unreserved kept), `{{hform:Name}}` its form
    /// encoding (space as `+`).
    public func setResponse(status: Int = 200, body: String, headers: [(String, String)], delay: Duration = .zero) async {
        await log.setResponse(status: status, body: Data(body.utf8), headers: headers, delay: delay)
    }

    /// Sets a binary answer (e.g. a compressed body) with extra headers; not reflected.
    public func setResponse(status: Int = 200, data: Data, headers: [(String, String)], delay: Duration = .zero) async {
        await log.setResponse(status: status, body: data, headers: headers, delay: delay)
    }

    /// `template` with its reflection placeholders replaced from `request` (header names case-insensitive).
    static func reflect(_ template: String, from request: ReceivedRequest) -> String {
        guard template.contains("{{") else { return template }
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        var out = ""
        var rest = Substring(template)
        while let open = rest.range(of: "{{"), let close = rest[open.upperBound...].range(of: "}}") {
            out += rest[..<open.lowerBound]
            let spec = rest[open.upperBound..<close.lowerBound]
            let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
            let value = parts.count == 2 ? (request.header(parts[1]) ?? "") : ""
            let url = value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
            switch parts.first {
            case "h": out += value
            case "h64": out += Data(value.utf8).base64EncodedString()
            case "hurl": out += url
            case "hform": out += url.replacingOccurrences(of: "%20", with: "+")
            default: out += rest[open.lowerBound..<close.upperBound]
            }
            rest = rest[close.upperBound...]
        }
        return out + rest
    }

    /// Forgets the requests received so far.
    public func reset() async { await log.reset() }

    public func stop() { task.cancel() }
}
