import Hummingbird
import Pipeline

/// A header field as Hummingbird carries it (swift-http-types' `HTTPField`, which
/// Hummingbird does not re-export by name; `Pipeline.HTTPField` is the envelope's field).
typealias WireField = HTTPFields.Element

/// Which headers cross the Ingress.
///
/// Guarantees: hop-by-hop headers (RFC 9110 §7.6.1: `connection`, `keep-alive`, `te`,
/// `trailer`, `transfer-encoding`, `upgrade`, `proxy-*`, and every header the `Connection`
/// header names) plus `host` and `content-length` never enter an envelope or a response;
/// the caller's `authorization` never enters an envelope.
enum HeaderFilter {
    static let hopByHop: Set<String> = ["connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"]

    /// Lowercased names listed in `Connection` header values.
    static func connectionListed(_ fields: HTTPFields) -> Set<String> {
        var names = Set<String>()
        for field in fields where field.name.canonicalName == "connection" {
            for token in field.value.split(separator: ",") {
                names.insert(token.trimmingCharacters(in: .whitespaces).lowercased())
            }
        }
        return names
    }

    static func isHopByHop(_ lowercasedName: String, listed: Set<String>) -> Bool {
        hopByHop.contains(lowercasedName) || lowercasedName.hasPrefix("proxy-") || listed.contains(lowercasedName)
    }

    /// The caller's headers as they go into an `InspectionRequest`, names as received, in order.
    static func requestHeaders(_ fields: HTTPFields) -> [Pipeline.HTTPField] {
        let listed = connectionListed(fields)
        return fields.compactMap { field in
            let name = field.name.canonicalName
            guard name != "authorization", !isHopByHop(name, listed: listed) else { return nil }
            return Pipeline.HTTPField(field.name.rawName, field.value)
        }
    }

    /// A reply's headers as they go to the caller; names that are not valid HTTP tokens are dropped.
    static func responseHeaders(_ headers: [Pipeline.HTTPField]) -> HTTPFields {
        var listed = Set<String>()
        for h in headers where h.name.lowercased() == "connection" {
            for token in h.value.split(separator: ",") { listed.insert(token.trimmingCharacters(in: .whitespaces).lowercased()) }
        }
        var out = HTTPFields()
        for h in headers {
            let lower = h.name.lowercased()
            guard !isHopByHop(lower, listed: listed), lower != IngressHeaders.requestIDLowercased,
                  let name = WireField.Name(h.name)
            else { continue }
            out.append(WireField(name: name, value: h.value))
        }
        return out
    }
}

/// Header names the Ingress reads or sets.
enum IngressHeaders {
    static let requestIDLowercased = "x-sluice-request-id"
    static let requestID = WireField.Name("X-Sluice-Request-Id")!
    static let session = WireField.Name("X-Sluice-Session")!
    static let retryAfter = WireField.Name("Retry-After")!

    /// The session a call is recorded under (the recordings file, the postgres key, what
    /// `sluice replay` takes): the caller's `X-Sluice-Session` when it is 1–128 characters of
    /// `[A-Za-z0-9._:-]` and not only dots (never `.` or `..`, which read as path segments);
    /// `requestID` when the caller sent none; `nil` when it sent one (several, or an empty one)
    /// of any other form — the caller gets 400 `bad_session`, never a silent substitute.
    static func sessionID(_ value: String?, default requestID: String) -> String? {
        guard let value else { return requestID }
        guard !value.isEmpty, value.utf8.count <= 128, value.utf8.contains(where: { $0 != UInt8(ascii: ".") }) else { return nil }
        let ok = value.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: ":") || c == UInt8(ascii: "-")
        }
        return ok ? value : nil
    }
}
