import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Pipeline

/// Announces held requests to the top-level `notify` webhooks: a `POST` of Slack-compatible
/// JSON `{"text": "..."}`.
///
/// Guarantees:
/// - The text names the request id, connection, requester, method, reasons (hold clauses and
///   rule ids), approvals required and age — never a body, a path, a header value, a finding's
///   location or fingerprint, or a secret.
/// - Best effort and off the data path: `announce` returns at once; each webhook gets up to
///   three attempts (1 s, 2 s apart, 5 s each); failures are logged with the status or error
///   class only (the URL may carry a token, so it is never logged).
struct ApprovalNotifier: Sendable {
    struct Announcement: Sendable {
        var requestID: String
        var connection: String
        var requester: String
        var method: String
        var reasons: [String]
        var approvalsRequired: Int
        var ageMillis: Int64
        var expiresInMillis: Int64
        /// The request's page in the reviewer console (`<public_url>/console/requests/<id>`), when
        /// the console is on.
        var consoleLink: String? = nil

        init(record: HoldRecord, inspected: InspectedRequest, now: Int64 = currentMillis()) {
            requestID = record.requestID
            connection = inspected.metadata.connection
            requester = inspected.metadata.identity.id
            method = inspected.request.method
            reasons = inspected.verdict.reasons
            approvalsRequired = record.approvalsRequired
            ageMillis = max(0, now - inspected.metadata.receivedAtMillis)
            expiresInMillis = max(0, record.expiresAtMillis - now)
        }

        /// The message text.
        var text: String {
            "Sluice: approval needed for request \(requestID) on connection \(connection)"
                + " by \(requester) (\(method)). Reasons: \(reasons.joined(separator: "; ")). "
                + "Approvals required: \(approvalsRequired). Age: \(Self.human(ageMillis)); expires in \(Self.human(expiresInMillis)). "
                + "Review: \(consoleLink.map { "\($0) or " } ?? "")sluice approvals show \(requestID)"
        }

        static func human(_ ms: Int64) -> String {
            let s = ms / 1000
            if s < 60 { return "\(s)s" }
            if s < 3600 { return "\(s / 60)m" }
            return "\(s / 3600)h\(s % 3600 / 60)m"
        }
    }

    let targets: [String]
    /// `<public_url>/console` when the console is on (links in the text), else `nil`.
    var console: String? = nil
    let http: HTTPClient
    let logger: Logger

    func announce(_ announcement: Announcement) {
        guard !targets.isEmpty else { return }
        var announcement = announcement
        if let console, announcement.consoleLink == nil {
            announcement.consoleLink = "\(console)/requests/\(URLText.percentEncoded(announcement.requestID))"
        }
        let body = (try? JSONSerialization.data(withJSONObject: ["text": announcement.text], options: [.sortedKeys])) ?? Data()
        for (index, url) in targets.enumerated() {
            Task { await post(body, to: url, index: index, requestID: announcement.requestID) }
        }
    }

    private func post(_ body: Data, to url: String, index: Int, requestID: String) async {
        for attempt in 1...3 {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
            do {
                let response = try await http.execute(request, timeout: .seconds(5))
                _ = try? await response.body.collect(upTo: 64 << 10)
                if (200..<300).contains(response.status.code) { return }
                logger.warning("approval webhook refused", metadata: [
                    "notify": "\(index)", "request_id": "\(requestID)", "status": "\(response.status.code)", "attempt": "\(attempt)",
                ])
            } catch {
                logger.warning("approval webhook failed", metadata: [
                    "notify": "\(index)", "request_id": "\(requestID)", "error": "\(type(of: error))", "attempt": "\(attempt)",
                ])
            }
            if attempt < 3 { try? await Task.sleep(for: .seconds(attempt)) }
        }
    }
}
