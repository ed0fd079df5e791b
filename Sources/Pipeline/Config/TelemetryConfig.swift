import Foundation

/// `telemetry`: span export over OTLP/HTTP (docs/deploy.md, "Tracing"). Absent or without
/// `otlp_endpoint`, nothing is exported and no exporter runs: trace context still travels
/// through the stages and to the upstream.
///
/// ```yaml
/// telemetry:
///   otlp_endpoint: http://otel-collector:4318   # traces go to <endpoint>/v1/traces
///   otlp_protocol: http/protobuf                # or http/json
///   service_name: sluice                        # resource attribute service.name
///   sample_ratio: 1.0                           # of traces started here; a caller's sampled flag is followed
/// ```
///
/// Guarantees: a present `otlp_endpoint` is an `http` or `https` URL with a host and no query,
/// fragment or user info (collector credentials do not belong in a URL that is printed by
/// `sluice config check`); `sample_ratio` is within 0...1.
public struct TelemetryConfig: Decodable, Sendable {
    public enum OTLPProtocol: String, Sendable, ConfigEnum {
        case httpProtobuf = "http/protobuf"
        case httpJSON = "http/json"
    }

    public var otlpEndpoint: String?
    public var otlpProtocol: OTLPProtocol
    public var serviceName: String
    public var sampleRatio: Double

    enum CodingKeys: String, CodingKey, CaseIterable {
        case otlpEndpoint = "otlp_endpoint"
        case otlpProtocol = "otlp_protocol"
        case serviceName = "service_name"
        case sampleRatio = "sample_ratio"
    }

    public init() {
        otlpEndpoint = nil
        otlpProtocol = .httpProtobuf
        serviceName = "sluice"
        sampleRatio = 1
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        // Read like the rest of the configuration: a bad value is recorded and the next key read.
        otlpEndpoint = try c.collect(String.self, forKey: .otlpEndpoint)
        otlpProtocol = try c.collect(OTLPProtocol.self, forKey: .otlpProtocol) ?? otlpProtocol
        serviceName = try c.collect(String.self, forKey: .serviceName) ?? serviceName
        sampleRatio = try c.collect(Double.self, forKey: .sampleRatio) ?? sampleRatio
        for problem in problems() { try decoder.report(problem) }
    }

    /// What is wrong with the values read (each naming its key), in key order.
    func problems() -> [ConfigError] {
        var problems: [ConfigError] = []
        if let endpoint = otlpEndpoint {
            do { _ = try Self.tracesURL(endpoint) } catch let error as ConfigError { problems.append(error) } catch {
                problems.append(ConfigError(path: "telemetry.otlp_endpoint", message: "\(error)"))
            }
        }
        if serviceName.trimmingCharacters(in: .whitespaces).isEmpty {
            problems.append(ConfigError(path: "telemetry.service_name", message: "must not be empty"))
        }
        if !(0...1).contains(sampleRatio) {
            problems.append(ConfigError(path: "telemetry.sample_ratio", message: "\(sampleRatio) is not between 0 and 1"))
        }
        return problems
    }

    /// Where traces are sent: `otlp_endpoint` itself when its path already ends in `/v1/traces`,
    /// else `<otlp_endpoint>/v1/traces` (the collector's base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT`).
    public var tracesURL: String? { otlpEndpoint.flatMap { try? Self.tracesURL($0) } }

    static func tracesURL(_ endpoint: String) throws -> String {
        let path = "telemetry.otlp_endpoint"
        guard let url = URLComponents(string: endpoint.trimmingCharacters(in: .whitespaces)),
              let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty
        else { throw ConfigError(path: path, message: "\"\(endpoint)\" is not an http:// or https:// URL with a host") }
        guard url.user == nil, url.password == nil else {
            throw ConfigError(path: path, message: "must not carry user info (the collector's credentials do not belong in the URL)")
        }
        guard url.query == nil, url.fragment == nil else {
            throw ConfigError(path: path, message: "must not have a query or fragment")
        }
        var out = url
        if !url.path.hasSuffix("/v1/traces") {
            out.path = (url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path) + "/v1/traces"
        }
        guard let text = out.string else { throw ConfigError(path: path, message: "\"\(endpoint)\" is not a valid URL") }
        return text
    }
}
