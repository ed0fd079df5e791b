import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Pipeline

/// The reviewer console at `/console` on the caller port: sign in with a reviewer's API key,
/// the inbox of held requests (live), a request's page with approve and deny, the history.
///
/// Guarantees:
/// - Every decision goes through ``ApprovalsRoutes/submit(id:vote:by:reason:)``: the same
///   approver, self-approval, state and reason-masking checks as the API, and the same audit.
/// - Only a member of some connection's `approvers` gets a session; each page shows only the
///   connections the session's identity may decide on (404 for any other request).
/// - The session cookie is `HttpOnly; SameSite=Strict; Path=/console` (and `Secure` when
///   `public_url` is https); every state-changing form (sign in, sign out, approve, deny)
///   carries a CSRF token compared in constant time: without it the answer is 403 and nothing
///   changes. Sign-in's token is bound to a cookie set by the sign-in page.
/// - Every answer carries a strict Content-Security-Policy (scripts and styles from the console's
///   own origin only, no framing, forms post only to it), `nosniff`, `no-referrer` and
///   `no-store`.
/// - A refused credential is audited like one at `/fn/...` (``AuthFailureAudit``, api `console`).
/// - The live inbox (`/console/events`, server-sent events) ends when the session ends, after
///   `streamLifetime` (the browser reconnects) and as soon as the Ingress starts draining, so
///   it never holds a graceful shutdown.
struct ConsoleRoutes: Sendable {
    let approvals: ApprovalsRoutes
    let sessions: ConsoleSessions
    let authenticator: any Authenticator
    let authAudit: AuthFailureAudit
    let context: StageContext
    /// Whether cookies carry `Secure` (`public_url` is https).
    let secureCookies: Bool
    /// Whether the caller port is draining (the live inbox ends then).
    let draining: @Sendable () -> Bool
    /// Single sign-on (`console.oidc`); when set, the API key form is not offered.
    var oidc: ConsoleOIDC? = nil
    /// Session recordings (the Recorder's store, when this process can read it).
    var recordings: (any SessionRecordingSource)? = nil
    var streamLifetime: Duration = .seconds(300)
    /// Live-inbox streams open at once (per session, in all).
    var streams = StreamSlots()
    var streamPoll: Duration = .milliseconds(200)

    static let sessionCookie = "sluice_console"
    static let loginCookie = "sluice_console_login"
    static let oidcCookie = "sluice_console_oidc"
    static let maxFormBytes = 16 * 1024
    static let historyLimit = 200

    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    func add(to router: Router<BasicRequestContext>) {
        router.get("/console") { request, _ in await self.inbox(request) }
        router.get("/console/login") { request, _ in self.loginPage(request) }
        router.post("/console/login") { request, _ in await self.login(request) }
        router.get("/console/oidc/start") { _, _ in await self.oidcStart() }
        router.get("/console/oidc/callback") { request, _ in await self.oidcCallback(request) }
        router.post("/console/logout") { request, _ in await self.logout(request) }
        router.get("/console/events") { request, _ in self.events(request) }
        router.get("/console/requests/:id") { request, ctx in await self.show(request, id: ctx.parameters.get("id") ?? "") }
        router.post("/console/requests/:id/approve") { request, ctx in
            await self.decide(request, id: ctx.parameters.get("id") ?? "", vote: .approve)
        }
        router.post("/console/requests/:id/deny") { request, ctx in
            await self.decide(request, id: ctx.parameters.get("id") ?? "", vote: .deny)
        }
        router.get("/console/sessions/:id") { request, ctx in await self.session(request, id: ctx.parameters.get("id") ?? "") }
        router.get("/console/grants") { request, _ in await self.grants(request) }
        router.post("/console/grants/:id/revoke") { request, ctx in await self.revoke(request, id: ctx.parameters.get("id") ?? "") }
        router.get("/console/app.js") { _, _ in Self.asset(ConsoleAssets.script, type: "text/javascript; charset=utf-8") }
        router.get("/console/app.css") { _, _ in Self.asset(ConsoleAssets.style, type: "text/css; charset=utf-8") }
    }

    // MARK: sign in and out

    func loginPage(_ request: Request) -> Response {
        if session(request) != nil { return Self.redirect("/console") }
        let token = ConsoleSessions.randomToken()
        var response = Self.page(200, ConsolePages.login(csrf: token, message: nil, sso: oidc != nil))
        response.headers.append(HTTPTypes.HTTPField(name: .setCookie, value: cookie(Self.loginCookie, token, maxAge: 3600)))
        return response
    }

    func login(_ request: Request) async -> Response {
        let form: [String: String]
        do { form = try await Self.form(request) } catch {
            return Self.page(400, ConsolePages.message(session: nil, title: "Bad request", text: "The form could not be read."))
        }
        // A fresh token and cookie with every answer, so the form can be tried again.
        let fresh = ConsoleSessions.randomToken()
        func again(_ status: Int, _ message: String) -> Response {
            var response = Self.page(status, ConsolePages.login(csrf: fresh, message: message, sso: oidc != nil))
            response.headers.append(HTTPTypes.HTTPField(name: .setCookie, value: cookie(Self.loginCookie, fresh, maxAge: 3600)))
            return response
        }
        guard oidc == nil else { return again(404, "Sign in with single sign-on.") }
        guard let expected = Self.cookies(request)[Self.loginCookie], let sent = form["csrf"], ConsoleSessions.sameToken(expected, sent) else {
            context.logger.warning("console sign-in refused: missing or wrong CSRF token")
            return again(403, "The sign-in form expired or did not come from this console; try again.")
        }
        let key = (form["api_key"] ?? "").trimmingCharacters(in: .whitespaces)
        let identity: CallerIdentity
        do {
            guard !key.isEmpty, key.utf8.count <= 16 * 1024 else { throw AuthenticationError.missing }
            identity = try await authenticator.authenticate(bearer: key)
        } catch {
            let authError = error as? AuthenticationError ?? .invalid(reason: "authenticator failed")
            let refusalID = UUID().uuidString.lowercased()
            if case .unavailable = authError {
                await authAudit.record(
                    authError, credential: key, status: 503, code: ErrorCode.unavailable.rawValue, requestID: refusalID,
                    method: "POST", connection: nil, api: "console", context: context)
                return again(503, "The key cannot be checked right now; try again shortly.")
            }
            await authAudit.record(
                authError, credential: key.isEmpty ? nil : key, status: 401, code: ErrorCode.unauthorized.rawValue, requestID: refusalID,
                method: "POST", connection: nil, api: "console", context: context)
            return again(401, "This key was not accepted.")
        }
        guard !approvals.decidable(by: identity).isEmpty else { return again(403, Self.notAReviewer(identity, logger: context.logger)) }
        var response = Self.redirect("/console")
        response.headers.append(startSession(identity))
        response.headers.append(HTTPTypes.HTTPField(name: .setCookie, value: cookie(Self.loginCookie, "", maxAge: 0)))
        return response
    }

    /// A session for `identity`: its cookie header.
    private func startSession(_ identity: CallerIdentity) -> HTTPTypes.HTTPField {
        let (token, _) = sessions.create(for: identity)
        context.logger.info("console sign-in", metadata: ["identity": "\(identity.id)", "person": "\(identity.person)", "method": "\(identity.method)"])
        return HTTPTypes.HTTPField(name: .setCookie, value: cookie(Self.sessionCookie, token, maxAge: sessions.ttlSeconds))
    }

    private static func notAReviewer(_ identity: CallerIdentity, logger: Logger) -> String {
        logger.warning("console sign-in refused: not an approver", metadata: ["identity": "\(identity.id)"])
        return "You are not an approver of any connection, so there is nothing for you to review."
    }

    // MARK: single sign-on

    /// Sends the browser to the provider; the state goes in a `SameSite=Lax` cookie, so the
    /// browser sends it back with the provider's (cross-site) redirect to the callback.
    func oidcStart() async -> Response {
        guard let oidc else { return Self.page(404, ConsolePages.message(session: nil, title: "Not found", text: "Single sign-on is not configured.")) }
        let url: String, state: String
        do { (url, state) = try await oidc.start() } catch {
            context.logger.error("console single sign-on cannot start", metadata: ["error": "\(error)"])
            return Self.page(503, ConsolePages.login(csrf: "", message: "The identity provider cannot be reached right now; try again shortly.", sso: true))
        }
        var response = Self.redirect(url)
        response.headers.append(HTTPTypes.HTTPField(name: .setCookie, value: cookie(Self.oidcCookie, state, maxAge: 600, sameSite: "Lax")))
        return response
    }

    func oidcCallback(_ request: Request) async -> Response {
        guard let oidc else { return Self.page(404, ConsolePages.message(session: nil, title: "Not found", text: "Single sign-on is not configured.")) }
        let query = request.uri.queryParameters
        func refuse(_ status: Int, _ message: String) -> Response {
            var response = Self.page(status, ConsolePages.login(csrf: "", message: message, sso: true))
            response.headers.append(HTTPTypes.HTTPField(name: .setCookie, value: cookie(Self.oidcCookie, "", maxAge: 0, sameSite: "Lax")))
            return response
        }
        if let error = query.get("error") {
            context.logger.warning("console single sign-on refused by the provider", metadata: ["error": "\(error.prefix(64))"])
            return refuse(401, "The identity provider did not sign you in (\(error.prefix(64))).")
        }
        let identity: CallerIdentity
        do {
            identity = try await oidc.finish(
                code: query.get("code").map { String($0) } ?? "", state: query.get("state").map { String($0) } ?? "",
                cookieState: Self.cookies(request)[Self.oidcCookie])
        } catch let failure as ConsoleOIDC.Failure {
            let refusalID = UUID().uuidString.lowercased()
            context.logger.warning("console single sign-on failed", metadata: ["error": "\(failure)"])
            await authAudit.record(
                failure.unavailable ? .unavailable(reason: failure.description) : .invalid(reason: failure.description), credential: nil,
                status: failure.unavailable ? 503 : 401,
                code: failure.unavailable ? ErrorCode.unavailable.rawValue : ErrorCode.unauthorized.rawValue, requestID: refusalID,
                method: "GET", connection: nil, api: "console", context: context)
            return refuse(failure.unavailable ? 503 : 401, "Sign-in failed: \(failure.description).")
        } catch {
            return refuse(401, "Sign-in failed.")
        }
        guard !approvals.decidable(by: identity).isEmpty else { return refuse(403, Self.notAReviewer(identity, logger: context.logger)) }
        var response = Self.page(200, ConsolePages.signedIn(identity))
        response.headers.append(startSession(identity))
        response.headers.append(HTTPTypes.HTTPField(name: .setCookie, value: cookie(Self.oidcCookie, "", maxAge: 0, sameSite: "Lax")))
        return response
    }

    func logout(_ request: Request) async -> Response {
        guard let (token, session) = sessionWithToken(request) else { return Self.redirect("/console/login") }
        guard await csrfMatches(request, session) else { return refusedCSRF(session) }
        sessions.remove(token: token)
        context.logger.info("console sign-out", metadata: ["identity": "\(session.identity.id)"])
        var response = Self.redirect("/console/login")
        response.headers.append(HTTPTypes.HTTPField(name: .setCookie, value: cookie(Self.sessionCookie, "", maxAge: 0)))
        return response
    }

    // MARK: pages

    func inbox(_ request: Request) async -> Response {
        guard let session = session(request) else { return Self.redirect("/console/login") }
        let allowed = approvals.decidable(by: session.identity)
        let history = request.uri.queryParameters.get("view") == "history"
        let records: [HoldRecord]
        if history {
            let decided = await approvals.view.list(connections: allowed, statuses: Set(HoldStatus.allCases).subtracting([.pending]))
            records = Array(decided.sorted { ($0.updatedAtMillis, $0.requestID) > ($1.updatedAtMillis, $1.requestID) }.prefix(Self.historyLimit))
        } else {
            records = await pending(allowed)
        }
        return Self.page(200, ConsolePages.inbox(session: session, records: records, history: history, now: currentMillis()))
    }

    func show(_ request: Request, id: String) async -> Response {
        guard let session = session(request) else { return Self.redirect("/console/login") }
        guard let record = await visible(id, to: session) else { return notFound(session) }
        let notice = ConsolePages.notice(done: request.uri.queryParameters.get("done").map { String($0) })
        return Self.page(
            200, ConsolePages.request(session: session, record: record, notice: notice, error: nil, now: currentMillis(), grantable: grantRefusal(record)))
    }

    func decide(_ request: Request, id: String, vote: ApprovalDecision.Vote) async -> Response {
        guard let session = session(request) else { return Self.redirect("/console/login") }
        let form: [String: String]
        do { form = try await Self.form(request) } catch {
            return Self.page(400, ConsolePages.message(session: session, title: "Bad request", text: "The form could not be read."))
        }
        guard let sent = form["csrf"], ConsoleSessions.sameToken(session.csrf, sent) else { return refusedCSRF(session) }
        let reason = form["reason"] ?? ""
        let outcome = await approvals.submit(id: id, vote: vote, by: session.identity) {
            guard reason.count <= 1000 else {
                throw ApprovalsRoutes.Refusal(status: 400, code: "bad_request", message: "The reason is longer than 1000 characters.")
            }
            let grant = form["grant"] == "1"
                ? try ApprovalsRoutes.grantRequest(
                    window: form["grant_for"], calls: form["grant_calls"], pathGlob: form["grant_path_glob"],
                    sameBodyShape: form["grant_same_body_shape"])
                : nil
            return ApprovalsRoutes.DecisionInput(reason: reason, grant: grant)
        }
        switch outcome {
        case .recorded(_, _, _, let grant):
            return Self.redirect("/console/requests/\(Self.pathSegment(id))?done=\(grant ? "grant" : vote.rawValue)")
        case .refused(let refusal):
            guard let record = await visible(id, to: session) else { return notFound(session) }
            // The API's refusal, with 410 for a request that expired.
            let status = refusal.code == "expired" ? 410 : refusal.status
            let text = refusal.message
            return Self.page(
                status,
                ConsolePages.request(session: session, record: record, notice: nil, error: text, now: currentMillis(), grantable: grantRefusal(record)))
        }
    }

    /// Why no scoped approval can come from `record` (shown instead of the form), else `nil`.
    func grantRefusal(_ record: HoldRecord) -> GrantRefusal? {
        guard let held = record.request else { return .credential }
        let required = approvals.connections[held.metadata.connection]?.policy.approvalsRequired ?? record.approvalsRequired
        let probe = GrantRequest(windowMillis: 3_600_000, maxCalls: nil, pathGlob: nil, sameBodyShape: false)
        return probe.refusal(facts: GrantFacts(held), approvalsRequired: required, globIsValid: { _ in true })
    }

    // MARK: replay

    /// A session's recording: its events and masked requests and responses, only those on
    /// connections the reviewer decides on (404 when there are none).
    func session(_ request: Request, id: String) async -> Response {
        guard let session = session(request) else { return Self.redirect("/console/login") }
        let notFound = Self.page(404, ConsolePages.message(
            session: session, title: "Not found", text: "No recording of this session on your connections is readable here."))
        // The same form as X-Sluice-Session: the id never reaches the store otherwise.
        guard IngressHeaders.sessionID(id, default: "") == id, !id.isEmpty, let recordings else { return notFound }
        let recorded: RecordedSession?
        do { recorded = try await recordings.session(id) } catch {
            context.logger.warning("session recording not read", metadata: ["session_id": "\(id)", "error": "\(error)"])
            return Self.page(503, ConsolePages.message(session: session, title: "Recording unavailable", text: "The recording could not be read; try again shortly."))
        }
        guard let recorded else { return notFound }
        let allowed = approvals.decidable(by: session.identity)
        let events = recorded.events.filter { $0.connection.map(allowed.contains) ?? false }
        let visible = Set(events.map(\.requestID))
        let exchanges = recorded.exchanges.filter { visible.contains($0.requestID) }
        guard !events.isEmpty else { return notFound }
        return Self.page(200, ConsolePages.recording(session: session, sessionID: id, events: events, exchanges: exchanges, now: currentMillis()))
    }

    // MARK: grants

    func grants(_ request: Request) async -> Response {
        guard let session = session(request) else { return Self.redirect("/console/login") }
        let now = currentMillis()
        let list = await approvals.view.grants(connections: approvals.decidable(by: session.identity), all: true, now: now)
        return Self.page(200, ConsolePages.grants(session: session, grants: Array(list.prefix(Self.historyLimit)), now: now))
    }

    func revoke(_ request: Request, id: String) async -> Response {
        guard let session = session(request) else { return Self.redirect("/console/login") }
        guard await csrfMatches(request, session) else { return refusedCSRF(session) }
        switch await approvals.revoke(grantID: id, by: session.identity) {
        case .success: return Self.redirect("/console/grants")
        case .failure(let refusal):
            return Self.page(refusal.status, ConsolePages.message(session: session, title: "Not revoked", text: refusal.message))
        }
    }

    // MARK: live inbox

    /// `text/event-stream`: an `inbox` event with every pending item at once and after each
    /// change of the holds view; a comment every 15 s keeps proxies from closing it; a
    /// `signed-out` event when the session ends; only `busy` when the session already has
    /// ``StreamSlots/perSession`` streams open (or the Ingress ``StreamSlots/total``).
    func events(_ request: Request) -> Response {
        guard let token = Self.cookies(request)[Self.sessionCookie], let first = sessions.session(token: token) else {
            return Self.page(401, ConsolePages.message(session: nil, title: "Signed out", text: "Sign in again."))
        }
        let view = approvals.view
        let allowed = approvals.decidable(by: first.identity)
        let sessions = sessions
        let (lifetime, poll, draining) = (streamLifetime, streamPoll, draining)
        var headers = Self.securityHeaders()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        let streams = streams
        let slot = first.csrf  // unique per session
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            // A session (or everyone) with too many streams open gets `busy` and no stream.
            guard streams.acquire(slot) else {
                try await writer.write(ByteBuffer(string: "event: busy\ndata: {}\n\n"))
                try await writer.finish(nil)
                return
            }
            defer { streams.release(slot) }
            let end = ContinuousClock.now + lifetime
            var seen = -1
            var lastWrite = ContinuousClock.now
            while ContinuousClock.now < end, !draining(), !Task.isCancelled {
                // An open inbox is not activity: the session still ends after `idle_timeout`.
                guard sessions.session(token: token, renew: false) != nil else {
                    try await writer.write(ByteBuffer(string: "event: signed-out\ndata: {}\n\n"))
                    break
                }
                let version = await view.version
                if version != seen {
                    seen = version
                    let items = await pending(allowed, view: view).compactMap(ConsolePages.item)
                    try await writer.write(ByteBuffer(string: "event: inbox\ndata: \(Self.inboxJSON(items))\n\n"))
                    lastWrite = ContinuousClock.now
                } else if ContinuousClock.now - lastWrite > .seconds(15) {
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    lastWrite = ContinuousClock.now
                }
                do { try await Task.sleep(for: poll) } catch { break }
            }
            try await writer.finish(nil)
        })
    }

    static func inboxJSON(_ items: [ConsolePages.Item]) -> String {
        struct Payload: Encodable {
            var pending: [ConsolePages.Item]
            var now_ms: Int64
        }
        let data = (try? JSONEncoder().encode(Payload(pending: items, now_ms: currentMillis()))) ?? Data("{\"pending\":[]}".utf8)
        // One `data:` line: JSONEncoder never writes a raw newline.
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: helpers

    /// Pending records of `connections`, newest first.
    private func pending(_ connections: Set<String>, view: HoldsView? = nil) async -> [HoldRecord] {
        await (view ?? approvals.view).list(connections: connections, statuses: [.pending]).reversed()
    }

    private func visible(_ id: String, to session: ConsoleSession) async -> HoldRecord? {
        guard let record = await approvals.view.record(id), let conn = record.request?.metadata.connection,
            approvals.decidable(by: session.identity).contains(conn)
        else { return nil }
        return record
    }

    private func session(_ request: Request) -> ConsoleSession? { sessionWithToken(request)?.1 }

    private func sessionWithToken(_ request: Request) -> (String, ConsoleSession)? {
        guard let token = Self.cookies(request)[Self.sessionCookie], let session = sessions.session(token: token) else { return nil }
        return (token, session)
    }

    private func csrfMatches(_ request: Request, _ session: ConsoleSession) async -> Bool {
        guard let form = try? await Self.form(request), let sent = form["csrf"] else { return false }
        return ConsoleSessions.sameToken(session.csrf, sent)
    }

    private func refusedCSRF(_ session: ConsoleSession) -> Response {
        context.logger.warning("console form refused: missing or wrong CSRF token", metadata: ["identity": "\(session.identity.id)"])
        return Self.page(403, ConsolePages.message(
            session: session, title: "Refused", text: "The form's security token is missing or wrong; nothing was changed. Reload the page and try again."))
    }

    private func notFound(_ session: ConsoleSession) -> Response {
        Self.page(404, ConsolePages.message(session: session, title: "Not found", text: "No held request with this id is visible to you."))
    }

    func cookie(_ name: String, _ value: String, maxAge: Int64, sameSite: String = "Strict") -> String {
        "\(name)=\(value); Path=/console; Max-Age=\(maxAge); HttpOnly; SameSite=\(sameSite)\(secureCookies ? "; Secure" : "")"
    }

    /// The request's cookies by name (first wins); values as sent.
    static func cookies(_ request: Request) -> [String: String] {
        var out: [String: String] = [:]
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let pair = part.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                let name = pair[0].trimmingCharacters(in: .whitespaces)
                if out[name] == nil { out[name] = pair[1].trimmingCharacters(in: .whitespaces) }
            }
        }
        return out
    }

    /// An `application/x-www-form-urlencoded` body (at most ``maxFormBytes``), by field name.
    static func form(_ request: Request) async throws -> [String: String] {
        let buffer = try await request.body.collect(upTo: maxFormBytes)
        return parseForm(String(buffer: buffer))
    }

    static func parseForm(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String? { s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let name = decode(parts[0]), let value = decode(parts.count > 1 ? parts[1] : "") else { continue }
            if out[name] == nil { out[name] = value }
        }
        return out
    }

    static func pathSegment(_ id: String) -> String {
        URLText.percentEncoded(id)
    }

    static func securityHeaders() -> HTTPFields {
        var headers = HTTPFields()
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[.consoleReferrerPolicy] = "no-referrer"
        headers[.cacheControl] = "no-store"
        headers[.consoleFrameOptions] = "DENY"
        headers[.consoleOpenerPolicy] = "same-origin"
        return headers
    }

    static func page(_ status: Int, _ html: String) -> Response {
        var headers = securityHeaders()
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: .init(code: status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }

    static func redirect(_ location: String) -> Response {
        var headers = securityHeaders()
        headers[.location] = location
        return Response(status: .seeOther, headers: headers)
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = securityHeaders()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

extension HTTPTypes.HTTPField.Name {
    // Literal, valid field names: the initialiser fails only on characters a token cannot hold.
    static let consoleReferrerPolicy = HTTPTypes.HTTPField.Name("Referrer-Policy")!
    static let consoleFrameOptions = HTTPTypes.HTTPField.Name("X-Frame-Options")!
    static let consoleOpenerPolicy = HTTPTypes.HTTPField.Name("Cross-Origin-Opener-Policy")!
}
