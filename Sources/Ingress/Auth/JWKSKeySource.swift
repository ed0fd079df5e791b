import AsyncHTTPClient
import Foundation
import JWTKit
import Logging

/// Where the OIDC authenticator gets verification keys: a snapshot of the issuer's JWKS.
public protocol JWKSKeySource: Sendable {
    /// Keys that include `kid` if the issuer publishes it.
    ///
    /// Returns `nil` when `kid` is unknown even after any refresh the source allows.
    /// Throws ``AuthenticationError/unavailable(reason:)`` when no keys could ever be loaded.
    func keys(containing kid: String) async throws -> JWTKeyCollection?
}

/// The issuer's JWKS fetched over HTTP(S), cached, and fetched again when a token names
/// a `kid` the cache does not know (key rotation).
///
/// Guarantees:
/// - At most one fetch runs at a time; concurrent callers wait for it.
/// - A fetch triggered by an unknown `kid` happens at most once per `minRefreshInterval`
///   (failed fetches count), so tokens with made-up `kid`s cannot flood the issuer.
/// - Each fetch replaces the whole key set, so keys the issuer dropped stop verifying.
/// - Keys of unsupported types, encryption keys (`use: enc`) and keys without `kid`
///   are skipped, not fatal; a response without any usable key keeps the previous set.
public actor HTTPJWKSKeySource: JWKSKeySource {
    private let url: String
    private let client: HTTPClient
    private let minRefreshInterval: Duration
    private let fetchTimeout: Duration
    private let logger: Logger
    private let clock = ContinuousClock()

    private var collection: JWTKeyCollection?
    private var kids: Set<String> = []
    private var lastAttempt: ContinuousClock.Instant?
    private var fetching: Task<Void, Never>?

    public init(url: String, client: HTTPClient, minRefreshInterval: Duration = .seconds(10), fetchTimeout: Duration = .seconds(5), logger: Logger) {
        self.url = url
        self.client = client
        self.minRefreshInterval = minRefreshInterval
        self.fetchTimeout = fetchTimeout
        self.logger = logger
    }

    public func keys(containing kid: String) async throws -> JWTKeyCollection? {
        if let collection, kids.contains(kid) { return collection }
        if let fetching {
            await fetching.value
        } else if lastAttempt.map({ clock.now - $0 >= minRefreshInterval }) ?? true {
            lastAttempt = clock.now
            let task = Task { await self.refresh() }
            fetching = task
            await task.value
        }
        guard let collection else {
            throw AuthenticationError.unavailable(reason: "no JWKS loaded from the identity provider")
        }
        return kids.contains(kid) ? collection : nil
    }

    /// Fetches the JWKS and installs it when it holds at least one usable key; a failure keeps the previous set.
    private func refresh() async {
        defer { fetching = nil }
        do {
            let (newCollection, newKids) = try await Self.fetch(url: url, client: client, timeout: fetchTimeout, logger: logger)
            collection = newCollection
            kids = newKids
            logger.info("JWKS loaded", metadata: ["keys": "\(newKids.count)"])
        } catch {
            logger.warning("JWKS fetch failed", metadata: ["url": "\(url)", "error": "\(error)"])
        }
    }

    private static func fetch(url: String, client: HTTPClient, timeout: Duration, logger: Logger) async throws -> (JWTKeyCollection, Set<String>) {
        let request = HTTPClientRequest(url: url)
        let (seconds, attoseconds) = timeout.components
        let nanos = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        let response = try await client.execute(request, timeout: .nanoseconds(nanos))
        guard response.status.code == 200 else {
            throw JWKSError("JWKS endpoint answered \(response.status.code)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        let data = Data(body.readableBytesView)
        return try await parse(data, logger: logger)
    }

    /// Builds a key collection from JWKS JSON, skipping keys it cannot use.
    static func parse(_ data: Data, logger: Logger) async throws -> (JWTKeyCollection, Set<String>) {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let keys = object["keys"] as? [Any]
        else { throw JWKSError("JWKS is not a JSON object with a \"keys\" array") }
        let collection = JWTKeyCollection()
        var kids = Set<String>()
        for (i, key) in keys.enumerated() {
            guard let fields = key as? [String: Any], let kid = fields["kid"] as? String, !kid.isEmpty else {
                logger.debug("JWKS key skipped: no kid", metadata: ["index": "\(i)"])
                continue
            }
            if let use = fields["use"] as? String, use != "sig" { continue }
            do {
                let json = try JSONSerialization.data(withJSONObject: fields)
                let jwk = try JSONDecoder().decode(JWK.self, from: json)
                try await collection.add(jwk: jwk)
                kids.insert(kid)
            } catch {
                logger.debug("JWKS key skipped: unsupported", metadata: ["kid": "\(kid)", "error": "\(error)"])
            }
        }
        guard !kids.isEmpty else { throw JWKSError("JWKS holds no usable signing key") }
        return (collection, kids)
    }
}

/// A JWKS could not be fetched or used.
struct JWKSError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
