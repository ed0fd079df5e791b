import Foundation
import Pipeline

/// Which headers cross the Forwarder, in each direction.
enum HeaderFilter {
    /// RFC 9110 §7.6.1 connection-specific fields, plus the legacy `Proxy-Connection`.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
        "te", "trailer", "transfer-encoding", "upgrade",
    ]

    /// Header names that are hop-by-hop for this message: the fixed set plus every name
    /// listed in its `Connection` header.
    static func connectionSpecific(_ headers: [HTTPField]) -> Set<String> {
        var names = hopByHop
        for field in headers where field.name.lowercased() == "connection" {
            for token in field.value.split(separator: ",") {
                let name = token.trimmingCharacters(in: .whitespaces).lowercased()
                if !name.isEmpty { names.insert(name) }
            }
        }
        return names
    }

    /// The headers sent upstream: the request's own, in order, minus hop-by-hop fields,
    /// minus those the client computes (`Host`, `Content-Length`, `Expect`), minus any field
    /// named like the credential header or `Idempotency-Key` (so the caller's raw key never
    /// reaches the upstream) or `traceparent` (a caller's value never passes unvalidated); then
    /// the credential (from the Forwarder's configuration), `Idempotency-Key: <idempotencyKey>`
    /// (the derived key, else the request id) and `traceparent` (the Forwarder's own span of the
    /// request's trace). A `tracestate` in `headers` passes (the Ingress keeps it only when it
    /// continued the caller's trace, and the Inspector masked it like any header).
    static func upstreamRequestHeaders(
        _ headers: [HTTPField], credential: CredentialHeader?, idempotencyKey: String, traceparent: String
    ) -> [HTTPField] {
        var drop = connectionSpecific(headers)
        drop.formUnion(["host", "content-length", "expect", Self.idempotencyKey.lowercased(), TraceContext.headerName])
        if let credential { drop.insert(credential.name.lowercased()) }
        var out = headers.filter { !drop.contains($0.name.lowercased()) }
        if let credential { out.append(HTTPField(credential.name, credential.value)) }
        out.append(HTTPField(Self.idempotencyKey, idempotencyKey))
        out.append(HTTPField(TraceContext.headerName, traceparent))
        return out
    }

    /// The headers returned to the caller: the upstream's, in order, minus hop-by-hop fields,
    /// `Content-Length` (the body may have been masked; the Ingress frames the reply) and every
    /// `X-Sluice-…` field: that namespace is Sluice's own (`X-Sluice-Status: pending_approval`
    /// on a 202 would make the Ingress wait for a decision that never comes; `X-Sluice-Error`
    /// would pass an upstream's answer off as Sluice's).
    static func replyHeaders(_ headers: [HTTPField]) -> [HTTPField] {
        var drop = connectionSpecific(headers)
        drop.insert("content-length")
        return headers.filter {
            let name = $0.name.lowercased()
            return !drop.contains(name) && !name.hasPrefix("x-sluice-")
        }
    }

    static let idempotencyKey = "Idempotency-Key"
}
