import AsyncHTTPClient
import BusContract
import Foundation
import GatewayHarness
import NIOCore
import NIOHTTP1
import Testing

/// A console client: keeps its cookies, never follows redirects (the tests read them).
final class ConsoleClient: @unchecked Sendable {
    // @unchecked: used from one test task at a time (the tests await every call in turn).
    let base: String
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
    var cookies: [String: String] = [:]
    /// Every Set-Cookie header received, as sent.
    var setCookies: [String] = []

    init(base: String) { self.base = base }

    deinit { try? http.syncShutdown() }

    struct Page {
        var status: Int
        var headers: HTTPHeaders
        var text: String
        var location: String? { headers.first(name: "Location") }
        /// The value of the first hidden `csrf` field.
        var csrf: String? {
            guard let r = text.range(of: "name=\"csrf\" value=\"") else { return nil }
            return String(text[r.upperBound...].prefix { $0 != "\"" })
        }
    }

    func get(_ path: String) async throws -> Page {
        try await send(.GET, path, form: nil)
    }

    /// GET of an absolute URL (another server: the identity provider), with this client's cookies.
    func get(url: String) async throws -> Page {
        try await send(.GET, url, form: nil, absolute: true)
    }

    func post(_ path: String, _ form: [(String, String)]) async throws -> Page {
        try await send(.POST, path, form: form)
    }

    private func send(_ method: HTTPMethod, _ path: String, form: [(String, String)]?, absolute: Bool = false) async throws -> Page {
        var request = HTTPClientRequest(url: absolute ? path : base + path)
        request.method = method
        if !cookies.isEmpty { request.headers.add(name: "Cookie", value: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_.~"))
            let body = form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 8 << 20)
        for value in response.headers[canonicalForm: "Set-Cookie"] {
            setCookies.append(String(value))
            let pair = value.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
            let name = String(pair[0])
            let v = pair.count > 1 ? String(pair[1]) : ""
            if v.isEmpty || value.contains("Max-Age=0") { cookies[name] = nil } else { cookies[name] = v }
        }
        return Page(status: Int(response.status.code), headers: response.headers, text: String(buffer: bytes))
    }

    /// Signs in with `key` through the sign-in form; returns the answer to the form.
    @discardableResult
    func signIn(_ key: String) async throws -> Page {
        let form = try await get("/console/login")
        let csrf = try #require(form.csrf)
        return try await post("/console/login", [("csrf", csrf), ("api_key", key)])
    }
}

/// Issue 13: the reviewer console on the caller port, against a real `sluice run`.
@Suite("Reviewer console", .serialized)
struct ConsoleTests {
    static let policy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    /// A call `held` holds (its body matches `drop table`), carrying `extra` in its body.
    static func hold(_ gw: Gateway, key: String = Gateway.ciKey, extra: String = "") async throws -> String {
        let r = try await gw.call(
            connection: "held", path: "/sql", headers: [("Content-Type", "application/json")],
            body: gw.json(["sql": "DROP TABLE users", "note": extra]), key: key)
        try #require(r.status == 202, "\(r.status) \(r.text)")
        return try #require(r.json?["request_id"] as? String)
    }

    @Test("sign in only as a reviewer, with the form's token; cookies are HttpOnly and SameSite=Strict; sign out needs the token")
    func signInAndOut() async throws {
        let gw = try await Gateway(mode: .embedded)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let browser = ConsoleClient(base: gw.baseURL)

        let start = try await browser.get("/console")
        #expect(start.status == 303)
        #expect(start.location == "/console/login")
        let form = try await browser.get("/console/login")
        #expect(form.status == 200)
        #expect(form.headers.first(name: "Content-Security-Policy") == Self.policy)
        #expect(form.headers.first(name: "X-Frame-Options") == "DENY")
        #expect(form.headers.first(name: "X-Content-Type-Options") == "nosniff")
        #expect(form.headers.first(name: "Cache-Control") == "no-store")
        let loginCookie = try #require(browser.setCookies.last)
        #expect(loginCookie.hasPrefix("sluice_console_login="))
        #expect(loginCookie.contains("HttpOnly") && loginCookie.contains("SameSite=Strict") && loginCookie.contains("Path=/console"))
        #expect(!loginCookie.contains("Secure"), "plain http: no Secure flag")
        let csrf = try #require(form.csrf)

        // No token, a wrong token: refused, no session.
        let noToken = try await browser.post("/console/login", [("api_key", Gateway.aliceKey)])
        #expect(noToken.status == 403, "\(noToken.text)")
        #expect(browser.cookies["sluice_console"] == nil)
        let fresh = try #require(noToken.csrf)
        let wrongToken = try await browser.post("/console/login", [("csrf", csrf + "x"), ("api_key", Gateway.aliceKey)])
        #expect(wrongToken.status == 403)
        #expect(browser.cookies["sluice_console"] == nil)
        _ = fresh

        // A wrong key, then a caller who approves nothing: no session either.
        let badKey = try await browser.signIn("not-a-key")
        #expect(badKey.status == 401)
        #expect(badKey.text.contains("This key was not accepted."))
        let caller = try await browser.signIn(Gateway.ciKey)
        #expect(caller.status == 403)
        #expect(caller.text.contains("not an approver"))
        #expect(browser.cookies["sluice_console"] == nil)
        #expect(try await browser.get("/console").status == 303, "a non-reviewer gets no inbox")
        let rejected = try await gw.waitAuditEvents("request_rejected", count: 1)
        let refused = try #require(rejected.first { ($0["details"] as? [String: String])?["api"] == "console" }, "\(rejected)")
        #expect(refused["status"] as? Int == 401)

        // A reviewer.
        let signedIn = try await browser.signIn(Gateway.aliceKey)
        #expect(signedIn.status == 303)
        #expect(signedIn.location == "/console")
        let session = try #require(browser.setCookies.first { $0.hasPrefix("sluice_console=") })
        #expect(session.contains("HttpOnly") && session.contains("SameSite=Strict") && session.contains("Path=/console"))
        #expect(session.contains("Max-Age=28800"))
        #expect(!session.contains(Gateway.aliceKey))
        let inbox = try await browser.get("/console")
        #expect(inbox.status == 200)
        #expect(inbox.text.contains("apikey:alice"))
        #expect(inbox.headers.first(name: "Content-Security-Policy") == Self.policy)
        #expect(!inbox.text.contains("<script>"), "no inline script: \(inbox.text)")
        #expect(inbox.text.contains("<script src=\"/console/app.js\"></script>"))

        // Sign out without the token changes nothing; with it, the session ends.
        let noCSRF = try await browser.post("/console/logout", [])
        #expect(noCSRF.status == 403)
        #expect(try await browser.get("/console").status == 200)
        let sessionToken = try #require(inbox.csrf)
        let out = try await browser.post("/console/logout", [("csrf", sessionToken)])
        #expect(out.status == 303)
        #expect(out.location == "/console/login")
        #expect(browser.cookies["sluice_console"] == nil)
        // The old cookie no longer opens the console.
        let replay = ConsoleClient(base: gw.baseURL)
        replay.cookies["sluice_console"] = try #require(session.split(separator: ";")[0].split(separator: "=", maxSplits: 1).last.map(String.init))
        #expect(try await replay.get("/console").status == 303)
    }

    @Test("inbox and request page render a held request's markup inert; approve and deny need the token, count once, and go through the API's checks",
          arguments: GatewayMode.available)
    func decideFromTheConsole(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "200ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let xss = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'"
        let approveID = try await Self.hold(gw, extra: xss)
        let denyID = try await Self.hold(gw)
        try await gw.waitPending(approveID)
        try await gw.waitPending(denyID)

        let alice = ConsoleClient(base: gw.baseURL)
        #expect(try await alice.signIn(Gateway.aliceKey).status == 303)
        let inbox = try await alice.get("/console")
        #expect(inbox.text.contains(approveID) && inbox.text.contains(denyID))
        // Newest first.
        let first = try #require(inbox.text.range(of: denyID)), second = try #require(inbox.text.range(of: approveID))
        #expect(first.lowerBound < second.lowerBound)
        #expect(!inbox.text.contains("<script>alert"))
        #expect(!inbox.text.contains("<img src=x"))
        // The body is JSON (its `/` escaped); the markup in it is text.
        #expect(inbox.text.contains("&lt;script&gt;alert(1)&lt;\\/script&gt;&lt;img src=x onerror=alert(2)&gt;\\&quot;&#39;"))
        #expect(inbox.text.contains("<td>0 of 1</td>"))
        #expect(inbox.text.contains("data-expires="))

        let page = try await alice.get("/console/requests/\(approveID)")
        #expect(page.status == 200)
        #expect(page.text.contains("DROP TABLE users"))
        #expect(!page.text.contains("<script>alert") && !page.text.contains("<img src=x"))
        #expect(page.headers.first(name: "Content-Security-Policy") == Self.policy)
        let csrf = try #require(page.csrf)

        // Without the token: 403, still pending.
        let forged = try await alice.post("/console/requests/\(approveID)/approve", [("reason", "forged")])
        #expect(forged.status == 403)
        #expect(try await gw.approvalIDs().contains(approveID))
        // With it: recorded once, delivered once.
        let approved = try await alice.post("/console/requests/\(approveID)/approve", [("csrf", csrf), ("reason", "checked in the console")])
        #expect(approved.status == 303, "\(approved.text)")
        #expect(approved.location == "/console/requests/\(approveID)?done=approve")
        let final = try await gw.waitFinal(approveID)
        #expect(final.status == 200)
        let after = try await alice.get(try #require(approved.location))
        #expect(after.text.contains("Your approval was recorded."))
        #expect(after.text.contains("checked in the console"))
        #expect(!after.text.contains("id=\"approve-form\""), "no forms on a decided request")
        let decided = try await gw.waitAudit("approval_decided", requestID: approveID)
        #expect(decided["identity"] as? String == "apikey:alice")
        // Deciding again: the API's 409, shown on the page.
        let again = try await alice.post("/console/requests/\(approveID)/deny", [("csrf", csrf), ("reason", "late")])
        #expect(again.status == 409)
        #expect(again.text.contains("already"))

        let denied = try await alice.post("/console/requests/\(denyID)/deny", [("csrf", csrf), ("reason", "not in a change window")])
        #expect(denied.status == 303)
        #expect(try await gw.waitFinal(denyID).status == 403)
        _ = try await gw.waitAudit("delivered", requestID: approveID)
        let delivered = await gw.upstream.requests.filter { $0.path == "/sql" }
        #expect(delivered.count == 1, "approved once, denied never: \(delivered.count)")

        // History lists both, newest change first.
        let history = try await alice.get("/console?view=history")
        #expect(history.text.contains(approveID) && history.text.contains(denyID))

        // The session's recording (the call had no X-Sluice-Session: its session is its id), masked.
        #expect(after.text.contains("href=\"/console/sessions/\(approveID)\""))
        var recording = ""
        let recorded = try await eventually(timeout: .seconds(20)) {
            recording = try await alice.get("/console/sessions/\(approveID)").text
            // The 202 the caller got first, then the delivered answer.
            return recording.contains("HTTP 202") && recording.contains("HTTP 200") && recording.contains("DROP TABLE users")
        }
        #expect(recorded, "\(recording)")
        #expect(recording.contains("approval_decided") && recording.contains("delivered"))
        #expect(!recording.contains("<script>alert"), "the recorded body is escaped too")
        #expect(!recording.contains(Gateway.upstreamToken), "the injected credential is not recorded")
        for bad in ["..", "nope", "a%2F..%2Fb", String(repeating: "x", count: 200)] {
            #expect(try await alice.get("/console/sessions/\(bad)").status == 404, "\(bad)")
        }

        // A reviewer of no connection of the request, and an unknown id: 404.
        #expect(try await alice.get("/console/requests/nope").status == 404)
        // Self-approval: carol is a caller of `held` and an approver; her own request is refused.
        let own = try await Self.hold(gw, key: Gateway.carolKey)
        try await gw.waitPending(own)
        let carol = ConsoleClient(base: gw.baseURL)
        #expect(try await carol.signIn(Gateway.carolKey).status == 303)
        let ownPage = try await carol.get("/console/requests/\(own)")
        let self_ = try await carol.post("/console/requests/\(own)/approve", [("csrf", try #require(ownPage.csrf)), ("reason", "mine")])
        #expect(self_.status == 403)
        #expect(self_.text.contains("self-approval"))
        #expect(try await gw.approvalIDs().contains(own))
        // Another session's token does not work in this one.
        let crossed = try await carol.post("/console/requests/\(own)/deny", [("csrf", csrf)])
        #expect(crossed.status == 403)
        #expect(try await gw.approvalIDs().contains(own))
    }

    @Test("the live inbox: server-sent events list a request held after the page opened, and stop when the session ends",
          arguments: GatewayMode.available)
    func liveInbox(mode: GatewayMode) async throws {
        let gw = try await Gateway(mode: mode, holdWait: "200ms")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let alice = ConsoleClient(base: gw.baseURL)
        #expect(try await alice.signIn(Gateway.aliceKey).status == 303)
        let token = try #require(alice.cookies["sluice_console"])

        var request = HTTPClientRequest(url: gw.baseURL + "/console/events")
        request.headers.add(name: "Cookie", value: "sluice_console=\(token)")
        let response = try await alice.http.execute(request, timeout: .seconds(60))
        #expect(response.status == .ok)
        #expect(response.headers.first(name: "Content-Type") == "text/event-stream; charset=utf-8")
        var events: [String] = []
        var buffer = ""
        var held: String? = nil
        var sawHeld = false
        var signedOut = false
        for try await chunk in response.body {
            buffer += String(buffer: chunk)
            while let end = buffer.range(of: "\n\n") {
                let event = String(buffer[..<end.lowerBound])
                buffer.removeSubrange(..<end.upperBound)
                events.append(event)
                if event.hasPrefix("event: inbox"), held == nil {
                    #expect(event.contains("\"pending\":[]"), "nothing held yet: \(event)")
                    held = try await Self.hold(gw, extra: "<b>live</b>")
                } else if event.hasPrefix("event: inbox"), let id = held, event.contains(id) {
                    sawHeld = true
                    #expect(event.contains("\"requester\":\"apikey:ci-bot\""))
                    // Sign out elsewhere: the stream says so and ends.
                    let page = try await alice.get("/console")
                    _ = try await alice.post("/console/logout", [("csrf", try #require(page.csrf))])
                } else if event.hasPrefix("event: signed-out") {
                    signedOut = true
                }
            }
        }
        #expect(sawHeld, "\(events)")
        #expect(signedOut, "\(events)")
        #expect(try await alice.get("/console/events").status == 401)
    }

    @Test("a session may hold four live streams at once; a fifth gets `busy` and ends")
    func liveStreamsAreLimited() async throws {
        let gw = try await Gateway(mode: .embedded)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let alice = ConsoleClient(base: gw.baseURL)
        #expect(try await alice.signIn(Gateway.aliceKey).status == 303)
        let token = try #require(alice.cookies["sluice_console"])
        /// The first event of a new stream.
        func firstEvent() async throws -> (String, HTTPClientResponse.Body.AsyncIterator) {
            var request = HTTPClientRequest(url: gw.baseURL + "/console/events")
            request.headers.add(name: "Cookie", value: "sluice_console=\(token)")
            let response = try await alice.http.execute(request, timeout: .seconds(60))
            var iterator = response.body.makeAsyncIterator()
            var text = ""
            while !text.contains("\n\n"), let chunk = try await iterator.next() { text += String(buffer: chunk) }
            return (text, iterator)
        }
        var open: [HTTPClientResponse.Body.AsyncIterator] = []
        for _ in 0..<4 {
            let (event, iterator) = try await firstEvent()
            #expect(event.hasPrefix("event: inbox"), "\(event)")
            open.append(iterator)
        }
        let (fifth, _) = try await firstEvent()
        #expect(fifth.hasPrefix("event: busy"), "\(fifth)")
        #expect(open.count == 4)
    }

    @Test("console.enabled false: no console routes")
    func disabled() async throws {
        let gw = try await Gateway(mode: .embedded, extraTopLevel: "console: { enabled: false }")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let browser = ConsoleClient(base: gw.baseURL)
        #expect(try await browser.get("/console").status == 404)
        #expect(try await browser.get("/console/login").status == 404)
    }

    @Test("single sign-on: a discovery document naming another issuer is refused; the sign-in page says the provider cannot be used, nothing is redirected")
    func discoveryOfAnotherIssuer() async throws {
        let idp = try await FakeIdentityProvider.start()
        defer { idp.stop() }
        idp.setDiscoveryIssuer("https://attacker.example")
        let gw = try await Gateway(
            mode: .embedded,
            extraAPIKeys: "  oidc: { issuer: \"\(idp.issuer)\", audience: sluice-api, jwks_url: \"\(idp.jwksURL)\", allow_insecure_jwks: true }",
            extraTopLevel: "console: { oidc: { client_id: sluice-console, allow_insecure_endpoints: true } }")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let browser = ConsoleClient(base: gw.baseURL)
        let start = try await browser.get("/console/oidc/start")
        #expect(start.status == 503, "\(start.text)")
        #expect(start.location == nil)
        #expect(start.text.contains("cannot be reached"))
        #expect(idp.authorizeQueries.isEmpty)
        #expect(gw.processLogs.contains("the discovery document names another issuer"))
    }

    /// The same flows in a real browser (Tests/browser/console_test.py: Selenium, Debian's
    /// chromium and chromium-driver, installed by `make test`), signed in with a key or through
    /// an identity provider on another site (`localhost` against the gateway's `127.0.0.1`). With
    /// `SLUICE_CONSOLE_SCREENSHOTS` set to a directory, the inbox and a request's page are saved
    /// there (docs/images).
    @Test("in chromium: sign in, a held request appears live, opened from the keyboard, approved once, another denied, markup inert",
          arguments: ["api_key", "sso"])
    func inABrowser(signIn: String) async throws {
        let root = ComposeFileTests.root
        let python = root.appendingPathComponent(".deps/venv/bin/python")
        for tool in [python.path, "/usr/bin/chromium", "/usr/bin/chromedriver"] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: run scripts/provision.sh test (make test does)")
        }
        let sso = signIn == "sso"
        let idp = try await FakeIdentityProvider.start(host: "localhost")
        defer { idp.stop() }
        idp.signInAs(.init(sub: "u-alice", email: "alice@example.com", groups: ["secops"]))
        let secretFile = FileManager.default.temporaryDirectory.appendingPathComponent("console-oidc-\(UUID().uuidString.prefix(8))")
        try Data(idp.clientSecret.utf8).write(to: secretFile)
        defer { try? FileManager.default.removeItem(at: secretFile) }
        let gw = try await Gateway(
            mode: .embedded, holdWait: "200ms",
            extraAPIKeys: sso ? "  oidc: { issuer: \"\(idp.issuer)\", audience: sluice-api, jwks_url: \"\(idp.jwksURL)\", allow_insecure_jwks: true }" : "",
            extraTopLevel: sso ? """
                console:
                  oidc:
                    client_id: sluice-console
                    client_secret: "file:\(secretFile.path)"
                    authorization_endpoint: "\(idp.authorizeURL)"
                    token_endpoint: "\(idp.tokenURL)"
                    allow_insecure_endpoints: true
                """ : "")
        defer { Task { await gw.stop() } }
        try await gw.start()
        let screenshots = sso ? [] : (ProcessInfo.processInfo.environment["SLUICE_CONSOLE_SCREENSHOTS"].map { ["--screenshots", $0] } ?? [])
        let result = try runToCompletion(python, [
            root.appendingPathComponent("Tests/browser/console_test.py").path, "--base", gw.baseURL, "--caller-key", Gateway.ciKey,
        ] + (sso ? ["--sso"] : ["--reviewer-key", Gateway.aliceKey]) + screenshots)
        try #require(result.status == 0, "\(result.stderr)\n\(gw.processLogs.suffix(3000))")
        let ids = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
        let approved = try #require(ids["approved"] as? String), denied = try #require(ids["denied"] as? String)
        let pattern = try #require(ids["pattern"] as? String), granted = try #require(ids["granted"] as? [String])
        let outside = try #require(ids["outside"] as? String)
        let made = try await gw.waitAudit("grant_created", requestID: pattern)
        let grantID = try #require((made["details"] as? [String: String])?["grant_id"])
        for id in granted {
            let released = try await gw.waitAudit("approval_decided", requestID: id)
            #expect((released["details"] as? [String: String])?["grant_id"] == grantID, "released by the grant, not by a reviewer")
        }
        #expect(try await gw.approvalIDs().contains(outside), "outside the scope: held")
        _ = try await gw.waitAudit("delivered", requestID: approved)
        let decided = try await gw.waitAudit("approval_decided", requestID: approved)
        #expect(decided["identity"] as? String == (sso ? "oidc:u-alice" : "apikey:alice"))
        #expect((decided["details"] as? [String: String])?["reason"] == "checked in a browser")
        #expect(try await gw.poll(denied).status == 403)
        let delivered = await gw.upstream.requests.filter { $0.path == "/sql" }
        #expect(delivered.count == 5, "approved, the grant's pattern and the three it released, once each; the denied one never: \(delivered.count)")
        #expect(await gw.upstream.requests.filter { $0.path == "/other" }.isEmpty)
        if sso { #expect(idp.tokenForms.count == 1, "one sign-in, one code exchanged") }
    }

    /// The part of `url` after its host (path and query), for the console client.
    static func pathAndQuery(_ url: String) throws -> String {
        let components = try #require(URLComponents(string: url))
        return components.percentEncodedPath + (components.percentEncodedQuery.map { "?" + $0 } ?? "")
    }

    /// Starts a sign-in at the console, lets the provider sign in `user`; the callback's URL (path and query).
    static func throughProvider(_ browser: ConsoleClient, _ idp: FakeIdentityProvider, as user: FakeIdentityProvider.User) async throws -> String {
        idp.signInAs(user)
        let start = try await browser.get("/console/oidc/start")
        #expect(start.status == 303)
        let authorize = try #require(start.location)
        let back = try await browser.get(url: authorize)
        #expect(back.status == 302)
        return try pathAndQuery(try #require(back.location))
    }

    @Test("single sign-on: endpoints from the issuer's discovery document; authorization code with PKCE and a confidential client; state, nonce, audience and groups decide; codes are single-use")
    func singleSignOn() async throws {
        let idp = try await FakeIdentityProvider.start()
        defer { idp.stop() }
        let secretFile = FileManager.default.temporaryDirectory.appendingPathComponent("console-oidc-\(UUID().uuidString.prefix(8))")
        try Data(idp.clientSecret.utf8).write(to: secretFile)
        defer { try? FileManager.default.removeItem(at: secretFile) }
        let gw = try await Gateway(
            mode: .embedded, holdWait: "200ms",
            extraAPIKeys: "  oidc: { issuer: \"\(idp.issuer)\", audience: sluice-api, jwks_url: \"\(idp.jwksURL)\", allow_insecure_jwks: true }",
            extraTopLevel: """
                console:
                  oidc:
                    client_id: sluice-console
                    client_secret: "file:\(secretFile.path)"
                    allow_insecure_endpoints: true
                """)
        defer { Task { await gw.stop() } }
        try await gw.start()
        let alice = FakeIdentityProvider.User(sub: "u-alice", email: "alice@example.com", groups: ["secops"])

        // The sign-in page offers single sign-on only; the key form is refused.
        let browser = ConsoleClient(base: gw.baseURL)
        let login = try await browser.get("/console/login")
        #expect(login.text.contains("href=\"/console/oidc/start\""))
        #expect(!login.text.contains("name=\"api_key\""))
        #expect(try await browser.post("/console/login", [("csrf", "any"), ("api_key", Gateway.aliceKey)]).status == 404)

        // The redirect to the provider: code flow, S256 challenge, state and nonce; the state cookie is Lax.
        let callback = try await Self.throughProvider(browser, idp, as: alice)
        let query = try #require(idp.authorizeQueries.last)
        #expect(query["response_type"] == "code" && query["client_id"] == "sluice-console")
        #expect(query["code_challenge_method"] == "S256" && (query["code_challenge"]?.count ?? 0) == 43)
        #expect(query["redirect_uri"] == gw.baseURL + "/console/oidc/callback")
        #expect(query["scope"] == "openid email profile")
        #expect((query["nonce"]?.count ?? 0) >= 43 && (query["state"]?.count ?? 0) >= 43)
        let stateCookie = try #require(browser.setCookies.last { $0.hasPrefix("sluice_console_oidc=") })
        #expect(stateCookie.contains("SameSite=Lax") && stateCookie.contains("HttpOnly"))

        let signedIn = try await browser.get(callback)
        #expect(signedIn.status == 200, "\(signedIn.text)")
        #expect(signedIn.text.contains("Signed in as alice@example.com"))
        #expect(signedIn.text.contains("http-equiv=\"refresh\" content=\"0;url=/console\""))
        #expect(browser.cookies["sluice_console"] != nil)
        #expect(browser.cookies["sluice_console_oidc"] == nil, "the state cookie is cleared")
        let form = try #require(idp.tokenForms.last)
        #expect(form["grant_type"] == "authorization_code" && (form["code_verifier"]?.count ?? 0) >= 43)
        #expect(form["client_secret"] == nil, "the secret goes by HTTP Basic, not in the form")
        let inbox = try await browser.get("/console")
        #expect(inbox.status == 200)
        #expect(inbox.text.contains("oidc:u-alice"))
        #expect(idp.discoveryFetches == 1, "the endpoints came from discovery, read once")

        // The same callback again: the code and state were used.
        let replayed = ConsoleClient(base: gw.baseURL)
        replayed.cookies["sluice_console_oidc"] = try #require(URLComponents(string: callback)?.queryItems?.first { $0.name == "state" }?.value)
        let again = try await replayed.get(callback)
        #expect(again.status == 401)
        #expect(replayed.cookies["sluice_console"] == nil)

        // A callback whose state is not this browser's.
        let other = ConsoleClient(base: gw.baseURL)
        let foreign = try await Self.throughProvider(other, idp, as: alice)
        let victim = ConsoleClient(base: gw.baseURL)
        _ = try await victim.get("/console/oidc/start")
        let crossed = try await victim.get(foreign)
        #expect(crossed.status == 401)
        #expect(crossed.text.contains("did not start in this browser"))
        #expect(victim.cookies["sluice_console"] == nil)

        // Someone who approves nothing, and an ID token without this sign-in's nonce.
        let caller = ConsoleClient(base: gw.baseURL)
        let notReviewer = try await caller.get(try await Self.throughProvider(caller, idp, as: .init(sub: "u-bot", email: "bot@example.com", groups: ["ci"])))
        #expect(notReviewer.status == 403)
        #expect(caller.cookies["sluice_console"] == nil)
        idp.setNonceOverride("a-nonce-from-elsewhere")
        let replay = ConsoleClient(base: gw.baseURL)
        let wrongNonce = try await replay.get(try await Self.throughProvider(replay, idp, as: alice))
        #expect(wrongNonce.status == 401)
        #expect(wrongNonce.text.contains("nonce"))
        #expect(replay.cookies["sluice_console"] == nil)
        idp.setNonceOverride(nil)
        let rejected = try await gw.waitAuditEvents("request_rejected", count: 3)
        #expect(rejected.filter { ($0["details"] as? [String: String])?["api"] == "console" }.count >= 3)
    }
}
