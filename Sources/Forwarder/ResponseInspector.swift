import Codings
import Detection
import Foundation
import MCP
import Metrics
import Pipeline

/// Checks an upstream response before it goes back to the caller: the credential the
/// Forwarder injected is masked in every header and in the body, always; with
/// `policy.scan_responses`, Detection's findings are masked in header values and the body too.
///
/// Guarantees:
/// - The injected credential (every form ``InjectedCredential`` knows) never survives, in any
///   header value (`Location`, `Set-Cookie`, any `X-…`) or in the body, whatever its content
///   coding, whether or not `scan_responses` is on. Its summaries have rule
///   `injected-credential` and location `response` or `response-header:<name>`.
/// - With `scan_responses`, header values and the body are scanned like request bodies; each
///   finding is replaced by Detection's mask text; summaries carry rule, class, severity,
///   byte range and fingerprint with location `response` or `response-header:<name>`, never
///   the secret.
/// - The body is checked after undoing every content coding listed in `Content-Encoding`
///   (gzip, x-gzip, deflate, br, zstd, stacked; `Codings`). A body without anything to mask is
///   returned byte for byte as received (compressed or not); a body with something masked is
///   returned decoded and masked with `decoded` set: the caller must drop `Content-Encoding`.
/// - On an MCP connection (`target.mcp`): a `text/event-stream` body is read as events, and each
///   event's data (one JSON-RPC message) is checked on its own, so a secret split over `data:`
///   lines is still found; the events are written again (comments and an unfinished last event
///   dropped). In JSON-RPC responses to the request's `tools/list` calls, tools the caller may
///   not call are removed (`ToolListFilter`). A JSON body that should hold a filtered list but
///   does not parse is withheld.
/// - Fails closed: a body whose codings cannot be undone (unknown coding, corrupt, over the
///   size cap) or whose scan hits a decoder limit is withheld (`withheld` gives the reason),
///   never returned unchecked. When there is nothing to check (no credential injected and no
///   response scanning), the response passes as received.
struct ResponseInspector: Sendable {
    let engine: DetectionEngine
    /// The largest decoded body checked; a larger one is withheld.
    let maxDecodedBytes: Int

    init(engine: DetectionEngine, maxDecodedBytes: Int = 16 << 20) {
        self.engine = engine
        self.maxDecodedBytes = maxDecodedBytes
    }

    struct Result: Sendable {
        var headers: [HTTPField]
        var body: [UInt8]
        var findings: [FindingSummary]
        /// The body was decoded to mask it: `Content-Encoding` no longer applies.
        var decoded: Bool = false
        /// Why the response cannot be returned safely, if it cannot.
        var withheld: String?

        static func refused(_ reason: String, findings: [FindingSummary] = []) -> Result {
            Result(headers: [], body: [], findings: findings, withheld: reason)
        }
    }

    /// The request an MCP response answers: which ids were `tools/list` calls, which ids it sent.
    struct MCPExchange: Sendable {
        var listIDs: Set<String> = []
        var knownIDs: Set<String> = []
        var rules: ToolRules

        /// From the request's JSON-RPC messages (nil when they cannot be read: then every
        /// response with a tools array is filtered).
        init(request body: JSONRPCBody?, rules: ToolRules) {
            self.rules = rules
            for m in body?.requests ?? [] {
                guard let id = m.id else { continue }
                knownIDs.insert(id)
                if m.method == MCPMethod.toolsList { listIDs.insert(id) }
            }
        }

        func filter(_ message: JSONValue) -> (JSONValue, removed: Int) {
            ToolListFilter.filter(message, listIDs: listIDs, knownIDs: knownIDs, rules: rules)
        }

        /// A JSON-RPC body (one message or a batch) with tool lists filtered; nil when unchanged.
        func filter(json bytes: [UInt8]) throws(JSONValue.ParseError) -> (body: [UInt8], removed: Int)? {
            let document = try JSONValue.parse(bytes)
            var removed = 0
            let out: JSONValue
            switch document {
            case .array(let items):
                out = .array(items.map { item in
                    let (f, n) = filter(item)
                    removed += n
                    return f
                })
            default:
                let (f, n) = filter(document)
                removed = n
                out = f
            }
            return removed == 0 ? nil : (out.serialized(), removed)
        }
    }

    /// Checks `headers` (the reply headers, hop-by-hop fields already dropped) and `body`.
    func inspect(body: [UInt8], headers: [HTTPField], target: UpstreamTarget, mcp: MCPExchange? = nil) -> Result {
        guard target.injected != nil || target.scanResponses else { return Result(headers: headers, body: body, findings: []) }
        var findings: [FindingSummary] = []

        // Header values.
        var outHeaders: [HTTPField] = []
        outHeaders.reserveCapacity(headers.count)
        for field in headers {
            let location = "response-header:" + field.name.lowercased()
            switch check(Array(field.value.utf8), hint: .header(name: field.name), location: location, target: target) {
            case .success(let (value, found)):
                findings += found
                outHeaders.append(HTTPField(field.name, String(decoding: value, as: UTF8.self)))
            case .failure: return .refused("response_header_unscannable", findings: findings)
            }
        }
        guard !body.isEmpty else { return Result(headers: outHeaders, body: body, findings: findings) }

        // The body, decoded.
        let codings: [ContentCoding]
        do {
            codings = try ContentCodings.parse(headers.filter { $0.name.lowercased() == "content-encoding" }.map(\.value))
        } catch {
            return .refused("response_encoding_unsupported", findings: findings)
        }
        var decoded: [UInt8]
        do { decoded = try ContentCodings.decode(body, codings: codings, maxOutput: maxDecodedBytes) } catch {
            switch error {
            case .tooLarge: return .refused("response_decode_limit_exceeded", findings: findings)
            case .unsupported: return .refused("response_encoding_unsupported", findings: findings)
            case .corrupt: return .refused("response_undecodable", findings: findings)
            }
        }
        var changed = false
        let contentType = Self.headerValue("content-type", in: headers)?.lowercased() ?? ""
        if let mcp {
            if contentType.hasPrefix("text/event-stream") {
                return inspectEvents(decoded, headers: outHeaders, findings: findings, target: target, mcp: mcp)
            }
            // Whatever its declared type, an answer to a tools/list call is filtered or withheld.
            if !mcp.listIDs.isEmpty || (contentType.contains("json") && mcp.knownIDs.isEmpty) {
                do {
                    if let filtered = try mcp.filter(json: decoded) {
                        decoded = filtered.body
                        changed = true
                        Self.countFiltered(filtered.removed)
                    }
                } catch {
                    // A list that cannot be read cannot be filtered: not passed on unfiltered.
                    if !mcp.listIDs.isEmpty { return .refused("response_not_json_rpc", findings: findings) }
                }
            }
        }
        switch check(decoded, hint: Self.hint(contentType: contentType), location: "response", target: target) {
        case .success(let (masked, found)):
            if !found.isEmpty {
                findings += found
                decoded = masked
                changed = true
            }
        case .failure(let failure): return .refused(failure.reason, findings: findings)
        }
        guard changed else { return Result(headers: outHeaders, body: body, findings: findings) }
        return Result(headers: outHeaders, body: decoded, findings: findings, decoded: !codings.isEmpty)
    }

    /// An MCP event stream: each event checked on its own (see the type's guarantees).
    private func inspectEvents(
        _ decoded: [UInt8], headers: [HTTPField], findings earlier: [FindingSummary], target: UpstreamTarget, mcp: MCPExchange
    ) -> Result {
        var findings = earlier
        let parsed = ServerSentEvents.parse(decoded)
        var events: [ServerSentEvent] = []
        events.reserveCapacity(parsed.events.count)
        for var event in parsed.events {
            for k in event.fields.indices {
                switch check(Array(event.fields[k].value.utf8), hint: .text, location: "response", target: target) {
                case .success(let (bytes, found)):
                    findings += found
                    event.fields[k].value = String(decoding: bytes, as: UTF8.self)
                case .failure(let failure): return .refused(failure.reason, findings: findings)
                }
            }
            if let data = event.data {
                var bytes = Array(data.utf8)
                do {
                    if let filtered = try mcp.filter(json: bytes) {
                        bytes = filtered.body
                        Self.countFiltered(filtered.removed)
                    }
                } catch {
                    if !mcp.listIDs.isEmpty { return .refused("response_not_json_rpc", findings: findings) }
                }
                switch check(bytes, hint: .json, location: "response", target: target) {
                case .success(let (masked, found)):
                    findings += found
                    event.data = String(decoding: masked, as: UTF8.self)
                case .failure(let failure): return .refused(failure.reason, findings: findings)
                }
            }
            events.append(event)
        }
        if parsed.unfinished {
            Counter(label: "sluice_mcp_events_dropped_total", dimensions: [("reason", "unfinished")]).increment()
        }
        // The stream is written anew: a length the server gave no longer applies.
        var outHeaders = headers
        outHeaders.removeAll { $0.name.lowercased() == "content-length" }
        return Result(headers: outHeaders, body: ServerSentEvents.serialize(events), findings: findings, decoded: true)
    }

    /// The injected credential and (with response scanning) Detection's findings masked in
    /// `bytes`, with summaries at `location`; or the reason it cannot be checked. Used for every
    /// header value, body and event of a response.
    private func check(
        _ bytes: [UInt8], hint: ContentHint, location: String, target: UpstreamTarget
    ) -> Swift.Result<([UInt8], [FindingSummary]), CheckFailure> {
        var out = bytes
        var findings: [FindingSummary] = []
        if let credential = target.injected {
            let (masked, ranges) = credential.mask(out)
            if !ranges.isEmpty {
                findings += credential.findings(ranges, location: location)
                out = masked
            }
        }
        guard target.scanResponses, !out.isEmpty else { return .success((out, findings)) }
        do {
            let (masked, found) = try engine.scanAndMask(out, context: ScanContext(credentials: true, pii: target.scanPII, hint: hint))
            if !found.isEmpty {
                findings += Self.summaries(found, location: location)
                out = masked
            }
            return .success((out, findings))
        } catch {
            switch error {
            case .decodeLimitExceeded: return .failure(CheckFailure("response_decode_limit_exceeded"))
            case .inspectionLimitExceeded: return .failure(CheckFailure("response_inspection_limit_exceeded"))
            default: return .failure(CheckFailure("response_undecodable"))
            }
        }
    }

    struct CheckFailure: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    static func countFiltered(_ removed: Int) {
        Counter(label: "sluice_mcp_tools_filtered_total").increment(by: removed)
    }

    static func summaries(_ found: [Finding], location: String) -> [FindingSummary] {
        found.map {
            FindingSummary(
                rule: $0.rule, ruleClass: $0.ruleClass.rawValue, severity: $0.severity.rawValue, location: location,
                start: $0.start, end: $0.end, fingerprint: $0.fingerprint)
        }
    }

    static func hint(contentType: String?) -> ContentHint {
        guard let type = contentType?.lowercased() else { return .text }
        if type.contains("json") { return .json }
        if type.contains("application/x-www-form-urlencoded") { return .form }
        return .text
    }

    static func headerValue(_ lowercasedName: String, in headers: [HTTPField]) -> String? {
        headers.first { $0.name.lowercased() == lowercasedName }?.value
    }
}
