import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// Attacks on a real `sluice` deployment, as a pentester would send them: path spellings around
/// hold globs, encodings around inspection, content-coding tricks, decompression bombs,
/// checksum-failing tokens, request smuggling. Each row states what must happen; every row also
/// asserts that the upstream never saw the call and that every refused call has exactly one
/// audit outcome (`request_rejected` at the edge, `blocked` from the Inspector).
///
/// Connections (see `Gateway`): `held` holds `DELETE`, `/admin/*` and bodies matching
/// `(?i)drop\s+table`; `strict` blocks any secret; `billing` masks. `max_body_bytes` is 64 KiB.
@Suite("Adversarial: no way around inspection and holds", .serialized)
struct AdversarialTests {
    /// What a row must produce.
    enum Expect: Sendable, CustomStringConvertible {
        /// Held for approval (202, pending) for a reason that starts with this text.
        case held(reason: String)
        /// Refused at the edge with this status and error code; nothing published.
        case refused(Int, String)
        /// Held, or refused as a bad path: either keeps it from the upstream without approval.
        case heldOrBadPath
        /// Blocked by the Inspector (403 `blocked`).
        case blocked

        var description: String {
            switch self {
            case .held(let r): "held (\(r))"
            case .refused(let s, let e): "\(s) \(e)"
            case .heldOrBadPath: "held or 400 bad_path"
            case .blocked: "403 blocked"
            }
        }
    }

    struct Row: Sendable, CustomStringConvertible {
        var name: String
        var method = "POST"
        /// The raw request target below `/fn/`, exactly as sent.
        var target: String
        var headers: [String] = []
        var body = Data()
        var expect: Expect
        var description: String { name }
    }

    static let formHeader = "Content-Type: application/x-www-form-urlencoded"
    static let jsonHeader = "Content-Type: application/json"

    /// A GitHub classic token of the right shape whose checksum is wrong.
    static func badChecksumGitHubToken() -> String {
        var token = Canaries.github("ghp_")
        let last = token.removeLast()
        token.append(last == "A" ? "B" : "A")
        return token
    }

    /// `{"payload": "<previous level as a JSON string>"}`, `depth` times around a secret.
    static func nestedJSON(depth: Int, secret: String) -> Data {
        var text = "{\"token\":\"\(secret)\"}"
        for _ in 0..<depth {
            let wrapped = try? JSONSerialization.data(withJSONObject: ["payload": text], options: [.sortedKeys])
            text = String(decoding: wrapped ?? Data(), as: UTF8.self)
        }
        return Data(text.utf8)
    }

    static func pathRows() -> [Row] {
        [
            Row(name: "percent-encoded letter", target: "held/%61dmin/users", expect: .heldOrBadPath),
            Row(name: "double slash", target: "held//admin/users", expect: .heldOrBadPath),
            Row(name: "dot segment", target: "held/./admin/users", expect: .heldOrBadPath),
            Row(name: "dot-dot segment", target: "held/x/../admin/users", expect: .heldOrBadPath),
            Row(name: "encoded dot-dot", target: "held/x/%2e%2E/admin/users", expect: .heldOrBadPath),
            Row(name: "encoded slash", target: "held/admin%2Fusers", expect: .refused(400, "bad_path")),
            Row(name: "encoded backslash", target: "held/admin%5Cusers", expect: .refused(400, "bad_path")),
            Row(name: "encoded NUL", target: "held/admin/users%00", expect: .refused(400, "bad_path")),
            Row(name: "climb above the connection root", target: "held/../held/admin/users", expect: .refused(400, "bad_path")),
            Row(name: "fullwidth look-alike (percent-encoded)", target: "held/%EF%BD%81dmin/users", expect: .heldOrBadPath),
            Row(name: "upper case", target: "held/ADMIN/users", expect: .heldOrBadPath),
            Row(name: "matrix parameter", target: "held/admin;x=1/users", expect: .heldOrBadPath),
            Row(name: "dot-dot behind a matrix parameter", target: "held/x/..;/admin/users", expect: .heldOrBadPath),
            Row(name: "DELETE with encoded path", method: "DELETE", target: "held/%78", expect: .held(reason: "method DELETE")),
        ]
    }

    static func bodyRows() throws -> [Row] {
        let drop = "DROP TABLE t"
        let innerJSON = String(decoding: try JSONSerialization.data(withJSONObject: ["q": "\\u0044ROP TABLE t"]), as: UTF8.self)
        return [
            Row(name: "JSON \\u escape", target: "held/q", headers: [jsonHeader],
                body: Data(#"{"q":"\u0044ROP TABLE t"}"#.utf8), expect: .held(reason: "body pattern")),
            Row(name: "JSON inside JSON, escaped twice", target: "held/q", headers: [jsonHeader],
                body: Data("{\"args\":\(innerJSON.debugDescription)}".utf8), expect: .held(reason: "body pattern")),
            Row(name: "form percent-encoding", target: "held/q", headers: [formHeader],
                body: Data("q=DROP%20TABLE%20t&x=1".utf8), expect: .held(reason: "body pattern")),
            Row(name: "form plus as space", target: "held/q", headers: [formHeader],
                body: Data("q=DROP+TABLE+t".utf8), expect: .held(reason: "body pattern")),
            Row(name: "fullwidth letters", target: "held/q", headers: [jsonHeader],
                body: Data("{\"q\":\"ＤＲＯＰ ＴＡＢＬＥ t\"}".utf8), expect: .held(reason: "body pattern")),
            Row(name: "gzip body", target: "held/q", headers: [jsonHeader, "Content-Encoding: gzip"],
                body: try Compress.run(.gzip, Data("{\"q\":\"\(drop)\"}".utf8)), expect: .held(reason: "body pattern")),
            Row(name: "zstd over br over gzip", target: "held/q", headers: [jsonHeader, "Content-Encoding: gzip, br, zstd"],
                body: try Compress.stacked([.gzip, .br, .zstd], Data("{\"q\":\"\(drop)\"}".utf8)), expect: .held(reason: "body pattern")),
        ]
    }

    static func codingRows() throws -> [Row] {
        let secret = badChecksumGitHubToken()
        let clean = Data("{\"note\":\"nothing to see here\"}".utf8)
        var twoMembers = try Compress.run(.gzip, clean)
        twoMembers.append(try Compress.run(.gzip, Data("{\"token\":\"\(Canaries.make()[0].secret)\"}".utf8)))
        let bombSource = Data(count: 50 << 20)
        return [
            Row(name: "secret in the second gzip member", target: "strict/x", headers: [jsonHeader, "Content-Encoding: gzip"],
                body: twoMembers, expect: .blocked),
            Row(name: "x-gzip alias", target: "strict/x", headers: [jsonHeader, "Content-Encoding: x-gzip"],
                body: try Compress.run(.gzip, Data("{\"t\":\"\(secret)\"}".utf8)), expect: .blocked),
            Row(name: "secret under br", target: "strict/x", headers: [jsonHeader, "Content-Encoding: br"],
                body: try Compress.run(.br, Data("{\"t\":\"\(secret)\"}".utf8)), expect: .blocked),
            Row(name: "secret under zstd", target: "strict/x", headers: [jsonHeader, "Content-Encoding: zstd"],
                body: try Compress.run(.zstd, Data("{\"t\":\"\(secret)\"}".utf8)), expect: .blocked),
            Row(name: "secret under gzip, gzip", target: "strict/x", headers: [jsonHeader, "Content-Encoding: gzip, gzip"],
                body: try Compress.stacked([.gzip, .gzip], Data("{\"t\":\"\(secret)\"}".utf8)), expect: .blocked),
            Row(name: "secret under two Content-Encoding fields", target: "strict/x",
                headers: [jsonHeader, "Content-Encoding: gzip", "Content-Encoding: zstd"],
                body: try Compress.stacked([.gzip, .zstd], Data("{\"t\":\"\(secret)\"}".utf8)), expect: .blocked),
            Row(name: "br label on bytes that are not brotli", target: "strict/x", headers: [jsonHeader, "Content-Encoding: br"],
                body: Data("{\"t\":\"\(secret)\"}".utf8), expect: .refused(400, "undecodable_body")),
            Row(name: "gzip, gzip on a single gzip layer", target: "strict/x", headers: [jsonHeader, "Content-Encoding: gzip, gzip"],
                body: try Compress.run(.gzip, clean), expect: .refused(400, "undecodable_body")),
            Row(name: "unknown coding", target: "strict/x", headers: [jsonHeader, "Content-Encoding: x-custom"],
                body: Data("{\"t\":\"\(secret)\"}".utf8), expect: .refused(415, "unsupported_encoding")),
            Row(name: "known and unknown coding", target: "strict/x", headers: [jsonHeader, "Content-Encoding: gzip, compress"],
                body: try Compress.run(.gzip, clean), expect: .refused(415, "unsupported_encoding")),
            Row(name: "gzip bomb (50 MB)", target: "strict/x", headers: ["Content-Encoding: gzip"],
                body: try Compress.run(.gzip, bombSource), expect: .refused(413, "body_too_large")),
            Row(name: "br bomb (50 MB)", target: "strict/x", headers: ["Content-Encoding: br"],
                body: try Compress.run(.br, bombSource), expect: .refused(413, "body_too_large")),
            Row(name: "zstd bomb (50 MB)", target: "strict/x", headers: ["Content-Encoding: zstd"],
                body: try Compress.run(.zstd, bombSource), expect: .refused(413, "body_too_large")),
            Row(name: "checksum-failing GitHub token", target: "strict/x", headers: [jsonHeader],
                body: Data("{\"t\":\"\(secret)\"}".utf8), expect: .blocked),
            Row(name: "token ten JSON levels deep", target: "strict/x", headers: [jsonHeader],
                body: nestedJSON(depth: 10, secret: Canaries.github("ghp_")), expect: .blocked),
        ]
    }

    /// Sends `row` byte for byte, then checks the answer, the audit trail and that the upstream saw nothing.
    static func check(_ row: Row, on gw: Gateway) async throws {
        var head = ["\(row.method) /fn/\(row.target) HTTP/1.1", "Host: 127.0.0.1", "Authorization: Bearer \(Gateway.ciKey)", "Connection: close"]
        head += row.headers
        head.append("Content-Length: \(row.body.count)")
        let r = try await RawHTTP.exchange(port: gw.port, RawHTTP.request(head, body: row.body))
        let id = r.header("X-Sluice-Request-Id") ?? ""
        let context = "row \"\(row.name)\": expected \(row.expect), got \(r.status.map(String.init) ?? "no answer") \(r.json ?? [:])"
        switch row.expect {
        case .held(let reason):
            try #require(r.status == 202, Comment(rawValue: context))
            try await expectHeld(id, reason: reason, on: gw, context: context)
        case .refused(let status, let code):
            #expect(r.status == status, Comment(rawValue: context))
            #expect(r.json?["error"] as? String == code, Comment(rawValue: context))
            #expect((r.json?["message"] as? String)?.isEmpty == false, Comment(rawValue: context))
            try await expectOneOutcome(id, kind: "request_rejected", on: gw, context: context)
        case .blocked:
            #expect(r.status == 403, Comment(rawValue: context))
            #expect(r.json?["error"] as? String == "blocked", Comment(rawValue: context))
            try await expectOneOutcome(id, kind: "blocked", on: gw, context: context)
        case .heldOrBadPath:
            if r.status == 400 {
                #expect(r.json?["error"] as? String == "bad_path", Comment(rawValue: context))
                try await expectOneOutcome(id, kind: "request_rejected", on: gw, context: context)
            } else {
                try #require(r.status == 202, Comment(rawValue: context))
                try await expectHeld(id, reason: "path", on: gw, context: context)
            }
        }
        #expect(await gw.upstream.requests.isEmpty, Comment(rawValue: "\(context): the upstream received the call"))
    }

    static func expectHeld(_ id: String, reason: String, on gw: Gateway, context: String) async throws {
        try #require(!id.isEmpty, Comment(rawValue: context))
        try await gw.waitPending(id)
        let item = try await gw.api(.GET, "/v1/approvals/\(id)", key: Gateway.aliceKey)
        let reasons = item.json?["reasons"] as? [String] ?? []
        #expect(reasons.contains { $0.hasPrefix(reason) }, Comment(rawValue: "\(context): reasons \(reasons)"))
        _ = try await gw.waitAudit("approval_requested", requestID: id)
        #expect(outcomes(id, gw).isEmpty, Comment(rawValue: "\(context): a held request has an outcome"))
    }

    static func outcomes(_ id: String, _ gw: Gateway) -> [[String: Any]] {
        let kinds: Set<String> = ["request_rejected", "delivered", "blocked", "denied", "expired", "failed"]
        return gw.auditEvents().filter { $0["request_id"] as? String == id && kinds.contains($0["kind"] as? String ?? "") }
    }

    /// Exactly one outcome, of `kind`, once the Recorder has written it.
    static func expectOneOutcome(_ id: String, kind: String, on gw: Gateway, context: String) async throws {
        try #require(!id.isEmpty, Comment(rawValue: "\(context): no X-Sluice-Request-Id"))
        _ = try await gw.waitAudit(kind, requestID: id)
        let found = outcomes(id, gw)
        #expect(found.count == 1, Comment(rawValue: "\(context): outcomes \(found.map { $0["kind"] ?? "?" })"))
    }

    @Test("path spellings never get around a hold", arguments: GatewayMode.available)
    func paths(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "100ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        for row in Self.pathRows() { try await Self.check(row, on: gw) }
        // The canonical spelling reaches the upstream, never the one sent.
        let r = try await RawHTTP.exchange(port: gw.port, RawHTTP.request([
            "GET /fn/billing/a/./b//c/%7Euser/%61x HTTP/1.1", "Host: x", "Authorization: Bearer \(Gateway.ciKey)", "Connection: close",
        ]))
        #expect(r.status == 200, "\(r.text)")
        let got = await gw.upstream.requests
        #expect(got.map(\.path) == ["/a/b/c/~user/ax"])
        await gw.stop()
    }

    @Test("encoded bodies are matched by body patterns", arguments: GatewayMode.available)
    func bodies(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "100ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        for row in try Self.bodyRows() { try await Self.check(row, on: gw) }
        await gw.stop()
    }

    @Test("content codings are decoded and inspected, or refused", arguments: GatewayMode.available)
    func codings(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode)
        defer { Task { await gw.stop() } }
        try await gw.start()
        for row in try Self.codingRows() { try await Self.check(row, on: gw) }

        // Control: a clean stacked body is delivered as the very bytes that were inspected.
        let clean = try Compress.stacked([.gzip, .zstd], Data("{\"note\":\"clean\"}".utf8))
        let r = try await gw.call(connection: "billing", path: "/ok", headers: [("Content-Type", "application/json"), ("Content-Encoding", "gzip, zstd")], body: clean)
        #expect(r.status == 200, "\(r.text)")
        let got = await gw.upstream.requests
        try #require(got.count == 1)
        #expect(got[0].body == clean)
        #expect(got[0].header("Content-Encoding")?.replacingOccurrences(of: " ", with: "") == "gzip,zstd")

        // A secret under a coding on a masking connection: forwarded decoded and masked, without the coding.
        let secret = Canaries.make()[0].secret
        let masked = try await gw.call(connection: "billing", path: "/m", headers: [("Content-Type", "application/json"), ("Content-Encoding", "br")],
                                       body: try Compress.run(.br, Data("{\"k\":\"\(secret)\"}".utf8)))
        #expect(masked.status == 200)
        let last = try #require(await gw.upstream.requests.last)
        #expect(last.header("Content-Encoding") == nil)
        #expect(last.bodyText.contains("[MASKED:aws-access-key-id:"))
        #expect(!last.bodyText.contains(secret))
        await gw.stop()
    }

    @Test("request smuggling and framing tricks deliver nothing unheld", arguments: GatewayMode.available)
    func smuggling(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "100ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let auth = "Authorization: Bearer \(Gateway.ciKey)"
        let smuggled = "DELETE /fn/billing/admin/x HTTP/1.1\r\nHost: x\r\n\(auth)\r\nContent-Length: 0\r\n\r\n"
        let attempts: [(String, Data)] = [
            ("duplicate Content-Length", RawHTTP.request(
                ["POST /fn/held/q HTTP/1.1", "Host: x", auth, "Content-Length: 2", "Content-Length: 40", "Connection: close"],
                body: Data(("{}" + smuggled).utf8))),
            ("Content-Length and chunked", RawHTTP.request(
                ["POST /fn/held/q HTTP/1.1", "Host: x", auth, "Content-Length: 4", "Transfer-Encoding: chunked", "Connection: close"],
                body: Data(("0\r\n\r\n" + smuggled).utf8))),
            ("obfuscated Transfer-Encoding", RawHTTP.request(
                ["POST /fn/held/q HTTP/1.1", "Host: x", auth, "Transfer-Encoding: xchunked", "Content-Length: 5", "Connection: close"],
                body: Data(("0\r\n\r\n" + smuggled).utf8))),
            ("space before colon", RawHTTP.request(
                ["POST /fn/held/q HTTP/1.1", "Host: x", auth, "Content-Length : 0", "Transfer-Encoding: chunked", "Connection: close"],
                body: Data(("0\r\n\r\n" + smuggled).utf8))),
        ]
        for (name, bytes) in attempts {
            let r = try await RawHTTP.exchange(port: gw.port, bytes, timeout: .seconds(15))
            // Whatever the parser makes of it, nothing is delivered without a hold: the smuggled
            // DELETE may only ever be parsed as a request of its own, which is then held.
            let delivered = await gw.upstream.requests
            #expect(!delivered.contains { $0.method == "DELETE" || $0.path.contains("admin") }, "\(name): \(delivered.map { "\($0.method) \($0.path)" })")
            #expect(r.status.map { [202, 400, 411, 413, 501].contains($0) } ?? true, "\(name): \(r.text.prefix(300))")
        }
        // The gateway is still serving.
        let ok = try await gw.call(connection: "billing", path: "/alive")
        #expect(ok.status == 200)
        await gw.stop()
    }

    @Test("operations endpoints are not on the caller port")
    func exposure() async throws {
        let gw = try await Gateway(mode: .embedded)
        defer { Task { await gw.stop() } }
        try await gw.start()
        for path in ["/metrics", "/readyz"] {
            let r = try await RawHTTP.exchange(port: gw.port, RawHTTP.request(["GET \(path) HTTP/1.1", "Host: x", "Connection: close"]))
            #expect(r.status == 404, "\(path) on the caller port: \(r.status ?? 0)")
        }
        let health = try await RawHTTP.exchange(port: gw.port, RawHTTP.request(["GET /healthz HTTP/1.1", "Host: x", "Connection: close"]))
        #expect(health.status == 200)
        let metrics = try await RawHTTP.exchange(port: gw.adminPort, RawHTTP.request(["GET /metrics HTTP/1.1", "Host: x", "Connection: close"]))
        #expect(metrics.status == 200)
        #expect(metrics.text.contains("sluice_"))
        await gw.stop()
    }
}
