import Foundation
import GatewayHarness
import Testing

/// `sluice probe`: the compose file's container health check (the image has no curl).
@Suite("sluice probe", .serialized)
struct ProbeCommandTests {
    @Test("a ready process: /readyz and /healthz exit 0; SLUICE_ADMIN_LISTEN gives the default URL")
    func ready() async throws {
        let gw = try await Gateway(mode: .embedded)
        defer { Task { await gw.stop() } }
        try await gw.start()
        for path in ["/readyz", "/healthz"] {
            let r = try runToCompletion(SluiceProcess.binary, ["probe", gw.adminURL + path])
            #expect(r.status == 0, "\(path): \(r.stdout)\(r.stderr)")
            #expect(r.stdout.contains("\(gw.adminURL)\(path): 200"))
        }
        let byEnvironment = try runToCompletion(SluiceProcess.binary, ["probe"], environment: ["SLUICE_ADMIN_LISTEN": "0.0.0.0:\(gw.adminPort)"])
        #expect(byEnvironment.status == 0, "\(byEnvironment.stderr)")
        #expect(byEnvironment.stdout.contains("http://127.0.0.1:\(gw.adminPort)/readyz: 200"))
        await gw.stop()
        // Stopped: nobody answers.
        let gone = try runToCompletion(SluiceProcess.binary, ["probe", gw.adminURL + "/readyz", "--timeout", "2s"])
        #expect(gone.status == 1 && gone.stderr.contains("connection refused"), "\(gone.stderr)")
    }

    /// (what answers, the status it gives, what the one stderr line must say)
    static let failures: [(String, Int, String)] = [
        (#"{"status":"not_ready","checks":[{"name":"forwarder","kind":"stage","ready":false,"gates":true},{"name":"sink:x","kind":"dependency","ready":false,"gates":false},{"name":"ingress","kind":"stage","ready":true,"gates":true}]}"#,
         503, ": 503, not ready: forwarder"),
        ("<html>busy</html>", 200, "not as a Sluice operations endpoint"),
        (#"{"status":"error"}"#, 500, ": 500"),
    ]

    @Test("anything but a 200 from an operations endpoint is exit 1 with one line saying why", arguments: failures)
    func failing(body: String, status: Int, expected: String) async throws {
        let endpoint = try await TestUpstream.start()
        defer { endpoint.stop() }
        await endpoint.setResponse(status: status, body: body, headers: [("Content-Type", "application/json")])
        let r = try runToCompletion(SluiceProcess.binary, ["probe", endpoint.url + "/readyz"])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains(expected) && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!r.stderr.contains("sink:x"), "checks that do not gate are not blamed")
    }

    @Test("a bad URL or timeout is a usage error (exit 2)")
    func usage() throws {
        #expect(try runToCompletion(SluiceProcess.binary, ["probe", "ftp://x/readyz"]).status == 2)
        #expect(try runToCompletion(SluiceProcess.binary, ["probe", "http://127.0.0.1:1/readyz", "--timeout", "soon"]).status == 2)
    }
}
