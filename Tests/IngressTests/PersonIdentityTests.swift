import Foundation
import JWTKit
import Pipeline
import Testing

@testable import Ingress

/// Identities are namespaced by method; persons come from configuration (API keys) or a claim (OIDC).
@Suite("Ingress: identities and persons")
struct PersonIdentityTests {
    struct NoKeys: JWKSKeySource {
        func keys(containing kid: String) async throws -> JWTKeyCollection? { nil }
    }

    @Test("API keys: id apikey:<id>, person from config, default the id")
    func apiKeys() async throws {
        let auth = try APIKeyAuthenticator(keys: [
            .init(id: "mallory-agent", sha256: TestKeys.sha256Hex("k-1"), groups: ["agents"], person: "mallory@example.com"),
            .init(id: "mallory-reviewer", sha256: TestKeys.sha256Hex("k-2"), groups: ["reviewers"], person: "mallory@example.com"),
            .init(id: "bot", sha256: TestKeys.sha256Hex("k-3"), groups: []),
        ])
        let a = try await auth.authenticate(bearer: "k-1")
        let b = try await auth.authenticate(bearer: "k-2")
        let c = try await auth.authenticate(bearer: "k-3")
        #expect(a.id == "apikey:mallory-agent" && a.method == "api_key" && a.person == "mallory@example.com")
        #expect(b.id == "apikey:mallory-reviewer" && a.isSamePerson(as: b) && a.id != b.id)
        #expect(c.id == "apikey:bot" && c.person == "bot" && !c.isSamePerson(as: a))
    }

    struct ClaimRow: Sendable, CustomStringConvertible {
        var name: String
        var personClaim: String
        var extra: [String: String]
        var person: String
        var description: String { name }
    }

    @Test("OIDC: id oidc:<sub>; person from person_claim (default email), else sub", arguments: [
        ClaimRow(name: "email by default", personClaim: "email", extra: ["email": "alice@example.com"], person: "alice@example.com"),
        ClaimRow(name: "no email: sub", personClaim: "email", extra: [:], person: "user-1"),
        ClaimRow(name: "empty email: sub", personClaim: "email", extra: ["email": "  "], person: "user-1"),
        ClaimRow(name: "configured claim", personClaim: "preferred_username", extra: ["preferred_username": "alice", "email": "x@y"], person: "alice"),
    ])
    func oidcPerson(row: ClaimRow) throws {
        let config = IdentitiesConfig.OIDC(issuer: "https://idp.test", audience: "sluice", jwksURL: "https://idp.test/jwks", personClaim: row.personClaim)
        let auth = OIDCAuthenticator(config: config, keySource: NoKeys())
        let claims = OIDCClaims(
            iss: "https://idp.test", sub: "user-1", aud: ["sluice"], exp: Date().addingTimeInterval(600),
            extra: row.extra.mapValues { JSONValue.string($0) })
        let identity = try auth.validate(claims)
        #expect(identity.id == "oidc:user-1" && identity.method == "oidc")
        #expect(identity.person == row.person)
    }

    @Test("config: person defaults to the key id, person_claim to email; an empty person is refused")
    func config() throws {
        let yaml = """
            {"sealing": {"keys": [{"id": "k", "secret": "env:X"}], "fingerprint_key": "env:X"},
             "identities": {"api_keys": [{"id": "a", "sha256": "\(TestKeys.sha256Hex("a"))"},
                                         {"id": "b", "sha256": "\(TestKeys.sha256Hex("b"))", "person": "Bob"}],
                            "oidc": {"issuer": "i", "audience": "a", "jwks_url": "https://x/j"}}}
            """
        let config = try JSONDecoder().decode(SluiceConfig.self, from: Data(yaml.utf8))
        #expect(config.identities.apiKeys.map(\.person) == ["a", "Bob"])
        #expect(config.identities.oidc?.personClaim == "email")
        let bad = yaml.replacingOccurrences(of: "\"person\": \"Bob\"", with: "\"person\": \" \"")
        #expect(throws: (any Error).self) { try JSONDecoder().decode(SluiceConfig.self, from: Data(bad.utf8)) }
    }
}
