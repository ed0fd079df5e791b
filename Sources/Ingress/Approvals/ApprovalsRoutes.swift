import Detection
import Foundation
import Hummingbird
import Logging
import Pipeline

/// The caller's poll and the reviewer API, answered from the `HoldsView`; decisions are
/// published to `approvals` for the Forwarder, which is the authority.
///
/// - `GET /v1/requests/<id>`: only the identity that made the request (anyone else: 404, so the
///   id's existence is not revealed). 202 while pending or being delivered; then the stored
///   final answer (delivered response, 403 denied, 410 expired, 502/504 failed) with
///   `X-Sluice-Status`.
/// - `GET /v1/approvals?status=pending|approved|denied|expired` and `GET /v1/approvals/<id>`:
///   only members of some connection's `approvers`, each seeing only those connections (403
///   otherwise; 404 for an id they may not see).
/// - `POST /v1/approvals/<id>/approve|deny` with `{"reason": "..."}`: 401 no identity, 403
///   `forbidden` for a non-approver, 403 `self_approval` for the requester's person under any
///   of their identities (whatever their groups), 404 unknown, 409 already decided, expired or
///   already approved by this person (under any identity), 200 with the new state. Every 403
///   is audited as `approval_refused` (code, approver identity and person; never the reason text).
///
/// A reviewer's reason is masked (``ReasonMasker``: secrets and PII, like a body) before it is
/// published to `approvals`, so the holds listing and the audit trail only ever hold the masked
/// text; a reason that cannot be scanned is refused (422 `reason_unscannable`). A refused
/// credential is audited (``AuthFailureAudit``).
///
/// Never logs a reason text, a body or a credential; logs carry ids only.
struct ApprovalsRoutes: Sendable {
    let view: HoldsView
    let connections: [String: ConnectionConfig]
    let authenticator: any Authenticator
    let context: StageContext
    /// How long a decision waits to be reflected in the changelog before the API answers anyway.
    let decisionEcho: Duration
    /// Audits refused credentials (shared with `/fn/...`).
    let authAudit: AuthFailureAudit
    /// Masks secrets and PII in a reviewer's reason before it is published, listed or audited.
    let reasons: ReasonMasker

    func add(to router: Router<BasicRequestContext>) {
        router.get("/v1/requests/:id") { request, ctx in await self.poll(request, id: ctx.parameters.get("id") ?? "") }
        router.get("/v1/approvals") { request, _ in await self.list(request) }
        router.get("/v1/approvals/:id") { request, ctx in await self.show(request, id: ctx.parameters.get("id") ?? "") }
        router.post("/v1/approvals/:id/approve") { request, ctx in
            await self.decide(request, id: ctx.parameters.get("id") ?? "", vote: .approve)
        }
        router.post("/v1/approvals/:id/deny") { request, ctx in
            await self.decide(request, id: ctx.parameters.get("id") ?? "", vote: .deny)
        }
        router.get("/v1/grants") { request, _ in await self.listGrants(request) }
        router.post("/v1/grants/:id/revoke") { request, ctx in await self.revokeGrant(request, id: ctx.parameters.get("id") ?? "") }
    }

    // MARK: caller

    func poll(_ request: Request, id: String) async -> Response {
        let identity: CallerIdentity
        switch await authenticate(request) {
        case .failure(let failure): return failure.response
        case .success(let i): identity = i
        }
        guard let record = await view.record(id), record.requester == identity.id else {
            return Self.error(404, "not_found", message: "No request with this id is visible to you.", requestID: id)
        }
        guard record.status.isFinal, var response = record.response else {
            return Self.json(202, [
                "request_id": id, "status": record.status == .pending ? "pending_approval" : record.status.rawValue,
                "poll": "/v1/requests/\(id)",
            ], requestID: id)
        }
        response.headers.removeAll { $0.name.caseInsensitiveCompare("X-Sluice-Status") == .orderedSame }
        response.headers.append(Pipeline.HTTPField("X-Sluice-Status", record.status.rawValue))
        return Responses.make(response, requestID: id)
    }

    // MARK: reviewers

    /// The authenticated reviewer and the connections they decide on; the 401/503 or 403 answer
    /// for anyone else.
    private func reviewer(_ request: Request) async -> Result<Set<String>, ResponseError> {
        switch await authenticate(request) {
        case .failure(let failure): return .failure(failure)
        case .success(let identity):
            let allowed = decidable(by: identity)
            guard !allowed.isEmpty else {
                return .failure(ResponseError(
                    Self.error(403, "forbidden", message: "Refused by the approver check: you are not an approver of any connection.")))
            }
            return .success(allowed)
        }
    }

    func list(_ request: Request) async -> Response {
        let allowed: Set<String>
        switch await reviewer(request) {
        case .failure(let failure): return failure.response
        case .success(let a): allowed = a
        }
        let statuses: Set<HoldStatus>
        switch request.uri.queryParameters.get("status") ?? "pending" {
        case "pending": statuses = [.pending]
        case "approved": statuses = [.approved, .delivered, .failed]
        case "denied": statuses = [.denied]
        case "expired": statuses = [.expired]
        case "all": statuses = Set(HoldStatus.allCases)
        default: return Self.error(400, "bad_request", message: "status must be pending, approved, denied, expired or all.")
        }
        let records = await view.list(connections: allowed, statuses: statuses)
        return Self.json(200, ["approvals": records.map(Self.describe)], requestID: "")
    }

    func show(_ request: Request, id: String) async -> Response {
        let allowed: Set<String>
        switch await reviewer(request) {
        case .failure(let failure): return failure.response
        case .success(let a): allowed = a
        }
        guard let record = await view.record(id), let conn = record.request?.metadata.connection, allowed.contains(conn) else {
            return Self.error(404, "not_found", message: "No request with this id is visible to you.", requestID: id)
        }
        return Self.json(200, Self.describe(record), requestID: id)
    }

    func decide(_ request: Request, id: String, vote: ApprovalDecision.Vote) async -> Response {
        let identity: CallerIdentity
        switch await authenticate(request) {
        case .failure(let failure): return failure.response
        case .success(let i): identity = i
        }
        switch await submit(id: id, vote: vote, by: identity, input: { try await Self.decisionInput(from: request) }) {
        case .refused(let refusal):
            return Self.error(
                refusal.status, refusal.code, message: refusal.message, requestID: id, extra: refusal.extra, retryAfter: refusal.retryAfter)
        case .recorded(let record, let decisionID, let counted, let grant):
            var body = Self.describe(record)
            var decision: [String: Any] = ["id": decisionID, "vote": vote.rawValue, "counted": counted]
            if grant { decision["grant_id"] = decisionID }
            body["decision"] = decision
            return Self.json(200, body, requestID: id)
        }
    }

    /// Why a decision was not recorded: the API's status, code and message.
    struct Refusal: Error, Sendable, Equatable {
        var status: Int
        var code: String
        var message: String
        var extra: [String: String] = [:]
        var retryAfter: Int? = nil
    }

    /// What a decision attempt came to.
    enum DecisionOutcome: Sendable {
        case refused(Refusal)
        /// Published; the record as the changelog then shows it, whether it shows the decision
        /// counted yet (not when the echo did not arrive within `decisionEcho`), and whether the
        /// decision asked for a scoped approval (made under the decision's id once it counts).
        case recorded(HoldRecord, decisionID: String, counted: Bool, grant: Bool)
    }

    /// Submits `identity`'s vote on `id` after the checks every decision passes, whether it comes
    /// from the API or the console: approver of the connection (403 `forbidden`, audited), not the
    /// requester's person under any identity (403 `self_approval`, audited), still pending (409
    /// `already_decided`, `expired`), not already approved by this person (409); then the
    /// reason (read only now, by `reason`; 400 when it cannot be) is masked (422 when it cannot
    /// be scanned) and the decision published to `approvals` (503 when it cannot be).
    func submit(
        id: String, vote: ApprovalDecision.Vote, by identity: CallerIdentity, input readInput: () async throws -> DecisionInput
    ) async -> DecisionOutcome {
        let allowed = decidable(by: identity)
        guard !allowed.isEmpty else {
            await auditRefusal(id: id, record: await view.record(id), approver: identity, vote: vote, code: "forbidden")
            return .refused(Refusal(status: 403, code: "forbidden", message: "Refused by the approver check: you are not an approver of any connection."))
        }
        guard let record = await view.record(id), let held = record.request else {
            return .refused(Refusal(status: 404, code: "not_found", message: "No held request with this id is visible to you."))
        }
        guard allowed.contains(held.metadata.connection) else {
            await auditRefusal(id: id, record: record, approver: identity, vote: vote, code: "forbidden")
            return .refused(Refusal(
                status: 403, code: "forbidden", message: "Refused by the approver check: you are not an approver of connection \(held.metadata.connection)."))
        }
        guard held.metadata.identity.id != identity.id, !held.metadata.identity.isSamePerson(as: identity) else {
            await auditRefusal(id: id, record: record, approver: identity, vote: vote, code: "self_approval")
            return .refused(Refusal(
                status: 403, code: "self_approval", message: "Refused by the self-approval check: no person may decide on their own request, under any identity."))
        }
        guard record.status == .pending else {
            let code = record.status == .expired ? "expired" : "already_decided"
            return .refused(Refusal(
                status: 409, code: code, message: "The request is already \(record.status.rawValue).", extra: ["status": record.status.rawValue]))
        }
        if vote == .approve, record.approvingPersons.contains(identity.personKey) {
            return .refused(Refusal(
                status: 409, code: "already_approved", message: "You already approved this request (possibly under another identity).",
                extra: ["status": record.status.rawValue]))
        }
        var input: DecisionInput
        do { input = try await readInput() } catch let refusal as Refusal {
            return .refused(refusal)
        } catch {
            return .refused(Refusal(status: 400, code: "bad_request", message: "The body must be JSON {\"reason\": \"...\"} with at most 1000 characters."))
        }
        let typed = input.reason
        // A scoped approval: the same checks the Forwarder makes, answered here in words.
        if var grant = input.grant {
            // A glob that is the request's own path is that path, taken literally.
            if grant.pathGlob == held.request.path { grant.pathGlob = nil }
            input.grant = grant
            guard vote == .approve else {
                return .refused(Refusal(status: 400, code: "bad_request", message: "Only an approval can pre-approve similar calls."))
            }
            let required = connections[held.metadata.connection]?.policy.approvalsRequired ?? record.approvalsRequired
            if let refusal = grant.refusal(facts: GrantFacts(held), approvalsRequired: required, globIsValid: PathGlob.isValid) {
                return .refused(Refusal(status: 422, code: "grant_refused", message: "No scoped approval: \(refusal).", extra: ["status": record.status.rawValue]))
            }
        }
        // A reviewer may paste a secret into the reason: it is masked like a body before it goes
        // anywhere (the approvals topic, the holds listing, the audit trail).
        let reason: String
        switch reasons.mask(typed) {
        case .success(let masked):
            reason = masked.text
            if !masked.rules.isEmpty {
                context.logger.warning("secret masked in an approver's reason", metadata: [
                    "request_id": "\(id)", "approver": "\(identity.id)", "rules": "\(masked.rules.joined(separator: ","))",
                ])
            }
        case .failure(let error):
            context.logger.error("approver's reason could not be scanned", metadata: ["request_id": "\(id)", "error": "\(error)"])
            return .refused(Refusal(status: 422, code: "reason_unscannable", message: "The reason could not be checked for secrets; shorten it or leave it out."))
        }
        let decision = ApprovalDecision(requestID: id, vote: vote, approver: identity, reason: reason, grant: input.grant)
        do { try await context.bus.publish(try context.codec.decision(decision)) } catch {
            context.logger.error("publish to approvals failed", metadata: ["request_id": "\(id)", "error": "\(error)"])
            return .refused(Refusal(status: 503, code: "unavailable", message: "The decision could not be recorded; try again shortly.", retryAfter: 1))
        }
        context.logger.info("decision submitted", metadata: [
            "request_id": "\(id)", "approver": "\(identity.id)", "vote": "\(vote.rawValue)", "decision_id": "\(decision.decisionID)",
        ])
        // The Forwarder decides; answer with the state once the changelog shows this decision
        // (or the request became final through another one).
        let latest = await view.waitUntil(id, timeout: decisionEcho) { r in
            r.decisions.contains { $0.decisionID == decision.decisionID } || r.status.isFinal
        } ?? record
        let counted = latest.decisions.contains { $0.decisionID == decision.decisionID }
        if !counted, latest.status.isFinal {
            return .refused(Refusal(
                status: 409, code: "already_decided", message: "The request was decided before your decision counted.",
                extra: ["status": latest.status.rawValue]))
        }
        return .recorded(latest, decisionID: decision.decisionID, counted: counted, grant: input.grant != nil)
    }

    // MARK: helpers

    /// Audits a refused approval attempt: the code, the approver's identity and person, the
    /// vote; never the reviewer's reason text (it is not even read).
    private func auditRefusal(id: String, record: HoldRecord?, approver: CallerIdentity, vote: ApprovalDecision.Vote, code: String) async {
        let meta = record?.request?.metadata
        // The id comes from the URL: bound it so a refused attempt cannot bloat the audit log.
        let requestID = String(id.prefix(64))
        context.logger.warning("approval refused", metadata: ["request_id": "\(requestID)", "approver": "\(approver.id)", "refusal": "\(code)"])
        await context.audit(AuditEvent(
            kind: .approvalRefused, stage: "ingress", requestID: requestID, sessionID: meta?.sessionID ?? requestID,
            connection: meta?.connection, identity: approver.id, decision: meta == nil ? nil : .hold, status: 403,
            details: ["reason": code, "person": approver.person, "vote": vote.rawValue, "requester": meta?.identity.id ?? ""]))
    }

    /// Connections whose `approvers` share a group with `identity`.
    func decidable(by identity: CallerIdentity) -> Set<String> {
        Set(connections.values.filter { !Set($0.policy.approvers).isDisjoint(with: identity.groups) }.map(\.name))
    }

    private func authenticate(_ request: Request) async -> Result<CallerIdentity, ResponseError> {
        let credential = bearerCredential(fromAuthorization: request.headers[.authorization])
        do {
            guard let credential else { throw AuthenticationError.missing }
            return .success(try await authenticator.authenticate(bearer: credential))
        } catch {
            let authError = error as? AuthenticationError ?? .invalid(reason: "authenticator failed")
            // The refusal's own id: the audit event and the answer carry the same.
            let refusalID = UUID().uuidString.lowercased()
            if case .unavailable(let reason) = authError {
                context.logger.warning("authentication unavailable", metadata: ["error": "\(reason)"])
                await authAudit.record(
                    authError, credential: credential, status: 503, code: ErrorCode.unavailable.rawValue, requestID: refusalID,
                    method: request.method.rawValue, connection: nil, api: "approvals", context: context)
                return .failure(ResponseError(Responses.error(.unavailable, requestID: refusalID)))
            }
            await authAudit.record(
                authError, credential: credential, status: 401, code: ErrorCode.unauthorized.rawValue, requestID: refusalID,
                method: request.method.rawValue, connection: nil, api: "approvals", context: context)
            var r = Responses.error(.unauthorized, requestID: refusalID)
            r.headers[.wwwAuthenticate] = "Bearer"
            return .failure(ResponseError(r))
        }
    }

    struct ResponseError: Error {
        let response: Response
        init(_ r: Response) { response = r }
    }

    /// What a decision's body says: the reason, and for a scoped approval what it covers.
    struct DecisionInput: Sendable {
        var reason: String
        var grant: GrantRequest?
    }

    /// `{"reason": "...", "grant": {"for": "1h", "calls": 50, "path_glob": "/db/*", "same_body_shape": true}}`
    /// (every key optional; `grant.for` defaults to 1h).
    static func decisionInput(from request: Request) async throws -> DecisionInput {
        let buffer = try await request.body.collect(upTo: 16 * 1024)
        guard buffer.readableBytes > 0 else { return DecisionInput(reason: "", grant: nil) }
        let object = try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))
        guard let dict = object as? [String: Any] else { throw CocoaError(.coderInvalidValue) }
        var input = DecisionInput(reason: "", grant: nil)
        if let reason = dict["reason"] {
            guard let text = reason as? String, text.count <= 1000 else { throw CocoaError(.coderInvalidValue) }
            input.reason = text
        }
        if let grant = dict["grant"] {
            guard let spec = grant as? [String: Any] else { throw Self.grantBadRequest("grant must be an object") }
            input.grant = try Self.grantRequest(
                window: spec["for"].map { "\($0)" }, calls: spec["calls"], pathGlob: spec["path_glob"], sameBodyShape: spec["same_body_shape"])
        }
        return input
    }

    /// A grant request from its parts as a client sent them (JSON values or form strings).
    static func grantRequest(window: String?, calls: Any?, pathGlob: Any?, sameBodyShape: Any?) throws -> GrantRequest {
        let windowMillis: Int64
        do { windowMillis = try ConfigDuration(parsing: window ?? "1h").milliseconds } catch {
            throw grantBadRequest("grant.for must be a duration such as 15m, 1h or 24h")
        }
        var maxCalls: Int? = nil
        switch calls {
        case nil, is NSNull: break
        case let n as Int: maxCalls = n
        case let text as String where text.trimmingCharacters(in: .whitespaces).isEmpty: break
        case let text as String:
            guard let n = Int(text.trimmingCharacters(in: .whitespaces)) else { throw grantBadRequest("grant.calls must be a whole number") }
            maxCalls = n
        default: throw grantBadRequest("grant.calls must be a whole number")
        }
        var glob: String? = nil
        switch pathGlob {
        case nil, is NSNull: break
        case let text as String where text.isEmpty: break
        case let text as String: glob = text
        default: throw grantBadRequest("grant.path_glob must be a string")
        }
        let same: Bool
        switch sameBodyShape {
        case nil, is NSNull: same = false
        case let b as Bool: same = b
        case let text as String: same = ["1", "on", "true", "yes"].contains(text.lowercased())
        default: throw grantBadRequest("grant.same_body_shape must be true or false")
        }
        return GrantRequest(windowMillis: windowMillis, maxCalls: maxCalls, pathGlob: glob, sameBodyShape: same)
    }

    static func grantBadRequest(_ message: String) -> Refusal {
        Refusal(status: 400, code: "bad_request", message: message + ".")
    }

    // MARK: grants

    /// `GET /v1/grants?status=active|all`: the scoped approvals of the connections the reviewer decides on.
    func listGrants(_ request: Request) async -> Response {
        let allowed: Set<String>
        switch await reviewer(request) {
        case .failure(let failure): return failure.response
        case .success(let a): allowed = a
        }
        let all: Bool
        switch request.uri.queryParameters.get("status") ?? "active" {
        case "active": all = false
        case "all": all = true
        default: return Self.error(400, "bad_request", message: "status must be active or all.")
        }
        let now = currentMillis()
        return Self.json(200, ["grants": await view.grants(connections: allowed, all: all, now: now).map { Self.describe($0, now: now) }], requestID: "")
    }

    /// `POST /v1/grants/<id>/revoke`.
    func revokeGrant(_ request: Request, id: String) async -> Response {
        let identity: CallerIdentity
        switch await authenticate(request) {
        case .failure(let failure): return failure.response
        case .success(let i): identity = i
        }
        switch await revoke(grantID: id, by: identity) {
        case .failure(let refusal): return Self.error(refusal.status, refusal.code, message: refusal.message, requestID: id, extra: refusal.extra)
        case .success(let grant): return Self.json(200, Self.describe(grant, now: currentMillis()), requestID: id)
        }
    }

    /// Revokes a grant for `identity` (an approver of its connection): 403 for someone who
    /// approves nothing, 404 unknown or not theirs, 409 already revoked, 503 when the revocation cannot be published; the grant as
    /// the changelog then shows it.
    func revoke(grantID id: String, by identity: CallerIdentity) async -> Result<ApprovalGrant, Refusal> {
        guard !decidable(by: identity).isEmpty else {
            return .failure(Refusal(status: 403, code: "forbidden", message: "Refused by the approver check: you are not an approver of any connection."))
        }
        guard let grant = await view.grant(id), decidable(by: identity).contains(grant.scope.connection) else {
            return .failure(Refusal(status: 404, code: "not_found", message: "No grant with this id is visible to you."))
        }
        guard grant.revokedAtMillis == nil else {
            return .failure(Refusal(status: 409, code: "already_revoked", message: "The grant is already revoked."))
        }
        let revocation = GrantRevocation(grantID: id, by: identity)
        do { try await context.bus.publish(try context.codec.grantRevocation(revocation)) } catch {
            context.logger.error("publish of a grant revocation failed", metadata: ["grant_id": "\(id)", "error": "\(error)"])
            return .failure(Refusal(status: 503, code: "unavailable", message: "The revocation could not be recorded; try again shortly.", retryAfter: 1))
        }
        context.logger.info("grant revocation submitted", metadata: ["grant_id": "\(id)", "by": "\(identity.id)"])
        let latest = await view.waitUntilGrant(id, timeout: decisionEcho) { $0.revokedAtMillis != nil } ?? grant
        return .success(latest)
    }

    /// The reviewer's view of a grant.
    static func describe(_ g: ApprovalGrant, now: Int64) -> [String: Any] {
        var out: [String: Any] = [
            "grant_id": g.grantID, "state": g.state(now: now).rawValue, "connection": g.scope.connection,
            "person": g.scope.person, "method": g.scope.method, "approved_by": g.approver.id, "approved_by_person": g.approver.person,
            "reason": g.reason, "from_request_id": g.fromRequestID, "created_at": iso(g.createdAtMillis),
            "expires_at": iso(g.expiresAtMillis), "uses": g.uses, "released": g.released,
        ]
        if let path = g.scope.path { out["path"] = path }
        if let glob = g.scope.pathGlob { out["path_glob"] = glob }
        if let keys = g.scope.bodyKeys { out["body_keys"] = keys }
        if let calls = g.maxCalls { out["max_calls"] = calls }
        if let at = g.revokedAtMillis { out["revoked_at"] = iso(at) }
        if let by = g.revokedBy { out["revoked_by"] = by.id }
        return out
    }

    /// The reviewer's view of a record: never an unmasked value (the stored request is masked).
    static func describe(_ r: HoldRecord) -> [String: Any] {
        var out: [String: Any] = [
            "request_id": r.requestID, "status": r.status.rawValue,
            "approvals": r.approvingPersons.count, "approvals_required": r.approvalsRequired,
            "approved_by": r.approvers, "approved_by_persons": r.approvingPersons,
            "created_at": iso(r.createdAtMillis), "expires_at": iso(r.expiresAtMillis), "updated_at": iso(r.updatedAtMillis),
            "decisions": r.decisions.map { d in
                ["approver": d.approver.id, "person": d.approver.person, "vote": d.vote.rawValue, "reason": d.reason, "at": iso(d.decidedAtMillis)]
            },
        ]
        if let req = r.request {
            out["connection"] = req.metadata.connection
            out["requester"] = req.metadata.identity.id
            out["requester_person"] = req.metadata.identity.person
            out["session_id"] = req.metadata.sessionID
            out["method"] = req.request.method
            out["path"] = req.request.query.isEmpty ? req.request.path : req.request.path + "?" + req.request.query
            out["reasons"] = req.verdict.reasons
            out["rules"] = req.verdict.rules
            out["findings"] = req.findings.map { ["rule": $0.rule, "location": $0.location, "fingerprint": $0.fingerprint] }
            let preview = req.request.body.prefix(previewBytes)
            out["preview"] = String(decoding: preview, as: UTF8.self)
            out["preview_truncated"] = req.request.body.count > previewBytes
        }
        if r.status.isFinal, let response = r.response { out["response_status"] = response.status }
        return out
    }

    static let previewBytes = HoldRecord.previewBytes

    static func iso(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func json(_ status: Int, _ object: [String: Any], requestID: String) -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Responses.make(HTTPResponseData(status: status, headers: [Pipeline.HTTPField("Content-Type", "application/json")], body: body), requestID: requestID)
    }

    /// `{"error": code, "message": one sentence, "request_id": id}` plus `extra`.
    static func error(
        _ status: Int, _ code: String, message: String, requestID: String = "", extra: [String: String] = [:], retryAfter: Int? = nil
    ) -> Response {
        var object: [String: Any] = extra
        object["error"] = code
        object["message"] = message
        object["request_id"] = requestID
        var response = json(status, object, requestID: requestID)
        if let retryAfter { response.headers[.retryAfter] = "\(retryAfter)" }
        return response
    }
}
