// The `--event-loop` mode of ProxyFloor: a proxy written on SwiftNIO alone, where a call never
// leaves the event loop that accepted its connection — the server channel, the upstream
// connection (from a keep-alive pool of that loop) and the optional detection scan all run on
// one thread, with no Swift-concurrency task and no hop between thread pools. It measures what
// the hand-written hot path would gain over Hummingbird + AsyncHTTPClient; it is not a product
// (no timeouts, no retries, no header rules).
import Detection
import NIOCore
import NIOHTTP1
import NIOPosix

/// Upstream connections of one event loop: idle keep-alive channels, reused LIFO.
/// Only touched on its event loop (`Pools` keeps one per event-loop thread).
final class UpstreamPool {
    let eventLoop: any EventLoop
    let host: String
    let port: Int
    private var idle: [any Channel] = []

    init(eventLoop: any EventLoop, host: String, port: Int) {
        self.eventLoop = eventLoop
        self.host = host
        self.port = port
    }

    func acquire() -> EventLoopFuture<any Channel> {
        while let channel = idle.popLast() {
            if channel.isActive { return eventLoop.makeSucceededFuture(channel) }
        }
        return ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
            .connect(host: host, port: port)
    }

    /// Back to the idle list, or closed when the upstream will close it.
    func release(_ channel: any Channel, keepAlive: Bool) {
        if keepAlive && channel.isActive { idle.append(channel) } else { channel.close(promise: nil) }
    }
}

/// The upstream response as one value.
struct UpstreamReply {
    var status: HTTPResponseStatus
    var body: ByteBuffer
    /// False when the upstream said `Connection: close` (nginx does after `keepalive_requests`).
    var keepAlive: Bool
}

/// Sends one request on an upstream connection and completes `pending` with its response.
final class UpstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = (HTTPRequestHead, ByteBuffer, EventLoopPromise<UpstreamReply>)
    typealias OutboundOut = HTTPClientRequestPart

    private var pending: EventLoopPromise<UpstreamReply>?
    private var status: HTTPResponseStatus = .ok
    private var keepAlive = true
    private var body = ByteBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let (head, requestBody, reply) = unwrapOutboundIn(data)
        pending = reply
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(requestBody))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
            keepAlive = head.isKeepAlive
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            let reply = pending
            pending = nil
            reply?.succeed(UpstreamReply(status: status, body: body, keepAlive: keepAlive))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        pending?.fail(ChannelError.ioOnClosedChannel)
        pending = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pending?.fail(error)
        pending = nil
        context.close(promise: nil)
    }
}

/// One caller connection: collects a request, sends it upstream, answers with the reply.
final class CallerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let pool: UpstreamPool
    private let path: String
    private let engine: DetectionEngine?
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(pool: UpstreamPool, engine: DetectionEngine?) {
        self.pool = pool
        self.path = ""
        self.engine = engine
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let callerHead = head else { return }
            forward(context: context, callerHead: callerHead)
        }
    }

    private func forward(context: ChannelHandlerContext, callerHead: HTTPRequestHead) {
        var out = body
        if let engine, let masked = try? engine.scanAndMask(out.readBytes(length: out.readableBytes) ?? []).masked {
            out = ByteBuffer(bytes: masked)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(pool.host):\(pool.port)")
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: "\(out.readableBytes)")
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: .POST, uri: callerHead.uri, headers: headers)
        let keepAlive = callerHead.isKeepAlive
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        let requestBody = out
        pool.acquire().flatMap { channel -> EventLoopFuture<UpstreamReply> in
            let reply = channel.eventLoop.makePromise(of: UpstreamReply.self)
            channel.writeAndFlush((upstreamHead, requestBody, reply), promise: nil)
            let pool = loopBoundSelf.value.pool
            return reply.futureResult.map { r in
                pool.release(channel, keepAlive: r.keepAlive)
                return r
            }
        }.whenComplete { result in
            let context = loopBoundContext.value
            let handler = loopBoundSelf.value
            switch result {
            case .success(var reply):
                if let engine = handler.engine, let masked = try? engine.scanAndMask(reply.body.readBytes(length: reply.body.readableBytes) ?? []).masked {
                    reply.body = ByteBuffer(bytes: masked)
                }
                handler.respond(context: context, status: reply.status, body: reply.body, keepAlive: keepAlive)
            case .failure:
                handler.respond(context: context, status: .badGateway, body: ByteBuffer(string: "{\"error\":\"upstream\"}"), keepAlive: false)
            }
        }
    }

    private func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, body: ByteBuffer, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

enum EventLoopProxy {
    /// Serves on `port` until the server channel closes.
    static func run(port: Int, upstreamHost: String, upstreamPort: Int, engine: DetectionEngine?) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pool = Pools.pool(for: channel.eventLoop, host: upstreamHost, port: upstreamPort)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(CallerHandler(pool: pool, engine: engine))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        try await server.closeFuture.get()
    }
}

/// One `UpstreamPool` per event loop, made on first use on that loop.
enum Pools {
    // Each loop's pool is created and used only on that loop's thread; the thread-local keeps
    // it there without a lock (unsafe only in name: no value crosses threads).
    nonisolated(unsafe) private static let current = ThreadSpecificVariable<UpstreamPool>()

    static func pool(for eventLoop: any EventLoop, host: String, port: Int) -> UpstreamPool {
        if let pool = current.currentValue { return pool }
        let pool = UpstreamPool(eventLoop: eventLoop, host: host, port: port)
        current.currentValue = pool
        return pool
    }
}
