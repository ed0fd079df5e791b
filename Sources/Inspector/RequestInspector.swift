import Codings
import Detection
import Foundation
import Pipeline

/// Runs Detection over every part of a request a secret can hide in — body, query
/// string, path and header values — and returns the request with each finding masked
/// in place, plus the findings (rule, location, offsets, fingerprint; never the secret).
///
/// Pure and synchronous: the same request and policy always give the same result.
/// In the path and query the mask token is percent-encoded so the URL stays valid;
/// in a JSON body it is plain (it contains no character that needs escaping), so the
/// JSON stays valid.
///
/// Guarantees for the body:
/// - Every content-coding layer (`Content-Encoding`, all field values, stacked) is undone
///   through `Codings` before scanning, capped at `maxBodyBytes` decoded bytes per layer; gzip
///   bodies of several members are decoded and scanned whole.
/// - With findings, the body is forwarded decoded and masked, without `Content-Encoding` and
///   without a stale `Content-Length`. Without findings, the original bytes are forwarded
///   unchanged: exactly the bytes whose decoding was inspected.
/// - A body whose codings are unsupported, corrupt or decode past the cap is not scanned:
///   `Result.undecodableBody` says why (never with body or header content) and the policy
///   blocks it (`undecodable-body`).
public struct RequestInspector: Sendable {
    public struct Result: Sendable {
        public var request: HTTPRequestData
        public var findings: [FindingSummary]
        /// The masked path with its masked query, for audit events.
        public var maskedPathAndQuery: String
        /// The body with every content coding undone, as scanned (empty when undecodable).
        public var decodedBody: Data
        /// Why the body's content codings could not be undone; `nil` when they were.
        public var undecodableBody: String?
    }

    let engine: DetectionEngine

    /// The cap on each decoded content-coding layer: the configuration's `max_body_bytes`.
    let maxBodyBytes: Int

    public init(engine: DetectionEngine, maxBodyBytes: Int = 1 << 20) {
        self.engine = engine
        self.maxBodyBytes = maxBodyBytes
    }

    /// `connection`: the connection's name; with it, `detection.allow` entries with a `path`
    /// glob can apply: every reading of `/<connection><path>` (`HoldRules.pathViews`) must match.
    public func inspect(_ request: HTTPRequestData, policy: PolicyConfig, connection: String? = nil) -> Result {
        let pii = policy.classes.contains("pii")
        let paths = engine.allowsByPath ? connection.map { HoldRules.pathViews("/" + $0 + request.path) } ?? [] : []
        var out = request
        var findings: [FindingSummary] = []
        var decodedBody = request.body
        var undecodable: String?

        // Body: every content coding undone, then scanned as identity.
        let contentType = request.header("Content-Type")?.lowercased() ?? ""
        let hint: ContentHint = contentType.contains("json") ? .json
            : contentType.contains("x-www-form-urlencoded") ? .form : .text
        let encodingValues = request.headers
            .filter { $0.name.caseInsensitiveCompare("Content-Encoding") == .orderedSame }
            .map(\.value)
        do throws(ContentCodingError) {
            let codings = try ContentCodings.parse(encodingValues)
            if !codings.isEmpty {
                decodedBody = Data(try ContentCodings.decode(Array(request.body), codings: codings, maxOutput: maxBodyBytes))
            }
            if !decodedBody.isEmpty {
                let bytes = Array(decodedBody)
                let context = ScanContext(credentials: true, pii: pii, hint: hint, paths: paths)
                let masked: [UInt8], found: [Finding]
                do {
                    (masked, found) = try engine.scanAndMask(bytes, context: context)
                } catch {
                    // Over a detection budget: one finding over the whole body (without scanning
                    // it again), so the policy blocks it and nothing of the body passes.
                    found = engine.failClosed(error, length: bytes.count)
                    masked = engine.mask(bytes, findings: found)
                }
                if !found.isEmpty {
                    out.body = Data(masked)
                    out.headers.removeAll {
                        $0.name.caseInsensitiveCompare("Content-Encoding") == .orderedSame
                            || $0.name.caseInsensitiveCompare("Content-Length") == .orderedSame
                    }
                    findings += found.map { summary($0, location: "body") }
                }
            }
        } catch {
            undecodable = Self.reason(error)
            decodedBody = Data()
        }

        // Query and path: masked with percent-encoded tokens.
        let (query, queryFindings) = maskURLPart(request.query, hint: .query, pii: pii, paths: paths, location: "query")
        out.query = query
        findings += queryFindings
        let (path, pathFindings) = maskURLPart(request.path, hint: .text, pii: pii, paths: paths, location: "path")
        out.path = path
        findings += pathFindings

        // Header values.
        for i in out.headers.indices {
            let field = out.headers[i]
            let bytes = Array(field.value.utf8)
            let found = engine.scan(bytes, context: ScanContext(credentials: true, pii: pii, hint: .header(name: field.name), paths: paths))
            if !found.isEmpty {
                out.headers[i].value = String(decoding: engine.mask(bytes, findings: found), as: UTF8.self)
                findings += found.map { summary($0, location: "header:\(field.name.lowercased())") }
            }
        }

        let pathAndQuery = out.query.isEmpty ? out.path : out.path + "?" + out.query
        return Result(request: out, findings: findings, maskedPathAndQuery: pathAndQuery,
                      decodedBody: decodedBody, undecodableBody: undecodable)
    }

    /// One sentence for a coding failure, without header or body content (an unsupported
    /// coding's name comes from the caller's header, so it is not repeated).
    static func reason(_ error: ContentCodingError) -> String {
        switch error {
        case .unsupported: return "its content coding is not supported"
        case .tooLarge(let limit): return "it decodes to more than \(limit) bytes"
        case .corrupt(let coding, _):
            let known = ContentCoding(rawValue: coding) != nil
            return known ? "it does not decode as \(coding)" : "it does not decode"
        }
    }

    private func maskURLPart(_ text: String, hint: ContentHint, pii: Bool, paths: [String], location: String) -> (String, [FindingSummary]) {
        guard !text.isEmpty else { return (text, []) }
        let bytes = Array(text.utf8)
        let found = engine.scan(bytes, context: ScanContext(credentials: true, pii: pii, hint: hint, paths: paths))
        guard !found.isEmpty else { return (text, []) }
        // Splice percent-encoded mask tokens in place of each (merged) finding span.
        var spans = found.map { ($0.start, $0.end, $0) }.sorted { $0.0 < $1.0 }
        var merged: [(Int, Int, Finding)] = []
        for s in spans {
            if let last = merged.last, s.0 < last.1 {
                merged[merged.count - 1].1 = max(last.1, s.1)
            } else {
                merged.append(s)
            }
        }
        spans = merged
        var out: [UInt8] = []
        var cursor = 0
        for (start, end, finding) in spans {
            out += bytes[cursor..<start]
            out += Array("%5BMASKED%3A\(finding.rule)%3A\(finding.fingerprint)%5D".utf8)
            cursor = end
        }
        out += bytes[cursor...]
        return (String(decoding: out, as: UTF8.self), found.map { summary($0, location: location) })
    }

    private func summary(_ f: Finding, location: String) -> FindingSummary {
        FindingSummary(
            rule: f.rule, ruleClass: f.ruleClass.rawValue, severity: f.severity.rawValue, location: location,
            start: f.start, end: f.end, fingerprint: f.fingerprint)
    }
}
