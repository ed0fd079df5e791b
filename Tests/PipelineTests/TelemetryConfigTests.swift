import Foundation
import Pipeline
import Testing

/// `telemetry`: where spans go, and the mistakes refused at start-up.
@Suite("Telemetry configuration")
struct TelemetryConfigTests {
    /// The section as the configuration file holds it: under `telemetry` (so errors name it).
    struct Section: Decodable { let telemetry: TelemetryConfig }

    static func decode(_ json: String) throws -> TelemetryConfig {
        try JSONDecoder().decode(Section.self, from: Data(#"{"telemetry": \#(json)}"#.utf8)).telemetry
    }

    /// (otlp_endpoint, the traces URL it gives)
    static let endpoints: [(String, String)] = [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example.internal", "https://otel.example.internal/v1/traces"),
        ("http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318/v1/traces"),
        ("http://gateway:8080/otlp", "http://gateway:8080/otlp/v1/traces"),
        ("http://[::1]:4318", "http://[::1]:4318/v1/traces"),
    ]

    @Test("an endpoint is the collector's base URL; traces go to its /v1/traces", arguments: endpoints)
    func tracesURL(endpoint: String, expected: String) throws {
        let config = try Self.decode(#"{"otlp_endpoint": "\#(endpoint)"}"#)
        #expect(config.tracesURL == expected)
        #expect(config.otlpProtocol == .httpProtobuf && config.serviceName == "sluice" && config.sampleRatio == 1)
    }

    @Test("absent: nothing is exported")
    func absent() throws {
        let config = try Self.decode("{}")
        #expect(config.otlpEndpoint == nil && config.tracesURL == nil)
    }

    /// (the section, the key path the error names, a word of its message)
    static let mistakes: [(String, String, String)] = [
        (#"{"otlp_endpoint": "collector:4318"}"#, "telemetry.otlp_endpoint", "http"),
        (#"{"otlp_endpoint": "ftp://collector"}"#, "telemetry.otlp_endpoint", "http"),
        (#"{"otlp_endpoint": "http://"}"#, "telemetry.otlp_endpoint", "host"),
        (#"{"otlp_endpoint": "http://user:pw@collector:4318"}"#, "telemetry.otlp_endpoint", "user info"),
        (#"{"otlp_endpoint": "http://collector:4318/?token=abc"}"#, "telemetry.otlp_endpoint", "query"),
        (#"{"otlp_endpoint": "http://c:4318", "otlp_protocol": "grpc"}"#, "telemetry.otlp_protocol", "http/protobuf, http/json"),
        (#"{"otlp_endpoint": "http://c:4318", "sample_ratio": 1.5}"#, "telemetry.sample_ratio", "between 0 and 1"),
        (#"{"otlp_endpoint": "http://c:4318", "sample_ratio": -0.1}"#, "telemetry.sample_ratio", "between 0 and 1"),
        (#"{"service_name": " "}"#, "telemetry.service_name", "empty"),
        (#"{"otlp_endpiont": "http://c:4318"}"#, "otlp_endpiont", "unknown key"),
    ]

    @Test("mistakes are refused, naming the key", arguments: mistakes)
    func refused(section: String, path: String, word: String) {
        do {
            _ = try Self.decode(section)
            Issue.record("accepted: \(section)")
        } catch let error as ConfigError {
            #expect(error.path.hasSuffix(path), "\(error)")
            #expect(error.message.contains(word), "\(error)")
        } catch {
            Issue.record("not a ConfigError: \(error)")
        }
    }
}
