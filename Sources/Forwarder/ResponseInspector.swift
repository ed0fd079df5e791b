import Detection
import Foundation
import Pipeline

/// Scans an upstream response body and masks what Detection finds, before it goes back to
/// the caller (`policy.scan_responses`).
///
/// Guarantees:
/// - The returned body has every finding replaced by Detection's mask text; the summaries
///   carry rule, class, severity, byte range and fingerprint with location `response`,
///   never the secret.
/// - A response without findings is returned byte for byte as received (compressed or not).
/// - A compressed response (`Content-Encoding: gzip`/`deflate`) with findings is returned
///   decoded and masked, with `decoded` set: the caller must drop `Content-Encoding`.
/// - Fails closed: a body in an encoding Detection cannot read (e.g. `br`), a corrupt
///   compressed body or a decompression bomb is withheld (`withheld` gives the reason)
///   rather than returned unscanned.
struct ResponseInspector: Sendable {
    let engine: DetectionEngine

    struct Result: Sendable {
        var body: [UInt8]
        var findings: [FindingSummary]
        /// The body was decompressed to mask it: `Content-Encoding` no longer applies.
        var decoded: Bool = false
        /// Why the body cannot be returned safely, if it cannot.
        var withheld: String?
    }

    func inspect(body: [UInt8], headers: [HTTPField], target: UpstreamTarget) -> Result {
        guard target.scanResponses, !body.isEmpty else { return Result(body: body, findings: []) }
        let encoding: ContentEncoding
        switch Self.headerValue("content-encoding", in: headers)?.lowercased().trimmingCharacters(in: .whitespaces) {
        case nil, "", "identity": encoding = .identity
        case "gzip", "x-gzip": encoding = .gzip
        case "deflate": encoding = .deflate
        default: return Result(body: [], findings: [], withheld: "response_encoding_unscannable")
        }
        let context = ScanContext(
            credentials: true, pii: target.scanPII, hint: Self.hint(contentType: Self.headerValue("content-type", in: headers)),
            contentEncoding: encoding)
        let masked: [UInt8]
        let findings: [Finding]
        do { (masked, findings) = try engine.scanAndMask(body, context: context) } catch {
            switch error {
            case .decodeLimitExceeded: return Result(body: [], findings: [], withheld: "response_decode_limit_exceeded")
            default: return Result(body: [], findings: [], withheld: "response_undecodable")
            }
        }
        guard !findings.isEmpty else { return Result(body: body, findings: []) }
        let summaries = findings.map {
            FindingSummary(
                rule: $0.rule, ruleClass: $0.ruleClass.rawValue, severity: $0.severity.rawValue, location: "response",
                start: $0.start, end: $0.end, fingerprint: $0.fingerprint)
        }
        return Result(body: masked, findings: summaries, decoded: encoding != .identity)
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
