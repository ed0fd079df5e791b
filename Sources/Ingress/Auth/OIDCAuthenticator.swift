import Foundation
import JWTKit
import Pipeline

/// Authenticates OIDC bearer JWTs: signature against the issuer's JWKS (via jwt-kit), then
/// `iss`, `aud`, `exp` and `nbf` (with `leeway` clock skew); the identity is `oidc:<sub>`, its
/// person the `person_claim` (default `email`), else `sub`.
///
/// Guarantees:
/// - Only asymmetric algorithms (RS*, PS*, ES*, EdDSA) are accepted; `none` and HMAC never are.
/// - The token must name a `kid` the JWKS holds (an unknown `kid` triggers a rate-limited refresh).
/// - `exp` is required; `nbf` is checked when present.
/// - Groups come from the configured claim, an array of strings or a single string
///   (other values give no groups).
public struct OIDCAuthenticator: Authenticator {
    static let acceptedAlgorithms: Set<String> = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]

    let issuer: String
    let audience: String
    let groupsClaim: String
    let personClaim: String
    let leeway: TimeInterval
    let keySource: any JWKSKeySource
    let now: @Sendable () -> Date

    /// - Parameter audience: the `aud` required instead of `config.audience` (the console's
    ///   `client_id`, for ID tokens).
    public init(
        config: IdentitiesConfig.OIDC, keySource: any JWKSKeySource, audience: String? = nil,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.issuer = config.issuer
        self.audience = audience ?? config.audience
        self.groupsClaim = config.groupsClaim
        self.personClaim = config.personClaim
        self.leeway = TimeInterval(config.leeway.milliseconds) / 1000
        self.keySource = keySource
        self.now = now
    }

    public func authenticate(bearer credential: String) async throws -> CallerIdentity {
        try validate(try await verified(credential))
    }

    /// The identity of an OIDC ID token received by the console's sign-in: checked as
    /// ``authenticate(bearer:)`` checks a token, and its `nonce` claim must be `nonce`.
    func authenticate(idToken: String, nonce: String) async throws -> CallerIdentity {
        let claims = try await verified(idToken)
        guard case .string(let claimed) = claims.all["nonce"], !nonce.isEmpty, claimed == nonce else {
            throw AuthenticationError.invalid(reason: "ID token nonce mismatch")
        }
        return try validate(claims)
    }

    /// The claims of `credential` once its shape, algorithm, key and signature are checked.
    private func verified(_ credential: String) async throws -> OIDCClaims {
        guard let shape = JWTShape.parse(credential) else { throw AuthenticationError.invalid(reason: "not a JWT") }
        guard let alg = shape.alg, Self.acceptedAlgorithms.contains(alg) else {
            throw AuthenticationError.invalid(reason: "JWT algorithm not accepted")
        }
        guard let kid = shape.kid, !kid.isEmpty else { throw AuthenticationError.invalid(reason: "JWT has no kid") }
        guard let keys = try await keySource.keys(containing: kid) else {
            throw AuthenticationError.invalid(reason: "JWT kid is not in the issuer's JWKS")
        }
        do { return try await keys.verify(credential, as: OIDCClaims.self) } catch {
            throw AuthenticationError.invalid(reason: "JWT verification failed: \(Self.safeDescription(error))")
        }
    }

    /// Checks the claims of a token whose signature is valid.
    func validate(_ claims: OIDCClaims) throws -> CallerIdentity {
        guard claims.iss?.value == issuer else { throw AuthenticationError.invalid(reason: "JWT issuer mismatch") }
        guard let aud = claims.aud, aud.value.contains(audience) else {
            throw AuthenticationError.invalid(reason: "JWT audience mismatch")
        }
        let current = now()
        guard let exp = claims.exp else { throw AuthenticationError.invalid(reason: "JWT has no exp") }
        guard exp.value.addingTimeInterval(leeway) > current else { throw AuthenticationError.invalid(reason: "JWT expired") }
        if let nbf = claims.nbf, nbf.value.addingTimeInterval(-leeway) > current {
            throw AuthenticationError.invalid(reason: "JWT not yet valid")
        }
        guard let sub = claims.sub?.value, !sub.isEmpty else { throw AuthenticationError.invalid(reason: "JWT has no sub") }
        return CallerIdentity(
            id: "oidc:" + sub, groups: claims.groups(claim: groupsClaim), method: "oidc",
            person: claims.person(claim: personClaim) ?? sub)
    }

    /// jwt-kit errors describe the failure, not the token; keep only the type and reason, bounded.
    private static func safeDescription(_ error: any Error) -> String {
        String(String(describing: error).prefix(200))
    }
}

/// The claims of an OIDC token: the registered ones typed, plus every claim kept as JSON
/// so the groups claim can be chosen by configuration. Claim checks are done by
/// ``OIDCAuthenticator`` (they need the configuration), so `verify(using:)` does nothing.
struct OIDCClaims: JWTPayload {
    var iss: IssuerClaim?
    var sub: SubjectClaim?
    var aud: AudienceClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var all: [String: JSONValue]

    enum CodingKeys: String, CodingKey { case iss, sub, aud, exp, nbf }

    init(iss: String, sub: String, aud: [String], exp: Date, nbf: Date? = nil, extra: [String: JSONValue] = [:]) {
        self.iss = IssuerClaim(value: iss)
        self.sub = SubjectClaim(value: sub)
        self.aud = AudienceClaim(value: aud)
        self.exp = ExpirationClaim(value: exp)
        self.nbf = nbf.map { NotBeforeClaim(value: $0) }
        self.all = extra
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        iss = try c.decodeIfPresent(IssuerClaim.self, forKey: .iss)
        sub = try c.decodeIfPresent(SubjectClaim.self, forKey: .sub)
        aud = try c.decodeIfPresent(AudienceClaim.self, forKey: .aud)
        exp = try c.decodeIfPresent(ExpirationClaim.self, forKey: .exp)
        nbf = try c.decodeIfPresent(NotBeforeClaim.self, forKey: .nbf)
        all = try decoder.singleValueContainer().decode([String: JSONValue].self)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        for (k, v) in all { try c.encode(v, forKey: AnyKey(k)) }
        var typed = encoder.container(keyedBy: CodingKeys.self)
        try typed.encodeIfPresent(iss, forKey: .iss)
        try typed.encodeIfPresent(sub, forKey: .sub)
        try typed.encodeIfPresent(aud, forKey: .aud)
        try typed.encodeIfPresent(exp, forKey: .exp)
        try typed.encodeIfPresent(nbf, forKey: .nbf)
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}

    /// The person named by `claim` when it is a non-empty string, else `nil`.
    func person(claim: String) -> String? {
        guard case .string(let s) = all[claim] else { return nil }
        let trimmed = s.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// The groups named by `claim`: an array's strings, or a single string.
    func groups(claim: String) -> [String] {
        switch all[claim] {
        case .string(let s): [s]
        case .array(let items): items.compactMap { if case .string(let s) = $0 { s } else { nil } }
        default: []
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// Any JSON value, for claims whose shape is not known in advance.
enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}
