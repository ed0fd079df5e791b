import Codings
import Detection
import Foundation
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

    /// Checks `headers` (the reply headers, hop-by-hop fields already dropped) and `body`.
    func inspect(body: [UInt8], headers: [HTTPField], target: UpstreamTarget) -> Result {
        let credential = target.injected
        guard credential != nil || target.scanResponses else { return Result(headers: headers, body: body, findings: []) }
        var findings: [FindingSummary] = []

        // Header values.
        var outHeaders: [HTTPField] = []
        outHeaders.reserveCapacity(headers.count)
        for field in headers {
            let location = "response-header:" + field.name.lowercased()
            var value = Array(field.value.utf8)
            if let credential {
                let (masked, ranges) = credential.mask(value)
                if !ranges.isEmpty {
                    findings += credential.findings(ranges, location: location)
                    value = masked
                }
            }
            if target.scanResponses, !value.isEmpty {
                let context = ScanContext(credentials: true, pii: target.scanPII, hint: .header(name: field.name))
                do {
                    let (masked, found) = try engine.scanAndMask(value, context: context)
                    if !found.isEmpty {
                        findings += Self.summaries(found, location: location)
                        value = masked
                    }
                } catch {
                    return .refused("response_header_unscannable", findings: findings)
                }
            }
            outHeaders.append(HTTPField(field.name, String(decoding: value, as: UTF8.self)))
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
        if let credential {
            let (masked, ranges) = credential.mask(decoded)
            if !ranges.isEmpty {
                findings += credential.findings(ranges, location: "response")
                decoded = masked
                changed = true
            }
        }
        if target.scanResponses {
            let context = ScanContext(
                credentials: true, pii: target.scanPII, hint: Self.hint(contentType: Self.headerValue("content-type", in: headers)))
            do {
                let (masked, found) = try engine.scanAndMask(decoded, context: context)
                if !found.isEmpty {
                    findings += Self.summaries(found, location: "response")
                    decoded = masked
                    changed = true
                }
            } catch {
                switch error {
                case .decodeLimitExceeded: return .refused("response_decode_limit_exceeded", findings: findings)
                case .inspectionLimitExceeded: return .refused("response_inspection_limit_exceeded", findings: findings)
                default: return .refused("response_undecodable", findings: findings)
                }
            }
        }
        guard changed else { return Result(headers: outHeaders, body: body, findings: findings) }
        return Result(headers: outHeaders, body: decoded, findings: findings, decoded: !codings.isEmpty)
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
