import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Pipeline
import Synchronization

/// The console's sign-in with OpenID Connect: the authorization code flow with PKCE (S256), a
/// state bound to the browser by a cookie, and a nonce bound to the ID token.
///
/// Guarantees:
/// - Each sign-in gets its own random state, nonce and PKCE verifier (32 bytes each, from the
///   system's secure generator); a state is used once (taken on the callback, whatever the
///   outcome) and forgotten after `pendingLifetime`. At most `maxPending` sign-ins wait at
///   once; beyond that the oldest is dropped.
/// - The callback's `state` must equal the browser's state cookie (constant-time) and a waiting
///   sign-in; the code is exchanged at `token_endpoint` with the verifier (and the client secret
///   by HTTP Basic for a confidential client); the ID token is checked like an OIDC bearer
///   token with `client_id` as audience and the nonce (``OIDCAuthenticator``).
/// - Errors name what failed, never a code, token, verifier or secret.
final class ConsoleOIDC: Sendable {
    struct Pending: Sendable {
        var verifier: String
        var nonce: String
        var createdMillis: Int64
    }

    /// Why a sign-in failed: safe to log and to show.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// The provider could not be reached or answered with a server error (503, not 401).
        var unavailable = false
    }

    let clientID: String
    let clientSecret: String?
    /// The configured endpoints; a missing one comes from the issuer's discovery document.
    let configured: (authorization: String?, token: String?)
    let issuer: String
    let allowInsecureEndpoints: Bool
    private let discovered = Mutex<(authorization: String, token: String)?>(nil)
    let redirectURL: String
    let scopes: [String]
    let verifier: OIDCAuthenticator
    let http: HTTPClient
    let pendingLifetimeMillis: Int64 = 10 * 60 * 1000
    let maxPending = 10_000
    private let pending = Mutex<[String: Pending]>([:])

    init(
        clientID: String, clientSecret: String?, authorizationEndpoint: String?, tokenEndpoint: String?, issuer: String,
        allowInsecureEndpoints: Bool, redirectURL: String, scopes: [String], verifier: OIDCAuthenticator, http: HTTPClient
    ) {
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.configured = (authorizationEndpoint, tokenEndpoint)
        self.issuer = issuer
        self.allowInsecureEndpoints = allowInsecureEndpoints
        self.redirectURL = redirectURL
        self.scopes = scopes
        self.verifier = verifier
        self.http = http
    }

    /// The authorization and token endpoints: as configured, else from the issuer's discovery
    /// document (read once, then kept), whose `issuer` must be the configured one and whose
    /// endpoints must be https (http only with `allow_insecure_endpoints`).
    func endpoints() async throws -> (authorization: String, token: String) {
        if let a = configured.authorization, let t = configured.token { return (a, t) }
        if let known = discovered.withLock({ $0 }) {
            return (configured.authorization ?? known.authorization, configured.token ?? known.token)
        }
        let url = issuer.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/.well-known/openid-configuration"
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let object: [String: Any]
        do {
            let response = try await http.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else { throw Failure(description: "the discovery document answered \(response.status.code)", unavailable: true) }
            object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "the identity provider's discovery document could not be read (\(type(of: error)))", unavailable: true)
        }
        guard (object["issuer"] as? String).map({ $0.trimmingCharacters(in: CharacterSet(charactersIn: "/")) })
            == issuer.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        else { throw Failure(description: "the discovery document names another issuer") }
        guard let authorization = object["authorization_endpoint"] as? String, let token = object["token_endpoint"] as? String,
            Self.acceptable(authorization, insecure: allowInsecureEndpoints), Self.acceptable(token, insecure: allowInsecureEndpoints)
        else { throw Failure(description: "the discovery document has no usable https authorization_endpoint and token_endpoint") }
        discovered.withLock { $0 = (authorization, token) }
        return (configured.authorization ?? authorization, configured.token ?? token)
    }

    static func acceptable(_ text: String, insecure: Bool) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), url.host != nil, url.user == nil else { return false }
        return scheme == "https" || (insecure && scheme == "http")
    }

    /// Starts a sign-in: the provider's authorization URL and the state (for the browser's cookie).
    func start(now: Int64 = currentMillis()) async throws -> (url: String, state: String) {
        let authorizationEndpoint = try await endpoints().authorization
        let state = ConsoleSessions.randomToken()
        let entry = Pending(verifier: ConsoleSessions.randomToken(), nonce: ConsoleSessions.randomToken(), createdMillis: now)
        pending.withLock { all in
            all = all.filter { now - $0.value.createdMillis < pendingLifetimeMillis }
            if all.count >= maxPending, let oldest = all.min(by: { $0.value.createdMillis < $1.value.createdMillis }) {
                all[oldest.key] = nil
            }
            all[state] = entry
        }
        var components = URLComponents(string: authorizationEndpoint) ?? URLComponents()
        components.queryItems = (components.queryItems ?? []) + [
            URLQueryItem(name: "response_type", value: "code"),
            URLQueryItem(name: "client_id", value: clientID),
            URLQueryItem(name: "redirect_uri", value: redirectURL),
            URLQueryItem(name: "scope", value: scopes.joined(separator: " ")),
            URLQueryItem(name: "state", value: state),
            URLQueryItem(name: "nonce", value: entry.nonce),
            URLQueryItem(name: "code_challenge", value: Self.challenge(entry.verifier)),
            URLQueryItem(name: "code_challenge_method", value: "S256"),
        ]
        return (components.string ?? authorizationEndpoint, state)
    }

    /// Finishes a sign-in from the callback's `code` and `state` and the browser's state cookie.
    func finish(code: String, state: String, cookieState: String?, now: Int64 = currentMillis()) async throws -> CallerIdentity {
        guard let cookieState, ConsoleSessions.sameToken(cookieState, state) else {
            throw Failure(description: "the sign-in did not start in this browser (state cookie missing or different)")
        }
        let entry = pending.withLock { $0.removeValue(forKey: state) }
        guard let entry, now - entry.createdMillis < pendingLifetimeMillis else {
            throw Failure(description: "the sign-in expired or was already used")
        }
        guard !code.isEmpty, code.utf8.count <= 4096 else { throw Failure(description: "the provider sent no usable code") }
        let idToken = try await exchange(code: code, verifier: entry.verifier)
        do {
            return try await verifier.authenticate(idToken: idToken, nonce: entry.nonce)
        } catch let error as AuthenticationError {
            if case .unavailable = error { throw Failure(description: "\(error)", unavailable: true) }
            throw Failure(description: "the ID token was refused: \(error)")
        }
    }

    /// POSTs the code to `token_endpoint`; the `id_token` of its answer.
    private func exchange(code: String, verifier codeVerifier: String) async throws -> String {
        var request = HTTPClientRequest(url: try await endpoints().token)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        var fields = [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURL), ("code_verifier", codeVerifier),
        ]
        if let clientSecret {
            let basic = Data("\(Self.formEncode(clientID)):\(Self.formEncode(clientSecret))".utf8).base64EncodedString()
            request.headers.add(name: "Authorization", value: "Basic \(basic)")
        } else {
            fields.append(("client_id", clientID))
        }
        request.body = .bytes(ByteBuffer(string: fields.map { "\($0.0)=\(Self.formEncode($0.1))" }.joined(separator: "&")))
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(10))
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw Failure(description: "the token endpoint could not be reached (\(type(of: error)))", unavailable: true)
        }
        guard response.status == .ok else {
            // The provider's error code (e.g. invalid_grant), never its whole answer.
            let code = ((try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any])?["error"] as? String
            throw Failure(
                description: "the token endpoint answered \(response.status.code)\(code.map { " \(String($0.prefix(64)))" } ?? "")",
                unavailable: response.status.code >= 500)
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any],
            let idToken = object["id_token"] as? String, !idToken.isEmpty
        else { throw Failure(description: "the token endpoint's answer has no id_token") }
        return idToken
    }

    /// The S256 challenge of a PKCE verifier: base64url(SHA-256(verifier)), unpadded.
    static func challenge(_ verifier: String) -> String {
        URLText.base64URL(SHA256.hash(data: Array(verifier.utf8)))
    }

    /// `application/x-www-form-urlencoded` encoding of one value.
    static func formEncode(_ value: String) -> String { URLText.percentEncoded(value) }
}
