import Crypto
import Foundation
import Hummingbird
import JWTKit
import NIOCore
import Synchronization

/// A small OpenID Connect provider for the console's single sign-on tests: `/authorize` signs
/// in whoever the test chose (no page, straight back to `redirect_uri` with a code), `/token`
/// checks the code, the PKCE verifier and the client's credentials and answers a signed ID
/// token, `/jwks` publishes the key, `/.well-known/openid-configuration` names all three.
///
/// Guarantees: a code is single-use and bound to the `redirect_uri`, `code_challenge` and nonce
/// of its `/authorize`; `/token` answers 400 `invalid_grant` for anything else, as a real
/// provider would. Every `/authorize` query and `/token` form is kept for the test to read.
public final class FakeIdentityProvider: Sendable {
    public struct User: Sendable {
        public var sub: String
        public var email: String
        public var groups: [String]
        public init(sub: String, email: String, groups: [String]) {
            self.sub = sub
            self.email = email
            self.groups = groups
        }
    }

    struct Grant: Sendable {
        var user: User
        var redirectURI: String
        var challenge: String
        var nonce: String
        var clientID: String
    }

    struct State: Sendable {
        var user = User(sub: "nobody", email: "nobody@example.com", groups: [])
        var codes: [String: Grant] = [:]
        var authorizeQueries: [[String: String]] = []
        var tokenForms: [[String: String]] = []
        /// Replaces the nonce in the next ID tokens (a provider that does not echo it).
        var nonceOverride: String? = nil
        var discoveryFetches = 0
        /// The issuer the discovery document names, when not this provider (a misconfigured or hostile one).
        var discoveryIssuer: String? = nil
    }

    public let issuer: String
    public let port: Int
    public let clientSecret: String
    let key: ES256PrivateKey
    let kid = "fake-idp-1"
    fileprivate let state: Mutex<State>
    private let task: Task<Void, any Error>

    public var authorizeURL: String { issuer + "/authorize" }
    public var tokenURL: String { issuer + "/token" }
    public var jwksURL: String { issuer + "/jwks" }

    /// The user the next `/authorize` signs in.
    public func signInAs(_ user: User) { state.withLock { $0.user = user } }
    public func setNonceOverride(_ nonce: String?) { state.withLock { $0.nonceOverride = nonce } }
    public var authorizeQueries: [[String: String]] { state.withLock { $0.authorizeQueries } }
    public var tokenForms: [[String: String]] { state.withLock { $0.tokenForms } }
    public func setDiscoveryIssuer(_ issuer: String?) { state.withLock { $0.discoveryIssuer = issuer } }
    /// How often the discovery document was read.
    public var discoveryFetches: Int { state.withLock { $0.discoveryFetches } }

    init(host: String, port: Int, key: ES256PrivateKey, clientSecret: String, task: Task<Void, any Error>) {
        self.issuer = "http://\(host):\(port)"
        self.port = port
        self.key = key
        self.clientSecret = clientSecret
        self.state = Mutex(State())
        self.task = task
    }

    public func stop() { task.cancel() }

    /// - Parameter host: the name in its URLs (it listens on 127.0.0.1): `localhost` makes it
    ///   another site than a gateway at `127.0.0.1`, as a real provider is.
    public static func start(host: String = "127.0.0.1", clientSecret: String = "fake-idp-client-secret") async throws -> FakeIdentityProvider {
        let key = ES256PrivateKey()
        let box = Box()
        let router = Router()
        router.get("/authorize") { request, _ -> Response in
            guard let idp = box.idp else { return Response(status: .serviceUnavailable) }
            return idp.authorize(request)
        }
        router.post("/token") { request, _ -> Response in
            guard let idp = box.idp else { return Response(status: .serviceUnavailable) }
            return try await idp.token(request)
        }
        router.get("/.well-known/openid-configuration") { _, _ -> Response in
            guard let idp = box.idp else { return Response(status: .serviceUnavailable) }
            let named = idp.state.withLock { s -> String? in
                s.discoveryFetches += 1
                return s.discoveryIssuer
            }
            let data = try JSONSerialization.data(withJSONObject: [
                "issuer": named ?? idp.issuer, "authorization_endpoint": idp.authorizeURL, "token_endpoint": idp.tokenURL, "jwks_uri": idp.jwksURL,
            ])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("/jwks") { _, _ -> Response in
            guard let idp = box.idp else { return Response(status: .serviceUnavailable) }
            return try idp.jwks()
        }
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "fake-idp"),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: .init(label: "fake-idp"))
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var port = 0
        for await p in portStream { port = p }
        let idp = FakeIdentityProvider(host: host, port: port, key: key, clientSecret: clientSecret, task: task)
        box.set(idp)
        return idp
    }

    /// Lets the routes reach the provider made after the server started.
    final class Box: Sendable {
        private let value = Mutex<FakeIdentityProvider?>(nil)
        var idp: FakeIdentityProvider? { value.withLock { $0 } }
        func set(_ idp: FakeIdentityProvider) { value.withLock { $0 = idp } }
    }

    func authorize(_ request: Request) -> Response {
        var query: [String: String] = [:]
        for (k, v) in request.uri.queryParameters { query[String(k)] = String(v) }
        let code = UUID().uuidString
        let ok = query["response_type"] == "code" && query["code_challenge_method"] == "S256"
        state.withLock { s in
            s.authorizeQueries.append(query)
            if ok {
                s.codes[code] = Grant(
                    user: s.user, redirectURI: query["redirect_uri"] ?? "", challenge: query["code_challenge"] ?? "",
                    nonce: query["nonce"] ?? "", clientID: query["client_id"] ?? "")
            }
        }
        var back = URLComponents(string: query["redirect_uri"] ?? "") ?? URLComponents()
        back.queryItems = ok
            ? [URLQueryItem(name: "code", value: code), URLQueryItem(name: "state", value: query["state"])]
            : [URLQueryItem(name: "error", value: "invalid_request"), URLQueryItem(name: "state", value: query["state"])]
        var headers = HTTPFields()
        headers[.location] = back.string ?? ""
        return Response(status: .found, headers: headers)
    }

    func token(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 64 * 1024)
        var form: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            if kv.count == 2 { form[kv[0]] = kv[1] }
        }
        let basic = request.headers[.authorization].flatMap { value -> (String, String)? in
            guard value.hasPrefix("Basic "), let data = Data(base64Encoded: String(value.dropFirst(6))),
                let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
            else { return nil }
            return (String(text[..<colon]).removingPercentEncoding ?? "", String(text[text.index(after: colon)...]).removingPercentEncoding ?? "")
        }
        let (grant, nonceOverride) = state.withLock { s -> (Grant?, String?) in
            s.tokenForms.append(form)
            return (s.codes.removeValue(forKey: form["code"] ?? ""), s.nonceOverride)
        }
        func invalid(_ error: String) -> Response {
            Response(
                status: .badRequest, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: "{\"error\":\"\(error)\"}")))
        }
        guard let grant, form["grant_type"] == "authorization_code", form["redirect_uri"] == grant.redirectURI else {
            return invalid("invalid_grant")
        }
        let verifier = form["code_verifier"] ?? ""
        let challenge = Data(SHA256.hash(data: Array(verifier.utf8))).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        guard !verifier.isEmpty, challenge == grant.challenge else { return invalid("invalid_grant") }
        guard let basic, basic.0 == grant.clientID, basic.1 == clientSecret else { return invalid("invalid_client") }
        let claims = IDTokenClaims(
            iss: IssuerClaim(value: issuer), sub: SubjectClaim(value: grant.user.sub), aud: AudienceClaim(value: [grant.clientID]),
            exp: ExpirationClaim(value: Date().addingTimeInterval(300)), iat: IssuedAtClaim(value: Date()),
            nonce: nonceOverride ?? grant.nonce, email: grant.user.email, groups: grant.user.groups)
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: key, kid: JWKIdentifier(string: kid))
        let idToken = try await keys.sign(claims, kid: JWKIdentifier(string: kid))
        let answer = try JSONSerialization.data(withJSONObject: [
            "access_token": "opaque-access-token", "token_type": "Bearer", "expires_in": 300, "id_token": idToken,
        ])
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: answer)))
    }

    func jwks() throws -> Response {
        guard let p = key.publicKey.parameters else { return Response(status: .internalServerError) }
        let jwk = JWK.ecdsa(.es256, identifier: JWKIdentifier(string: kid), x: p.x, y: p.y, curve: .p256)
        let data = try JSONEncoder().encode(JWKS(keys: [jwk]))
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    struct IDTokenClaims: JWTPayload {
        var iss: IssuerClaim
        var sub: SubjectClaim
        var aud: AudienceClaim
        var exp: ExpirationClaim
        var iat: IssuedAtClaim
        var nonce: String
        var email: String
        var groups: [String]
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }
}
