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

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen, bus, sealing, identities, connections, recorder, detection, notify
        case dataDir = "data_dir"
        case maxBodyBytes = "max_body_bytes"
        case requestTimeout = "request_timeout"
        case publicURL = "public_url"
        case holdsRetention = "holds_retention"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listen = try c.decodeIfPresent(String.self, forKey: .listen) ?? "127.0.0.1:8080"
        dataDir = try c.decodeIfPresent(String.self, forKey: .dataDir) ?? "./data"
        maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? 1_048_576
        requestTimeout = try c.decodeIfPresent(ConfigDuration.self, forKey: .requestTimeout) ?? ConfigDuration(.seconds(30))
        bus = try c.decodeIfPresent(BusConfig.self, forKey: .bus) ?? BusConfig()
        sealing = try c.decode(SealingConfig.self, forKey: .sealing)
        identities = try c.decodeIfPresent(IdentitiesConfig.self, forKey: .identities) ?? IdentitiesConfig()
        connections = try c.decodeIfPresent([ConnectionConfig].self, forKey: .connections) ?? []
        recorder = try c.decodeIfPresent(RecorderConfig.self, forKey: .recorder) ?? RecorderConfig()
        detection = try c.decodeIfPresent(DetectionConfig.self, forKey: .detection) ?? DetectionConfig()
        notify = try c.decodeIfPresent([NotifyConfig].self, forKey: .notify) ?? []
        publicURL = try c.decodeIfPresent(String.self, forKey: .publicURL)
        holdsRetention = try c.decodeIfPresent(ConfigDuration.self, forKey: .holdsRetention) ?? ConfigDuration(.seconds(86_400))
        try validate()
    }

    func validate() throws {
        guard maxBodyBytes > 0 else { throw ConfigError(path: "max_body_bytes", message: "must be positive") }
        guard requestTimeout.milliseconds > 0 else { throw ConfigError(path: "request_timeout", message: "must be positive") }
        guard holdsRetention.milliseconds > 0 else { throw ConfigError(path: "holds_retention", message: "must be positive") }
        var names = Set<String>()
        for (i, conn) in connections.enumerated() {
            guard names.insert(conn.name).inserted else {
                throw ConfigError(path: "connections[\(i)].name", message: "duplicate connection \"\(conn.name)\"")
            }
        }
        var ids = Set<String>()
        for (i, key) in identities.apiKeys.enumerated() {
            guard ids.insert(key.id).inserted else {
                throw ConfigError(path: "identities.api_keys[\(i)].id", message: "duplicate identity \"\(key.id)\"")
            }
        }
    }

    /// The connection with this name.
    public func connection(named name: String) -> ConnectionConfig? { connections.first { $0.name == name } }
}

public struct BusConfig: Decodable, Sendable {
    public enum Kind: String, Decodable, Sendable { case embedded, kafka }
    public var kind: Kind
    public var brokers: String?
    public var topicPrefix: String
    public var partitions: Int
    /// Passed through to librdkafka unchanged (TLS, SASL, tuning).
    public var librdkafka: [String: String]
    /// Embedded bus: `fdatasync` every append.
    public var sync: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, brokers, partitions, librdkafka, sync
        case topicPrefix = "topic_prefix"
    }

    public init(kind: Kind = .embedded, brokers: String? = nil, topicPrefix: String = "sluice.", partitions: Int = 6, librdkafka: [String: String] = [:], sync: Bool = false) {
        self.kind = kind
        self.brokers = brokers
        self.topicPrefix = topicPrefix
        self.partitions = partitions
        self.librdkafka = librdkafka
        self.sync = sync
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .embedded
        brokers = try c.decodeIfPresent(String.self, forKey: .brokers)
        topicPrefix = try c.decodeIfPresent(String.self, forKey: .topicPrefix) ?? "sluice."
        partitions = try c.decodeIfPresent(Int.self, forKey: .partitions) ?? 6
        librdkafka = try c.decodeIfPresent([String: String].self, forKey: .librdkafka) ?? [:]
        sync = try c.decodeIfPresent(Bool.self, forKey: .sync) ?? false
        if kind == .kafka && (brokers ?? "").isEmpty {
            throw ConfigError(path: (decoder.codingPath.configPath == "(top level)" ? "bus" : decoder.codingPath.configPath) + ".brokers", message: "required when kind is kafka")
        }
        guard partitions > 0 else { throw ConfigError(path: "bus.partitions", message: "must be positive") }
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
            id = try c.decode(String.self, forKey: .id)
            secret = try c.decode(ConfigSecret.self, forKey: .secret)
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
        keys = try c.decode([Key].self, forKey: .keys)
        fingerprintKey = try c.decode(ConfigSecret.self, forKey: .fingerprintKey)
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
        if let data = Data(base64Encoded: text), data.count >= 16 { return Array(data) }
        guard text.utf8.count >= 16 else {
            throw ConfigError(path: "sealing.fingerprint_key", message: "\(fingerprintKey) must hold at least 16 bytes")
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
        enum CodingKeys: String, CodingKey, CaseIterable { case id, sha256, groups }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            sha256 = try c.decode(String.self, forKey: .sha256).lowercased()
            groups = try c.decodeIfPresent([String].self, forKey: .groups) ?? []
            guard sha256.count == 64, sha256.allSatisfy(\.isHexDigit) else {
                throw ConfigError(path: decoder.codingPath.configPath + ".sha256", message: "must be 64 hex characters (SHA-256 of the key)")
            }
        }
        public init(id: String, sha256: String, groups: [String]) {
            self.id = id
            self.sha256 = sha256
            self.groups = groups
        }
    }

    public struct OIDC: Decodable, Sendable {
        public var issuer: String
        public var audience: String
        public var jwksURL: String
        public var groupsClaim: String
        /// Allowed clock skew for `exp`/`nbf`.
        public var leeway: ConfigDuration
        enum CodingKeys: String, CodingKey, CaseIterable {
            case issuer, audience, leeway
            case jwksURL = "jwks_url"
            case groupsClaim = "groups_claim"
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            issuer = try c.decode(String.self, forKey: .issuer)
            audience = try c.decode(String.self, forKey: .audience)
            jwksURL = try c.decode(String.self, forKey: .jwksURL)
            groupsClaim = try c.decodeIfPresent(String.self, forKey: .groupsClaim) ?? "groups"
            leeway = try c.decodeIfPresent(ConfigDuration.self, forKey: .leeway) ?? ConfigDuration(.seconds(60))
        }
        public init(issuer: String, audience: String, jwksURL: String, groupsClaim: String = "groups", leeway: ConfigDuration = ConfigDuration(.seconds(60))) {
            self.issuer = issuer
            self.audience = audience
            self.jwksURL = jwksURL
            self.groupsClaim = groupsClaim
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
        apiKeys = try c.decodeIfPresent([APIKey].self, forKey: .apiKeys) ?? []
        oidc = try c.decodeIfPresent(OIDC.self, forKey: .oidc)
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
            header = try c.decode(String.self, forKey: .header)
            value = try c.decode(String.self, forKey: .value)
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

    public var name: String
    public var upstream: String
    public var allowGroups: [String]
    public var credentials: Credentials?
    public var policy: PolicyConfig
    /// Upstream request timeout (defaults to the remaining request deadline).
    public var timeout: ConfigDuration?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, upstream, credentials, policy, timeout
        case allowGroups = "allow_groups"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        upstream = try c.decode(String.self, forKey: .upstream)
        allowGroups = try c.decodeIfPresent([String].self, forKey: .allowGroups) ?? []
        credentials = try c.decodeIfPresent(Credentials.self, forKey: .credentials)
        policy = try c.decodeIfPresent(PolicyConfig.self, forKey: .policy) ?? PolicyConfig()
        timeout = try c.decodeIfPresent(ConfigDuration.self, forKey: .timeout)
        guard let url = URL(string: upstream), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw ConfigError(path: decoder.codingPath.configPath + ".upstream", message: "\"\(upstream)\" is not an http(s) URL")
        }
        guard !name.isEmpty, !name.contains("/") else {
            throw ConfigError(path: decoder.codingPath.configPath + ".name", message: "must be non-empty and contain no '/'")
        }
    }

    /// Whether a caller with `groups` may use this connection (an empty `allow_groups` allows nobody).
    public func allows(groups: [String]) -> Bool { !Set(allowGroups).isDisjoint(with: groups) }
}

public struct PolicyConfig: Decodable, Sendable {
    public enum OnSecret: String, Decodable, Sendable { case mask, block, hold }

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
            methods = (try c.decodeIfPresent([String].self, forKey: .methods) ?? []).map { $0.uppercased() }
            paths = try c.decodeIfPresent([String].self, forKey: .paths) ?? []
            bodyPatterns = try c.decodeIfPresent([String].self, forKey: .bodyPatterns) ?? []
            groups = try c.decodeIfPresent([String].self, forKey: .groups) ?? []
            for (i, p) in bodyPatterns.enumerated() {
                do { _ = try NSRegularExpression(pattern: p) } catch {
                    throw ConfigError(path: decoder.codingPath.configPath + ".body_patterns[\(i)]", message: "invalid pattern \"\(p)\"")
                }
            }
        }
    }

    public var onSecret: OnSecret
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
        case classes, hold, approvers
        case onSecret = "on_secret"
        case approvalsRequired = "approvals_required"
        case holdWait = "hold_wait"
        case holdTimeout = "hold_timeout"
        case scanResponses = "scan_responses"
    }

    public init(onSecret: OnSecret = .mask) {
        self.onSecret = onSecret
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
        onSecret = try c.decodeIfPresent(OnSecret.self, forKey: .onSecret) ?? .mask
        classes = try c.decodeIfPresent([String].self, forKey: .classes) ?? ["credential"]
        hold = try c.decodeIfPresent(Hold.self, forKey: .hold) ?? Hold()
        approvers = try c.decodeIfPresent([String].self, forKey: .approvers) ?? []
        approvalsRequired = try c.decodeIfPresent(Int.self, forKey: .approvalsRequired) ?? 1
        holdWait = try c.decodeIfPresent(ConfigDuration.self, forKey: .holdWait) ?? ConfigDuration(.seconds(10))
        holdTimeout = try c.decodeIfPresent(ConfigDuration.self, forKey: .holdTimeout) ?? ConfigDuration(.seconds(3600))
        scanResponses = try c.decodeIfPresent(Bool.self, forKey: .scanResponses) ?? true
        for (i, cls) in classes.enumerated() where !["credential", "pii"].contains(cls) {
            throw ConfigError(path: decoder.codingPath.configPath + ".classes[\(i)]", message: "unknown class \"\(cls)\" (credential, pii)")
        }
        guard approvalsRequired >= 1 else {
            throw ConfigError(path: decoder.codingPath.configPath + ".approvals_required", message: "must be at least 1")
        }
    }
}

public struct RecorderConfig: Decodable, Sendable {
    public struct Sink: Decodable, Sendable {
        public enum Kind: String, Decodable, Sendable { case file, syslog, hec, webhook }
        public var kind: Kind
        public var path: String?
        public var url: String?
        public var token: ConfigSecret?
        enum CodingKeys: String, CodingKey, CaseIterable { case kind, path, url, token }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            kind = try c.decode(Kind.self, forKey: .kind)
            path = try c.decodeIfPresent(String.self, forKey: .path)
            url = try c.decodeIfPresent(String.self, forKey: .url)
            token = try c.decodeIfPresent(ConfigSecret.self, forKey: .token)
            if kind == .file && path == nil {
                throw ConfigError(path: decoder.codingPath.configPath + ".path", message: "required for a file sink")
            }
        }
    }

    public var sinks: [Sink]
    enum CodingKeys: String, CodingKey, CaseIterable { case sinks }

    public init() { sinks = [] }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sinks = try c.decodeIfPresent([Sink].self, forKey: .sinks) ?? []
    }
}

/// Custom detection rules (`detection.rules`), passed to the Detection engine.
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
            id = try c.decode(String.self, forKey: .id)
            pattern = try c.decode(String.self, forKey: .pattern)
            keywords = try c.decodeIfPresent([String].self, forKey: .keywords) ?? []
            minEntropy = try c.decodeIfPresent(Double.self, forKey: .minEntropy)
            ruleClass = try c.decodeIfPresent(String.self, forKey: .ruleClass) ?? "credential"
            severity = try c.decodeIfPresent(String.self, forKey: .severity) ?? "high"
        }
    }

    public var rules: [Rule]
    enum CodingKeys: String, CodingKey, CaseIterable { case rules }

    public init() { rules = [] }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rules = try c.decodeIfPresent([Rule].self, forKey: .rules) ?? []
    }
}

public struct NotifyConfig: Decodable, Sendable {
    public enum Kind: String, Decodable, Sendable { case webhook }
    public var kind: Kind
    public var url: String
    enum CodingKeys: String, CodingKey, CaseIterable { case kind, url }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        url = try c.decode(String.self, forKey: .url)
    }
}
