import Foundation

/// The whole configuration file. Every stage reads only its own part.
///
/// Decoding rejects unknown keys and missing required keys with an error naming the
/// key path; secrets are `env:`/`file:` references (`ConfigSecret`), never literals.
public struct SluiceConfig: Decodable, Sendable {
    public var listen: String
    public var dataDir: String
    public var maxBodyBytes: Int
    public var requestTimeout: ConfigDuration
    /// How long a graceful shutdown (SIGTERM) may take: the Ingress stops accepting, answers the
    /// calls it holds, and answers whatever is still waiting after this with 504; default 10s.
    public var shutdownTimeout: ConfigDuration
    public var bus: BusConfig
    public var sealing: SealingConfig
    public var identities: IdentitiesConfig
    public var connections: [ConnectionConfig]
    public var recorder: RecorderConfig
    public var detection: DetectionConfig
    public var notify: [NotifyConfig]
    /// The public base URL of the Ingress (for CLI defaults and poll links); defaults to `http://<listen>`.
    public var publicURL: String?
    /// How long decided, expired and delivered held requests stay readable (`GET /v1/requests/<id>`,
    /// `GET /v1/approvals`) after their last change; default 24h.
    public var holdsRetention: ConfigDuration
    /// How long the Ingress maps a caller's `Idempotency-Key` (per identity) to its first
    /// request and that request's outcome; default 24h.
    public var idempotencyTTL: ConfigDuration
    /// Where `/metrics`, `/healthz` and `/readyz` are served (never on `listen`); default `127.0.0.1:9090`.
    public var adminListen: String
    /// Function calls being processed at once by one Ingress (beyond it: 429); default 1024.
    public var maxInFlight: Int
    /// Function calls being processed at once for one identity (beyond it: 429); default a quarter
    /// of `max_in_flight` (at least 1).
    public var maxInFlightPerIdentity: Int
    /// How long a caller may take to send a request body (beyond it: 408, connection closed); default 10s.
    public var bodyReadTimeout: ConfigDuration
    /// How long a connection may take to send a complete request head (beyond it: closed); default 10s.
    public var headerReadTimeout: ConfigDuration
    /// Held requests (pending approval) one identity may have at once (beyond it: 429); default 100.
    public var maxHeldPerIdentity: Int
    /// `telemetry`: span export over OTLP (off unless `otlp_endpoint` is set).
    public var telemetry: TelemetryConfig
    /// `console`: the reviewer console at `/console` (on by default).
    public var console: ConsoleConfig

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen, bus, sealing, identities, connections, recorder, detection, notify, telemetry, console
        case dataDir = "data_dir"
        case maxBodyBytes = "max_body_bytes"
        case requestTimeout = "request_timeout"
        case shutdownTimeout = "shutdown_timeout"
        case publicURL = "public_url"
        case holdsRetention = "holds_retention"
        case idempotencyTTL = "idempotency_ttl"
        case adminListen = "admin_listen"
        case maxInFlight = "max_in_flight"
        case maxInFlightPerIdentity = "max_in_flight_per_identity"
        case bodyReadTimeout = "body_read_timeout"
        case headerReadTimeout = "header_read_timeout"
        case maxHeldPerIdentity = "max_held_per_identity"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listen = try c.collect(String.self, forKey: .listen) ?? "127.0.0.1:8080"
        dataDir = try c.collect(String.self, forKey: .dataDir) ?? "./data"
        maxBodyBytes = try c.collect(ConfigSize.self, forKey: .maxBodyBytes)?.bytes ?? 1_048_576
        requestTimeout = try c.collect(ConfigDuration.self, forKey: .requestTimeout) ?? ConfigDuration(.seconds(30))
        shutdownTimeout = try c.collect(ConfigDuration.self, forKey: .shutdownTimeout) ?? ConfigDuration(.seconds(10))
        bus = try c.collect(BusConfig.self, forKey: .bus) ?? BusConfig()
        // Required, but read like the others so the keys after it are still checked (all problems in one run).
        let sealingRead = try c.collect(SealingConfig.self, forKey: .sealing)
        identities = try c.collect(IdentitiesConfig.self, forKey: .identities) ?? IdentitiesConfig()
        connections = try c.collectList(ConnectionConfig.self, forKey: .connections) ?? []
        recorder = try c.collect(RecorderConfig.self, forKey: .recorder) ?? RecorderConfig()
        detection = try c.collect(DetectionConfig.self, forKey: .detection) ?? DetectionConfig()
        notify = try c.collectList(NotifyConfig.self, forKey: .notify) ?? []
        publicURL = try c.collect(String.self, forKey: .publicURL)
        holdsRetention = try c.collect(ConfigDuration.self, forKey: .holdsRetention) ?? ConfigDuration(.seconds(86_400))
        idempotencyTTL = try c.collect(ConfigDuration.self, forKey: .idempotencyTTL) ?? ConfigDuration(.seconds(86_400))
        adminListen = try c.collect(String.self, forKey: .adminListen) ?? "127.0.0.1:9090"
        maxInFlight = try c.collect(Int.self, forKey: .maxInFlight) ?? 1024
        maxInFlightPerIdentity = try c.collect(Int.self, forKey: .maxInFlightPerIdentity) ?? max(1, maxInFlight / 4)
        bodyReadTimeout = try c.collect(ConfigDuration.self, forKey: .bodyReadTimeout) ?? ConfigDuration(.seconds(10))
        headerReadTimeout = try c.collect(ConfigDuration.self, forKey: .headerReadTimeout) ?? ConfigDuration(.seconds(10))
        maxHeldPerIdentity = try c.collect(Int.self, forKey: .maxHeldPerIdentity) ?? 100
        telemetry = try c.collect(TelemetryConfig.self, forKey: .telemetry) ?? TelemetryConfig()
        console = try c.collect(ConsoleConfig.self, forKey: .console) ?? ConsoleConfig()
        guard let sealingRead else {
            if c.contains(.sealing) { throw ConfigProblemRecorded() }
            throw DecodingError.keyNotFound(CodingKeys.sealing, .init(codingPath: decoder.codingPath, debugDescription: "required"))
        }
        sealing = sealingRead
        for problem in problems() { try decoder.report(problem) }
    }

    /// The checks across keys, each problem once, in the order of the keys.
    func problems() -> [ConfigError] {
        var problems: [ConfigError] = []
        func check(_ ok: Bool, _ path: String, _ message: String) {
            if !ok { problems.append(ConfigError(path: path, message: message)) }
        }
        check(maxBodyBytes > 0, "max_body_bytes", "must be positive")
        check(requestTimeout.milliseconds > 0, "request_timeout", "must be positive")
        check(shutdownTimeout.milliseconds > 0, "shutdown_timeout", "must be positive")
        check(holdsRetention.milliseconds > 0, "holds_retention", "must be positive")
        check(idempotencyTTL.milliseconds > 0, "idempotency_ttl", "must be positive")
        check(maxInFlight > 0, "max_in_flight", "must be positive")
        check(maxInFlightPerIdentity > 0, "max_in_flight_per_identity", "must be positive")
        check(maxInFlightPerIdentity <= maxInFlight, "max_in_flight_per_identity", "must be at most max_in_flight (\(maxInFlight))")
        check(bodyReadTimeout.milliseconds > 0, "body_read_timeout", "must be positive")
        check(headerReadTimeout.milliseconds > 0, "header_read_timeout", "must be positive")
        check(maxHeldPerIdentity > 0, "max_held_per_identity", "must be positive")
        check(
            adminListen.trimmingCharacters(in: .whitespaces) != listen.trimmingCharacters(in: .whitespaces) || adminListen.hasSuffix(":0"),
            "admin_listen", "must differ from listen: operations endpoints are never served on the caller port")
        var names = Set<String>()
        for (i, conn) in connections.enumerated() {
            check(names.insert(conn.name).inserted, "connections[\(i)].name", "duplicate connection \"\(conn.name)\"")
        }
        check(console.oidc == nil || identities.oidc != nil, "console.oidc",
              "needs identities.oidc: its issuer, jwks_url and claims check the ID token")
        var ids = Set<String>()
        for (i, key) in identities.apiKeys.enumerated() {
            check(ids.insert(key.id).inserted, "identities.api_keys[\(i)].id", "duplicate identity \"\(key.id)\"")
        }
        return problems
    }

    /// The connection with this name.
    public func connection(named name: String) -> ConnectionConfig? { connections.first { $0.name == name } }
}

public struct BusConfig: Decodable, Sendable {
    public enum Kind: String, Decodable, Sendable, ConfigEnum { case embedded, kafka }
    public var kind: Kind
    public var brokers: String?
    public var topicPrefix: String
    public var partitions: Int
    /// Passed through to librdkafka unchanged (TLS, SASL, tuning).
    public var librdkafka: [String: String]
    /// Embedded bus: `fdatasync` every append.
    public var sync: Bool
    /// Embedded bus: a partition's log rolls to a new segment file past this size (`segment_bytes`,
    /// default 64 MiB).
    public var segmentBytes: Int
    /// Embedded bus: a rolled segment is deleted once every consumer group has committed past it
    /// and its newest record is older than this (`retention`, default 24 h); compacted topics keep
    /// the latest record per key instead.
    public var retention: ConfigDuration
    /// Kafka: this process's stable id (`instance_id`; else the `SLUICE_INSTANCE_ID` environment
    /// variable; else unique per process). Stage transactions use it in their `transactional.id`,
    /// so a restarted instance with the same id fences its dead predecessor and aborts its open
    /// transaction at once. Two live processes must never share one.
    public var instanceID: String?
    /// Kafka: how long a dead producer's open transaction may hold back `read_committed`
    /// consumers of its partitions (`transaction_timeout`, default 10 s).
    public var transactionTimeout: ConfigDuration
    /// Kafka: whether stages hand work on in transactions (`transactions`, default true). Off:
    /// publish, then commit — a crash in between repeats the outputs. Only for brokers whose
    /// transactions are not trustworthy (docs/kafka.md).
    public var transactions: Bool
    /// How the sealed envelopes of `requests`, `inspected` and `replies` are written
    /// (`envelopes`, default `binary`; `json` while a rolling upgrade still runs stages that
    /// read only JSON). Both are always read.
    public var envelopes: EnvelopeFormat
    /// Kafka: how long a fetch of a background reader (audit, outcome views, holds upkeep; not the
    /// request path) may wait for new messages (`background_fetch_wait`, default 100ms, 1ms to
    /// 10s). Request-path readers keep librdkafka's `fetch.wait.max.ms` (10 ms unless set).
    public var backgroundFetchWait: ConfigDuration

    public enum EnvelopeFormat: String, Codable, Sendable, ConfigEnum { case binary, json }

    public static let defaultSegmentBytes = 64 << 20

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, brokers, partitions, librdkafka, sync, retention
        case topicPrefix = "topic_prefix"
        case segmentBytes = "segment_bytes"
        case instanceID = "instance_id"
        case transactionTimeout = "transaction_timeout"
        case transactions
        case envelopes
        case backgroundFetchWait = "background_fetch_wait"
    }

    public init(
        kind: Kind = .embedded, brokers: String? = nil, topicPrefix: String = "sluice.", partitions: Int = 6,
        librdkafka: [String: String] = [:], sync: Bool = false, segmentBytes: Int = BusConfig.defaultSegmentBytes,
        retention: ConfigDuration = ConfigDuration(.seconds(86_400)), instanceID: String? = nil,
        transactionTimeout: ConfigDuration = ConfigDuration(.seconds(10)), transactions: Bool = true,
        envelopes: EnvelopeFormat = .binary, backgroundFetchWait: ConfigDuration = ConfigDuration(.milliseconds(100))
    ) {
        self.envelopes = envelopes
        self.backgroundFetchWait = backgroundFetchWait
        self.transactions = transactions
        self.instanceID = instanceID
        self.transactionTimeout = transactionTimeout
        self.kind = kind
        self.brokers = brokers
        self.topicPrefix = topicPrefix
        self.partitions = partitions
        self.librdkafka = librdkafka
        self.sync = sync
        self.segmentBytes = segmentBytes
        self.retention = retention
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.collect(Kind.self, forKey: .kind) ?? .embedded
        brokers = try c.collect(String.self, forKey: .brokers)
        topicPrefix = try c.collect(String.self, forKey: .topicPrefix) ?? "sluice."
        partitions = try c.collect(Int.self, forKey: .partitions) ?? 6
        librdkafka = try c.collect([String: String].self, forKey: .librdkafka) ?? [:]
        sync = try c.collect(Bool.self, forKey: .sync) ?? false
        segmentBytes = try c.collect(ConfigSize.self, forKey: .segmentBytes)?.bytes ?? Self.defaultSegmentBytes
        retention = try c.collect(ConfigDuration.self, forKey: .retention) ?? ConfigDuration(.seconds(86_400))
        instanceID = try c.collect(String.self, forKey: .instanceID)
        transactions = try c.collect(Bool.self, forKey: .transactions) ?? true
        envelopes = try c.collect(EnvelopeFormat.self, forKey: .envelopes) ?? .binary
        backgroundFetchWait = try c.collect(ConfigDuration.self, forKey: .backgroundFetchWait)
            ?? ConfigDuration(.milliseconds(100))
        transactionTimeout = try c.collect(ConfigDuration.self, forKey: .transactionTimeout) ?? ConfigDuration(.seconds(10))
        // Each check reports and goes on: every problem of the section in one run.
        func check(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { try decoder.report(ConfigError(path: "bus." + key, message: message)) }
        }
        try check((1...10_000).contains(backgroundFetchWait.milliseconds), "background_fetch_wait", "must be between 1ms and 10s")
        try check(
            instanceID.map { !($0.isEmpty || $0.contains(where: { $0.isWhitespace || $0 == "/" })) } ?? true,
            "instance_id", "must be non-empty, without whitespace or '/'")
        try check(transactionTimeout.milliseconds >= 1000, "transaction_timeout", "must be at least 1s")
        try check(segmentBytes >= 4096, "segment_bytes", "must be at least 4096 bytes (4KiB)")
        try check(retention.milliseconds > 0, "retention", "must be positive")
        for key in librdkafka.keys.sorted() where Self.isSecretBearing(key) {
            try check(
                librdkafka[key].flatMap { try? SecretReference(parsing: $0) } != nil,
                "librdkafka.\(key)", "holds a secret: must be an env:NAME or file:/path reference, not a literal value")
        }
        try check(kind != .kafka || !(brokers ?? "").isEmpty, "brokers", "required when kind is kafka")
        try check(partitions > 0, "partitions", "must be positive")
    }

    /// librdkafka keys whose values are secrets: anything naming a password or secret, the SASL
    /// user name and OAUTHBEARER configuration, and private-key material.
    public static func isSecretBearing(_ key: String) -> Bool {
        let k = key.lowercased()
        if k.contains("password") || k.contains("secret") { return true }
        return [
            "sasl.username", "sasl.oauthbearer.config", "sasl.oauthbearer.token",
            "ssl.key.pem", "ssl_key", "ssl.keystore.key", "ssl.engine.callback_data",
        ].contains(k)
    }

    /// `librdkafka` with every secret-bearing value's `env:`/`file:` reference read. Errors name
    /// `bus.librdkafka.<key>` and the reference, never a value.
    public func resolvedLibrdkafka(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [String: String] {
        var out = librdkafka
        for (key, value) in librdkafka where Self.isSecretBearing(key) {
            let reference: SecretReference
            do { reference = try SecretReference(parsing: value) } catch {
                throw ConfigError(path: "bus.librdkafka.\(key)", message: "holds a secret: must be an env:NAME or file:/path reference")
            }
            out[key] = try ConfigSecret(reference).resolve(path: "bus.librdkafka.\(key)", environment: environment)
        }
        return out
    }
}

public struct SealingConfig: Decodable, Sendable {
    public struct Key: Decodable, Sendable {
        public var id: String
        public var secret: ConfigSecret
        enum CodingKeys: String, CodingKey, CaseIterable { case id, secret }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.need(String.self, forKey: .id)
            secret = try c.need(ConfigSecret.self, forKey: .secret)
        }
    }

    public var keys: [Key]
    public var fingerprintKey: ConfigSecret

    enum CodingKeys: String, CodingKey, CaseIterable {
        case keys
        case fingerprintKey = "fingerprint_key"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        keys = try c.need(CollectedList<Key>.self, forKey: .keys).values
        fingerprintKey = try c.need(ConfigSecret.self, forKey: .fingerprintKey)
        guard !keys.isEmpty else { throw ConfigError(path: "sealing.keys", message: "needs at least one key") }
    }

    /// The sealer over the resolved key ring (first key seals).
    public func makeSealer(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PayloadSealer {
        let keys = try self.keys.enumerated().map { i, k in
            let text = try k.secret.resolve(path: "sealing.keys[\(i)].secret", environment: environment)
            do { return try PayloadSealer.Key(id: k.id, base64: text) } catch let e as SealingError {
                throw ConfigError(path: "sealing.keys[\(i)].secret", message: "\(e) (\(k.secret))")
            }
        }
        return try PayloadSealer(keys: keys)
    }

    /// The fingerprint key's bytes (base64 when it decodes to at least 16 bytes, else the UTF-8 text).
    public func fingerprintKeyBytes(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [UInt8] {
        let text = try fingerprintKey.resolve(path: "sealing.fingerprint_key", environment: environment)
        return try Self.fingerprintKeyBytes(text: text, source: "\(fingerprintKey)", path: "sealing.fingerprint_key")
    }

    /// The one derivation of a fingerprint key from its text, for the gateway and `sluice scan`
    /// alike (one key, one fingerprint everywhere): base64 that decodes to at least 16 bytes is
    /// the key's bytes, else its UTF-8 text, which must then hold at least 16 bytes. Errors name
    /// `path` and `source` (a reference or variable name), never the text.
    public static func fingerprintKeyBytes(text: String, source: String, path: String) throws -> [UInt8] {
        if let data = Data(base64Encoded: text), data.count >= 16 { return Array(data) }
        guard text.utf8.count >= 16 else {
            throw ConfigError(path: path, message: "\(source) must hold at least 16 bytes")
        }
        return Array(text.utf8)
    }
}

public struct IdentitiesConfig: Decodable, Sendable {
    public struct APIKey: Decodable, Sendable {
        public var id: String
        /// Hex SHA-256 of the key; the key itself is never in the config.
        public var sha256: String
        public var groups: [String]
        /// The person holding this key (default: the key's `id`). Approvals compare persons:
        /// nobody approves their own request under another key.
        public var person: String
        enum CodingKeys: String, CodingKey, CaseIterable { case id, sha256, groups, person }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.need(String.self, forKey: .id)
            sha256 = try c.need(String.self, forKey: .sha256).lowercased()
            groups = try c.collect([String].self, forKey: .groups) ?? []
            person = try c.collect(String.self, forKey: .person) ?? id
            guard !person.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw ConfigError(path: decoder.codingPath.configPath + ".person", message: "must not be empty")
            }
            guard sha256.count == 64, sha256.allSatisfy(\.isHexDigit) else {
                throw ConfigError(path: decoder.codingPath.configPath + ".sha256", message: "must be 64 hex characters (SHA-256 of the key)")
            }
        }
        public init(id: String, sha256: String, groups: [String], person: String? = nil) {
            self.id = id
            self.sha256 = sha256
            self.groups = groups
            self.person = person ?? id
        }
    }

    public struct OIDC: Decodable, Sendable {
        public var issuer: String
        public var audience: String
        public var jwksURL: String
        public var groupsClaim: String
        /// The claim naming the person behind a token (default `email`; `sub` when the token lacks it).
        public var personClaim: String
        /// Allowed clock skew for `exp`/`nbf`.
        public var leeway: ConfigDuration
        /// Accept an `http://` `jwks_url` (tests only: keys fetched in clear can be swapped in transit).
        public var allowInsecureJWKS: Bool = false
        enum CodingKeys: String, CodingKey, CaseIterable {
            case issuer, audience, leeway
            case jwksURL = "jwks_url"
            case groupsClaim = "groups_claim"
            case personClaim = "person_claim"
            case allowInsecureJWKS = "allow_insecure_jwks"
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            issuer = try c.need(String.self, forKey: .issuer)
            audience = try c.need(String.self, forKey: .audience)
            jwksURL = try c.need(String.self, forKey: .jwksURL)
            groupsClaim = try c.collect(String.self, forKey: .groupsClaim) ?? "groups"
            personClaim = try c.collect(String.self, forKey: .personClaim) ?? "email"
            leeway = try c.collect(ConfigDuration.self, forKey: .leeway) ?? ConfigDuration(.seconds(60))
            allowInsecureJWKS = try c.collect(Bool.self, forKey: .allowInsecureJWKS) ?? false
            try Self.checkJWKSURL(jwksURL, allowInsecure: allowInsecureJWKS, path: decoder.codingPath.configPath + ".jwks_url")
        }

        /// `jwks_url` must be an https URL with a host (http only with `allow_insecure_jwks: true`).
        public static func checkJWKSURL(_ text: String, allowInsecure: Bool, path: String) throws {
            try checkURL(text, allowInsecure: allowInsecure, path: path, insecureHint: " (allow_insecure_jwks: true permits http, for tests only)")
        }

        /// `text` must be an https URL with a host and no user information (http too when `allowInsecure`).
        public static func checkURL(_ text: String, allowInsecure: Bool, path: String, insecureHint: String) throws {
            guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), url.host != nil,
                  scheme == "https" || (allowInsecure && scheme == "http")
            else {
                throw ConfigError(path: path, message: allowInsecure ? "must be an http(s) URL" : "must be an https URL" + insecureHint)
            }
            guard url.user == nil, url.password == nil else {
                throw ConfigError(path: path, message: "must not contain user information")
            }
        }
        public init(
            issuer: String, audience: String, jwksURL: String, groupsClaim: String = "groups", personClaim: String = "email",
            leeway: ConfigDuration = ConfigDuration(.seconds(60))
        ) {
            self.issuer = issuer
            self.audience = audience
            self.jwksURL = jwksURL
            self.groupsClaim = groupsClaim
            self.personClaim = personClaim
            self.leeway = leeway
        }
    }

    public var apiKeys: [APIKey]
    public var oidc: OIDC?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case oidc
        case apiKeys = "api_keys"
    }

    public init(apiKeys: [APIKey] = [], oidc: OIDC? = nil) {
        self.apiKeys = apiKeys
        self.oidc = oidc
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        apiKeys = try c.collectList(APIKey.self, forKey: .apiKeys) ?? []
        oidc = try c.collect(OIDC.self, forKey: .oidc)
    }
}

public struct ConnectionConfig: Decodable, Sendable {
    public struct Credentials: Decodable, Sendable {
        /// The header the Forwarder sets on delivery.
        public var header: String
        /// The header value: a template whose `env:NAME`/`file:/path` token is replaced by the secret,
        /// e.g. `Bearer env:BILLING_TOKEN`. A value without a reference is rejected.
        public var value: String
        enum CodingKeys: String, CodingKey, CaseIterable { case header, value }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            header = try c.need(String.self, forKey: .header)
            value = try c.need(String.self, forKey: .value)
            guard Self.referenceToken(in: value) != nil else {
                throw ConfigError(path: decoder.codingPath.configPath + ".value", message: "must contain an env:NAME or file:/path reference, not a literal credential")
            }
        }

        static func referenceToken(in value: String) -> (range: Range<String.Index>, reference: SecretReference)? {
            for token in value.split(separator: " ") {
                if let ref = try? SecretReference(parsing: String(token)) { return (token.startIndex..<token.endIndex, ref) }
            }
            return nil
        }

        /// The header value with its reference resolved. Errors name the path and reference only.
        public func resolvedValue(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
            guard let (range, ref) = Self.referenceToken(in: value) else {
                throw ConfigError(path: path, message: "no env:/file: reference")
            }
            let secret = try ConfigSecret(ref).resolve(path: path, environment: environment)
            return value.replacingCharacters(in: range, with: secret)
        }
    }

    /// What a connection's callers speak.
    public enum CallProtocol: String, Decodable, Sendable, ConfigEnum {
        /// Any HTTP request below `/fn/<name>/` (the default).
        case http
        /// The Model Context Protocol's Streamable HTTP transport: `/fn/<name>` is the MCP
        /// endpoint (`upstream` is the server's endpoint URL); JSON-RPC messages are parsed,
        /// `policy.tools` and `policy.hold_if` apply, tool results are scanned (docs/mcp.md).
        case mcp
    }

    public var name: String
    public var upstream: String
    public var `protocol`: CallProtocol
    public var allowGroups: [String]
    public var credentials: Credentials?
    public var policy: PolicyConfig
    /// Upstream request timeout (defaults to the remaining request deadline).
    public var timeout: ConfigDuration?

    public var isMCP: Bool { `protocol` == .mcp }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, upstream, credentials, policy, timeout, `protocol`
        case allowGroups = "allow_groups"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.need(String.self, forKey: .name)
        upstream = try c.need(String.self, forKey: .upstream)
        `protocol` = try c.collect(CallProtocol.self, forKey: .protocol) ?? .http
        allowGroups = try c.collect([String].self, forKey: .allowGroups) ?? []
        credentials = try c.collect(Credentials.self, forKey: .credentials)
        policy = try c.collect(PolicyConfig.self, forKey: .policy) ?? PolicyConfig()
        timeout = try c.collect(ConfigDuration.self, forKey: .timeout)
        guard let url = URL(string: upstream), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            // Not echoed: a malformed URL may still carry a credential.
            throw ConfigError(path: decoder.codingPath.configPath + ".upstream", message: "is not an http(s) URL")
        }
        guard url.user == nil, url.password == nil, !Self.authority(of: upstream).contains("@") else {
            throw ConfigError(
                path: decoder.codingPath.configPath + ".upstream",
                message: "must not contain user information (user:password@): put the credential in `credentials` as an env:/file: reference")
        }
        guard !name.isEmpty, !name.contains("/") else {
            throw ConfigError(path: decoder.codingPath.configPath + ".name", message: "must be non-empty and contain no '/'")
        }
        if `protocol` != .mcp {
            if !policy.tools.isEmpty {
                throw ConfigError(path: decoder.codingPath.configPath + ".policy.tools", message: "applies only to a connection with protocol: mcp")
            }
            if !policy.holdIf.isEmpty {
                throw ConfigError(path: decoder.codingPath.configPath + ".policy.hold_if", message: "applies only to a connection with protocol: mcp")
            }
        } else if !policy.scanResponses {
            throw ConfigError(
                path: decoder.codingPath.configPath + ".policy.scan_responses",
                message: "cannot be false on a connection with protocol: mcp (tool results are always scanned)")
        }
    }

    /// The authority part of a URL (between `//` and the next `/`, `?` or `#`).
    static func authority(of url: String) -> Substring {
        guard let start = url.range(of: "//") else { return "" }
        let rest = url[start.upperBound...]
        return rest[..<(rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex)]
    }

    /// Whether a caller with `groups` may use this connection (an empty `allow_groups` allows nobody).
    public func allows(groups: [String]) -> Bool { !Set(allowGroups).isDisjoint(with: groups) }
}

public struct PolicyConfig: Decodable, Sendable {
    public enum OnSecret: String, Decodable, Sendable, ConfigEnum { case mask, block, hold }

    public struct Hold: Decodable, Sendable {
        public var methods: [String]
        public var paths: [String]
        public var bodyPatterns: [String]
        public var groups: [String]
        enum CodingKeys: String, CodingKey, CaseIterable {
            case methods, paths, groups
            case bodyPatterns = "body_patterns"
        }
        public init() {
            methods = []
            paths = []
            bodyPatterns = []
            groups = []
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            methods = (try c.collect([String].self, forKey: .methods) ?? []).map { $0.uppercased() }
            paths = try c.collect([String].self, forKey: .paths) ?? []
            bodyPatterns = try c.collect([String].self, forKey: .bodyPatterns) ?? []
            groups = try c.collect([String].self, forKey: .groups) ?? []
            for (i, p) in bodyPatterns.enumerated() {
                do { _ = try NSRegularExpression(pattern: p) } catch {
                    throw ConfigError(path: decoder.codingPath.configPath + ".body_patterns[\(i)]", message: "invalid pattern \"\(p)\"")
                }
            }
        }
    }

    /// `tools`: which MCP tools a caller may see and call, and which calls wait for approval
    /// (globs; `protocol: mcp` only).
    public struct Tools: Decodable, Sendable {
        public var allow: [String]
        public var deny: [String]
        public var hold: [String]
        enum CodingKeys: String, CodingKey, CaseIterable { case allow, deny, hold }
        public init(allow: [String] = [], deny: [String] = [], hold: [String] = []) {
            self.allow = allow
            self.deny = deny
            self.hold = hold
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            allow = try c.collect([String].self, forKey: .allow) ?? []
            deny = try c.collect([String].self, forKey: .deny) ?? []
            hold = try c.collect([String].self, forKey: .hold) ?? []
            for (key, list) in [("allow", allow), ("deny", deny), ("hold", hold)] {
                for (i, glob) in list.enumerated() where glob.isEmpty {
                    throw ConfigError(path: decoder.codingPath.configPath + ".\(key)[\(i)]", message: "must not be empty")
                }
            }
        }
        public var isEmpty: Bool { allow.isEmpty && deny.isEmpty && hold.isEmpty }
    }

    /// One `hold_if` condition: a call of a tool matching `tool` (a glob; any tool when absent)
    /// whose `argument` (the whole arguments object when absent) matches `pattern` is held.
    public struct HoldIf: Decodable, Sendable {
        public var tool: String?
        public var argument: String?
        public var pattern: String
        enum CodingKeys: String, CodingKey, CaseIterable { case tool, argument, pattern }
        public init(tool: String? = nil, argument: String? = nil, pattern: String) {
            self.tool = tool
            self.argument = argument
            self.pattern = pattern
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            tool = try c.collect(String.self, forKey: .tool)
            argument = try c.collect(String.self, forKey: .argument)
            pattern = try c.need(String.self, forKey: .pattern)
            do { _ = try NSRegularExpression(pattern: pattern) } catch {
                throw ConfigError(path: decoder.codingPath.configPath + ".pattern", message: "invalid pattern \"\(pattern)\"")
            }
        }
    }

    public var onSecret: OnSecret
    public var tools: Tools
    /// Argument conditions that hold an MCP tool call (`protocol: mcp` only).
    public var holdIf: [HoldIf]
    /// Finding classes to detect: `credential` always; `pii` when listed.
    public var classes: [String]
    public var hold: Hold
    public var approvers: [String]
    public var approvalsRequired: Int
    public var holdWait: ConfigDuration
    public var holdTimeout: ConfigDuration
    /// Scan upstream responses and mask findings in them.
    public var scanResponses: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case classes, hold, approvers, tools
        case holdIf = "hold_if"
        case onSecret = "on_secret"
        case approvalsRequired = "approvals_required"
        case holdWait = "hold_wait"
        case holdTimeout = "hold_timeout"
        case scanResponses = "scan_responses"
    }

    public init(onSecret: OnSecret = .mask) {
        self.onSecret = onSecret
        tools = Tools()
        holdIf = []
        classes = ["credential"]
        hold = Hold()
        approvers = []
        approvalsRequired = 1
        holdWait = ConfigDuration(.seconds(10))
        holdTimeout = ConfigDuration(.seconds(3600))
        scanResponses = true
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        onSecret = try c.collect(OnSecret.self, forKey: .onSecret) ?? .mask
        tools = try c.collect(Tools.self, forKey: .tools) ?? Tools()
        holdIf = try c.collect(OneOrList<HoldIf>.self, forKey: .holdIf)?.values ?? []  // one condition or a list
        classes = try c.collect([String].self, forKey: .classes) ?? ["credential"]
        hold = try c.collect(Hold.self, forKey: .hold) ?? Hold()
        approvers = try c.collect([String].self, forKey: .approvers) ?? []
        approvalsRequired = try c.collect(Int.self, forKey: .approvalsRequired) ?? 1
        holdWait = try c.collect(ConfigDuration.self, forKey: .holdWait) ?? ConfigDuration(.seconds(10))
        holdTimeout = try c.collect(ConfigDuration.self, forKey: .holdTimeout) ?? ConfigDuration(.seconds(3600))
        scanResponses = try c.collect(Bool.self, forKey: .scanResponses) ?? true
        for (i, cls) in classes.enumerated() where !["credential", "pii"].contains(cls) {
            throw ConfigError(path: decoder.codingPath.configPath + ".classes[\(i)]", message: "unknown class \"\(cls)\" (credential, pii)")
        }
        guard approvalsRequired >= 1 else {
            throw ConfigError(path: decoder.codingPath.configPath + ".approvals_required", message: "must be at least 1")
        }
    }
}

public struct RecorderConfig: Decodable, Sendable {
    /// One `recorder.sinks` entry. Each kind takes only its own fields (another kind's field is
    /// an error naming it):
    /// - `file`: `path` (required); `rotate_bytes` (an integer > 0: the file is renamed to
    ///   `<path>.<UTC yyyyMMddTHHmmssZ>` before a batch would take it past this size),
    ///   `rotate_interval` (a duration > 0: renamed at the first batch this long after the file was
    ///   started), `keep` (rotated files kept, ≥ 1; absent: all, nothing is ever deleted).
    /// - `syslog`: `address` (`host:port`, `[v6]:port`; required), `transport` (`tcp`, `tls` or
    ///   `udp`; required, no default, so a feed is never sent in the clear by accident),
    ///   `app_name` (default `sluice`), `facility` (a name such as `local0`, or 0…23; default
    ///   `local0`); with `tls` only: `ca_file` (PEM; absent: the system's trust roots),
    ///   `cert_file` and `key_file` (a client certificate, both or neither), `server_name`
    ///   (the name the server's certificate must carry; default the address's host).
    /// - `hec`: `url` (the collector, `https`; required), `token` (a secret reference; required),
    ///   `index`, `sourcetype` (default `sluice:audit`), `source` (default `sluice`).
    /// - `webhook`: `url` (`https`; required), `headers` (name → secret reference).
    /// - `hec` and `webhook`: `ca_file` (PEM CA certificates trusted instead of the system's roots).
    /// - every kind: `schema` (`sluice`, the default, or `ocsf`).
    /// An `http://` URL is refused unless its host is a loopback address.
    public struct Sink: Decodable, Sendable {
        public enum Kind: String, Decodable, Sendable, ConfigEnum { case file, syslog, hec, webhook }
        /// What the sink receives: Sluice's own events (hash-chained) or OCSF API Activity.
        public enum Schema: String, Decodable, Sendable, ConfigEnum { case sluice, ocsf }
        public enum Transport: String, Decodable, Sendable, ConfigEnum { case tcp, tls, udp }
        public var kind: Kind
        public var path: String?
        public var url: String?
        public var token: ConfigSecret?
        /// syslog: where to send, split from `address`.
        public var host: String?
        public var port: Int?
        public var transport: Transport?
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        public var serverName: String?
        /// syslog: APP-NAME (1…48 printable ASCII characters, no space).
        public var appName: String
        /// syslog: 0…23.
        public var facility: Int
        /// hec: the index (absent: the token's default index).
        public var index: String?
        /// hec: the sourcetype and source of every event.
        public var sourcetype: String
        public var source: String
        /// webhook: extra request headers, values from secret references.
        public var headers: [String: ConfigSecret]
        public var schema: Schema
        /// Names the sink's cursor on `audit` (its consumer group `<prefix>recorder-sink-<name>`)
        /// and its chain state; `nil`: derived from the kind and destination (`SinkIdentity`).
        /// Setting it keeps the cursor when the destination changes.
        public var name: String?
        /// How far behind (event age) a sink that cannot take events may fall before the Recorder
        /// gives up on the oldest ones for it (`sink_events_dropped`), which bounds the audit
        /// backlog kept for it (`max_behind`: a duration, or `never`; default `bus.retention`).
        public var maxBehind: MaxBehind
        public enum MaxBehind: Sendable, Equatable {
            /// `bus.retention` (what the bus keeps for a consumer group anyway).
            case busRetention
            case after(ConfigDuration)
            /// Never give up: the backlog grows while the sink is down.
            case never
        }
        /// file: rotation (all `nil`: never rotated).
        public var rotateBytes: Int?
        public var rotateInterval: ConfigDuration?
        public var keep: Int?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case kind, path, url, token, address, transport, index, sourcetype, source, headers, schema, name, keep
            case maxBehind = "max_behind"
            case rotateBytes = "rotate_bytes"
            case rotateInterval = "rotate_interval"
            case caFile = "ca_file"
            case certFile = "cert_file"
            case keyFile = "key_file"
            case serverName = "server_name"
            case appName = "app_name"
            case facility
        }

        /// A sink name: 1-48 of `a-z 0-9 _ -`, the first a letter or digit (it names a consumer group
        /// and a directory).
        static func isSinkName(_ name: String) -> Bool {
            let bytes = Array(name.utf8)
            func ok(_ b: UInt8) -> Bool { (97...122).contains(b) || (48...57).contains(b) }
            guard let first = bytes.first, bytes.count <= 48, ok(first) else { return false }
            return bytes.allSatisfy { ok($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
        }

        /// Syslog facility names (RFC 5424 table 1, with the usual names), by number.
        public static let facilityNames: [String: Int] = [
            "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
            "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
            "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
        ]

        /// The fields each kind takes besides `kind`.
        static func fields(of kind: Kind) -> Set<CodingKeys> {
            switch kind {
            case .file: [.path, .rotateBytes, .rotateInterval, .keep]
            case .syslog: [.address, .transport, .caFile, .certFile, .keyFile, .serverName, .appName, .facility]
            case .hec: [.url, .token, .index, .sourcetype, .source, .caFile]
            case .webhook: [.url, .headers, .caFile]
            }
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let here = decoder.codingPath.configPath
            kind = try c.need(Kind.self, forKey: .kind)
            let allowed = Self.fields(of: kind)
            let common: Set<CodingKeys> = [.kind, .schema, .name, .maxBehind]
            for key in CodingKeys.allCases where !common.contains(key) && !allowed.contains(key) && c.contains(key) {
                throw ConfigError(
                    path: here + "." + key.rawValue,
                    message: "not a field of a \(kind.rawValue) sink (its fields: \(allowed.map(\.rawValue).sorted().joined(separator: ", ")))")
            }
            path = try c.collect(String.self, forKey: .path)
            url = try c.collect(String.self, forKey: .url)
            token = try c.collect(ConfigSecret.self, forKey: .token)
            transport = try c.collect(Transport.self, forKey: .transport)
            caFile = try c.collect(String.self, forKey: .caFile)
            certFile = try c.collect(String.self, forKey: .certFile)
            keyFile = try c.collect(String.self, forKey: .keyFile)
            serverName = try c.collect(String.self, forKey: .serverName)
            appName = try c.collect(String.self, forKey: .appName) ?? "sluice"
            facility = 16
            index = try c.collect(String.self, forKey: .index)
            sourcetype = try c.collect(String.self, forKey: .sourcetype) ?? "sluice:audit"
            source = try c.collect(String.self, forKey: .source) ?? "sluice"
            // Parsed here, not as [String: ConfigSecret], so an error names the header.
            var headers: [String: ConfigSecret] = [:]
            for (name, text) in try c.collect([String: String].self, forKey: .headers) ?? [:] {
                do { headers[name] = ConfigSecret(try SecretReference(parsing: text)) } catch let e as SecretReferenceError {
                    throw ConfigError(path: here + ".headers." + name, message: e.reason)
                }
            }
            self.headers = headers
            schema = try c.collect(Schema.self, forKey: .schema) ?? .sluice
            name = try c.collect(String.self, forKey: .name)
            if let name, !Self.isSinkName(name) {
                throw ConfigError(path: here + ".name", message: "\"\(name)\" is not a sink name (1-48 of a-z 0-9 _ -, starting with a letter or digit)")
            }
            if (try? c.decode(String.self, forKey: .maxBehind)) == "never" {
                maxBehind = .never
            } else if let limit = try c.collect(ConfigDuration.self, forKey: .maxBehind) {
                guard limit.milliseconds > 0 else { throw ConfigError(path: here + ".max_behind", message: "must be positive, or never") }
                maxBehind = .after(limit)
            } else {
                maxBehind = .busRetention
            }
            if kind == .file && path == nil {
                throw ConfigError(path: here + ".path", message: "required for a file sink")
            }
            rotateBytes = try c.collect(ConfigSize.self, forKey: .rotateBytes)?.bytes
            rotateInterval = try c.collect(ConfigDuration.self, forKey: .rotateInterval)
            keep = try c.collect(Int.self, forKey: .keep)
            if let rotateBytes, rotateBytes < 1 { throw ConfigError(path: here + ".rotate_bytes", message: "must be at least 1 (bytes)") }
            if let rotateInterval, rotateInterval.milliseconds < 1 {
                throw ConfigError(path: here + ".rotate_interval", message: "must be more than 0 (e.g. 1h, 1d)")
            }
            if let keep {
                guard keep >= 1 else { throw ConfigError(path: here + ".keep", message: "must be at least 1 (leave it out to keep every rotated file)") }
                guard rotateBytes != nil || rotateInterval != nil else {
                    throw ConfigError(path: here + ".keep", message: "needs rotate_bytes or rotate_interval")
                }
            }
            if kind != .syslog, caFile?.isEmpty == true { throw ConfigError(path: here + ".ca_file", message: "must not be empty") }
            if kind == .hec || kind == .webhook {
                guard let url else { throw ConfigError(path: here + ".url", message: "required for a \(kind.rawValue) sink") }
                try Self.checkURL(url, path: here + ".url")
                if kind == .hec, token == nil {
                    throw ConfigError(path: here + ".token", message: "required for a hec sink (a secret reference, e.g. env:HEC_TOKEN)")
                }
                for name in headers.keys where name.isEmpty || !name.utf8.allSatisfy({ (33...126).contains($0) && $0 != UInt8(ascii: ":") }) {
                    throw ConfigError(path: here + ".headers." + name, message: "not a header name")
                }
                for (key, value) in [(CodingKeys.index, index), (.sourcetype, sourcetype as String?), (.source, source as String?)] where value?.isEmpty == true {
                    throw ConfigError(path: here + "." + key.rawValue, message: "must not be empty")
                }
            }
            guard kind == .syslog else { return }
            guard let address = try c.collect(String.self, forKey: .address) else {
                throw ConfigError(path: here + ".address", message: "required for a syslog sink (host:port)")
            }
            guard let hostPort = Self.hostPort(address) else {
                throw ConfigError(path: here + ".address", message: "\"\(address)\" is not host:port (a port 1-65535; an IPv6 host in brackets)")
            }
            host = hostPort.0
            port = hostPort.1
            guard let transport else {
                throw ConfigError(path: here + ".transport", message: "required for a syslog sink (tcp, tls or udp)")
            }
            if transport != .tls {
                for key in [CodingKeys.caFile, .certFile, .keyFile, .serverName] where c.contains(key) {
                    throw ConfigError(path: here + "." + key.rawValue, message: "only for transport tls")
                }
            }
            if (certFile == nil) != (keyFile == nil) {
                throw ConfigError(path: here + (certFile == nil ? ".cert_file" : ".key_file"), message: "cert_file and key_file go together")
            }
            for (key, value) in [(CodingKeys.caFile, caFile), (.certFile, certFile), (.keyFile, keyFile), (.serverName, serverName)] where value?.isEmpty == true {
                throw ConfigError(path: here + "." + key.rawValue, message: "must not be empty")
            }
            guard (1...48).contains(appName.utf8.count), appName.utf8.allSatisfy({ (33...126).contains($0) }) else {
                throw ConfigError(path: here + ".app_name", message: "must be 1-48 printable ASCII characters without spaces")
            }
            if c.contains(.facility) {
                let name = (try? c.decode(String.self, forKey: .facility)) ?? (try? c.decode(Int.self, forKey: .facility)).map { "\($0)" } ?? ""
                if let number = Self.facilityNames[name.lowercased()] ?? Int(name), (0...23).contains(number) {
                    facility = number
                } else {
                    throw ConfigError(
                        path: here + ".facility",
                        message: "\"\(name)\" is not a syslog facility (0-23 or a name: \(Self.facilityNames.sorted { $0.value < $1.value }.map(\.key).joined(separator: ", ")))")
                }
            }
        }

        /// An `https` URL, or `http` to a loopback host only (an audit feed and its token are never
        /// sent in the clear over a network); no user information.
        static func checkURL(_ text: String, path: String) throws {
            guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
                throw ConfigError(path: path, message: "\"\(text)\" is not a URL")
            }
            let loopback = host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
            guard scheme == "https" || (scheme == "http" && loopback) else {
                throw ConfigError(path: path, message: "must be an https URL (http only to a loopback host)")
            }
            guard url.user == nil, url.password == nil else { throw ConfigError(path: path, message: "must not contain user information") }
        }

        /// `host:port` or `[v6]:port` split, or `nil` when not of that form.
        static func hostPort(_ address: String) -> (String, Int)? {
            let host: Substring, portText: Substring
            if address.hasPrefix("[") {
                guard let close = address.firstIndex(of: "]"), address[address.index(after: close)...].hasPrefix(":") else { return nil }
                host = address[address.index(after: address.startIndex)..<close]
                portText = address[address.index(close, offsetBy: 2)...]
            } else {
                guard let colon = address.lastIndex(of: ":") else { return nil }
                host = address[..<colon]
                portText = address[address.index(after: colon)...]
                if host.contains(":") { return nil }  // a bare IPv6 address needs brackets
            }
            guard !host.isEmpty, !host.contains(where: \.isWhitespace), portText.allSatisfy(\.isASCII),
                let port = Int(portText), (1...65535).contains(port)
            else { return nil }
            return (String(host), port)
        }
    }

    /// Where session recordings are kept (`recorder.store`):
    /// - `kind: file` (the default): `<data_dir>/recordings/<day>/<session>.jsonl`.
    /// - `kind: postgres`: one table in a PostgreSQL database. `url` (required) is a secret
    ///   reference (`env:`/`file:`) to a `postgres://user:password@host:port/database` URL whose
    ///   only query parameter may be `sslmode` (`verify-full`, the default, or `disable`, which is
    ///   allowed only for a loopback host or a socket directory given as `?host=/path`); `ca_file`
    ///   (PEM; absent: the system's roots), `table` (default `sluice_recordings`; created on
    ///   start), `max_connections` (default 4).
    public struct Store: Decodable, Sendable, Equatable {
        public enum Kind: String, Decodable, Sendable, ConfigEnum { case file, postgres }
        public var kind: Kind
        public var url: ConfigSecret?
        public var caFile: String?
        public var table: String
        public var maxConnections: Int

        enum CodingKeys: String, CodingKey, CaseIterable {
            case kind, url, table
            case caFile = "ca_file"
            case maxConnections = "max_connections"
        }

        public static let defaultTable = "sluice_recordings"

        public init(kind: Kind = .file, url: ConfigSecret? = nil, caFile: String? = nil, table: String = Self.defaultTable, maxConnections: Int = 4) {
            self.kind = kind
            self.url = url
            self.caFile = caFile
            self.table = table
            self.maxConnections = maxConnections
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let here = decoder.codingPath.configPath
            kind = try c.collect(Kind.self, forKey: .kind) ?? .file
            if kind == .file {
                for key in [CodingKeys.url, .caFile, .table, .maxConnections] where c.contains(key) {
                    throw ConfigError(path: here + "." + key.rawValue, message: "only for kind postgres")
                }
            }
            url = try c.collect(ConfigSecret.self, forKey: .url)
            caFile = try c.collect(String.self, forKey: .caFile)
            table = try c.collect(String.self, forKey: .table) ?? Self.defaultTable
            maxConnections = try c.collect(Int.self, forKey: .maxConnections) ?? 4
            guard kind == .postgres else { return }
            guard url != nil else {
                throw ConfigError(path: here + ".url", message: "required for a postgres store (a secret reference, e.g. env:SLUICE_RECORDINGS_URL)")
            }
            guard Self.isTableName(table) else {
                throw ConfigError(path: here + ".table", message: "\"\(table)\" is not a table name (1-63 of a-z 0-9 _, starting with a letter or _)")
            }
            guard (1...64).contains(maxConnections) else { throw ConfigError(path: here + ".max_connections", message: "must be 1-64") }
            if caFile?.isEmpty == true { throw ConfigError(path: here + ".ca_file", message: "must not be empty") }
        }

        /// A lower-case SQL identifier that needs no quoting: 1-63 of `a-z 0-9 _`, not starting with a digit.
        static func isTableName(_ name: String) -> Bool {
            let bytes = Array(name.utf8)
            guard let first = bytes.first, bytes.count <= 63, (97...122).contains(first) || first == UInt8(ascii: "_") else { return false }
            return bytes.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == UInt8(ascii: "_") }
        }
    }

    public var sinks: [Sink]
    /// Where recordings are kept (`store`; default a file per session per day under `data_dir`).
    public var store: Store
    /// Session recordings older than this are deleted (`retention`, default 30 d): whole days of
    /// the file store, rows of the postgres store.
    public var retention: ConfigDuration
    /// The key of the audit hash chain (`chain_key`, an `env:`/`file:` reference); `nil`: derived
    /// from `sealing.fingerprint_key` (docs/audit-chain.md).
    public var chainKey: ConfigSecret?
    /// A checkpoint line goes to every sink after this many events of a chain (`checkpoint_every`,
    /// default 1000) ...
    public var checkpointEvery: Int
    /// ... or once the chain's events span this much event time since its last checkpoint
    /// (`checkpoint_interval`, default 60 s).
    public var checkpointInterval: ConfigDuration
    /// Whether recordings hold each request's masked request and response (`content`, default
    /// true), sealed, besides its events.
    public var content: Bool
    /// A recorded body is cut after this many bytes (`max_body_bytes`, default 64 KiB; marked
    /// truncated).
    public var maxBodyBytes: Int
    enum CodingKeys: String, CodingKey, CaseIterable {
        case sinks, retention, content, store
        case maxBodyBytes = "max_body_bytes"
        case chainKey = "chain_key"
        case checkpointEvery = "checkpoint_every"
        case checkpointInterval = "checkpoint_interval"
    }

    public init(
        sinks: [Sink] = [], retention: ConfigDuration = ConfigDuration(.seconds(30 * 86_400)), chainKey: ConfigSecret? = nil,
        checkpointEvery: Int = 1000, checkpointInterval: ConfigDuration = ConfigDuration(.seconds(60)), content: Bool = true,
        maxBodyBytes: Int = 65_536, store: Store = Store()
    ) {
        self.store = store
        self.content = content
        self.maxBodyBytes = maxBodyBytes
        self.sinks = sinks
        self.retention = retention
        self.chainKey = chainKey
        self.checkpointEvery = checkpointEvery
        self.checkpointInterval = checkpointInterval
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sinks = try c.collectList(Sink.self, forKey: .sinks) ?? []
        store = try c.collect(Store.self, forKey: .store) ?? Store()
        retention = try c.collect(ConfigDuration.self, forKey: .retention) ?? ConfigDuration(.seconds(30 * 86_400))
        chainKey = try c.collect(ConfigSecret.self, forKey: .chainKey)
        checkpointEvery = try c.collect(Int.self, forKey: .checkpointEvery) ?? 1000
        checkpointInterval = try c.collect(ConfigDuration.self, forKey: .checkpointInterval) ?? ConfigDuration(.seconds(60))
        content = try c.collect(Bool.self, forKey: .content) ?? true
        maxBodyBytes = try c.collect(ConfigSize.self, forKey: .maxBodyBytes)?.bytes ?? 65_536
        // Each check reports and goes on: every problem of the section in one run.
        for (ok, key, message) in [
            (retention.milliseconds > 0, "retention", "must be positive"),
            (checkpointEvery > 0, "checkpoint_every", "must be positive"),
            (checkpointInterval.milliseconds > 0, "checkpoint_interval", "must be positive"),
        ] where !ok {
            try decoder.report(ConfigError(path: "recorder." + key, message: message))
        }
    }
}

/// Custom detection rules (`detection.rules`) and the allow-list (`detection.allow`), passed to the Detection engine.
public struct DetectionConfig: Decodable, Sendable {
    public struct Rule: Decodable, Sendable {
        public var id: String
        public var pattern: String
        public var keywords: [String]
        public var minEntropy: Double?
        public var ruleClass: String
        public var severity: String
        enum CodingKeys: String, CodingKey, CaseIterable {
            case id, pattern, keywords, severity
            case minEntropy = "min_entropy"
            case ruleClass = "class"
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.need(String.self, forKey: .id)
            pattern = try c.need(String.self, forKey: .pattern)
            keywords = try c.collect([String].self, forKey: .keywords) ?? []
            minEntropy = try c.collect(Double.self, forKey: .minEntropy)
            ruleClass = try c.collect(ClassName.self, forKey: .ruleClass)?.rawValue ?? ClassName.credential.rawValue
            severity = try c.collect(SeverityName.self, forKey: .severity)?.rawValue ?? SeverityName.high.rawValue
        }

        /// The values `class` takes (Detection's `RuleClass`): any other is refused, naming these.
        public enum ClassName: String, Sendable, ConfigEnum { case credential, pii }
        /// The values `severity` takes (Detection's `Severity`): any other is refused, naming these.
        public enum SeverityName: String, Sendable, ConfigEnum { case low, medium, high, critical }
    }

    /// `detection.allow[i]`: silences findings of `rule` (or `"*"`) that meet every condition
    /// given (`fingerprint`, `pattern`, `path`); checked against the loaded rules when the engine
    /// is made (see `Detection.AllowSpec`).
    public struct Allow: Decodable, Sendable {
        public var rule: String
        public var fingerprint: String?
        public var pattern: String?
        public var path: String?
        public var reason: String?
        enum CodingKeys: String, CodingKey, CaseIterable { case rule, fingerprint, pattern, path, reason }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            rule = try c.need(String.self, forKey: .rule)
            fingerprint = try c.collect(String.self, forKey: .fingerprint)
            pattern = try c.collect(String.self, forKey: .pattern)
            path = try c.collect(String.self, forKey: .path)
            reason = try c.collect(String.self, forKey: .reason)
        }
    }

    public var rules: [Rule]
    public var allow: [Allow]
    enum CodingKeys: String, CodingKey, CaseIterable { case rules, allow }

    public init() {
        rules = []
        allow = []
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rules = try c.collectList(Rule.self, forKey: .rules) ?? []
        allow = try c.collectList(Allow.self, forKey: .allow) ?? []
    }
}

public struct NotifyConfig: Decodable, Sendable {
    public enum Kind: String, Decodable, Sendable, ConfigEnum { case webhook }
    public var kind: Kind
    public var url: String
    enum CodingKeys: String, CodingKey, CaseIterable { case kind, url }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.need(Kind.self, forKey: .kind)
        url = try c.need(String.self, forKey: .url)
    }
}
