import AsyncHTTPClient
import Foundation
import Metrics
import NIOCore
import NIOHTTP1
import NIOSSL
import Pipeline

/// An audit sink that POSTs batches of events over HTTP(S): Splunk's HTTP Event Collector
/// (`kind: hec`) or a webhook (`kind: webhook`).
///
/// Guarantees:
/// - One request carries many events, in order; a batch larger than `maxRequestBytes` is sent as
///   several requests, in order. `write(batch:lines:)` returns only after every request of the
///   batch was answered 2xx; anything else (a connection error, a timeout, a non-2xx answer)
///   throws, naming the sink and the status, and the Recorder sends the whole batch again
///   (at-least-once: a receiver may see an event twice and de-duplicates by `event_id`).
/// - Each event is the Recorder's line, byte for byte (the event's own fields, and the chain
///   fields when the audit chain is on), inside the receiver's envelope: nothing else of the
///   request is sent.
/// - Header values come from configuration (secret references for credentials) and are never
///   logged; errors carry at most 200 bytes of the receiver's answer, with every configured
///   header value (and each 8+ character word of one, e.g. the token of `Splunk <token>`)
///   replaced by `[redacted]`: a receiver that echoes the request cannot put a credential into
///   a log line or the `sink_failed` audit event. The label (in logs, errors
///   and metric labels) is ``label(kind:url:)``: no query string, no user information.
/// - With `tlsConfiguration`, `https` requests trust what it trusts (a configured `ca_file`)
///   instead of the system's roots.
/// - Counted per sink, as the syslog sink is: `sluice_sink_events_total{sink}` (events whose
///   batch was answered 2xx) and `sluice_sink_failures_total{sink}` (batch writes that failed).
public struct HTTPBatchSink: AuditSink {
    public enum Format: Sendable, Equatable {
        /// Splunk HEC: one `{"time":…,"host":…,"source":…,"sourcetype":…,"index":…,"event":<line>}`
        /// object per event, newline-separated, POSTed to `…/services/collector/event`.
        case hec(index: String?, sourcetype: String, source: String, host: String)
        /// A JSON array of the event lines.
        case jsonArray
    }

    public let label: String
    let url: String
    let headers: HTTPHeaders
    let format: Format
    let client: HTTPClient
    let timeout: Duration
    let maxRequestBytes: Int
    let tlsConfiguration: TLSConfiguration?
    private let sentEvents: Counter
    private let failedWrites: Counter
    /// What is cut from a receiver's answer before it goes into an error (see the guarantees).
    let secrets: [String]

    /// - Parameters:
    ///   - url: where to POST (for HEC the collector's base URL or its `/services/collector/event` URL).
    ///   - headers: sent with every request (`Authorization: Splunk <token>` for HEC).
    ///   - client: `HTTPClient.shared` by default.
    ///   - tlsConfiguration: set on every request (a private CA's trust roots); `nil`: the client's.
    public init(
        label: String, url: String, headers: [(String, String)], format: Format, client: HTTPClient = .shared,
        timeout: Duration = .seconds(10), maxRequestBytes: Int = 1 << 20, tlsConfiguration: TLSConfiguration? = nil,
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.label = label
        self.url = Self.endpoint(url, format: format)
        var h = HTTPHeaders()
        h.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers { h.replaceOrAdd(name: name, value: value) }
        self.headers = h
        secrets = Self.secrets(in: headers.map(\.1))
        self.format = format
        self.client = client
        self.timeout = timeout
        self.maxRequestBytes = maxRequestBytes
        self.tlsConfiguration = tlsConfiguration
        let factory = metricsFactory ?? MetricsSystem.factory
        sentEvents = Counter(label: "sluice_sink_events_total", dimensions: [("sink", label)], factory: factory)
        failedWrites = Counter(label: "sluice_sink_failures_total", dimensions: [("sink", label)], factory: factory)
    }

    /// The sink's label, `<kind>:<scheme>://<host>[:<port>]<path>`: the URL without its query,
    /// fragment and user information (a token in `?token=…` or `user:pass@` never reaches a log
    /// line or a metric label). A text that is not a URL gives `<kind>:(unparsable url)`.
    public static func label(kind: String, url: String) -> String {
        guard let c = URLComponents(string: url), let scheme = c.scheme, let host = c.host, !host.isEmpty else {
            return "\(kind):(unparsable url)"
        }
        var out = "\(kind):\(scheme.lowercased())://"
        out += host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        if let port = c.port { out += ":\(port)" }
        out += c.percentEncodedPath
        return out
    }

    /// HEC's event endpoint below a base URL given without a path.
    static func endpoint(_ url: String, format: Format) -> String {
        guard case .hec = format else { return url }
        var u = url
        while u.hasSuffix("/") { u.removeLast() }
        if u.hasSuffix("/services/collector/event") || u.hasSuffix("/services/collector") { return u }
        return u + "/services/collector/event"
    }

    public func write(_ event: AuditEvent) async throws {
        try await write(batch: [event], lines: [AuditEventLine.encode(event)])
    }

    public func write(_ event: AuditEvent, line: [UInt8]) async throws {
        try await write(batch: [event], lines: [line])
    }

    public func write(batch events: [AuditEvent], lines: [[UInt8]]) async throws {
        do {
            for body in bodies(events: events, lines: lines) {
                try await post(body)
            }
        } catch {
            failedWrites.increment()
            throw error
        }
        sentEvents.increment(by: Int64(events.count))
    }

    /// The request bodies of a batch, in order, each at most `maxRequestBytes` (a single event
    /// larger than that goes alone).
    func bodies(events: [AuditEvent], lines: [[UInt8]]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var current: [UInt8] = []
        var count = 0
        func close() {
            guard count > 0 else { return }
            if case .jsonArray = format { current.append(UInt8(ascii: "]")) }
            out.append(current)
            current = []
            count = 0
        }
        // A line may hold the chain's own records around the event's (AuditChain.records): each
        // is an item of its own, in order.
        for (event, line) in zip(events, lines) {
            for record in AuditChain.records(of: line) {
                let item = envelope(event, line: record.bytes)
                if count > 0, current.count + item.count + 2 > maxRequestBytes { close() }
                switch format {
                case .jsonArray: current.append(count == 0 ? UInt8(ascii: "[") : UInt8(ascii: ","))
                case .hec: if count > 0 { current.append(UInt8(ascii: "\n")) }
                }
                current.append(contentsOf: item)
                count += 1
            }
        }
        close()
        return out
    }

    /// One event inside the receiver's envelope.
    func envelope(_ event: AuditEvent, line: ArraySlice<UInt8>) -> [UInt8] {
        switch format {
        case .jsonArray:
            return Array(line)
        case .hec(let index, let sourcetype, let source, let host):
            let seconds = Double(event.timeMillis) / 1000
            var head = "{\"time\":\(String(format: "%.3f", seconds)),\"host\":\(Self.jsonString(host)),"
            head += "\"source\":\(Self.jsonString(source)),\"sourcetype\":\(Self.jsonString(sourcetype)),"
            if let index { head += "\"index\":\(Self.jsonString(index)),\"" } else { head += "\"" }
            head += "event\":"
            var out = Array(head.utf8)
            out.append(contentsOf: line)
            out.append(UInt8(ascii: "}"))
            return out
        }
    }

    private func post(_ body: [UInt8]) async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers = headers
        request.body = .bytes(ByteBuffer(bytes: body))
        if let tlsConfiguration { request.tlsConfiguration = tlsConfiguration }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .milliseconds(timeout.totalMilliseconds))
        } catch {
            throw RecorderError("\(label): \(error)")
        }
        let answer = try? await response.body.collect(upTo: 4096)
        guard (200..<300).contains(Int(response.status.code)) else {
            let text = answer.map { String(decoding: $0.readableBytesView.prefix(200), as: UTF8.self) } ?? ""
            throw RecorderError("\(label): HTTP \(response.status.code) \(Self.redacted(text, secrets))")
        }
    }

    /// The configured header values and their words of 8 or more characters, longest first.
    static func secrets(in values: [String]) -> [String] {
        let words = values.flatMap { $0.split(separator: " ").map(String.init).filter { $0.count >= 8 } }
        return Array(Set(values.filter { !$0.isEmpty } + words)).sorted { $0.count > $1.count }
    }

    /// `text` with every one of `secrets` replaced by `[redacted]`.
    static func redacted(_ text: String, _ secrets: [String]) -> String {
        secrets.reduce(text) { $0.replacingOccurrences(of: $1, with: "[redacted]") }
    }

    /// A JSON string literal (``AuditEventJSON/string(_:into:)``: quotes, backslashes and control
    /// characters escaped).
    static func jsonString(_ s: String) -> String {
        var out: [UInt8] = []
        AuditEventJSON.string(s, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
