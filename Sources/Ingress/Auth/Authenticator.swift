import Pipeline

/// Establishes who a caller is from the credential of its `Authorization: Bearer` header.
///
/// Implementations never log or keep the credential, and report every failure as an
/// ``AuthenticationError`` whose `reason` is safe to log (it never contains the credential).
public protocol Authenticator: Sendable {
    /// The caller's identity, or throws ``AuthenticationError``.
    func authenticate(bearer credential: String) async throws -> CallerIdentity
}

/// Why a credential was not accepted.
public enum AuthenticationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// No usable credential (no header, wrong scheme, empty token). Answered with 401.
    case missing
    /// The credential is wrong (unknown key, bad signature, wrong claims). Answered with 401.
    case invalid(reason: String)
    /// The credential cannot be checked right now (the identity provider's keys are
    /// unreachable and none are cached). Answered with 503.
    case unavailable(reason: String)

    public var description: String {
        switch self {
        case .missing: "no bearer credential"
        case .invalid(let reason): "invalid credential: \(reason)"
        case .unavailable(let reason): "cannot verify credential: \(reason)"
        }
    }
}

/// Picks the authenticator by the credential's shape: a JWT (three base64url segments whose
/// first decodes to a JSON object) goes to OIDC, anything else is an API key.
///
/// Guarantees: a JWT-shaped credential is never tried as an API key and vice versa, and a
/// kind that is not configured is rejected as invalid.
public struct CompositeAuthenticator: Authenticator {
    let apiKeys: (any Authenticator)?
    let oidc: (any Authenticator)?

    public init(apiKeys: (any Authenticator)?, oidc: (any Authenticator)?) {
        self.apiKeys = apiKeys
        self.oidc = oidc
    }

    public func authenticate(bearer credential: String) async throws -> CallerIdentity {
        if JWTShape.parse(credential) != nil {
            guard let oidc else { throw AuthenticationError.invalid(reason: "JWT presented but OIDC is not configured") }
            return try await oidc.authenticate(bearer: credential)
        }
        guard let apiKeys else { throw AuthenticationError.invalid(reason: "API key presented but no API keys are configured") }
        return try await apiKeys.authenticate(bearer: credential)
    }
}

/// Extracts the credential from an `Authorization` header value (`Bearer <credential>`,
/// scheme case-insensitive). Returns `nil` for any other shape.
func bearerCredential(fromAuthorization value: String?) -> String? {
    guard let value else { return nil }
    let trimmed = value.trimmingCharacters(in: .whitespaces)
    guard trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " else { return nil }
    let token = trimmed.dropFirst(7).trimmingCharacters(in: .whitespaces)
    // Bound the work spent on absurd headers; real keys and JWTs are far shorter.
    guard !token.isEmpty, token.utf8.count <= 16 * 1024, !token.contains(" ") else { return nil }
    return token
}
