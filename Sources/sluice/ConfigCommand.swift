import ArgumentParser
import Detection
import Foundation
import Ingress
import Inspector
import KafkaBus
import Logging
import Pipeline
import Recorder
import Yams

/// `sluice config`: configuration tools.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check a configuration file.", subcommands: [ConfigCheckCommand.self])
}

/// `sluice config check --config FILE`: loads the file as every stage command does, runs the checks
/// start-up runs (secret references resolved, never printed; listen addresses; key material;
/// sinks and store; detection rules), prints the effective configuration (defaults filled in,
/// every secret shown as `<redacted: REFERENCE>`) as YAML on stdout and exits 0. A file that
/// does not read prints every problem on stderr, one line each in the file's order
/// (`FILE:LINE:COL: <key>: <message>`), and exits 1; the checks after reading stop at the first
/// problem (`config <key>: ...`). Nothing is created, connected to or listened on.
struct ConfigCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration as start-up does and print it with secrets redacted.",
        discussion: """
            Exit 0: valid; the effective configuration (defaults filled in, secrets as \
            <redacted: env:NAME>) is printed on stdout. Exit 1: every problem of the file on \
            stderr, one line each in the file's order, as FILE:LINE:COL: <key>: <message>.
            """)

    @Option(name: .shortAndLong, help: "The configuration file (YAML).")
    var config: String

    @Option(help: "Check only what this stage's command reads (ingress, inspector, forwarder, recorder); default: every stage.")
    var stage: StageKind?

    func run() throws {
        do {
            let loaded = try ConfigLoader.load(path: config)
            let resolved = try ConfigCheck.validate(loaded, stages: stage.map { [$0] } ?? StageKind.allCases)
            print(try ConfigCheck.effectiveYAML(loaded), terminator: "")
            // Problems that do not make the configuration invalid (the exit status stays 0).
            for warning in ApproverCoverage.warnings(loaded) { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
            FileHandle.standardError.write(Data("sluice config check: \(config) is valid (\(resolved) secret references resolved)\n".utf8))
        } catch {
            // ConfigError(s) print as `FILE:LINE:COL: <key>: <message>` (or `config <key>: ...`),
            // one line each; none of them holds a secret's value.
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

extension StageKind: ExpressibleByArgument {}

/// The checks `Runtime.start` and the stages' initialisers run on a configuration, without their
/// side effects (no directory created, no bus, no socket), and the effective configuration as YAML.
enum ConfigCheck {
    /// Throws every problem found (one `ConfigError` naming its key, or `ConfigErrors`, in the
    /// order checked); returns how many secret references were resolved. Values read are only checked, never kept or printed.
    /// `stages`: what the process will run (secrets another stage reads, such as the Forwarder's
    /// upstream credentials, are not resolved for an Inspector).
    @discardableResult
    static func validate(
        _ config: SluiceConfig, stages: [StageKind] = StageKind.allCases, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Int {
        var problems: [ConfigError] = []
        var resolved = 0
        // One check: its problem is kept and the next check runs (every problem in one run).
        func check(_ body: () throws -> Void) throws {
            do { try body() } catch let error as ConfigError { problems.append(error) } catch let errors as ConfigErrors {
                problems += errors.errors
            }
        }
        try check {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: config.dataDir, isDirectory: &isDirectory), !isDirectory.boolValue {
                throw ConfigError(path: "data_dir", message: "\(config.dataDir) exists and is not a directory")
            }
        }
        if stages.contains(.ingress) {
            // The parse every server uses.
            try check { _ = try ListenAddress(parsing: config.listen, key: "listen") }
            try check { _ = try ListenAddress(parsing: config.adminListen, key: "admin_listen") }
            try check { _ = try APIKeyAuthenticator(keys: config.identities.apiKeys) }
        }
        // The sealing key ring and the fingerprint key (every stage).
        try check {
            _ = try config.sealing.makeSealer(environment: environment)
            resolved += config.sealing.keys.count
        }
        var fingerprintKey: [UInt8]?
        try check {
            fingerprintKey = try config.sealing.fingerprintKeyBytes(environment: environment)
            resolved += 1
        }
        if config.bus.kind == .embedded, stages.count == 1, let only = stages.first {
            problems.append(ConfigError(path: "bus.kind", message: "`sluice \(only.rawValue)` runs one stage of a Kafka deployment: set bus.kind to kafka, or use `sluice run`"))
        }
        if config.bus.kind == .kafka {
            try KafkaBus.checkLibrary()
            try check {
                let secretKeys = config.bus.librdkafka.keys.filter(BusConfig.isSecretBearing)
                _ = try config.bus.resolvedLibrdkafka(environment: environment)
                resolved += secretKeys.count
            }
        }
        // Inspector: hold rules; Forwarder: credentials.
        for (i, connection) in config.connections.enumerated() {
            if stages.contains(.inspector) { try check { _ = try HoldRules(connection.policy.hold, path: "connections[\(i)].policy.hold") } }
            if stages.contains(.forwarder), let credentials = connection.credentials {
                try check {
                    _ = try credentials.resolvedValue(path: "connections[\(i)].credentials.value", environment: environment)
                    resolved += 1
                }
            }
        }
        // Ingress: the console's single sign-on client secret.
        if stages.contains(.ingress), config.console.enabled, let secret = config.console.oidc?.clientSecret {
            try check {
                _ = try secret.resolve(path: "console.oidc.client_secret", environment: environment)
                resolved += 1
            }
        }
        if stages.contains(.recorder) { try check { resolved += try validateRecorder(config, environment: environment) } }
        // Inspector, Forwarder and Ingress: the detection rules and allow-list compile (with the
        // fingerprint key; without one its own problem is reported already).
        if stages.contains(where: { $0 != .recorder }), let fingerprintKey {
            try check { _ = try Runtime.makeEngine(config: config, fingerprintKey: fingerprintKey, logger: Logger(label: "sluice.config-check")) }
        }
        guard problems.isEmpty else { throw problems.count == 1 ? problems[0] as any Error : ConfigErrors(problems) }
        return resolved
    }

    /// The Recorder's chain key, recordings store and sinks; returns the secrets resolved.
    static func validateRecorder(_ config: SluiceConfig, environment: [String: String]) throws -> Int {
        var resolved = 0
        _ = try AuditChain.key(config: config, environment: environment)
        if config.recorder.chainKey != nil { resolved += 1 }
        let store = config.recorder.store
        if store.kind == .postgres, let url = store.url {
            _ = try PostgresTarget(url: try url.resolve(path: "recorder.store.url", environment: environment), path: "recorder.store.url")
            resolved += 1
            if let caFile = store.caFile { try checkReadable(caFile, key: "recorder.store.ca_file") }
        }
        for (i, sink) in config.recorder.sinks.enumerated() {
            let here = "recorder.sinks[\(i)]"
            switch sink.kind {
            case .file:
                break
            case .syslog:
                guard sink.host != nil else { throw ConfigError(path: here + ".address", message: "required for a syslog sink (host:port)") }
                guard let transport = sink.transport else {
                    throw ConfigError(path: here + ".transport", message: "required for a syslog sink (tcp, tls or udp)")
                }
                if transport == .tls {
                    for (file, key) in [(sink.certFile, "cert_file"), (sink.keyFile, "key_file")] {
                        if let file { try checkReadable(file, key: here + "." + key) }
                    }
                }
            case .hec:
                guard sink.url != nil, let token = sink.token else {
                    throw ConfigError(path: here + ".url", message: "url and token are required for a hec sink")
                }
                _ = try token.resolve(path: here + ".token", environment: environment)
                resolved += 1
            case .webhook:
                guard sink.url != nil else { throw ConfigError(path: here + ".url", message: "required for a webhook sink") }
                for (name, value) in sink.headers.sorted(by: { $0.key < $1.key }) {
                    _ = try value.resolve(path: here + ".headers." + name, environment: environment)
                    resolved += 1
                }
            }
            if let caFile = sink.caFile { try checkReadable(caFile, key: here + ".ca_file") }
        }
        return resolved
    }

    static func checkReadable(_ path: String, key: String) throws {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw ConfigError(path: key, message: "cannot read \(path)")
        }
    }

    // MARK: - The effective configuration

    /// The configuration as the stages see it, defaults filled in, as YAML; every secret written
    /// as `<redacted: REFERENCE>` (the reference, never the value).
    static func effectiveYAML(_ c: SluiceConfig) throws -> String {
        var top: [(String, Node?)] = [
            ("listen", str(c.listen)), ("admin_listen", str(c.adminListen)), ("public_url", c.publicURL.map(str)),
            ("data_dir", str(c.dataDir)), ("max_body_bytes", int(c.maxBodyBytes)), ("request_timeout", duration(c.requestTimeout)),
            ("shutdown_timeout", duration(c.shutdownTimeout)), ("max_in_flight", int(c.maxInFlight)),
            ("max_in_flight_per_identity", int(c.maxInFlightPerIdentity)), ("max_held_per_identity", int(c.maxHeldPerIdentity)),
            ("body_read_timeout", duration(c.bodyReadTimeout)), ("header_read_timeout", duration(c.headerReadTimeout)),
            ("idempotency_ttl", duration(c.idempotencyTTL)), ("holds_retention", duration(c.holdsRetention)),
        ]
        let bus = c.bus
        top.append(("bus", map([
            ("kind", str(bus.kind.rawValue)), ("brokers", bus.brokers.map(str)), ("topic_prefix", str(bus.topicPrefix)),
            ("partitions", int(bus.partitions)),
            ("librdkafka", Node(bus.librdkafka.keys.sorted().map { key in
                let value = bus.librdkafka[key] ?? ""
                return (Node(key), BusConfig.isSecretBearing(key) ? redacted(value) : str(value))
            })),
            ("sync", bool(bus.sync)), ("segment_bytes", int(bus.segmentBytes)), ("retention", duration(bus.retention)),
            ("instance_id", bus.instanceID.map(str)), ("transaction_timeout", duration(bus.transactionTimeout)),
            ("transactions", bool(bus.transactions)), ("envelopes", str(bus.envelopes.rawValue)),
            ("background_fetch_wait", duration(bus.backgroundFetchWait)),
        ])))
        top.append(("sealing", map([
            ("keys", Node(c.sealing.keys.map { map([("id", str($0.id)), ("secret", redacted($0.secret.description))]) })),
            ("fingerprint_key", redacted(c.sealing.fingerprintKey.description)),
        ])))
        let oidc = c.identities.oidc.map { o in
            map([
                ("issuer", str(o.issuer)), ("audience", str(o.audience)), ("jwks_url", str(o.jwksURL)),
                ("groups_claim", str(o.groupsClaim)), ("person_claim", str(o.personClaim)), ("leeway", duration(o.leeway)),
                ("allow_insecure_jwks", bool(o.allowInsecureJWKS)),
            ])
        }
        top.append(("identities", map([
            ("api_keys", Node(c.identities.apiKeys.map { k in
                map([("id", str(k.id)), ("sha256", str(k.sha256)), ("groups", strings(k.groups)), ("person", str(k.person))])
            })),
            ("oidc", oidc),
        ])))
        top.append(("connections", Node(c.connections.map(connection))))
        top.append(("notify", Node(c.notify.map { map([("kind", str($0.kind.rawValue)), ("url", str($0.url))]) })))
        top.append(("recorder", recorder(c.recorder, busRetention: bus.retention)))
        top.append(("detection", map([
            ("rules", Node(c.detection.rules.map { r in
                map([
                    ("id", str(r.id)), ("pattern", str(r.pattern)), ("keywords", strings(r.keywords)),
                    ("min_entropy", r.minEntropy.map { Node(String($0), Tag(.float)) }), ("class", str(r.ruleClass)),
                    ("severity", str(r.severity)),
                ])
            })),
            ("allow", Node(c.detection.allow.map { a in
                map([
                    ("rule", str(a.rule)), ("fingerprint", a.fingerprint.map(str)), ("pattern", a.pattern.map(str)),
                    ("path", a.path.map(str)), ("reason", a.reason.map(str)),
                ])
            })),
        ])))
        let t = c.telemetry
        top.append(("telemetry", map([
            ("otlp_endpoint", t.otlpEndpoint.map(str)), ("otlp_protocol", str(t.otlpProtocol.rawValue)),
            ("service_name", str(t.serviceName)), ("sample_ratio", Node(String(t.sampleRatio), Tag(.float))),
        ])))
        top.append(("console", map([
            ("enabled", bool(c.console.enabled)), ("session_ttl", duration(c.console.sessionTTL)),
            ("idle_timeout", duration(c.console.idleTimeout)),
            ("oidc", c.console.oidc.map { o in
                map([
                    ("client_id", str(o.clientID)), ("client_secret", o.clientSecret.map { redacted($0.description) }),
                    ("authorization_endpoint", o.authorizationEndpoint.map(str)), ("token_endpoint", o.tokenEndpoint.map(str)),
                    ("redirect_url", o.redirectURL.map(str)), ("scopes", Node(o.scopes.map(str))),
                    ("allow_insecure_endpoints", bool(o.allowInsecureEndpoints)),
                ])
            }),
        ])))
        return try Yams.serialize(node: map(top), width: -1)
    }

    static func connection(_ c: ConnectionConfig) -> Node {
        let p = c.policy
        let credentials = c.credentials.map { cr in
            map([("header", str(cr.header)), ("value", redactedTemplate(cr.value))])
        }
        return map([
            ("name", str(c.name)), ("upstream", str(c.upstream)), ("allow_groups", strings(c.allowGroups)),
            ("credentials", credentials), ("timeout", c.timeout.map(duration)),
            ("policy", map([
                ("on_secret", str(p.onSecret.rawValue)), ("classes", strings(p.classes)),
                ("hold", map([
                    ("methods", strings(p.hold.methods)), ("paths", strings(p.hold.paths)),
                    ("body_patterns", strings(p.hold.bodyPatterns)), ("groups", strings(p.hold.groups)),
                ])),
                ("approvers", strings(p.approvers)), ("approvals_required", int(p.approvalsRequired)),
                ("hold_wait", duration(p.holdWait)), ("hold_timeout", duration(p.holdTimeout)),
                ("scan_responses", bool(p.scanResponses)),
            ])),
        ])
    }

    static func recorder(_ r: RecorderConfig, busRetention: ConfigDuration) -> Node {
        let sinks = r.sinks.map { s -> Node in
            let address = s.host.map { host in (host.contains(":") ? "[\(host)]" : host) + ":\(s.port ?? 0)" }
            let maxBehind: Node = switch s.maxBehind {
            case .busRetention: duration(busRetention)
            case .after(let limit): duration(limit)
            case .never: str("never")
            }
            var fields: [(String, Node?)] = [("kind", str(s.kind.rawValue)), ("name", s.name.map(str)), ("schema", str(s.schema.rawValue)), ("max_behind", maxBehind)]
            switch s.kind {
            case .file:
                fields += [
                    ("path", s.path.map(str)), ("rotate_bytes", s.rotateBytes.map(int)), ("rotate_interval", s.rotateInterval.map(duration)),
                    ("keep", s.keep.map(int)),
                ]
            case .syslog:
                fields += [
                    ("address", address.map(str)), ("transport", s.transport.map { str($0.rawValue) }), ("ca_file", s.caFile.map(str)),
                    ("cert_file", s.certFile.map(str)), ("key_file", s.keyFile.map(str)), ("server_name", s.serverName.map(str)),
                    ("app_name", str(s.appName)), ("facility", int(s.facility)),
                ]
            case .hec:
                fields += [
                    ("url", s.url.map(str)), ("token", s.token.map { redacted($0.description) }), ("index", s.index.map(str)),
                    ("sourcetype", str(s.sourcetype)), ("source", str(s.source)), ("ca_file", s.caFile.map(str)),
                ]
            case .webhook:
                fields += [
                    ("url", s.url.map(str)),
                    ("headers", Node(s.headers.keys.sorted().map { (Node($0), redacted(s.headers[$0]?.description ?? "")) })),
                    ("ca_file", s.caFile.map(str)),
                ]
            }
            return map(fields)
        }
        var store: [(String, Node?)] = [("kind", str(r.store.kind.rawValue))]
        if r.store.kind == .postgres {
            store += [
                ("url", r.store.url.map { redacted($0.description) }), ("ca_file", r.store.caFile.map(str)), ("table", str(r.store.table)),
                ("max_connections", int(r.store.maxConnections)),
            ]
        }
        return map([
            ("sinks", Node(sinks)), ("store", map(store)), ("retention", duration(r.retention)),
            ("chain_key", r.chainKey.map { redacted($0.description) }), ("checkpoint_every", int(r.checkpointEvery)),
            ("checkpoint_interval", duration(r.checkpointInterval)), ("content", bool(r.content)), ("max_body_bytes", int(r.maxBodyBytes)),
        ])
    }

    // MARK: YAML nodes

    /// A mapping in the given order; absent (`nil`) values are left out.
    static func map(_ pairs: [(String, Node?)]) -> Node {
        Node(pairs.compactMap { key, value in value.map { (Node(key), $0) } })
    }

    /// Strings are always quoted, so none reads back as a number or a boolean.
    static func str(_ s: String) -> Node { Node(s, Tag(.str), .doubleQuoted) }
    static func strings(_ list: [String]) -> Node { Node(list.map(str), Tag(.seq), .flow) }
    static func int(_ n: Int) -> Node { Node(String(n), Tag(.int)) }
    static func bool(_ b: Bool) -> Node { Node(b ? "true" : "false", Tag(.bool)) }

    /// A secret: only its reference is shown.
    static func redacted(_ reference: String) -> Node { str("<redacted: \(reference)>") }

    /// A credential template (`Bearer env:TOKEN`): its reference token shown as redacted.
    static func redactedTemplate(_ value: String) -> Node {
        let words = value.split(separator: " ", omittingEmptySubsequences: false).map { word -> String in
            (try? SecretReference(parsing: String(word))) != nil ? "<redacted: \(word)>" : String(word)
        }
        return str(words.joined(separator: " "))
    }

    /// A duration in the largest unit that divides it (`30s`, `1h`, `250ms`).
    static func duration(_ d: ConfigDuration) -> Node {
        let ms = d.milliseconds
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms > 0 && ms % size == 0 {
            return str("\(ms / size)\(unit)")
        }
        return str("\(ms)ms")
    }
}
