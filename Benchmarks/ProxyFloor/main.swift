// ProxyFloor: the HTTP stack Sluice is built on, with nothing of Sluice's in between — the
// ceiling any `sluice run` figure can reach on this machine.
//
//   ProxyFloor --listen PORT --upstream http://127.0.0.1:PORT [--scan]
//   ProxyFloor --listen PORT --answer          (no upstream: the server alone answers)
//   ProxyFloor --listen PORT --upstream URL --event-loop [--scan]
//                                               (SwiftNIO alone, every call on one event loop)
//
// A Hummingbird HTTP/1.1 server whose every POST is read whole (up to 1 MiB), sent to the
// upstream with AsyncHTTPClient (the same client configuration the Forwarder uses: a pool of
// keep-alive connections on the singleton event loop group), and whose response is returned
// to the caller. With `--scan`, the request body and the response body are also scanned and
// masked by the detection engine inline (credential + PII rules), as the Inspector and the
// Forwarder would. No bus, no sealing, no audit, no auth. `scripts/bench-proxy.sh` runs it as
// the rows "floor: Hummingbird + AsyncHTTPClient" of the proxy table.
import AsyncHTTPClient
import Detection
import Foundation
import Hummingbird
import Logging
import NIOCore

struct Options {
    var listen = 0
    var upstream = ""
    var scan = false
    var answer = false
    var eventLoop = false

    static func parse(_ arguments: [String]) -> Options {
        var o = Options()
        var rest = arguments.dropFirst()[...]
        while let flag = rest.popFirst() {
            switch flag {
            case "--scan": o.scan = true
            case "--answer": o.answer = true
            case "--event-loop": o.eventLoop = true
            case "--listen":
                guard let v = rest.popFirst(), let p = Int(v), (1...65_535).contains(p) else { fail("--listen needs a port") }
                o.listen = p
            case "--upstream":
                guard let v = rest.popFirst(), v.hasPrefix("http://") else { fail("--upstream needs an http:// URL") }
                o.upstream = v.hasSuffix("/") ? String(v.dropLast()) : v
            default:
                fail("unknown argument \(flag); usage: ProxyFloor --listen PORT (--upstream URL [--scan] | --answer)")
            }
        }
        guard o.listen > 0, o.answer != !o.upstream.isEmpty else { fail("usage: ProxyFloor --listen PORT (--upstream URL [--scan] | --answer)") }
        return o
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("ProxyFloor: \(message)\n".utf8))
    exit(2)
}

let options = Options.parse(CommandLine.arguments)
var logger = Logger(label: "proxy-floor")
logger.logLevel = .warning
let engine: DetectionEngine?
do {
    engine = options.scan ? try DetectionEngine(fingerprintKey: Array("proxy-floor".utf8)) : nil
} catch {
    fail("detection engine: \(error)")
}
var clientConfig = HTTPClient.Configuration()
clientConfig.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfig)
let upstream = options.upstream
let answer = ByteBuffer(string: #"{"ok":true,"result":{"rows":12,"region":"eu-west-1"}}"#)

let router = Router()
router.post("**") { request, context -> Response in
    var body = try await request.body.collect(upTo: 1 << 20)
    if options.answer {
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: answer))
    }
    var bytes = body.readBytes(length: body.readableBytes) ?? []
    if let engine { bytes = (try engine.scanAndMask(bytes)).masked }
    var out = HTTPClientRequest(url: upstream + request.uri.path)
    out.method = .POST
    out.headers.add(name: "Content-Type", value: "application/json")
    out.body = .bytes(ByteBuffer(bytes: bytes))
    let response = try await client.execute(out, timeout: .seconds(30), logger: logger)
    var reply = try await response.body.collect(upTo: 1 << 20)
    if let engine {
        let masked = try engine.scanAndMask(reply.readBytes(length: reply.readableBytes) ?? []).masked
        reply = ByteBuffer(bytes: masked)
    }
    return Response(
        status: .init(code: Int(response.status.code)),
        headers: [.contentType: "application/json"],
        body: .init(byteBuffer: reply))
}
if options.eventLoop {
    let hostPort = upstream.dropFirst("http://".count).split(separator: ":")
    guard hostPort.count == 2, let upstreamPort = Int(hostPort[1]) else { fail("--event-loop needs --upstream http://HOST:PORT") }
    do {
        try await EventLoopProxy.run(port: options.listen, upstreamHost: String(hostPort[0]), upstreamPort: upstreamPort, engine: engine)
    } catch {
        fail("\(error)")
    }
    exit(0)
}
let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: options.listen), serverName: nil),
    logger: logger)
do {
    try await app.runService()
    try await client.shutdown().get()
} catch {
    fail("\(error)")
}
