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
        static let configuration = CommandConfiguration(abstract: "Approve a held request.")
        @OptionGroup var connection: Connection
        @Argument(help: "The request id.") var id: String
        @Option(help: "Why (recorded in the audit log).") var reason = ""
        func run() async throws { try await decide(connection, id: id, vote: "approve", reason: reason) }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deny a held request (one deny denies).")
        @OptionGroup var connection: Connection
        @Argument(help: "The request id.") var id: String
        @Option(help: "Why (shown to the caller and recorded in the audit log).") var reason = ""
        func run() async throws { try await decide(connection, id: id, vote: "deny", reason: reason) }
    }
}

private func decide(_ connection: ApprovalsCommand.Connection, id: String, vote: String, reason: String) async throws {
    let (code, object, raw) = try await connection.call("POST", "/v1/approvals/\(id)/\(vote)", body: ["reason": reason])
    try connection.check(code, object, raw)
    if connection.json { return print(String(decoding: raw, as: UTF8.self)) }
    let status = object["status"] as? String ?? "?"
    print("\(vote == "approve" ? "approved" : "denied") \(id): status \(status), approvals \(object["approvals"] as? Int ?? 0)/\(object["approvals_required"] as? Int ?? 0)")
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
