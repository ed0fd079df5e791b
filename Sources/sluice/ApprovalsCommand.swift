import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// `sluice approvals list|show|approve|deny`: the reviewer's side of held requests, over the
/// Ingress's approvals API with the reviewer's own credential (`SLUICE_TOKEN`: an API key or
/// an OIDC token). Human-readable by default, `--json` prints the API's JSON as is.
struct ApprovalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approvals",
        abstract: "Review held requests: list, show, approve, deny.",
        discussion: """
            The credential comes from --token-file, else --token, else SLUICE_TOKEN (prefer the file or \
            the variable: a --token value is visible in the process list and shell history); the gateway \
            URL from --url, SLUICE_URL, or the config's public_url/listen. An answer without Sluice's \
            X-Sluice-Request-Id header is refused: --url then points at something that is not Sluice.
            """,
        subcommands: [List.self, Show.self, Approve.self, Deny.self])

    struct Connection: ParsableArguments {
        @Option(help: "The gateway's base URL (default: SLUICE_URL, else the config's public_url or listen, else http://127.0.0.1:8080).")
        var url: String?

        @Option(name: .shortAndLong, help: "A configuration file to take the default URL from.")
        var config: String?

        @Flag(help: "Print the API's JSON instead of a table.")
        var json = false

        @Option(help: "Your API key or OIDC token (default: SLUICE_TOKEN).")
        var token: String?

        @Option(help: "A file holding your API key or OIDC token (surrounding whitespace ignored).")
        var tokenFile: String?

        /// --token-file, else --token, else SLUICE_TOKEN.
        func credential() throws -> String {
            if let tokenFile {
                guard let data = FileManager.default.contents(atPath: tokenFile) else { throw CLIError("cannot read --token-file \(tokenFile)") }
                let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard !token.isEmpty else { throw CLIError("--token-file \(tokenFile) is empty") }
                return token
            }
            if let token, !token.isEmpty { return token }
            if let env = ProcessInfo.processInfo.environment["SLUICE_TOKEN"], !env.isEmpty { return env }
            throw ValidationError("give your API key or OIDC token: --token-file FILE, --token, or SLUICE_TOKEN")
        }

        func baseURL() throws -> String {
            if let url { return Self.trim(url) }
            if let env = ProcessInfo.processInfo.environment["SLUICE_URL"], !env.isEmpty { return Self.trim(env) }
            if let config {
                let loaded = try ConfigLoader.load(path: config)
                return Self.trim(loaded.publicURL ?? "http://\(loaded.listen)")
            }
            return "http://127.0.0.1:8080"
        }

        static func trim(_ s: String) -> String { s.hasSuffix("/") ? String(s.dropLast()) : s }

        /// Calls the API; returns the status and the parsed JSON object.
        func call(_ method: String, _ path: String, body: [String: Any]? = nil) async throws -> (Int, [String: Any], Data) {
            let token = try credential()
            let base = try baseURL()
            var request = HTTPClientRequest(url: base + path)
            request.method = .init(rawValue: method)
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
            }
            let answer: CLIHTTP.Answer
            do { answer = try await CLIHTTP.execute(request, timeout: .seconds(30)) } catch {
                throw CLIError("cannot reach \(base): \(CLIHTTP.sentence(for: error))")
            }
            // Every answer of a Sluice Ingress carries its request id: without it, this is not Sluice.
            guard answer.headers.first(name: "X-Sluice-Request-Id") != nil else {
                throw CLIError("\(base) does not look like a Sluice gateway (its answer, HTTP \(answer.status), has no X-Sluice-Request-Id header): check --url or SLUICE_URL")
            }
            let object = (try? JSONSerialization.jsonObject(with: answer.body)) as? [String: Any] ?? [:]
            return (Int(answer.status), object, answer.body)
        }

        /// Prints the raw JSON (with --json) or fails with the API's error.
        func check(_ status: Int, _ object: [String: Any], _ raw: Data) throws {
            guard (200..<300).contains(status) else {
                if json { print(String(decoding: raw, as: UTF8.self)) }
                let error = object["error"] as? String ?? "http \(status)"
                let reason = ((object["message"] ?? object["reason"]) as? String).map { ": \($0)" } ?? ""
                let state = (object["status"] as? String).map { " (status \($0))" } ?? ""
                throw CLIError("\(status) \(error)\(reason)\(state)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List held requests you may decide.")
        @OptionGroup var connection: Connection
        @Option(help: "pending, approved, denied, expired or all.") var status = "pending"

        func run() async throws {
            let (code, object, raw) = try await connection.call("GET", "/v1/approvals?status=\(status)")
            try connection.check(code, object, raw)
            if connection.json { return print(String(decoding: raw, as: UTF8.self)) }
            let items = object["approvals"] as? [[String: Any]] ?? []
            guard !items.isEmpty else { return print("no \(status) requests") }
            let rows = items.map { i in
                [
                    i["request_id"] as? String ?? "", i["connection"] as? String ?? "", i["requester"] as? String ?? "",
                    "\(i["method"] as? String ?? "") \(i["path"] as? String ?? "")",
                    "\(i["approvals"] as? Int ?? 0)/\(i["approvals_required"] as? Int ?? 0)",
                    i["status"] as? String ?? "", i["expires_at"] as? String ?? "",
                    (i["reasons"] as? [String] ?? []).joined(separator: "; "),
                ]
            }
            printTable(["ID", "CONNECTION", "REQUESTER", "REQUEST", "APPROVALS", "STATUS", "EXPIRES", "REASONS"], rows)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one held request: reasons, findings, masked preview, decisions.")
        @OptionGroup var connection: Connection
        @Argument(help: "The request id.") var id: String

        func run() async throws {
            let (code, object, raw) = try await connection.call("GET", "/v1/approvals/\(id)")
            try connection.check(code, object, raw)
            if connection.json { return print(String(decoding: raw, as: UTF8.self)) }
            printRecord(object)
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve a held request, and optionally allow similar calls (a scoped approval).",
            discussion: """
                With --for or --calls, the approval also releases, without a reviewer, the same person's calls \
                to this connection with this method and path (or --path-glob), optionally only with the same \
                JSON body keys (--same-body-shape), for the time given and at most --calls calls. Never for a \
                request with a credential finding, nor on a connection that needs several approvals. List and \
                revoke them with `sluice grants`.
                """)
        @OptionGroup var connection: Connection
        @Argument(help: "The request id.") var id: String
        @Option(help: "Why (recorded in the audit log).") var reason = ""
        @Option(name: .customLong("for"), help: "Allow similar calls for this long (e.g. 15m, 1h; at most 24h).") var window: String?
        @Option(help: "Allow at most this many similar calls (1-1000).") var calls: Int?
        @Option(help: "Similar calls' paths: a glob (* within a segment, ** across); default this request's path.") var pathGlob: String?
        @Flag(help: "Similar calls must have this request's JSON body keys.") var sameBodyShape = false

        func run() async throws {
            var body: [String: Any] = ["reason": reason]
            if window != nil || calls != nil || pathGlob != nil || sameBodyShape {
                var grant: [String: Any] = ["same_body_shape": sameBodyShape]
                if let window { grant["for"] = window }
                if let calls { grant["calls"] = calls }
                if let pathGlob { grant["path_glob"] = pathGlob }
                body["grant"] = grant
            }
            try await decide(connection, id: id, vote: "approve", body: body)
        }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deny a held request (one deny denies).")
        @OptionGroup var connection: Connection
        @Argument(help: "The request id.") var id: String
        @Option(help: "Why (shown to the caller and recorded in the audit log).") var reason = ""
        func run() async throws { try await decide(connection, id: id, vote: "deny", body: ["reason": reason]) }
    }
}

private func decide(_ connection: ApprovalsCommand.Connection, id: String, vote: String, body: [String: Any]) async throws {
    let (code, object, raw) = try await connection.call("POST", "/v1/approvals/\(id)/\(vote)", body: body)
    try connection.check(code, object, raw)
    if connection.json { return print(String(decoding: raw, as: UTF8.self)) }
    let status = object["status"] as? String ?? "?"
    print("\(vote == "approve" ? "approved" : "denied") \(id): status \(status), approvals \(object["approvals"] as? Int ?? 0)/\(object["approvals_required"] as? Int ?? 0)")
    if let grant = (object["decision"] as? [String: Any])?["grant_id"] as? String {
        print("similar calls allowed: grant \(grant) (sluice grants list)")
    }
}

/// `sluice grants list|revoke`: scoped approvals, over the Ingress's API with the reviewer's credential.
struct GrantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grants",
        abstract: "Scoped approvals: list them, revoke one.",
        discussion: "Made with `sluice approvals approve <id> --for 1h [--calls N] [--path-glob G] [--same-body-shape]` or in the console.",
        subcommands: [List.self, Revoke.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the scoped approvals of the connections you decide on.")
        @OptionGroup var connection: ApprovalsCommand.Connection
        @Flag(help: "Also expired, exhausted and revoked ones.") var all = false

        func run() async throws {
            let (code, object, raw) = try await connection.call("GET", "/v1/grants?status=\(all ? "all" : "active")")
            try connection.check(code, object, raw)
            if connection.json { return print(String(decoding: raw, as: UTF8.self)) }
            let items = object["grants"] as? [[String: Any]] ?? []
            guard !items.isEmpty else { return print(all ? "no grants" : "no active grants") }
            let rows = items.map { g in
                [
                    g["grant_id"] as? String ?? "", g["state"] as? String ?? "", g["connection"] as? String ?? "",
                    g["person"] as? String ?? "",
                    "\(g["method"] as? String ?? "") \(g["path"] as? String ?? g["path_glob"] as? String ?? "")"
                        + ((g["body_keys"] as? [String]).map { " {\($0.joined(separator: ","))}" } ?? ""),
                    "\(g["uses"] as? Int ?? 0)" + ((g["max_calls"] as? Int).map { "/\($0)" } ?? ""),
                    g["expires_at"] as? String ?? "", g["approved_by"] as? String ?? "",
                ]
            }
            printTable(["GRANT", "STATE", "CONNECTION", "PERSON", "CALLS", "USED", "EXPIRES", "BY"], rows)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a scoped approval: from now on it releases nothing.")
        @OptionGroup var connection: ApprovalsCommand.Connection
        @Argument(help: "The grant id.") var id: String

        func run() async throws {
            let (code, object, raw) = try await connection.call("POST", "/v1/grants/\(id)/revoke")
            try connection.check(code, object, raw)
            if connection.json { return print(String(decoding: raw, as: UTF8.self)) }
            print("revoked \(id): \(object["uses"] as? Int ?? 0) calls released before")
        }
    }
}

private func printRecord(_ r: [String: Any]) {
    func s(_ k: String) -> String { r[k].map { "\($0)" } ?? "" }
    print("request     \(s("request_id"))")
    print("status      \(s("status"))  (approvals \(s("approvals"))/\(s("approvals_required")))")
    print("connection  \(s("connection"))")
    print("requester   \(s("requester"))")
    print("request     \(s("method")) \(s("path"))")
    print("created     \(s("created_at"))")
    print("expires     \(s("expires_at"))")
    print("reasons     \((r["reasons"] as? [String] ?? []).joined(separator: "; "))")
    for f in r["findings"] as? [[String: Any]] ?? [] {
        print("finding     \(f["rule"] ?? "") at \(f["location"] ?? "") (fingerprint \(f["fingerprint"] ?? ""))")
    }
    for d in r["decisions"] as? [[String: Any]] ?? [] {
        print("decision    \(d["vote"] ?? "") by \(d["approver"] ?? "") at \(d["at"] ?? ""): \(d["reason"] ?? "")")
    }
    print("preview     \(s("preview"))\((r["preview_truncated"] as? Bool ?? false) ? "…" : "")")
}

private func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows.map { $0.map { $0.count > 60 ? String($0.prefix(59)) + "…" : $0 } }
    let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
    for row in all {
        print(row.enumerated().map { i, c in i == row.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
}

/// A command-line failure with a message for the reviewer (exit status 1).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
