import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A request as the test upstream received it.
struct ReceivedRequest: Sendable {
    var method: String
    /// The request target exactly as sent (path and query).
    var uri: String
    var headers: [(String, String)]
    var body: [UInt8]

    func values(_ name: String) -> [String] {
        headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }
}

/// What the test upstream answers.
struct CannedResponse: Sendable {
    var status: Int = 200
    var headers: [(String, String)] = [("Content-Type", "application/json")]
    var body: [UInt8] = Array("{\"ok\":true}".utf8)
    /// Wait this long before answering.
    var delay: Duration = .zero
}

/// A real HTTP/1.1 server on 127.0.0.1 (SwiftNIO) that records every request and answers
/// with a canned response.
final class TestUpstream: Sendable {
    let port: Int
    private let channel: any Channel
    private let log = Mutex<[ReceivedRequest]>([])

    var received: [ReceivedRequest] { log.withLock { $0 } }

    private init(port: Int, channel: any Channel) {
        self.port = port
        self.channel = channel
    }

    static func start(port: Int = 0, response: CannedResponse = CannedResponse()) async throws -> TestUpstream {
        let box = RequestBox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(response: response, box: box))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        let upstream = TestUpstream(port: channel.localAddress!.port!, channel: channel)
        box.sink.withLock { $0 = { request in upstream.log.withLock { $0.append(request) } } }
        return upstream
    }

    func stop() async {
        try? await channel.close()
    }

    /// A port that nothing listens on right now (bound, then released).
    static func freePort() async throws -> Int {
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        return port
    }
}

private final class RequestBox: Sendable {
    let sink = Mutex<(@Sendable (ReceivedRequest) -> Void)?>(nil)
}

private final class Handler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let response: CannedResponse
    private let box: RequestBox
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(response: CannedResponse, box: RequestBox) {
        self.response = response
        self.box = box
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else { return }
            let request = ReceivedRequest(method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: body)
            box.sink.withLock { $0?(request) }
            let response = self.response
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let nanos = response.delay.components.seconds * 1_000_000_000 + response.delay.components.attoseconds / 1_000_000_000
            context.eventLoop.scheduleTask(in: .nanoseconds(nanos)) {
                let (handler, context) = loopBound.value
                handler.respond(context: context, response: response, keepAlive: head.isKeepAlive)
            }
        }
    }

    private func respond(context: ChannelHandlerContext, response: CannedResponse, keepAlive: Bool) {
        var headers = HTTPHeaders(response.headers)
        headers.replaceOrAdd(name: "Content-Length", value: "\(response.body.count)")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: response.status), headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if !keepAlive { context.close(promise: nil) }
    }
}
