import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// The injected credential never returns (invariant 4): an upstream that reflects the
/// `Authorization` header the Forwarder injected — in `X-Debug-Auth`, in a `Location`
/// query, in a cookie, in the body plain and base64 — never gets it to the caller, whether or
/// not the connection scans responses.
@Suite("Injected credential reflection", .serialized)
struct CredentialReflectionTests {
    static let token = Gateway.upstreamToken

    /// Every spelling of the injected value the test upstream reflects.
    static var forbidden: [String] {
        let full = "Bearer \(token)"
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        return [
            token, full.addingPercentEncoding(withAllowedCharacters: unreserved)!,
            Data(full.utf8).base64EncodedString(), Data(token.utf8).base64EncodedString(),
        ]
    }

    /// A gateway with an extra connection `noscan` (credentials injected, `scan_responses: false`).
    static func gateway(_ mode: GatewayMode) async throws -> Gateway {
        let gw = try await Gateway(mode: mode, extraConnections: """
              - name: noscan
                upstream: http://upstream.placeholder.invalid
                allow_groups: [ci]
                credentials: { header: Authorization, value: "Bearer env:UPSTREAM_TOKEN" }
                policy: { scan_responses: false }
            """)
        try gw.editConfig([("http://upstream.placeholder.invalid", gw.upstream.url)])
        try await gw.start()
        return gw
    }

    @Test("reflected in headers and body: masked, audited, with and without scan_responses", arguments: GatewayMode.available)
    func reflectedEverywhere(mode: GatewayMode) async throws {
        let gw = try await Self.gateway(mode)
        defer { Task { await gw.stop() } }
        await gw.upstream.setResponse(
            body: #"{"you_sent":"{{h:Authorization}}","b64":"{{h64:Authorization}}","ok":true}"#,
            headers: [
                ("X-Debug-Auth", "{{h:Authorization}}"),
                ("Location", "https://example.test/callback?auth={{hurl:Authorization}}&state=1"),
                ("Set-Cookie", "dbg={{h64:Authorization}}; Path=/"),
            ])
        for connection in ["billing", "noscan"] {
            let r = try await gw.call(connection: connection, path: "/echo", headers: [("Content-Type", "application/json")], body: gw.json(["q": 1]))
            #expect(r.status == 200, "\(connection): \(r.text)")
            let everything = r.text + r.headers.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
            for form in Self.forbidden { #expect(!everything.contains(form), "\(connection): the injected credential came back") }
            #expect(r.header("X-Debug-Auth") == "[MASKED:injected-credential]")
            #expect(r.header("Location")?.hasPrefix("https://example.test/callback?auth=[MASKED:injected-credential]") == true)
            #expect(r.text.contains("\"ok\":true") && r.text.contains("[MASKED:injected-credential]"))
            let id = try #require(r.header("X-Sluice-Request-Id"))
            let delivered = try await gw.waitAudit("delivered", requestID: id)
            let findings = try #require(delivered["findings"] as? [[String: Any]])
            let locations = Set(findings.filter { $0["rule"] as? String == "injected-credential" }.compactMap { $0["location"] as? String })
            #expect(locations == ["response", "response-header:x-debug-auth", "response-header:location", "response-header:set-cookie"], "\(connection)")
        }
        // The upstream did get the credential (it was injected), and nothing on disk holds it.
        let seen = await gw.upstream.requests
        #expect(seen.count == 2 && seen.allSatisfy { $0.header("Authorization") == "Bearer \(Self.token)" })
        let disk = String(decoding: gw.dataDirectoryBytes(), as: UTF8.self)
        #expect(!disk.contains(Self.token))
        await gw.stop()
    }

    @Test("reflected inside a compressed body (gzip, br, zstd, stacked): decoded, masked, returned without Content-Encoding")
    func reflectedCompressed() async throws {
        let gw = try await Self.gateway(.embedded)
        defer { Task { await gw.stop() } }
        let plain = Data(#"{"debug":"Bearer \#(Self.token)","b64":"\#(Data(Self.token.utf8).base64EncodedString())"}"#.utf8)
        for tools in [[Compress.Tool.gzip], [.br], [.zstd], [.gzip, .br]] {
            let coding = tools.map(\.rawValue).joined(separator: ", ")
            await gw.upstream.setResponse(data: try Compress.stacked(tools, plain), headers: [("Content-Encoding", coding)])
            let r = try await gw.call(connection: "noscan", path: "/z", key: Gateway.ciKey)
            #expect(r.status == 200, "\(coding): \(r.text)")
            #expect(r.header("Content-Encoding") == nil, "\(coding)")
            #expect(r.text.contains("[MASKED:injected-credential]"), "\(coding): \(r.text)")
            for form in Self.forbidden { #expect(!r.text.contains(form), "\(coding)") }
        }
        await gw.stop()
    }

    @Test("a response that cannot be decoded to check is withheld: 502 response_withheld", arguments: GatewayMode.available)
    func undecodableWithheld(mode: GatewayMode) async throws {
        let gw = try await Self.gateway(mode)
        defer { Task { await gw.stop() } }
        await gw.upstream.setResponse(body: "{{h:Authorization}}", headers: [("Content-Encoding", "x-custom")])
        let r = try await gw.call(connection: "noscan", path: "/x", key: Gateway.ciKey)
        #expect(r.status == 502, "\(r.text)")
        #expect(r.json?["error"] as? String == "response_withheld")
        #expect((r.json?["message"] as? String)?.isEmpty == false)
        #expect(r.json?["request_id"] as? String == r.header("X-Sluice-Request-Id"))
        #expect(!r.text.contains(Self.token))
        let id = try #require(r.header("X-Sluice-Request-Id"))
        let failed = try await gw.waitAudit("failed", requestID: id)
        #expect((failed["details"] as? [String: String])?["error_kind"] == "response_encoding_unsupported")
        await gw.stop()
    }
}
