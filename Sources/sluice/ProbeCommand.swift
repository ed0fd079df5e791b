import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import Pipeline

/// `sluice probe [URL]`: a container health check that needs no curl in the image (the compose
/// file's healthchecks): asks a process's operations endpoint and exits 0 when it answers 200.
///
/// Guarantees: exit 0 only for a 200 answer from the URL; any other status, no answer in
/// `--timeout`, or an answer that is not an operations endpoint's (`/readyz` and `/healthz`
/// answer JSON) is exit 1 with one line on standard error naming the URL and why (for a 503 from
/// `/readyz`, the checks that are not ready). A bad URL or timeout is a usage error (exit 2).
struct ProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Check a Sluice process's operations endpoint (a container health check without curl).",
        discussion: """
            Exit 0 when the URL answers 200, else 1 with the reason on standard error. Default URL: \
            /readyz on SLUICE_ADMIN_LISTEN when set, else http://127.0.0.1:9090/readyz.
            """)

    @Argument(help: "The endpoint, e.g. http://127.0.0.1:9090/readyz (or /healthz).")
    var url: String?

    @Option(help: "Give up after this long (e.g. 500ms, 3s).")
    var timeout: String = "3s"

    func run() async throws {
        let target = url ?? Self.defaultURL(adminListen: ProcessInfo.processInfo.environment["SLUICE_ADMIN_LISTEN"])
        guard let parsed = URL(string: target), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil else {
            throw ValidationError("\(target) is not an http:// or https:// URL")
        }
        let limit: Duration
        do { limit = try ConfigDuration(parsing: timeout).duration } catch {
            throw ValidationError("--timeout \(timeout) is not a duration (e.g. 500ms, 3s)")
        }
        var request = HTTPClientRequest(url: target)
        request.method = .GET
        let answer: CLIHTTP.Answer
        do { answer = try await CLIHTTP.execute(request, timeout: limit, maxBody: 1 << 20) } catch {
            throw Self.failure("\(target): \(CLIHTTP.sentence(for: error))")
        }
        let json = try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any]
        guard json != nil else { throw Self.failure("\(target): answered \(answer.status) but not as a Sluice operations endpoint (no JSON)") }
        guard answer.status == 200 else {
            let notReady = (json?["checks"] as? [[String: Any]] ?? [])
                .filter { ($0["ready"] as? Bool) == false && ($0["gates"] as? Bool) != false }
                .compactMap { $0["name"] as? String }
            throw Self.failure("\(target): \(answer.status)" + (notReady.isEmpty ? "" : ", not ready: \(notReady.joined(separator: ", "))"))
        }
        print("\(target): 200")
    }

    /// `/readyz` on `adminListen` (`0.0.0.0` and `::` asked on loopback), else on 127.0.0.1:9090.
    static func defaultURL(adminListen: String?) -> String {
        guard let text = adminListen, !text.isEmpty, let address = try? ListenAddress(parsing: text, key: "SLUICE_ADMIN_LISTEN") else {
            return "http://127.0.0.1:9090/readyz"
        }
        let host = switch address.host {
        case "0.0.0.0", "": "127.0.0.1"
        case "::": "[::1]"
        case let h where h.contains(":"): "[\(h)]"
        case let h: h
        }
        return "http://\(host):\(address.port)/readyz"
    }

    /// Writes `line` to standard error; the exit status 1 to throw.
    static func failure(_ line: String) -> ExitCode {
        FileHandle.standardError.write(Data((line + "\n").utf8))
        return .failure
    }
}
