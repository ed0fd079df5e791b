import Metrics
import Pipeline
import Synchronization

/// Audits refused credentials: every 401 (no, malformed or unknown credential) and every 503
/// for a credential that cannot be checked (identity provider unreachable), on `/fn/...` and on
/// the approvals API, as a `request_rejected` event without an identity.
///
/// Guarantees:
/// - The event names why (`details.reason`, a fixed text of the authenticator's, bounded), what
///   kind of credential was presented (`details.credential`: `none`, `api_key` or `jwt`) and where
///   (`details.api`: `fn` or `approvals`); never the credential, a header value, the path or the body.
/// - At most `perSecond` such events a second per process, so a flood of bad credentials cannot
///   flood the audit trail; never silently: each one left out is counted in
///   `sluice_ingress_auth_failures_unaudited_total`, and the next audited one carries how many
///   were left out before it (`details.unaudited_before`).
/// - Sessionless (`session_id` = `request_id`): an unauthenticated caller's session header is
///   not trusted, so it cannot open recording files at will.
final class AuthFailureAudit: Sendable {
    private struct Window {
        var second: Int64 = 0
        var audited = 0
        var leftOut = 0
    }

    let perSecond: Int
    private let window = Mutex(Window())
    private let unaudited = Counter(label: "sluice_ingress_auth_failures_unaudited_total")

    init(perSecond: Int = 100) {
        self.perSecond = perSecond
    }

    /// Emits the event for one refused credential, or counts it when this second's share is spent.
    func record(
        _ error: AuthenticationError, credential: String?, status: Int, code: String, requestID: String, method: String,
        connection: String?, api: String, now: Int64 = currentMillis(), context: StageContext
    ) async {
        guard let leftOutBefore = admit(now: now) else {
            unaudited.increment()
            return
        }
        var details = [
            "error": code, "reason": String(Self.reason(error).prefix(200)), "credential": Self.kind(of: credential), "api": api,
        ]
        if leftOutBefore > 0 { details["unaudited_before"] = "\(leftOutBefore)" }
        await context.audit(AuditEvent(
            kind: .requestRejected, stage: "ingress", requestID: requestID, sessionID: requestID, connection: connection,
            method: method, status: status, details: details, timeMillis: now))
    }

    /// `nil` when over this second's share; else how many were left out since the last audited one.
    func admit(now: Int64) -> Int? {
        window.withLock { w in
            let second = now / 1000
            if second != w.second {
                w.second = second
                w.audited = 0
            }
            guard w.audited < perSecond else {
                w.leftOut += 1
                return nil
            }
            w.audited += 1
            let before = w.leftOut
            w.leftOut = 0
            return before
        }
    }

    static func reason(_ error: AuthenticationError) -> String {
        switch error {
        case .missing: "no bearer credential"
        case .invalid(let reason): reason
        case .unavailable(let reason): "cannot verify credential: \(reason)"
        }
    }

    /// What was presented, by shape only.
    static func kind(of credential: String?) -> String {
        guard let credential, !credential.isEmpty else { return "none" }
        return JWTShape.parse(credential) != nil ? "jwt" : "api_key"
    }
}
