import Foundation
import Pipeline
import Testing

/// The configuration model: every problem is an error naming the key path. YAML is turned into
/// the same Decodable tree by the CLI; these tests decode JSON, which exercises the same code.
@Suite("Configuration")
struct ConfigTests {
    static let minimal = """
        {"sealing": {"keys": [{"id": "k1", "secret": "env:SEAL"}], "fingerprint_key": "env:FP"},
         "connections": [{"name": "billing", "upstream": "http://127.0.0.1:9000", "allow_groups": ["ci"],
                          "credentials": {"header": "Authorization", "value": "Bearer env:BILLING_TOKEN"}}]}
        """

    func decode(_ json: String) throws -> SluiceConfig {
        do {
            return try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))
        } catch let e as DecodingError {
            throw ConfigError(e)
        }
    }

    func error(_ json: String) -> ConfigError? {
        do {
            _ = try decode(json)
            return nil
        } catch let e as ConfigError {
            return e
        } catch {
            return ConfigError(path: "?", message: "\(error)")
        }
    }

    static func withConnection(_ connection: String) -> String {
        """
        {"sealing": {"keys": [{"id": "k1", "secret": "env:SEAL"}], "fingerprint_key": "env:FP"},
         "connections": [\(connection)]}
        """
    }

    @Test func mcpConnections() throws {
        let config = try decode(Self.withConnection("""
            {"name": "tools", "protocol": "mcp", "upstream": "http://127.0.0.1:9000/mcp", "allow_groups": ["ci"],
             "policy": {"tools": {"allow": ["read_*"], "deny": ["delete_*"], "hold": ["transfer_*"]},
                        "hold_if": {"tool": "run_sql", "argument": "query", "pattern": "(?i)drop"}}}
            """))
        let c = try #require(config.connections.first)
        #expect(c.isMCP)
        #expect(c.policy.tools.deny == ["delete_*"])
        #expect(c.policy.holdIf.map(\.pattern) == ["(?i)drop"], "one condition")
        let list = try decode(Self.withConnection("""
            {"name": "tools", "protocol": "mcp", "upstream": "http://127.0.0.1:9000/mcp", "allow_groups": ["ci"],
             "policy": {"hold_if": [{"pattern": "a"}, {"tool": "x", "pattern": "b"}]}}
            """))
        #expect(list.connections.first?.policy.holdIf.map(\.pattern) == ["a", "b"], "a list of conditions")
        #expect(try decode(Self.minimal).connections.first?.isMCP == false, "http by default")
    }

    @Test(arguments: [
        (#""policy": {"tools": {"deny": ["x"]}}"#, "policy.tools", "only to a connection with protocol: mcp"),
        (#""policy": {"hold_if": {"pattern": "x"}}"#, "policy.hold_if", "only to a connection with protocol: mcp"),
        (#""protocol": "mcp", "policy": {"scan_responses": false}"#, "policy.scan_responses", "tool results are always scanned"),
        (#""protocol": "mcp", "policy": {"hold_if": {"pattern": "("}}"#, "pattern", "invalid pattern"),
        (#""protocol": "mcp", "policy": {"tools": {"hold": [""]}}"#, "hold[0]", "must not be empty"),
        (#""protocol": "mcp", "policy": {"tools": {"block": ["x"]}}"#, "block", "unknown key"),
        (#""protocol": "grpc""#, "protocol", "is not one of http, mcp"),
    ])
    func mcpMistakes(_ fields: String, _ path: String, _ message: String) throws {
        let e = try #require(error(Self.withConnection("""
            {"name": "tools", "upstream": "http://127.0.0.1:9000/mcp", "allow_groups": ["ci"], \(fields)}
            """)), "\(fields) was accepted")
        #expect(e.path.contains(path), "\(e)")
        #expect(e.message.contains(message), "\(e)")
    }

    @Test func defaultsAreSane() throws {
        let c = try decode(Self.minimal)
        #expect(c.listen == "127.0.0.1:8080")
        #expect(c.maxBodyBytes == 1_048_576)
        #expect(c.requestTimeout.milliseconds == 30_000)
        #expect(c.bus.kind == .embedded)
        #expect(c.connections[0].policy.onSecret == .mask)
        #expect(c.connections[0].allows(groups: ["ci"]))
        #expect(!c.connections[0].allows(groups: ["other"]))
        #expect(c.adminListen == "127.0.0.1:9090")
        #expect(c.maxInFlight == 1024)
        #expect(c.maxInFlightPerIdentity == 256)
        #expect(c.bodyReadTimeout.milliseconds == 10_000)
        #expect(c.headerReadTimeout.milliseconds == 10_000)
        #expect(c.maxHeldPerIdentity == 100)
        #expect(c.bus.envelopes == .binary)
        #expect(c.bus.backgroundFetchWait.milliseconds == 100)
        #expect(try decode(Self.top(Self.minimal, "\"bus\": {\"background_fetch_wait\": \"250ms\"}")).bus.backgroundFetchWait.milliseconds == 250)
        #expect(try decode(Self.top(Self.minimal, "\"bus\": {\"envelopes\": \"json\"}")).bus.envelopes == .json)
    }

    @Test func perIdentityShareFollowsTheTotal() throws {
        let c = try decode(Self.minimal.replacingOccurrences(of: "{\"sealing\"", with: "{\"max_in_flight\": 10, \"sealing\""))
        #expect(c.maxInFlightPerIdentity == 2)
        let one = try decode(Self.minimal.replacingOccurrences(of: "{\"sealing\"", with: "{\"max_in_flight\": 2, \"sealing\""))
        #expect(one.maxInFlightPerIdentity == 1)
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var name: String
        var patch: @Sendable (String) -> String
        var path: String
        var testDescription: String { name }
    }

    static let bad: [Bad] = [
        Bad(name: "unknown top-level key", patch: { $0.replacingOccurrences(of: "{\"sealing\"", with: "{\"listn\": \"x\", \"sealing\"") }, path: "listn"),
        Bad(name: "unknown nested key", patch: { $0.replacingOccurrences(of: "\"allow_groups\"", with: "\"allow_group\"") }, path: "connections[0].allow_group"),
        Bad(name: "missing sealing", patch: { _ in "{\"connections\": []}" }, path: "sealing"),
        Bad(name: "missing upstream", patch: { $0.replacingOccurrences(of: "\"upstream\": \"http://127.0.0.1:9000\", ", with: "") }, path: "connections[0].upstream"),
        Bad(name: "literal secret", patch: { $0.replacingOccurrences(of: "env:SEAL", with: "c2VjcmV0") }, path: "sealing.keys[0].secret"),
        Bad(name: "literal credential", patch: { $0.replacingOccurrences(of: "Bearer env:BILLING_TOKEN", with: "Bearer abc123") }, path: "connections[0].credentials.value"),
        Bad(name: "bad upstream scheme", patch: { $0.replacingOccurrences(of: "http://127.0.0.1:9000", with: "ftp://x") }, path: "connections[0].upstream"),
        Bad(name: "bad duration", patch: { $0.replacingOccurrences(of: "{\"sealing\"", with: "{\"request_timeout\": \"soon\", \"sealing\"") }, path: "request_timeout"),
        Bad(name: "bad policy", patch: { $0.replacingOccurrences(of: "\"allow_groups\"", with: "\"policy\": {\"on_secret\": \"maybe\"}, \"allow_groups\"") }, path: "connections[0].policy.on_secret"),
        Bad(name: "kafka without brokers", patch: { $0.replacingOccurrences(of: "{\"sealing\"", with: "{\"bus\": {\"kind\": \"kafka\"}, \"sealing\"") }, path: "bus.brokers"),
        Bad(name: "upstream with user and password", patch: { $0.replacingOccurrences(of: "http://127.0.0.1:9000", with: "http://svc:hunter2@127.0.0.1:9000") }, path: "connections[0].upstream"),
        Bad(name: "upstream with a token as user", patch: { $0.replacingOccurrences(of: "http://127.0.0.1:9000", with: "https://ghp_token@api.example/v1") }, path: "connections[0].upstream"),
        Bad(name: "literal sasl.password", patch: { Self.top($0, "\"bus\": {\"librdkafka\": {\"sasl.password\": \"hunter2\"}}") }, path: "bus.librdkafka.sasl.password"),
        Bad(name: "literal sasl.username", patch: { Self.top($0, "\"bus\": {\"librdkafka\": {\"sasl.username\": \"svc\"}}") }, path: "bus.librdkafka.sasl.username"),
        Bad(name: "literal ssl.key.password", patch: { Self.top($0, "\"bus\": {\"librdkafka\": {\"ssl.key.password\": \"pw\"}}") }, path: "bus.librdkafka.ssl.key.password"),
        Bad(name: "literal oauthbearer config", patch: { Self.top($0, "\"bus\": {\"librdkafka\": {\"sasl.oauthbearer.config\": \"principal=x\"}}") }, path: "bus.librdkafka.sasl.oauthbearer.config"),
        Bad(name: "literal client secret", patch: { Self.top($0, "\"bus\": {\"librdkafka\": {\"sasl.oauthbearer.client.secret\": \"s\"}}") }, path: "bus.librdkafka.sasl.oauthbearer.client.secret"),
        Bad(name: "literal ssl.key.pem", patch: { Self.top($0, "\"bus\": {\"librdkafka\": {\"ssl.key.pem\": \"-----BEGIN\"}}") }, path: "bus.librdkafka.ssl.key.pem"),
        Bad(name: "http jwks_url", patch: { Self.top($0, "\"identities\": {\"oidc\": {\"issuer\": \"i\", \"audience\": \"a\", \"jwks_url\": \"http://idp/jwks\"}}") }, path: "identities.oidc.jwks_url"),
        Bad(name: "jwks_url not a URL", patch: { Self.top($0, "\"identities\": {\"oidc\": {\"issuer\": \"i\", \"audience\": \"a\", \"jwks_url\": \"idp\", \"allow_insecure_jwks\": true}}") }, path: "identities.oidc.jwks_url"),
        Bad(name: "per-identity share over the total", patch: { Self.top($0, "\"max_in_flight\": 4, \"max_in_flight_per_identity\": 5") }, path: "max_in_flight_per_identity"),
        Bad(name: "zero max_in_flight", patch: { Self.top($0, "\"max_in_flight\": 0") }, path: "max_in_flight"),
        Bad(name: "zero body_read_timeout", patch: { Self.top($0, "\"body_read_timeout\": \"0s\"") }, path: "body_read_timeout"),
        Bad(name: "zero header_read_timeout", patch: { Self.top($0, "\"header_read_timeout\": 0") }, path: "header_read_timeout"),
        Bad(name: "zero max_held_per_identity", patch: { Self.top($0, "\"max_held_per_identity\": 0") }, path: "max_held_per_identity"),
        Bad(name: "unknown envelope format", patch: { Self.top($0, "\"bus\": {\"envelopes\": \"protobuf\"}") }, path: "bus.envelopes"),
        Bad(name: "admin_listen on the caller port", patch: { Self.top($0, "\"listen\": \"127.0.0.1:8080\", \"admin_listen\": \"127.0.0.1:8080\"") }, path: "admin_listen"),
        Bad(name: "syslog without address", patch: { Self.sink($0, "\"kind\": \"syslog\", \"transport\": \"tcp\"") }, path: "recorder.sinks[0].address"),
        Bad(name: "syslog address without port", patch: { Self.sink($0, "\"kind\": \"syslog\", \"address\": \"siem.example\", \"transport\": \"tcp\"") }, path: "recorder.sinks[0].address"),
        Bad(name: "syslog port out of range", patch: { Self.sink($0, "\"kind\": \"syslog\", \"address\": \"siem.example:70000\", \"transport\": \"tcp\"") }, path: "recorder.sinks[0].address"),
        Bad(name: "syslog without transport", patch: { Self.sink($0, "\"kind\": \"syslog\", \"address\": \"siem.example:514\"") }, path: "recorder.sinks[0].transport"),
        Bad(name: "syslog unknown transport", patch: { Self.sink($0, "\"kind\": \"syslog\", \"address\": \"siem.example:514\", \"transport\": \"relp\"") }, path: "recorder.sinks[0].transport"),
        Bad(name: "syslog ca_file without tls", patch: { Self.sink($0, "\"kind\": \"syslog\", \"address\": \"siem.example:514\", \"transport\": \"tcp\", \"ca_file\": \"/ca.pem\"") }, path: "recorder.sinks[0].ca_file"),
        Bad(name: "syslog cert_file without key_file", patch: { Self.sink($0, "\"kind\": \"syslog\", \"address\": \"siem.example:6514\", \"transport\": \"tls\", \"cert_file\": \"/c.pem\"") }, path: "recorder.sinks[0].key_file"),
        Bad(name: "syslog unknown facility", patch: { Self.sink($0, "\"kind\": \"syslog\", \"address\": \"siem.example:514\", \"transport\": \"udp\", \"facility\": \"local9\"") }, path: "recorder.sinks[0].facility"),
        Bad(name: "syslog facility number out of range", patch: { Self.sink($0, "\"kind\": \"syslog\", \"address\": \"siem.example:514\", \"transport\": \"udp\", \"facility\": 24") }, path: "recorder.sinks[0].facility"),
        Bad(name: "syslog app_name with a space", patch: { Self.sink($0, "\"kind\": \"syslog\", \"address\": \"siem.example:514\", \"transport\": \"udp\", \"app_name\": \"my app\"") }, path: "recorder.sinks[0].app_name"),
        Bad(name: "syslog with a file sink's path", patch: { Self.sink($0, "\"kind\": \"syslog\", \"address\": \"siem.example:514\", \"transport\": \"udp\", \"path\": \"/x\"") }, path: "recorder.sinks[0].path"),
        Bad(name: "file sink with a syslog field", patch: { Self.sink($0, "\"kind\": \"file\", \"path\": \"/x\", \"transport\": \"tcp\"") }, path: "recorder.sinks[0].transport"),
        Bad(name: "hec without url", patch: { Self.sink($0, #""kind": "hec", "token": "env:T""#) }, path: "recorder.sinks[0].url"),
        Bad(name: "hec without token", patch: { Self.sink($0, #""kind": "hec", "url": "https://splunk.example:8088""#) }, path: "recorder.sinks[0].token"),
        Bad(name: "hec token in clear", patch: { Self.sink($0, #""kind": "hec", "url": "https://splunk.example:8088", "token": "abc""#) }, path: "recorder.sinks[0].token"),
        Bad(name: "hec over http to another host", patch: { Self.sink($0, #""kind": "hec", "url": "http://splunk.example:8088", "token": "env:T""#) }, path: "recorder.sinks[0].url"),
        Bad(name: "webhook url with user information", patch: { Self.sink($0, #""kind": "webhook", "url": "https://u:p@collector.example/in""#) }, path: "recorder.sinks[0].url"),
        Bad(name: "webhook header value in clear", patch: { Self.sink($0, #""kind": "webhook", "url": "https://collector.example/in", "headers": {"X-Key": "abc"}"#) }, path: "recorder.sinks[0].headers.X-Key"),
        Bad(name: "webhook with a hec field", patch: { Self.sink($0, #""kind": "webhook", "url": "https://collector.example/in", "index": "main""#) }, path: "recorder.sinks[0].index"),
        Bad(name: "unknown schema", patch: { Self.sink($0, #""kind": "file", "path": "/x", "schema": "ecs""#) }, path: "recorder.sinks[0].schema"),
        Bad(name: "file rotate_bytes zero", patch: { Self.sink($0, #""kind": "file", "path": "/x", "rotate_bytes": 0"#) }, path: "recorder.sinks[0].rotate_bytes"),
        Bad(name: "file rotate_bytes not a number", patch: { Self.sink($0, #""kind": "file", "path": "/x", "rotate_bytes": "big""#) }, path: "recorder.sinks[0].rotate_bytes"),
        Bad(name: "file rotate_interval not a duration", patch: { Self.sink($0, #""kind": "file", "path": "/x", "rotate_interval": "daily""#) }, path: "recorder.sinks[0].rotate_interval"),
        Bad(name: "file rotate_interval zero", patch: { Self.sink($0, #""kind": "file", "path": "/x", "rotate_interval": "0s""#) }, path: "recorder.sinks[0].rotate_interval"),
        Bad(name: "file keep zero", patch: { Self.sink($0, #""kind": "file", "path": "/x", "rotate_bytes": 100, "keep": 0"#) }, path: "recorder.sinks[0].keep"),
        Bad(name: "file keep without rotation", patch: { Self.sink($0, #""kind": "file", "path": "/x", "keep": 3"#) }, path: "recorder.sinks[0].keep"),
        Bad(name: "rotate_bytes on a webhook", patch: { Self.sink($0, #""kind": "webhook", "url": "https://collector.example/in", "rotate_bytes": 100"#) }, path: "recorder.sinks[0].rotate_bytes"),
        Bad(name: "hec empty ca_file", patch: { Self.sink($0, #""kind": "hec", "url": "https://splunk.example", "token": "env:T", "ca_file": """#) }, path: "recorder.sinks[0].ca_file"),
        Bad(name: "background_fetch_wait zero", patch: { Self.top($0, #""bus": {"background_fetch_wait": "0s"}"#) }, path: "bus.background_fetch_wait"),
        Bad(name: "background_fetch_wait over 10s", patch: { Self.top($0, #""bus": {"background_fetch_wait": "11s"}"#) }, path: "bus.background_fetch_wait"),
        Bad(name: "ca_file on a file sink", patch: { Self.sink($0, #""kind": "file", "path": "/x", "ca_file": "/ca.pem""#) }, path: "recorder.sinks[0].ca_file"),
    ]

    /// `json` with one `recorder.sinks` entry made of `members`.
    static func sink(_ json: String, _ members: String) -> String {
        top(json, "\"recorder\": {\"sinks\": [{\(members)}]}")
    }

    /// `json` with `members` added at the top level.
    static func top(_ json: String, _ members: String) -> String {
        json.replacingOccurrences(of: "{\"sealing\"", with: "{\(members), \"sealing\"")
    }

    @Test func syslogSinkFieldsAndDefaults() throws {
        let tls = try decode(Self.sink(Self.minimal, """
            "kind": "syslog", "address": "siem.example:6514", "transport": "tls", "ca_file": "/etc/sluice/siem-ca.pem",
            "cert_file": "/c.pem", "key_file": "/k.pem", "server_name": "siem.internal", "app_name": "gw-1", "facility": "AUTH"
            """)).recorder.sinks[0]
        #expect(tls.host == "siem.example" && tls.port == 6514 && tls.transport == .tls)
        #expect(tls.caFile == "/etc/sluice/siem-ca.pem" && tls.certFile == "/c.pem" && tls.keyFile == "/k.pem")
        #expect(tls.serverName == "siem.internal" && tls.appName == "gw-1" && tls.facility == 4)
        let udp = try decode(Self.sink(Self.minimal, "\"kind\": \"syslog\", \"address\": \"[::1]:514\", \"transport\": \"udp\", \"facility\": 23")).recorder.sinks[0]
        #expect(udp.host == "::1" && udp.port == 514 && udp.transport == .udp)
        #expect(udp.appName == "sluice" && udp.facility == 23)
        let tcp = try decode(Self.sink(Self.minimal, "\"kind\": \"syslog\", \"address\": \"10.0.0.5:514\", \"transport\": \"tcp\"")).recorder.sinks[0]
        #expect(tcp.facility == 16)  // local0
    }

    @Test func fileSinkRotationAndHTTPCAFile() throws {
        let rotated = try decode(Self.sink(Self.minimal, #""kind": "file", "path": "/x", "rotate_bytes": 1048576, "rotate_interval": "1d", "keep": 7"#))
            .recorder.sinks[0]
        #expect(rotated.rotateBytes == 1_048_576 && rotated.rotateInterval?.milliseconds == 86_400_000 && rotated.keep == 7)
        let plain = try decode(Self.sink(Self.minimal, #""kind": "file", "path": "/x""#)).recorder.sinks[0]
        #expect(plain.rotateBytes == nil && plain.rotateInterval == nil && plain.keep == nil)
        let hec = try decode(Self.sink(Self.minimal, #""kind": "hec", "url": "https://splunk.example", "token": "env:T", "ca_file": "/ca.pem""#))
            .recorder.sinks[0]
        #expect(hec.caFile == "/ca.pem")
    }

    @Test(arguments: bad)
    func problemsNameTheKeyPath(_ c: Bad) {
        let e = error(c.patch(Self.minimal))
        #expect(e != nil, "accepted")
        #expect(e?.path == c.path, "\(String(describing: e))")
        // A refused value is never echoed: it may be a secret.
        for secret in ["hunter2", "ghp_token", "principal=x", "-----BEGIN"] {
            #expect(!(e?.description.contains(secret) ?? false), "\(String(describing: e)) echoes a value")
        }
    }

    @Test func secretBearingLibrdkafkaValuesAreResolvedAtStartUp() throws {
        let c = try decode(Self.top(Self.minimal, """
            "bus": {"librdkafka": {"sasl.username": "env:KU", "sasl.password": "file:/nonexistent/kp", "linger.ms": "1", "security.protocol": "SASL_SSL"}}
            """))
        #expect(BusConfig.isSecretBearing("SASL.PASSWORD") && BusConfig.isSecretBearing("ssl.keystore.password"))
        #expect(!BusConfig.isSecretBearing("security.protocol") && !BusConfig.isSecretBearing("sasl.mechanism"))
        do {
            _ = try c.bus.resolvedLibrdkafka(environment: ["KU": "svc"])
            Issue.record("resolved an unreadable file reference")
        } catch let e as ConfigError {
            #expect(e.path == "bus.librdkafka.sasl.password")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "pa55word\n".write(to: dir.appendingPathComponent("kp"), atomically: true, encoding: .utf8)
        let c2 = try decode(Self.top(Self.minimal, """
            "bus": {"librdkafka": {"sasl.username": "env:KU", "sasl.password": "file:\(dir.path)/kp", "linger.ms": "1"}}
            """))
        let resolved = try c2.bus.resolvedLibrdkafka(environment: ["KU": "svc"])
        #expect(resolved == ["sasl.username": "svc", "sasl.password": "pa55word", "linger.ms": "1"])
    }

    @Test func httpJWKSOnlyWhenAllowed() throws {
        let oidc = "\"identities\": {\"oidc\": {\"issuer\": \"i\", \"audience\": \"a\", \"jwks_url\": \"http://idp/jwks\", \"allow_insecure_jwks\": true}}"
        let c = try decode(Self.top(Self.minimal, oidc))
        #expect(c.identities.oidc?.allowInsecureJWKS == true)
        let https = try decode(Self.top(Self.minimal, "\"identities\": {\"oidc\": {\"issuer\": \"i\", \"audience\": \"a\", \"jwks_url\": \"https://idp/jwks\"}}"))
        #expect(https.identities.oidc?.allowInsecureJWKS == false)
    }

    @Test func unreadableReferencesNameTheReferenceNotAValue() throws {
        let c = try decode(Self.minimal)
        do {
            _ = try c.sealing.makeSealer(environment: [:])
            Issue.record("resolved a missing variable")
        } catch let e as ConfigError {
            #expect(e.path == "sealing.keys[0].secret")
            #expect(e.message.contains("SEAL"))
        }
        let key = Data(repeating: 1, count: 32).base64EncodedString()
        #expect((try? c.sealing.makeSealer(environment: ["SEAL": key])) != nil)
        do {
            _ = try c.connections[0].credentials!.resolvedValue(path: "connections[0].credentials.value", environment: [:])
            Issue.record("resolved a missing credential")
        } catch let e as ConfigError {
            #expect(e.message.contains("BILLING_TOKEN"))
        }
        #expect(try c.connections[0].credentials!.resolvedValue(path: "x", environment: ["BILLING_TOKEN": "t0k"]) == "Bearer t0k")
    }

    @Test(arguments: [("250ms", 250), ("30s", 30_000), ("10m", 600_000), ("1h", 3_600_000), ("2", 2_000), ("36500d", 3_153_600_000_000)])
    func durations(text: String, ms: Int64) throws {
        #expect(try ConfigDuration(parsing: text).milliseconds == ms)
    }

    /// Values a user can write that must be refused with a message, never crash the process
    /// (`inf` and huge numbers trapped converting to Int64).
    @Test(arguments: ["inf", "infs", "nan", "-1s", "1e30d", "36501d", "1e300", "s", "ten seconds"])
    func badDurationsAreRefused(text: String) {
        #expect(throws: ConfigError.self) { try ConfigDuration(parsing: text) }
    }

    // MARK: Issue 17: every mistake in one run, in words a user reads

    /// Every problem `json` has, as `sluice config check` gathers them (JSON has no positions:
    /// the loader adds `FILE:LINE:COL` and sorts; the CLI tests check that).
    func problems(_ json: String) -> [ConfigError] {
        do {
            _ = try ConfigErrorCollector.decode { userInfo in
                let decoder = JSONDecoder()
                decoder.userInfo = userInfo
                return try decoder.decode(SluiceConfig.self, from: Data(json.utf8))
            }
            return []
        } catch {
            return error.errors
        }
    }

    struct Mistake: Sendable, CustomTestStringConvertible {
        var name: String
        var patch: @Sendable (String) -> String
        /// `path: message` of each problem, in the order found.
        var expected: [String]
        var testDescription: String { name }
    }

    static let mistakes: [Mistake] = [
        Mistake(name: "an enum names its allowed values",
                patch: { $0.replacingOccurrences(of: "\"allow_groups\"", with: "\"policy\": {\"on_secret\": \"warn\"}, \"allow_groups\"") },
                expected: ["connections[0].policy.on_secret: \"warn\" is not one of mask, block, hold"]),
        Mistake(name: "a custom rule's class and severity name their allowed values",
                patch: { Self.top($0, #""detection": {"rules": [{"id": "x", "pattern": "x-[0-9]+", "class": "secret", "severity": "severe"}]}"#) },
                expected: [
                    "detection.rules[0].class: \"secret\" is not one of credential, pii",
                    "detection.rules[0].severity: \"severe\" is not one of low, medium, high, critical",
                ]),
        Mistake(name: "another enum: the bus kind",
                patch: { Self.top($0, #""bus": {"kind": "nats"}"#) }, expected: ["bus.kind: \"nats\" is not one of embedded, kafka"]),
        Mistake(name: "a number expected, a word found",
                patch: { Self.top($0, #""max_in_flight": "lots""#) }, expected: ["max_in_flight: expected a number, found \"lots\""]),
        Mistake(name: "a list expected, a mapping found",
                patch: { Self.top($0, #""notify": {"kind": "webhook"}"#) }, expected: ["notify: expected a list, found a mapping"]),
        Mistake(name: "a mapping expected, a string found (not echoed: it may be a credential)",
                patch: { $0.replacingOccurrences(of: #"{"header": "Authorization", "value": "Bearer env:BILLING_TOKEN"}"#, with: #""Bearer hunter2""#) },
                expected: ["connections[0].credentials: expected a mapping, found a string"]),
        Mistake(name: "true or false expected",
                patch: { Self.top($0, #""recorder": {"content": "maybe"}"#) }, expected: ["recorder.content: expected true or false, found \"maybe\""]),
        Mistake(name: "a size without a known unit",
                patch: { Self.top($0, #""max_body_bytes": "1mb""#) },
                expected: ["max_body_bytes: \"1mb\" is not a size (\(Self.sizeHelp))"]),
        Mistake(name: "three mistakes: three problems",
                patch: { Self.top($0, #""max_in_flight": "lots", "recorder": {"max_body_bytes": "1.5B"}, "bus": {"kind": "nats"}"#) },
                expected: [
                    "bus.kind: \"nats\" is not one of embedded, kafka", "recorder.max_body_bytes: \"1.5B\" is not a whole number of bytes",
                    "max_in_flight: expected a number, found \"lots\"",
                ]),
        Mistake(name: "every unknown key, and the checks after them",
                patch: { Self.top($0, #""listn": "x", "lissen": "y", "max_in_flight": 0"#) },
                expected: [
                    "lissen: unknown key", "listn: unknown key", "max_in_flight: must be positive",
                    "max_in_flight_per_identity: must be at most max_in_flight (0)",
                ]),
        Mistake(name: "a bad list element does not hide the next one",
                patch: { Self.top($0, #""recorder": {"sinks": [{"kind": "ftp"}, {"kind": "file"}]}"#) },
                expected: ["recorder.sinks[0].kind: \"ftp\" is not one of file, syslog, hec, webhook", "recorder.sinks[1].path: required for a file sink"]),
        Mistake(name: "two checks of one section", patch: { Self.top($0, #""bus": {"partitions": 0, "segment_bytes": "1KiB"}"#) },
                expected: ["bus.segment_bytes: must be at least 4096 bytes (4KiB)", "bus.partitions: must be positive"]),
        Mistake(name: "a missing required key after a bad one",
                patch: { _ in #"{"max_in_flight": "lots"}"# },
                expected: ["max_in_flight: expected a number, found \"lots\"", "sealing: required key is missing"]),
    ]

    static let sizeHelp = "a whole number of bytes, or a number with a unit: B, KB, MB, GB (1000), KiB, MiB, GiB (1024); e.g. 65536, 64KiB, 1MiB"

    @Test(arguments: mistakes)
    func everyMistakeInOneRun(_ m: Mistake) {
        let found = problems(m.patch(Self.minimal))
        #expect(found.count == m.expected.count, "\(found)")
        for (problem, expected) in zip(found, m.expected) {
            #expect("\(problem.path): \(problem.message)".hasPrefix(expected), "\(problem)")
            #expect(!problem.message.contains("Int") && !problem.message.contains("DecodingError") && !problem.message.contains("hunter2"))
        }
    }

    @Test func aValidFileHasNoProblemsAndDecodesTheSame() throws {
        #expect(problems(Self.minimal).isEmpty)
        let collected = try ConfigErrorCollector.decode { userInfo in
            let decoder = JSONDecoder()
            decoder.userInfo = userInfo
            return try decoder.decode(SluiceConfig.self, from: Data(Self.minimal.utf8))
        }
        #expect(collected.connections.map(\.name) == ["billing"] && collected.maxBodyBytes == 1_048_576)
    }

    @Test(arguments: [
        ("0", 0), ("65536", 65_536), (" 1024 ", 1024), ("12B", 12), ("64KiB", 65_536), ("1MiB", 1_048_576), ("2GiB", 2_147_483_648),
        ("64KB", 64_000), ("1MB", 1_000_000), ("3GB", 3_000_000_000), ("1.5KiB", 1536), ("1.5MB", 1_500_000), ("0.5KiB", 512),
        ("2.000B", 2), ("1 MiB", 1_048_576), ("8589934591GiB", 9_223_372_035_781_033_984),
    ])
    func sizes(text: String, bytes: Int) throws {
        #expect(try ConfigSize(parsing: text).bytes == bytes)
    }

    @Test(arguments: [
        ("-1", "must not be negative"), ("-64KiB", "must not be negative"), ("1.5B", "is not a whole number of bytes"),
        ("0.3KiB", "is not a whole number of bytes"), ("1.0000001KB", "is not a whole number of bytes"),
        ("9223372036854775808", "is too large"), ("8589934592GiB", "is too large"), ("99999999999999999999GB", "is too large"),
        ("1mb", "is not a size"), ("1 TB", "is not a size"), ("MiB", "is not a size"), ("1e6", "is not a size"), ("", "is not a size"),
        (".5KiB", "is not a size"), ("1..5KiB", "is not a size"), ("0x10", "is not a size"),
    ])
    func badSizes(text: String, message: String) {
        #expect(throws: ConfigError.self) { try ConfigSize(parsing: text) }
        do { _ = try ConfigSize(parsing: text) } catch let e as ConfigError { #expect(e.message.contains(message), "\(e)") } catch {}
    }

    @Test(arguments: [
        (#""max_body_bytes": "64KiB""#, 65_536),
        (#""bus": {"segment_bytes": "1MiB"}"#, 1_048_576),
        (#""recorder": {"max_body_bytes": "1KB"}"#, 1000),
        (#""recorder": {"sinks": [{"kind": "file", "path": "/x", "rotate_bytes": "10MB"}]}"#, 10_000_000),
        (#""max_body_bytes": 2048"#, 2048),
    ])
    func everyByteSizeKeyTakesUnits(members: String, bytes: Int) throws {
        let c = try decode(Self.top(Self.minimal, members))
        let sizes = [c.maxBodyBytes, c.bus.segmentBytes, c.recorder.maxBodyBytes, c.recorder.sinks.first?.rotateBytes]
        let defaults = [1_048_576, BusConfig.defaultSegmentBytes, 65_536, nil]
        // The key given has the size; every other byte-size key keeps its default.
        #expect(zip(sizes, defaults).filter { $0.0 != $0.1 }.map { $0.0 } == [bytes])
    }

    @Test func aSizeEncodesAsItsBytesWhichDecodeToTheSameSize() throws {
        let size = try ConfigSize(parsing: "1.5MiB")
        let json = try JSONEncoder().encode(size)
        #expect(String(decoding: json, as: UTF8.self) == "1572864")
        #expect(try JSONDecoder().decode(ConfigSize.self, from: json) == size)
    }

    @Test(arguments: [
        // (line, column) of each error in the order found → the order printed.
        ([(3, 1), (1, 5), (2, 9)], [1, 2, 0]),
        ([(2, 1), nil, (1, 1)], [2, 0, 1]),
        ([(4, 7), (4, 2), (4, 7)], [1, 0, 2]),
    ] as [([(Int, Int)?], [Int])])
    func problemsArePrintedInFileOrder(places: [(Int, Int)?], order: [Int]) {
        let errors = ConfigErrors(places.enumerated().map { i, place in
            ConfigError(path: "k\(i)", message: "m", location: place.map { ConfigLocation(file: "f.yaml", line: $0.0, column: $0.1) })
        })
        #expect(errors.inFileOrder().errors.map(\.path) == order.map { "k\($0)" })
        let located = ConfigErrors([ConfigError(path: "a.b", message: "is wrong")]).located { _ in ConfigLocation(file: "f.yaml", line: 3, column: 14) }
        #expect(located.description == "f.yaml:3:14: a.b: is wrong")
        #expect(ConfigError(path: "", message: "invalid YAML: x", location: ConfigLocation(file: "f.yaml", line: 1, column: 2)).description == "f.yaml:1:2: invalid YAML: x")
        #expect(ConfigError(path: "a", message: "b").description == "config a: b")
    }
}
