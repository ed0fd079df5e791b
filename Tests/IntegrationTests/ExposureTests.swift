import AsyncHTTPClient
import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// Issue 8, item 9: what a running gateway exposes — operations endpoints only on
/// `admin_listen`, a private `data_dir`, fair limits from the configuration file.
@Suite("Exposure", .serialized)
struct ExposureTests {
    func get(_ gw: Gateway, _ url: String) async throws -> (status: Int, body: String) {
        let response = try await gw.http.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), String(buffer: bytes))
    }

    @Test("/metrics and /readyz only on admin_listen; the caller port serves /fn, /v1 and /healthz", arguments: GatewayMode.available)
    func operationsOnlyOnAdminPort(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        try await gw.start()
        #expect(try await get(gw, gw.baseURL + "/metrics").status == 404)
        #expect(try await get(gw, gw.baseURL + "/readyz").status == 404)
        #expect(try await get(gw, gw.baseURL + "/healthz").status == 200)
        let metrics = try await get(gw, gw.adminURL + "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("sluice_ingress_in_flight_requests"))
        #expect(try await get(gw, gw.adminURL + "/readyz").status == 200)
        #expect(try await get(gw, gw.adminURL + "/healthz").status == 200)
        #expect(try await get(gw, gw.adminURL + "/fn/billing/x").status == 404)
        #expect(try await gw.call(connection: "billing", path: "/x").status == 200)
        await gw.stop()
    }

    @Test("everything under data_dir is 0700/0600, an existing data_dir included")
    func dataDirectoryIsPrivate() async throws {
        let gw = try await Gateway(mode: .embedded)
        defer { Task { await gw.stop() } }
        // An existing, world-readable data directory is tightened at start.
        try FileManager.default.createDirectory(at: gw.dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        try await gw.start()
        #expect(try await gw.call(connection: "billing", path: "/x", body: Data("{\"a\":1}".utf8)).status == 200)
        // The audit sink and the recordings are written by then (poll, not sleep).
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, !FileManager.default.fileExists(atPath: gw.dataDir.appendingPathComponent("audit.jsonl").path) {
            try await Task.sleep(for: .milliseconds(50))
        }
        var checked = 0
        let root = gw.dataDir.path
        var paths = [root]
        if let e = FileManager.default.enumerator(atPath: root) {
            for case let relative as String in e { paths.append(root + "/" + relative) }
        }
        for path in paths {
            // A file replaced while we looked (the Recorder's chain state is written to a
            // temporary file, then renamed) is gone, not exposed.
            let attributes: [FileAttributeKey: Any]
            do { attributes = try FileManager.default.attributesOfItem(atPath: path) } catch where !FileManager.default.fileExists(atPath: path) {
                continue
            }
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
            let isDirectory = (attributes[.type] as? FileAttributeType) == .typeDirectory
            #expect(mode & 0o077 == 0, "\(path) is \(String(mode, radix: 8))")
            if isDirectory { #expect(mode == 0o700, "\(path) is \(String(mode, radix: 8))") }
            checked += 1
        }
        #expect(checked > 5, "only \(checked) entries under data_dir")
        await gw.stop()
    }

    @Test("fair limits are read from the configuration file (a 429 names the limit and carries Retry-After)")
    func limitsFromConfig() async throws {
        let gw = try await Gateway(mode: .embedded, extraTopLevel: "max_in_flight: 4\nmax_in_flight_per_identity: 1\nbody_read_timeout: 1s")
        defer { Task { await gw.stop() } }
        try await gw.start()
        await gw.upstream.setResponse(body: "{}", headers: [], delay: .seconds(2))
        async let slow = gw.call(connection: "billing", path: "/slow")
        // Once the upstream holds the first call, it holds the identity's only slot.
        let deadline = ContinuousClock.now + .seconds(10)
        while await gw.upstream.requests.isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try #require(await gw.upstream.requests.count == 1)
        let r = try await gw.call(connection: "billing", path: "/fast")
        #expect(r.status == 429)
        #expect(r.json?["error"] as? String == "overloaded")
        #expect(r.header("Retry-After") != nil)
        #expect((r.json?["message"] as? String)?.contains("max_in_flight_per_identity") == true)
        // Another identity is not affected.
        #expect(try await gw.call(connection: "held", path: "/y", key: Gateway.carolKey).status == 200)
        #expect(try await slow.status == 200)
        await gw.stop()
    }
}
