import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Pipeline

/// The `syslog` sink: every event as an RFC 5424 message (`SyslogMessage`) to a syslog server
/// or SIEM, over TCP or TLS (RFC 6587 octet counting, `LEN SP MSG`; TLS per RFC 5425) or UDP
/// (RFC 5426, one datagram per event).
///
/// Guarantees:
/// - One connection, opened at the first write (not at start: a SIEM that is down does not stop
///   start-up) and reused. On any error (connect, TLS handshake, write, timeout, the server
///   closing) it is dropped and the write throws, so the Recorder retries the whole batch on a
///   new connection: at-least-once, de-duplicated by `event_id` at the SIEM.
/// - `write(batch:lines:)` sends the whole batch with one flush (TCP/TLS: one buffer of frames;
///   UDP: one datagram per event) and returns when every write completed: the kernel took
///   the bytes (for TLS, the encrypted bytes). That is not an acknowledgement by the server:
///   bytes in the kernel's send buffer when the connection resets, or read by a server that
///   died before it stored them, are lost without an error (only RELP would close that gap).
///   To narrow it (TCP/TLS), the messages sent on a connection in the `resendWindow` before its
///   last send are sent again, first, on the next connection when one was lost (duplicates, the same lines:
///   at-least-once), counted in `sluice_sink_resent_events_total{sink}`; see docs/siem.md.
/// - TLS verifies the server's certificate against `ca_file` (or the system's roots) and the
///   host name (`server_name`, else the address's host; an IP address is checked against the
///   certificate's IP entries; swift-nio-ssl also accepts an IP entry equal to the connected
///   address whatever name is expected); an optional client certificate is presented.
/// - Connecting (with the TLS handshake) is bounded by `connectTimeout`, every batch write by
///   `writeTimeout`: a dead or stalled SIEM makes the write throw, it never hangs the Recorder.
/// - A UDP message over `maxDatagramBytes` is cut there (on a UTF-8 boundary, so its JSON is
///   cut short and no longer parses), logged with its `event_id` and counted in
///   `sluice_sink_truncated_total{sink}`; the whole event stays in the recording. TCP/TLS never cut.
/// - Metrics: `sluice_sink_events_total{sink}` (events sent), `sluice_sink_failures_total{sink}`
///   (batch writes that threw).
public actor SyslogSink: AuditSink {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        public var transport: RecorderConfig.Sink.Transport
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        public var serverName: String?
        public var appName = "sluice"
        public var facility = 16
        /// HOSTNAME of every message (default this machine's host name).
        public var hostname = SyslogSink.localHostname()
        public var connectTimeout: Duration = .seconds(5)
        public var writeTimeout: Duration = .seconds(10)
        /// The largest UDP message (65,507: the most an IPv4 datagram can carry).
        public var maxDatagramBytes = 65_507
        /// TCP/TLS: how long sent messages are kept to be sent again on the next connection if
        /// this one is lost ...
        public var resendWindow: Duration = .seconds(10)
        /// ... and at most how many bytes of them.
        public var resendWindowBytes = 8 << 20

        public init(host: String, port: Int, transport: RecorderConfig.Sink.Transport) {
            self.host = host
            self.port = port
            self.transport = transport
        }

        /// The options of a validated `recorder.sinks` entry of kind `syslog`.
        init(config: RecorderConfig.Sink, path: String) throws {
            guard let host = config.host, let port = config.port else {
                throw ConfigError(path: path + ".address", message: "required for a syslog sink (host:port)")
            }
            guard let transport = config.transport else {
                throw ConfigError(path: path + ".transport", message: "required for a syslog sink (tcp, tls or udp)")
            }
            self.init(host: host, port: port, transport: transport)
            caFile = config.caFile
            certFile = config.certFile
            keyFile = config.keyFile
            serverName = config.serverName
            appName = config.appName
            facility = config.facility
        }
    }

    public nonisolated let label: String
    private let options: Options
    private let formatter: SyslogMessage
    private let tls: NIOSSLContext?
    private let group: any EventLoopGroup
    private let logger: Logger
    private let sentEvents: Counter
    private let failedWrites: Counter
    private let truncatedMessages: Counter
    private let resentEvents: Counter
    /// TCP/TLS: the frames sent recently (see `Options.resendWindow`), oldest first, with when
    /// they were sent and how many events they hold; sent again first on a new connection.
    private var recent: [(sentAt: ContinuousClock.Instant, frames: [UInt8], events: Int)] = []
    private var recentBytes = 0
    /// The open connection, if any.
    private var channel: (any Channel)?
    /// A connection being opened (so that overlapping writes share it).
    private var connecting: EventLoopFuture<any Channel>?

    /// Checks the options and loads the TLS files (a bad file throws, naming it); connects
    /// only at the first write. `configPath` (`recorder.sinks[i]`) prefixes errors about files.
    public init(
        options: Options, configPath: String = "syslog", logger: Logger = Logger(label: "sluice.recorder.syslog"),
        metricsFactory: (any MetricsFactory)? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        self.options = options
        self.logger = logger
        self.group = group
        let hostPart = options.host.contains(":") ? "[\(options.host)]" : options.host
        label = "syslog:\(options.transport.rawValue):\(hostPart):\(options.port)"
        formatter = try SyslogMessage(
            facility: options.facility, hostname: options.hostname, appName: options.appName, procID: String(getpid()))
        tls = options.transport == .tls ? try Self.tlsContext(options, configPath: configPath) : nil
        let factory = metricsFactory ?? MetricsSystem.factory
        let dimensions = [("sink", label)]
        sentEvents = Counter(label: "sluice_sink_events_total", dimensions: dimensions, factory: factory)
        failedWrites = Counter(label: "sluice_sink_failures_total", dimensions: dimensions, factory: factory)
        truncatedMessages = Counter(label: "sluice_sink_truncated_total", dimensions: dimensions, factory: factory)
        resentEvents = Counter(label: "sluice_sink_resent_events_total", dimensions: dimensions, factory: factory)
    }

    /// The client TLS context: full verification against `ca_file` (or the system's roots),
    /// with the client certificate if configured.
    static func tlsContext(_ options: Options, configPath: String) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        configuration.minimumTLSVersion = .tlsv12
        if let caFile = options.caFile {
            configuration.trustRoots = .certificates(try SinkFactory.caCertificates(caFile, path: configPath + ".ca_file"))
        }
        if let certFile = options.certFile, let keyFile = options.keyFile {
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
            } catch {
                throw ConfigError(path: configPath + ".cert_file", message: "cannot read PEM certificates from \(certFile): \(error)")
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                throw ConfigError(path: configPath + ".key_file", message: "cannot read a PEM private key from \(keyFile): \(error)")
            }
        }
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw ConfigError(path: configPath, message: "TLS configuration refused: \(error)")
        }
    }

    public func write(_ event: AuditEvent) async throws {
        try await write(batch: [event], lines: [AuditEventLine.encode(event)])
    }

    public func write(_ event: AuditEvent, line: [UInt8]) async throws {
        try await write(batch: [event], lines: [line])
    }

    public func write(batch events: [AuditEvent], lines: [[UInt8]]) async throws {
        guard !events.isEmpty else { return }
        // A line may hold the chain's own records around the event's (AuditChain.records): each is a
        // message of its own, MSGID `chain_start` or `checkpoint`.
        let messages = zip(events, lines).flatMap { event, line in
            AuditChain.records(of: line).map { record in
                (event, formatter.format(event, line: Array(record.bytes), msgID: record.kind == .event ? nil : record.kind.rawValue))
            }
        }
        var used: (any Channel)?
        do {
            let (channel, isNew) = try await connection()
            used = channel
            switch options.transport {
            case .tcp, .tls:
                let frames = Self.frames(messages.map { $0.1 })
                var resend: [UInt8] = []
                var resending = 0
                if isNew {
                    trimRecent()
                    for kept in recent {
                        resend += kept.frames
                        resending += kept.events
                    }
                }
                try await send(stream: resend + frames, messageCount: messages.count, on: channel)
                if resending > 0 {
                    resentEvents.increment(by: Int64(resending))
                    logger.notice("syslog sink sent its recent messages again on a new connection", metadata: [
                        "sink": "\(label)", "events": "\(resending)",
                    ])
                }
                recent.append((ContinuousClock.now, frames, events.count))
                recentBytes += frames.count
                trimRecent()
            case .udp:
                try await send(datagrams: messages, on: channel)
            }
        } catch {
            failedWrites.increment()
            if let used { drop(used) }
            throw RecorderError("\(label): \(Self.describe(error))")
        }
        sentEvents.increment(by: Int64(events.count))
    }

    /// RFC 6587 octet counting: `LEN SP MSG` per message, one after the other.
    static func frames(_ messages: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(messages.reduce(0) { $0 + $1.count + 8 })
        for message in messages {
            out += "\(message.count) ".utf8
            out += message
        }
        return out
    }

    /// Forgets the kept frames sent more than the resend window before the last send (so after a
    /// lost connection, however long the outage, the last window's messages are kept for the
    /// next one) or beyond its byte budget.
    private func trimRecent() {
        guard let last = recent.last else { return }
        let oldest = last.sentAt - options.resendWindow
        while let first = recent.first, first.sentAt < oldest || recentBytes > options.resendWindowBytes {
            recentBytes -= first.frames.count
            recent.removeFirst()
        }
    }

    /// Closes the connection (at shutdown).
    public func close() async {
        connecting = nil
        recent = []
        recentBytes = 0
        guard let channel else { return }
        self.channel = nil
        try? await channel.close()
    }

    // MARK: - Connection

    /// The open connection, or a new one (`isNew`).
    private func connection() async throws -> (channel: any Channel, isNew: Bool) {
        if let channel {
            if channel.isActive { return (channel, false) }
            // The server closed it (or it failed) since the last batch: open a new one.
            drop(channel)
        }
        if let connecting { return (try await connecting.get(), false) }
        let future = connect()
        connecting = future
        defer { connecting = nil }
        let channel = try await future.get()
        self.channel = channel
        logger.info("syslog sink connected", metadata: ["sink": "\(label)"])
        return (channel, true)
    }

    /// Forgets `channel` (if it is the current one) and closes it.
    private func drop(_ channel: any Channel) {
        if let current = self.channel, current === channel { self.channel = nil }
        channel.close(promise: nil)
    }

    /// A new connection, ready to write (for TLS: handshake done). Fails after `connectTimeout`.
    private nonisolated func connect() -> EventLoopFuture<any Channel> {
        let options = options
        let eventLoop = group.next()
        switch options.transport {
        case .udp:
            return DatagramBootstrap(group: eventLoop).connect(host: options.host, port: options.port)
        case .tcp, .tls:
            let ready = eventLoop.makePromise(of: Void.self)
            let tls = tls
            // An IP address cannot be sent as SNI; the certificate is then checked against it.
            let serverName = options.serverName ?? (Self.isIPAddress(options.host) ? nil : options.host)
            let connected = ClientBootstrap(group: eventLoop)
                .connectTimeout(.nanoseconds(Int64(options.connectTimeout.totalMilliseconds) * 1_000_000))
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .channelInitializer { channel in
                    do {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        }
                        try channel.pipeline.syncOperations.addHandler(ConnectionReadyHandler(ready: ready, tls: tls != nil))
                        return channel.eventLoop.makeSucceededVoidFuture()
                    } catch {
                        return channel.eventLoop.makeFailedFuture(error)
                    }
                }
                .connect(host: options.host, port: options.port)
            connected.whenFailure { ready.fail($0) }
            // The handshake gets what is left of connectTimeout.
            let deadline = eventLoop.scheduleTask(in: .nanoseconds(Int64(options.connectTimeout.totalMilliseconds) * 1_000_000)) {
                ready.fail(SyslogTimeout(what: "connecting (TLS handshake included)", after: options.connectTimeout))
            }
            ready.futureResult.whenComplete { _ in deadline.cancel() }
            return connected.and(ready.futureResult).map { pair in pair.0 }.flatMapErrorThrowing { error in
                connected.whenSuccess { $0.close(promise: nil) }
                throw error
            }
        }
    }

    /// TCP/TLS: writes the framed `stream` in one flush, waits until written or `writeTimeout`.
    private func send(stream: [UInt8], messageCount: Int, on channel: any Channel) async throws {
        try await flush([channel.write(channel.allocator.buffer(bytes: stream))], messageCount: messageCount, on: channel)
    }

    /// UDP: one datagram per message (cut to `maxDatagramBytes`), one flush.
    private func send(datagrams messages: [(event: AuditEvent, bytes: [UInt8])], on channel: any Channel) async throws {
        var writes: [EventLoopFuture<Void>] = []
        for (event, message) in messages {
            var datagram = message[...]
            if message.count > options.maxDatagramBytes {
                datagram = Self.truncated(message, to: options.maxDatagramBytes)
                truncatedMessages.increment()
                logger.warning("syslog message truncated to fit a UDP datagram", metadata: [
                    "sink": "\(label)", "event_id": "\(event.eventID)", "bytes": "\(message.count)", "sent": "\(datagram.count)",
                ])
            }
            writes.append(channel.write(channel.allocator.buffer(bytes: datagram)))
        }
        try await flush(writes, messageCount: messages.count, on: channel)
    }

    /// Flushes, then waits until every write completed or `writeTimeout`.
    private func flush(_ writes: [EventLoopFuture<Void>], messageCount: Int, on channel: any Channel) async throws {
        channel.flush()
        let timeout = options.writeTimeout
        let started = ContinuousClock.now
        // Closing the channel fails every pending write.
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.totalMilliseconds) * 1_000_000)) {
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        do {
            try await EventLoopFuture.andAllSucceed(writes, on: channel.eventLoop).get()
        } catch {
            if ContinuousClock.now - started >= timeout { throw SyslogTimeout(what: "writing \(messageCount) messages", after: timeout) }
            throw error
        }
    }

    // MARK: - Helpers

    /// The first `limit` bytes of `message`, shortened to end before a UTF-8 sequence that would be cut.
    static func truncated(_ message: [UInt8], to limit: Int) -> ArraySlice<UInt8> {
        guard message.count > limit else { return message[...] }
        var end = limit
        while end > 0 && message[end] & 0xC0 == 0x80 { end -= 1 }
        return message[..<end]
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    /// This machine's host name (`-` when it has none).
    public static func localHostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "-" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "-" : name
    }

    /// An error as it is logged: NIOSSL's handshake errors carry the OpenSSL reason.
    static func describe(_ error: any Error) -> String {
        if let error = error as? SyslogTimeout { return error.description }
        return "\(error)"
    }
}

/// A connect or write that took longer than allowed.
struct SyslogTimeout: Error, CustomStringConvertible {
    let what: String
    let after: Duration
    var description: String { "\(what) timed out after \(after)" }
}

/// Completes `ready` when the connection can carry messages: at once for TCP, after the
/// handshake for TLS; fails it (and closes) on an error or an early close. Discards anything
/// the server sends.
private final class ConnectionReadyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let ready: EventLoopPromise<Void>
    private let tls: Bool
    private var done = false

    init(ready: EventLoopPromise<Void>, tls: Bool) {
        self.ready = ready
        self.tls = tls
    }

    private func finish(_ result: Result<Void, any Error>) {
        guard !done else { return }
        done = true
        ready.completeWith(result)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if !tls && context.channel.isActive { finish(.success(())) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if !tls { finish(.success(())) }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event { finish(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(ChannelError.ioOnClosedChannel))
        context.fireChannelInactive()
    }
}
