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

    @Test func defaultsAreSane() throws {
        let c = try decode(Self.minimal)
        #expect(c.listen == "127.0.0.1:8080")
        #expect(c.maxBodyBytes == 1_048_576)
        #expect(c.requestTimeout.milliseconds == 30_000)
        #expect(c.bus.kind == .embedded)
        #expect(c.connections[0].policy.onSecret == .mask)
        #expect(c.connections[0].allows(groups: ["ci"]))
        #expect(!c.connections[0].allows(groups: ["other"]))
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
    ]

    @Test(arguments: bad)
    func problemsNameTheKeyPath(_ c: Bad) {
        let e = error(c.patch(Self.minimal))
        #expect(e != nil, "accepted")
        #expect(e?.path == c.path, "\(String(describing: e))")
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

    @Test(arguments: [("250ms", 250), ("30s", 30_000), ("10m", 600_000), ("1h", 3_600_000), ("2", 2_000)])
    func durations(text: String, ms: Int64) throws {
        #expect(try ConfigDuration(parsing: text).milliseconds == ms)
    }
}
