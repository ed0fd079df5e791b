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
        func add(_ r: ReceivedRequest) { requests.append(r) }
        func setResponse(status: Int, body: Data) {
            self.status = status
            self.responseBody = body
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
            let (status, answer) = await (log.status, log.responseBody)
            return Response(
                status: .init(code: status), headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: answer)))
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

    public func stop() { task.cancel() }
}
