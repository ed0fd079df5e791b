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
/// JSON stays valid. A compressed body with findings is forwarded decoded and masked,
/// without its `Content-Encoding`.
public struct RequestInspector: Sendable {
    public struct Result: Sendable {
        public var request: HTTPRequestData
        public var findings: [FindingSummary]
        /// The masked path with its masked query, for audit events.
        public var maskedPathAndQuery: String
    }

    let engine: DetectionEngine

    public init(engine: DetectionEngine) { self.engine = engine }

    public func inspect(_ request: HTTPRequestData, policy: PolicyConfig) -> Result {
        let pii = policy.classes.contains("pii")
        var out = request
        var findings: [FindingSummary] = []

        // Body.
        let contentType = request.header("Content-Type")?.lowercased() ?? ""
        let hint: ContentHint = contentType.contains("json") ? .json
            : contentType.contains("x-www-form-urlencoded") ? .form : .text
        let encoding = ContentEncoding(rawValue: request.header("Content-Encoding")?.lowercased().trimmingCharacters(in: .whitespaces) ?? "identity") ?? .identity
        if !request.body.isEmpty {
            let bytes = Array(request.body)
            let context = ScanContext(credentials: true, pii: pii, hint: hint, contentEncoding: encoding)
            let masked: [UInt8], found: [Finding]
            do {
                (masked, found) = try engine.scanAndMask(bytes, context: context)
            } catch {
                // Undecodable or over the decoding budget: `scan` reports one finding over the
                // whole body, so the policy fails closed and nothing of the body passes.
                found = engine.scan(bytes, context: context)
                masked = engine.mask(bytes, findings: found)
            }
            if !found.isEmpty {
                out.body = Data(masked)
                if encoding != .identity {
                    out.headers.removeAll { $0.name.caseInsensitiveCompare("Content-Encoding") == .orderedSame }
                }
                out.headers.removeAll { $0.name.caseInsensitiveCompare("Content-Length") == .orderedSame }
                findings += found.map { summary($0, location: "body") }
            }
        }

        // Query and path: masked with percent-encoded tokens.
        let (query, queryFindings) = maskURLPart(request.query, hint: .query, pii: pii, location: "query")
        out.query = query
        findings += queryFindings
        let (path, pathFindings) = maskURLPart(request.path, hint: .text, pii: pii, location: "path")
        out.path = path
        findings += pathFindings

        // Header values.
        for i in out.headers.indices {
            let field = out.headers[i]
            let bytes = Array(field.value.utf8)
            let found = engine.scan(bytes, context: ScanContext(credentials: true, pii: pii, hint: .header(name: field.name)))
            if !found.isEmpty {
                out.headers[i].value = String(decoding: engine.mask(bytes, findings: found), as: UTF8.self)
                findings += found.map { summary($0, location: "header:\(field.name.lowercased())") }
            }
        }

        let pathAndQuery = out.query.isEmpty ? out.path : out.path + "?" + out.query
        return Result(request: out, findings: findings, maskedPathAndQuery: pathAndQuery)
    }

    private func maskURLPart(_ text: String, hint: ContentHint, pii: Bool, location: String) -> (String, [FindingSummary]) {
        guard !text.isEmpty else { return (text, []) }
        let bytes = Array(text.utf8)
        let found = engine.scan(bytes, context: ScanContext(credentials: true, pii: pii, hint: hint))
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
