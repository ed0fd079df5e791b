import Foundation
import Pipeline

/// Text made safe for HTML element content and quoted attribute values.
enum HTML {
    /// Escapes `&`, `<`, `>`, `"` and `'`: what a held request's path, body or a reviewer's
    /// reason contains renders as text, never as markup.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

/// The console's pages, rendered on the server from a session and hold records.
///
/// Guarantees: every value that comes from a caller or a reviewer (path, body preview,
/// identities, reasons, rule ids) goes through ``HTML/escape(_:)``; pages load only
/// `/console/app.css` and `/console/app.js` (no inline script or style, so the
/// Content-Security-Policy forbids every other script); every form that changes state carries
/// the session's CSRF token.
enum ConsolePages {
    /// The inbox's view of a record (also the live updates' JSON items).
    struct Item: Sendable, Encodable, Equatable {
        var request_id: String
        var status: String
        var requester: String
        var requester_person: String
        var connection: String
        var method: String
        var path: String
        var rules: [String]
        /// Why it was held: hold clauses and `finding <rule>` (the verdict's reasons).
        var reasons: [String]
        var preview: String
        var created_at_ms: Int64
        var expires_at_ms: Int64
        var updated_at_ms: Int64
        var approvals: Int
        var approvals_required: Int
    }

    /// Characters of the masked body shown in an inbox row (the request page shows the whole preview).
    static let rowPreviewCharacters = 160

    static func item(_ r: HoldRecord) -> Item? {
        guard let req = r.request else { return nil }
        let path = req.request.query.isEmpty ? req.request.path : req.request.path + "?" + req.request.query
        let preview = String(decoding: req.request.body.prefix(HoldRecord.previewBytes), as: UTF8.self)
        return Item(
            request_id: r.requestID, status: r.status.rawValue, requester: req.metadata.identity.id,
            requester_person: req.metadata.identity.person, connection: req.metadata.connection, method: req.request.method,
            path: path, rules: req.verdict.rules, reasons: req.verdict.reasons, preview: String(preview.prefix(rowPreviewCharacters)),
            created_at_ms: r.createdAtMillis, expires_at_ms: r.expiresAtMillis, updated_at_ms: r.updatedAtMillis,
            approvals: r.approvingPersons.count, approvals_required: r.approvalsRequired)
    }

    // MARK: pages

    /// The sign-in page: single sign-on when `sso` (`console.oidc`), else the API key form.
    static func login(csrf: String, message: String?, sso: Bool) -> String {
        let form = sso ? """
            <p><a class="button" href="/console/oidc/start" id="sso">Sign in with single sign-on</a></p>
            """ : """
            <form method="post" action="/console/login" autocomplete="off">
            <input type="hidden" name="csrf" value="\(HTML.escape(csrf))">
            <label for="api_key">Reviewer API key</label>
            <input type="password" id="api_key" name="api_key" required autofocus>
            <button type="submit" id="sign-in">Sign in</button>
            </form>
            """
        return layout(title: "Sign in", session: nil, body: """
            <main class="narrow">
            <h1>Sluice review console</h1>
            \(message.map { "<p class=\"error\" role=\"alert\" id=\"error\">\(HTML.escape($0))</p>" } ?? "")
            \(form)
            <p class="hint">Only members of a connection's <code>approvers</code> groups may sign in.</p>
            </main>
            """)
    }

    /// The page the sign-in callback answers with: it moves on to the inbox by itself, as a
    /// navigation that starts on this site (a browser may count a redirect chain begun at the
    /// provider as cross-site and withhold the `SameSite=Strict` session cookie from it).
    static func signedIn(_ identity: CallerIdentity) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/console">
        <title>Signed in · Sluice</title><link rel="stylesheet" href="/console/app.css"></head>
        <body><main class="narrow"><p id="signed-in">Signed in as \(HTML.escape(identity.person)).</p>
        <p><a href="/console" id="continue">Continue to the inbox</a></p></main></body></html>
        """
    }

    /// The inbox (pending, newest first) or the history (decided, newest change first).
    static func inbox(session: ConsoleSession, records: [HoldRecord], history: Bool, now: Int64) -> String {
        let items = records.compactMap(item)
        let rows = items.map { history ? historyRow($0) : pendingRow($0) }.joined(separator: "\n")
        let head = history
            ? "<tr><th>Request</th><th>Requester</th><th>Connection</th><th>Held by</th><th>Status</th><th>Decided</th></tr>"
            : "<tr><th>Request</th><th>Requester</th><th>Connection</th><th>Held by</th><th>Body (masked)</th><th>Expires in</th><th>Approvals</th></tr>"
        return layout(title: history ? "History" : "Inbox", session: session, now: now, body: """
            <main>
            \(tabs(current: history ? "history" : "inbox", pending: history ? "…" : String(items.count)))
            <table id="\(history ? "history" : "inbox")" class="list">
            <thead>\(head)</thead>
            <tbody id="\(history ? "history-rows" : "inbox-rows")">
            \(rows)
            </tbody>
            </table>
            <p id="empty" class="hint"\(items.isEmpty ? "" : " hidden")>\(history ? "Nothing decided yet." : "No request waits for you.")</p>
            <p class="hint">Keys: <kbd>j</kbd>/<kbd>k</kbd> move, <kbd>Enter</kbd> opens.</p>
            </main>
            """)
    }

    static func pendingRow(_ i: Item) -> String {
        """
        <tr class="row" data-id="\(HTML.escape(i.request_id))"><td><a href="/console/requests/\(HTML.escape(i.request_id))">\(HTML.escape(i.method)) \(HTML.escape(i.path))</a></td>\
        <td>\(HTML.escape(i.requester_person)) <span class="id">(\(HTML.escape(i.requester)))</span></td><td>\(HTML.escape(i.connection))</td>\
        <td>\(HTML.escape(i.reasons.joined(separator: "; ")))</td><td class="preview">\(HTML.escape(i.preview))</td>\
        <td data-expires="\(i.expires_at_ms)"></td><td>\(i.approvals) of \(i.approvals_required)</td></tr>
        """
    }

    static func historyRow(_ i: Item) -> String {
        """
        <tr class="row" data-id="\(HTML.escape(i.request_id))"><td><a href="/console/requests/\(HTML.escape(i.request_id))">\(HTML.escape(i.method)) \(HTML.escape(i.path))</a></td>\
        <td>\(HTML.escape(i.requester_person)) <span class="id">(\(HTML.escape(i.requester)))</span></td><td>\(HTML.escape(i.connection))</td>\
        <td>\(HTML.escape(i.reasons.joined(separator: "; ")))</td><td class="status-\(HTML.escape(i.status))">\(HTML.escape(i.status))</td>\
        <td data-time="\(i.updated_at_ms)">\(HTML.escape(iso(i.updated_at_ms)))</td></tr>
        """
    }

    /// What a finished action says on the request page (`?done=`): fixed texts, never echoed.
    static func notice(done: String?) -> String? {
        switch done {
        case "approve": "Your approval was recorded."
        case "deny": "Your denial was recorded."
        case "grant": "Your approval was recorded; similar calls are allowed (see Grants)."
        default: nil
        }
    }

    static func request(
        session: ConsoleSession, record r: HoldRecord, notice: String?, error: String?, now: Int64, grantable: GrantRefusal? = nil
    ) -> String {
        guard let req = r.request, let i = item(r) else { return "" }
        let preview = String(decoding: req.request.body.prefix(HoldRecord.previewBytes), as: UTF8.self)
        let truncated = req.request.body.count > HoldRecord.previewBytes
        let findings = req.findings.map { "<li><code>\(HTML.escape($0.rule))</code> at \(HTML.escape($0.location))</li>" }.joined()
        let decisions = r.decisions.map { d in
            "<li>\(HTML.escape(d.vote.rawValue)) by \(HTML.escape(d.approver.person)) <span class=\"id\">(\(HTML.escape(d.approver.id)))</span>, \(HTML.escape(iso(d.decidedAtMillis)))\(d.reason.isEmpty ? "" : ": “\(HTML.escape(d.reason))”")</li>"
        }.joined()
        let csrf = HTML.escape(session.csrf)
        let id = HTML.escape(r.requestID)
        let forms = r.status == .pending ? """
            <section class="decide">
            <form method="post" action="/console/requests/\(id)/approve" id="approve-form">
            <input type="hidden" name="csrf" value="\(csrf)">
            <label for="approve-reason">Reason for approving <kbd>a</kbd></label>
            <textarea id="approve-reason" name="reason" maxlength="1000" rows="2"></textarea>
            <button type="submit" id="approve" class="approve">Approve</button>
            </form>
            <form method="post" action="/console/requests/\(id)/deny" id="deny-form">
            <input type="hidden" name="csrf" value="\(csrf)">
            <label for="deny-reason">Reason for denying <kbd>d</kbd></label>
            <textarea id="deny-reason" name="reason" maxlength="1000" rows="2"></textarea>
            <button type="submit" id="deny" class="deny">Deny</button>
            </form>
            <p class="hint"><kbd>Ctrl</kbd>+<kbd>Enter</kbd> in a reason submits it; <kbd>Esc</kbd> back to the inbox.</p>
            </section>
            \(grantForm(id: id, csrf: csrf, path: i.path, refusal: grantable))
            """ : ""
        return layout(title: "\(req.request.method) \(i.path)", session: session, now: now, body: """
            <main>
            <p><a href="/console" id="back">← Inbox</a></p>
            \(notice.map { "<p class=\"notice\" role=\"status\" id=\"notice\">\(HTML.escape($0))</p>" } ?? "")
            \(error.map { "<p class=\"error\" role=\"alert\" id=\"error\">\(HTML.escape($0))</p>" } ?? "")
            <h1 id="request-line"><span class="method">\(HTML.escape(req.request.method))</span> <span class="path">\(HTML.escape(i.path))</span></h1>
            <dl class="facts">
            <dt>Status</dt><dd id="status" class="status-\(HTML.escape(r.status.rawValue))">\(HTML.escape(r.status.rawValue))</dd>
            <dt>Requester</dt><dd>\(HTML.escape(i.requester_person)) <span class="id">(\(HTML.escape(i.requester)))</span></dd>
            <dt>Connection</dt><dd>\(HTML.escape(i.connection))</dd>
            <dt>Session</dt><dd class="id">\(HTML.escape(req.metadata.sessionID))</dd>
            <dt>Held by</dt><dd>\(HTML.escape(req.verdict.reasons.joined(separator: "; ")))</dd>
            <dt>Approvals</dt><dd id="progress">\(i.approvals) of \(i.approvals_required)</dd>
            <dt>Created</dt><dd>\(HTML.escape(iso(r.createdAtMillis)))</dd>
            <dt>Expires</dt><dd>\(HTML.escape(iso(r.expiresAtMillis)))\(r.status == .pending ? " (in <span data-expires=\"\(r.expiresAtMillis)\"></span>)" : "")</dd>
            \(r.status.isFinal && r.response != nil ? "<dt>Response</dt><dd id=\"response-status\">\(r.response?.status ?? 0)</dd>" : "")
            <dt>Recording</dt><dd><a href="/console/sessions/\(HTML.escape(ConsoleRoutes.pathSegment(req.metadata.sessionID)))" id="recording">the session's recording</a> (or <code>sluice replay \(HTML.escape(req.metadata.sessionID))</code>)</dd>
            </dl>
            \(findings.isEmpty ? "" : "<h2>Findings</h2><ul class=\"findings\">\(findings)</ul>")
            <h2>Body (masked\(truncated ? ", first \(HoldRecord.previewBytes) bytes" : ""))</h2>
            <pre id="preview">\(HTML.escape(preview))</pre>
            \(decisions.isEmpty ? "" : "<h2>Decisions</h2><ul id=\"decisions\">\(decisions)</ul>")
            \(forms)
            </main>
            """)
    }

    /// "Approve and allow similar calls": a scoped approval from this request, or why there can be none.
    static func grantForm(id: String, csrf: String, path: String, refusal: GrantRefusal?) -> String {
        if let refusal {
            return "<section class=\"grant\"><h2>Allow similar calls</h2><p class=\"hint\" id=\"grant-unavailable\">Not for this request: \(HTML.escape(refusal.description)).</p></section>"
        }
        return """
            <section class="grant">
            <h2>Approve and allow similar calls</h2>
            <form method="post" action="/console/requests/\(id)/approve" id="grant-form">
            <input type="hidden" name="csrf" value="\(csrf)">
            <input type="hidden" name="grant" value="1">
            <p class="hint">Approves this request and releases, without a reviewer, the same person's calls to this connection with this method and path.</p>
            <label for="grant-for">For</label>
            <select id="grant-for" name="grant_for"><option value="15m">15 minutes</option><option value="1h" selected>1 hour</option><option value="4h">4 hours</option><option value="24h">24 hours</option></select>
            <label for="grant-calls">At most this many calls (empty: any number in that time)</label>
            <input type="number" id="grant-calls" name="grant_calls" min="1" max="\(GrantRequest.maxCallsLimit)">
            <label for="grant-path">Path glob (<code>*</code> within a segment, <code>**</code> across)</label>
            <input type="text" id="grant-path" name="grant_path_glob" value="\(HTML.escape(path))">
            <label class="inline"><input type="checkbox" id="grant-shape" name="grant_same_body_shape" value="1"> Only with the same JSON body keys</label>
            <label for="grant-reason">Reason</label>
            <textarea id="grant-reason" name="reason" maxlength="1000" rows="2"></textarea>
            <button type="submit" id="grant" class="approve">Approve and allow</button>
            </form>
            </section>
            """
    }

    /// The scoped approvals of the reviewer's connections, with a revoke button for the active ones.
    static func grants(session: ConsoleSession, grants: [ApprovalGrant], now: Int64) -> String {
        let csrf = HTML.escape(session.csrf)
        let rows = grants.map { g -> String in
            let state = g.state(now: now)
            let scope = [g.scope.method, g.scope.path ?? g.scope.pathGlob ?? ""].joined(separator: " ")
                + (g.scope.bodyKeys.map { " {\($0.joined(separator: ", "))}" } ?? "")
            let uses = "\(g.uses)" + (g.maxCalls.map { " of \($0)" } ?? "")
            let revoke = state == .active ? """
                <form method="post" action="/console/grants/\(HTML.escape(g.grantID))/revoke"><input type="hidden" name="csrf" value="\(csrf)"><button type="submit" class="deny" id="revoke-\(HTML.escape(g.grantID))">Revoke</button></form>
                """ : ""
            return """
                <tr class="row" data-id="\(HTML.escape(g.grantID))"><td>\(HTML.escape(scope))</td><td>\(HTML.escape(g.scope.person))</td>\
                <td>\(HTML.escape(g.scope.connection))</td><td>\(HTML.escape(g.approver.person))<br><span class="id">\(HTML.escape(g.reason))</span></td>\
                <td class="uses">\(uses)</td><td class="status-\(state.rawValue)">\(state.rawValue)\(state == .active ? " (until <span data-expires=\"\(g.expiresAtMillis)\"></span>)" : "")</td><td>\(revoke)</td></tr>
                """
        }.joined(separator: "\n")
        return layout(title: "Grants", session: session, now: now, body: """
            <main>
            \(tabs(current: "grants"))
            <table id="grants" class="list">
            <thead><tr><th>Calls</th><th>Of person</th><th>Connection</th><th>Granted by</th><th>Used</th><th>State</th><th></th></tr></thead>
            <tbody>
            \(rows)
            </tbody>
            </table>
            <p class="hint"\(grants.isEmpty ? "" : " hidden")>No scoped approvals.</p>
            </main>
            """)
    }

    /// The console's tabs.
    static func tabs(current: String, pending: String = "…") -> String {
        func tab(_ name: String, _ href: String, _ label: String) -> String {
            "<a href=\"\(href)\"\(current == name ? " aria-current=\"page\"" : "")>\(label)</a>"
        }
        return "<nav class=\"tabs\">" + tab("inbox", "/console", "Inbox (<span id=\"pending-count\">\(pending)</span>)")
            + tab("history", "/console?view=history", "History") + tab("grants", "/console/grants", "Grants") + "</nav>"
    }

    /// A session's recording: every event, then each recorded request and response (masked).
    static func recording(session: ConsoleSession, sessionID: String, events: [AuditEvent], exchanges: [RecordedExchange], now: Int64) -> String {
        let rows = events.map { e in
            let what = [e.method, e.path].compactMap { $0 }.joined(separator: " ")
            let detail = [e.decision.map { "\($0.rawValue)" }, e.status.map { "\($0)" }, e.rules.map { $0.joined(separator: ", ") }]
                .compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " · ")
            return "<tr class=\"event\"><td>\(HTML.escape(iso(e.timeMillis)))</td><td>\(HTML.escape(e.kind.rawValue))</td><td>\(HTML.escape(what))</td><td>\(HTML.escape(detail))</td><td class=\"id\">\(HTML.escape(e.requestID))</td></tr>"
        }.joined(separator: "\n")
        let parts = exchanges.map { x -> String in
            let head = x.part == .request
                ? "\(x.method ?? "") \(x.path ?? "")\(x.query.map { $0.isEmpty ? "" : "?" + $0 } ?? "")"
                : "HTTP \(x.status.map(String.init) ?? "?")"
            let headers = x.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
            let body = String(decoding: x.body, as: UTF8.self)
            return """
                <section class="exchange \(x.part.rawValue)"><h3>\(x.part == .request ? "Request" : "Response") <span class="id">\(HTML.escape(x.requestID))</span></h3>
                <pre class="head">\(HTML.escape(head))\n\(HTML.escape(headers))</pre>
                <pre class="body">\(HTML.escape(body))\(x.truncated ? "\n… (\(x.bodyBytes) bytes in all)" : "")</pre></section>
                """
        }.joined(separator: "\n")
        return layout(title: "Session \(sessionID)", session: session, now: now, body: """
            <main>
            \(tabs(current: "history"))
            <h1>Session <span class="id" id="session-id">\(HTML.escape(sessionID))</span></h1>
            <table class="list" id="events"><thead><tr><th>Time</th><th>Event</th><th>Request</th><th>Outcome</th><th>Request id</th></tr></thead>
            <tbody>\(rows)</tbody></table>
            <h2>Requests and responses (masked)</h2>
            \(parts.isEmpty ? "<p class=\"hint\">No content recorded (recorder.content is off, or the sealing keys here do not open it).</p>" : parts)
            </main>
            """)
    }

    /// A page with only a message (not found, refused).
    static func message(session: ConsoleSession?, title: String, text: String) -> String {
        layout(title: title, session: session, body: """
            <main class="narrow"><h1>\(HTML.escape(title))</h1><p class="error" role="alert" id="error">\(HTML.escape(text))</p>
            <p><a href="/console">Back to the console</a></p></main>
            """)
    }

    // MARK: frame

    static func layout(title: String, session: ConsoleSession?, now: Int64 = currentMillis(), body: String) -> String {
        let header = session.map { s in
            """
            <header><span class="brand">Sluice</span>
            <span class="who" id="who">\(HTML.escape(s.identity.person)) <span class="id">(\(HTML.escape(s.identity.id)))</span></span>
            <form method="post" action="/console/logout" class="logout"><input type="hidden" name="csrf" value="\(HTML.escape(s.csrf))"><button type="submit" id="logout">Sign out</button></form>
            </header>
            """
        } ?? "<header><span class=\"brand\">Sluice</span></header>"
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.escape(title)) · Sluice</title><link rel="stylesheet" href="/console/app.css"></head>
            <body data-now="\(now)">
            \(header)
            \(body)
            <script src="/console/app.js"></script>
            </body></html>
            """
    }

    static func iso(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
