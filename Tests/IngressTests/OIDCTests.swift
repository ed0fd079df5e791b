import Foundation
import Hummingbird
import JWTKit
import Pipeline
import Synchronization
import Testing

@testable import Ingress

/// Claims the test issuer signs; `groups` is encoded under `roles`.
struct TestClaims: JWTPayload {
    var iss: String
    var sub: String
    var aud: [String]
    var exp: Int
    var nbf: Int?
    var roles: [String]?
    var role: String?

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A signing key of the test issuer.
struct IssuerKey: Sendable {
    let kid: String
    let privateKey: ES256PrivateKey

    init(kid: String) {
        self.kid = kid
        self.privateKey = ES256PrivateKey()
    }

    var jwk: JWK {
        let p = privateKey.publicKey.parameters!
        return JWK.ecdsa(.es256, identifier: JWKIdentifier(string: kid), x: p.x, y: p.y, curve: .p256)
    }

    func sign(_ claims: TestClaims, kid: String? = nil) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: privateKey, kid: JWKIdentifier(string: kid ?? self.kid))
        return try await keys.sign(claims, kid: JWKIdentifier(string: kid ?? self.kid))
    }
}

/// A tiny JWKS endpoint whose key set the test can change, counting fetches.
final class JWKSServer: Sendable {
    private let state = Mutex<(keys: [JWK], fetches: Int)>(([], 0))

    var fetches: Int { state.withLock { $0.fetches } }
    func publish(_ keys: [IssuerKey]) { state.withLock { $0.keys = keys.map(\.jwk) } }

    /// Runs the server until `body` returns, passing its JWKS URL.
    func run(_ body: @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.get("/jwks.json") { _, _ -> Response in
            let keys = self.state.withLock { s in
                s.fetches += 1
                return s.keys
            }
            let data = try JSONEncoder().encode(JWKS(keys: keys))
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) })
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        try await body("http://127.0.0.1:\(port)/jwks.json")
    }
}

@Suite("Ingress: OIDC")
struct OIDCTests {
    static let issuer = "https://idp.test"
    static let audience = "sluice"

    static func claims(
        iss: String = issuer, aud: [String] = [audience], exp: TimeInterval = 600, nbf: TimeInterval? = nil,
        roles: [String]? = ["payments"], role: String? = nil
    ) -> TestClaims {
        let now = Date().timeIntervalSince1970
        return TestClaims(iss: iss, sub: "user-1", aud: aud, exp: Int(now + exp), nbf: nbf.map { Int(now + $0) }, roles: roles, role: role)
    }

    static func oidcJSON(url: String, claim: String = "roles") -> String {
        "{\"issuer\": \"\(issuer)\", \"audience\": \"\(audience)\", \"jwks_url\": \"\(url)\", \"groups_claim\": \"\(claim)\", \"leeway\": \"5s\", \"allow_insecure_jwks\": true}"
    }

    /// An Ingress with OIDC against a JWKS server publishing `keys`, plus a responder echoing the identity.
    static func withOIDC(
        keys: [IssuerKey], claim: String = "roles", minRefresh: Duration = .seconds(10),
        _ body: @Sendable @escaping (IngressHarness, JWKSServer) async throws -> Void
    ) async throws {
        let jwks = JWKSServer()
        jwks.publish(keys)
        try await jwks.run { url in
            let options = IngressOptions(instanceID: "ingress-oidc", replyGrace: .milliseconds(200), jwksMinRefreshInterval: minRefresh)
            try await IngressHarness.with(configJSON: IngressHarness.configJSON(oidc: oidcJSON(url: url, claim: claim)), options: options) { h in
                let responder = try await h.startResponder { request in
                    let id = request.metadata.identity
                    return HTTPResponseData(status: 200, headers: [], body: Data("\(id.method):\(id.id):\(id.groups.joined(separator: ","))".utf8))
                }
                defer { responder.cancel() }
                try await body(h, jwks)
            }
        }
    }

    @Test("a valid token passes with groups from the configured claim")
    func valid() async throws {
        let key = IssuerKey(kid: "k1")
        try await Self.withOIDC(keys: [key]) { h, _ in
            let answer = try await h.call("GET", "/fn/billing/x", bearer: try await key.sign(Self.claims()))
            #expect(answer.status == 200)
            #expect(answer.text == "oidc:oidc:user-1:payments")
        }
    }

    @Test("a single-string groups claim works too")
    func singleStringGroups() async throws {
        let key = IssuerKey(kid: "k1")
        try await Self.withOIDC(keys: [key], claim: "role") { h, _ in
            let answer = try await h.call("GET", "/fn/billing/x", bearer: try await key.sign(Self.claims(roles: nil, role: "payments")))
            #expect(answer.status == 200)
            #expect(answer.text == "oidc:oidc:user-1:payments")
        }
    }

    @Test("wrong aud or iss, expired, not yet valid, unknown kid, bad signature: 401, nothing published")
    func rejected() async throws {
        let key = IssuerKey(kid: "k1")
        let stranger = IssuerKey(kid: "k1")
        try await Self.withOIDC(keys: [key]) { h, jwks in
            let tokens: [(String, String)] = [
                ("wrong aud", try await key.sign(Self.claims(aud: ["someone-else"]))),
                ("wrong iss", try await key.sign(Self.claims(iss: "https://evil.test"))),
                ("expired", try await key.sign(Self.claims(exp: -60))),
                ("not yet valid", try await key.sign(Self.claims(nbf: 600))),
                ("unknown kid", try await key.sign(Self.claims(), kid: "k9")),
                ("bad signature", try await stranger.sign(Self.claims())),
            ]
            for (what, token) in tokens {
                let answer = try await h.call("GET", "/fn/billing/x", bearer: token)
                #expect(answer.status == 401, "\(what)")
                #expect(answer.json["error"] as? String == "unauthorized", "\(what)")
            }
            let wrongGroup = try await h.call("GET", "/fn/billing/x", bearer: try await key.sign(Self.claims(roles: ["other"])))
            #expect(wrongGroup.status == 403)
            #expect(try await h.messages(on: h.topics.requests).isEmpty)
            // The unknown kid triggered one refresh at most: initial load + one.
            #expect(jwks.fetches <= 2)
        }
    }

    @Test("within leeway an expired token still passes")
    func leeway() async throws {
        let key = IssuerKey(kid: "k1")
        try await Self.withOIDC(keys: [key]) { h, _ in
            let answer = try await h.call("GET", "/fn/billing/x", bearer: try await key.sign(Self.claims(exp: -2)))
            #expect(answer.status == 200)
        }
    }

    @Test("key rotation: a new kid in the JWKS is accepted after a refresh; refreshes are rate-limited")
    func rotation() async throws {
        let old = IssuerKey(kid: "k1")
        let new = IssuerKey(kid: "k2")
        try await Self.withOIDC(keys: [old], minRefresh: .seconds(1)) { h, jwks in
            #expect(try await h.call("GET", "/fn/billing/x", bearer: try await old.sign(Self.claims())).status == 200)
            #expect(jwks.fetches == 1)
            jwks.publish([old, new])
            let token = try await new.sign(Self.claims())
            // Right after the first fetch, the refresh is rate-limited: unknown kid → 401.
            #expect(try await h.call("GET", "/fn/billing/x", bearer: token).status == 401)
            #expect(jwks.fetches == 1)
            try await Task.sleep(for: .milliseconds(1100))
            #expect(try await h.call("GET", "/fn/billing/x", bearer: token).status == 200)
            #expect(jwks.fetches == 2)
            // Made-up kids do not cause a fetch per request.
            for _ in 0..<5 {
                #expect(try await h.call("GET", "/fn/billing/x", bearer: try await new.sign(Self.claims(), kid: "zz")).status == 401)
            }
            #expect(jwks.fetches <= 3)
        }
    }

    @Test("unreachable JWKS: 503, nothing published")
    func unreachable() async throws {
        let key = IssuerKey(kid: "k1")
        let config = IngressHarness.configJSON(oidc: Self.oidcJSON(url: "http://127.0.0.1:9/jwks.json"))
        let options = IngressOptions(instanceID: "ingress-oidc-down", replyGrace: .milliseconds(200), jwksFetchTimeout: .seconds(1))
        try await IngressHarness.with(configJSON: config, options: options) { h in
            let answer = try await h.call("GET", "/fn/billing/x", bearer: try await key.sign(Self.claims()))
            #expect(answer.status == 503)
            #expect(answer.json["error"] as? String == "unavailable")
            #expect(answer.header("Retry-After") != nil)
            #expect(try await h.messages(on: h.topics.requests).isEmpty)
        }
    }
}
