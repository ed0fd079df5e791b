/// `console`: the reviewer console the Ingress serves at `/console` on `listen`.
///
/// Guarantees: a session lives at most `session_ttl` from login and ends after `idle_timeout`
/// without a request; both are positive. The console is on unless `enabled: false`.
public struct ConsoleConfig: Decodable, Sendable {
    public var enabled: Bool
    public var sessionTTL: ConfigDuration
    public var idleTimeout: ConfigDuration
    /// `console.oidc`: sign-in with the identity provider of `identities.oidc` (authorization
    /// code with PKCE); without it, reviewers sign in with their API keys.
    public var oidc: OIDC?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, oidc
        case sessionTTL = "session_ttl"
        case idleTimeout = "idle_timeout"
    }

    /// The console's OpenID Connect client. The ID token it receives is checked like an API
    /// token of `identities.oidc` (issuer, keys from `jwks_url`, groups and person claims), with
    /// `client_id` as its audience and the sign-in's nonce.
    public struct OIDC: Decodable, Sendable {
        public var clientID: String
        /// For a confidential client (sent with HTTP Basic authentication); absent: a public client, PKCE only.
        public var clientSecret: ConfigSecret?
        /// The provider's endpoints; each one left out is read from the issuer's discovery
        /// document (`<identities.oidc.issuer>/.well-known/openid-configuration`).
        public var authorizationEndpoint: String?
        public var tokenEndpoint: String?
        /// Where the provider sends the browser back; default `<public_url>/console/oidc/callback`.
        public var redirectURL: String?
        public var scopes: [String]
        /// Accept `http://` endpoints (tests only: the code and tokens would cross the network in clear).
        public var allowInsecureEndpoints: Bool

        enum CodingKeys: String, CodingKey, CaseIterable {
            case scopes
            case clientID = "client_id"
            case clientSecret = "client_secret"
            case authorizationEndpoint = "authorization_endpoint"
            case tokenEndpoint = "token_endpoint"
            case redirectURL = "redirect_url"
            case allowInsecureEndpoints = "allow_insecure_endpoints"
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            clientID = try c.need(String.self, forKey: .clientID)
            clientSecret = try c.collect(ConfigSecret.self, forKey: .clientSecret)
            authorizationEndpoint = try c.collect(String.self, forKey: .authorizationEndpoint)
            tokenEndpoint = try c.collect(String.self, forKey: .tokenEndpoint)
            redirectURL = try c.collect(String.self, forKey: .redirectURL)
            scopes = try c.collect([String].self, forKey: .scopes) ?? ["openid", "email", "profile"]
            allowInsecureEndpoints = try c.collect(Bool.self, forKey: .allowInsecureEndpoints) ?? false
            let here = decoder.codingPath.configPath
            for problem in problems(path: here) { try decoder.report(problem) }
        }

        func problems(path: String) -> [ConfigError] {
            var problems: [ConfigError] = []
            if clientID.isEmpty { problems.append(ConfigError(path: path + ".client_id", message: "must not be empty")) }
            let urls = [("authorization_endpoint", authorizationEndpoint), ("token_endpoint", tokenEndpoint), ("redirect_url", redirectURL)]
            for case let (key, url?) in urls {
                do {
                    try IdentitiesConfig.OIDC.checkURL(
                        url, allowInsecure: allowInsecureEndpoints || key == "redirect_url", path: path + "." + key,
                        insecureHint: key == "redirect_url" ? "" : " (allow_insecure_endpoints: true permits http, for tests only)")
                } catch let error as ConfigError {
                    problems.append(error)
                } catch {}
            }
            if !scopes.contains("openid") { problems.append(ConfigError(path: path + ".scopes", message: "must include openid")) }
            return problems
        }
    }

    public init() {
        enabled = true
        sessionTTL = ConfigDuration(.seconds(8 * 3600))
        idleTimeout = ConfigDuration(.seconds(30 * 60))
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        enabled = try c.collect(Bool.self, forKey: .enabled) ?? enabled
        sessionTTL = try c.collect(ConfigDuration.self, forKey: .sessionTTL) ?? sessionTTL
        idleTimeout = try c.collect(ConfigDuration.self, forKey: .idleTimeout) ?? idleTimeout
        oidc = try c.collect(OIDC.self, forKey: .oidc)
        for problem in problems() { try decoder.report(problem) }
    }

    /// What is wrong with the values read (each naming its key), in key order.
    func problems() -> [ConfigError] {
        var problems: [ConfigError] = []
        if sessionTTL.milliseconds <= 0 { problems.append(ConfigError(path: "console.session_ttl", message: "must be positive")) }
        if idleTimeout.milliseconds <= 0 { problems.append(ConfigError(path: "console.idle_timeout", message: "must be positive")) }
        return problems
    }
}
