import Foundation
import Synchronization

/// A private HTTPS receiver for audit feeds (a HEC collector, a webhook) with a certificate
/// from a ``TestCA`` made for this run: Python's `http.server` behind its `ssl` module, in a
/// process of its own, answering every POST `200 {"text":"Success","code":0}` and recording it.
///
/// Guarantees: `start()` returns once the server listens (at most 10 s) or throws with its
/// output; every POST it answered is in ``requests()`` (path, headers, body bytes as received);
/// `stop()` kills it and waits for it.
public final class HTTPSReceiver: @unchecked Sendable {
    // @unchecked: `Process` is not Sendable; the one held is only signalled and waited for in
    // `stop()`, once (`stopped` under its lock decides which caller does it).
    public let ca: TestCA
    public let directory: URL
    public let port: Int
    private let process: Process
    private let stopped = Mutex(false)

    public struct Received: Sendable {
        public var path: String
        public var headers: [String: String]
        public var body: Data
    }

    static let script = #"""
        import base64, http.server, json, os, ssl, sys
        port_file, cert, key, log = sys.argv[1:5]
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                record = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": base64.b64encode(body).decode()}
                with open(log, "ab") as f:
                    f.write(json.dumps(record).encode() + b"\n")
                answer = b'{"text":"Success","code":0}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        with open(port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(port_file + ".tmp", port_file)
        server.serve_forever()
        """#

    private init(ca: TestCA, directory: URL, port: Int, process: Process) {
        self.ca = ca
        self.directory = directory
        self.port = port
        self.process = process
    }

    /// Makes a CA in a new temporary directory and starts the receiver with its server certificate.
    public static func start() throws -> HTTPSReceiver {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-https-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ca = try TestCA.make(in: directory)
        let (port, process) = try launch(ca: ca, directory: directory)
        return HTTPSReceiver(ca: ca, directory: directory, port: port, process: process)
    }

    /// `https://localhost:<port>` (the certificate names `localhost`).
    public var url: String { "https://localhost:\(port)" }

    private func file(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private static func launch(ca: TestCA, directory: URL) throws -> (Int, Process) {
        func file(_ name: String) -> String { directory.appendingPathComponent(name).path }
        try Self.script.write(toFile: file("receiver.py"), atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: file("received.jsonl"), contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [file("receiver.py"), file("port"), ca.serverCertFile, ca.serverKeyFile, file("received.jsonl")]
        FileManager.default.createFile(atPath: file("receiver.log"), contents: nil)
        let log = FileHandle(forWritingAtPath: file("receiver.log")) ?? FileHandle.nullDevice
        p.standardOutput = log
        p.standardError = log
        try p.run()
        let deadline = Date().addingTimeInterval(10)
        while true {
            if let text = try? String(contentsOfFile: file("port"), encoding: .utf8), let n = Int(text) { return (n, p) }
            let output = { String(decoding: FileManager.default.contents(atPath: file("receiver.log")) ?? Data(), as: UTF8.self) }
            guard p.isRunning else {
                throw TestCA.SetupError(description: "the HTTPS receiver exited (status \(p.terminationStatus)): \(output())")
            }
            guard Date() < deadline else {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                throw TestCA.SetupError(description: "the HTTPS receiver did not listen within 10 s")
            }
            usleep(20_000)  // polling for the port file
        }
    }

    /// Every POST answered so far, in order.
    public func requests() -> [Received] {
        let text = (try? String(contentsOfFile: file("received.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let path = o["path"] as? String, let body = (o["body"] as? String).flatMap({ Data(base64Encoded: $0) })
            else { return nil }
            return Received(path: path, headers: o["headers"] as? [String: String] ?? [:], body: body)
        }
    }

    /// Kills the receiver and waits for it.
    public func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        let p = process
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    /// Stops the receiver and removes its directory.
    public func shutdown() {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}
