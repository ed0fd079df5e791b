import Foundation
import Hummingbird
import NIOCore
import NIOHTTPTypes

/// A per-connection channel handler (between Hummingbird's HTTP/1 codec and its request
/// handling) that bounds how long a connection may hold the server without sending a request,
/// and closes connections the Ingress has finished with.
///
/// Guarantees:
/// - A connection that has not delivered a complete request head within `headTimeout` of being
///   accepted, or of its previous response being written (keep-alive), is closed: dribbling
///   header bytes (slowloris) holds a connection for at most `headTimeout`.
/// - No timer runs while a request is being handled (the body's own deadline is
///   `body_read_timeout`, enforced by ``FunctionCallHandler``).
/// - A response whose head says `Connection: close` closes the connection once its last byte is
///   written (Hummingbird itself only honours the *request's* `Connection: close`); the Ingress
///   sets it on answers given before a request body was read (408, 413, 429, …), so an unread or
///   stalled body is never drained.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let headTimeout: TimeAmount
    private let onHeadTimeout: @Sendable () -> Void
    private var timer: Scheduled<Void>?
    /// Request heads read minus response ends written.
    private var open = 0
    private var closeAfterResponse = false

    init(headTimeout: TimeAmount, onHeadTimeout: @escaping @Sendable () -> Void = {}) {
        self.headTimeout = headTimeout
        self.onHeadTimeout = onHeadTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { disarm() }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            open += 1
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            if let value = head.headerFields[.connection],
               value.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces).lowercased() == "close" }) {
                closeAfterResponse = true
            }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            open = max(0, open - 1)
            if closeAfterResponse {
                disarm()
                let channel = context.channel
                let written = context.eventLoop.makePromise(of: Void.self)
                if let promise { written.futureResult.cascade(to: promise) }
                written.futureResult.whenComplete { _ in channel.close(promise: nil) }
                context.writeAndFlush(data, promise: written)
            } else {
                context.write(data, promise: promise)
                if open == 0 { arm(context) }
            }
        }
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard timer == nil, !closeAfterResponse else { return }
        let channel = context.channel
        let onHeadTimeout = onHeadTimeout
        // Runs on the channel's event loop, where `channelRead` would have disarmed it had a head arrived.
        timer = context.eventLoop.scheduleTask(in: headTimeout) {
            onHeadTimeout()
            channel.close(promise: nil)
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}
