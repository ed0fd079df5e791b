import AsyncHTTPClient
import Foundation

/// Tuning for `ForwarderService`. The defaults suit production; tests shorten them.
public struct ForwarderOptions: Sendable {
    /// The consumer group on `inspected`.
    public var group: String
    /// Messages processed at once (deliveries in flight); at least 1.
    public var maxInFlight: Int
    /// First wait after an upstream connect error; doubles per retry up to `maxBackoff`.
    public var initialBackoff: Duration
    /// Longest wait between connect retries (retries never run past the request deadline).
    public var maxBackoff: Duration
    /// Largest upstream response body accepted; a larger one fails the request (502).
    public var maxResponseBytes: Int
    /// Where `env:` credential references are resolved (once, at start).
    public var environment: [String: String]
    /// How often each upstream's reachability is probed (`UpstreamProbe`: `/readyz`,
    /// `sluice_upstream_up`), and how long one connect may take.
    public var upstreamProbeInterval: Duration = .seconds(10)
    public var upstreamProbeTimeout: Duration = .seconds(2)

    public init(
        group: String = "sluice-forwarder", maxInFlight: Int = 64, initialBackoff: Duration = .milliseconds(100),
        maxBackoff: Duration = .seconds(2), maxResponseBytes: Int = 16 << 20,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.group = group
        self.maxInFlight = max(1, maxInFlight)
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.maxResponseBytes = maxResponseBytes
        self.environment = environment
    }
}

extension ForwarderService {
    /// The `HTTPClient` configuration the Forwarder expects of the client it is given:
    /// redirects are not followed (a redirect goes back to the caller, and the injected
    /// credential never follows it to another host), connection establishment is not
    /// retried inside the client (the Forwarder retries with its own backoff, bounded by the
    /// request deadline), and responses are not decompressed (bytes pass through as sent).
    public static func recommendedHTTPClientConfiguration(connectTimeout: Duration = .seconds(2)) -> HTTPClient.Configuration {
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow
        config.decompression = .disabled
        config.connectionPool.retryConnectionEstablishment = false
        // No client spans: the stages make their own (ids and statuses only); AsyncHTTPClient's
        // would carry the upstream's URL and query, and cost a span per call even with no tracer.
        config.tracing.tracer = nil
        let ms = connectTimeout.components.seconds * 1000 + connectTimeout.components.attoseconds / 1_000_000_000_000_000
        config.timeout.connect = .milliseconds(max(1, ms))
        return config
    }
}
