import Foundation
import Hummingbird
import Pipeline
import Prometheus

/// `GET /healthz`, `GET /readyz` and `GET /metrics`: what every Sluice process serves on
/// `admin_listen` (the Ingress also answers `/healthz` on its caller port).
///
/// Guarantees:
/// - `/healthz` answers 200 `{"status":"ok"}` while the process serves HTTP: liveness, nothing
///   more.
/// - `/readyz` answers 200 only when the process's ``ReadinessBoard`` says ready, else 503 with
///   `Retry-After: 1`; both list every check (name, kind, ready, whether it gates, detail), so
///   an operator sees what holds a process back without reading its logs.
/// - `/metrics` renders the process's Prometheus registry (text format 0.0.4).
/// - None of them reads a request body or echoes anything the client sent.
public enum OperationalRoutes {
    public static func addHealth<Context: RequestContext>(to router: Router<Context>) {
        router.get("/healthz") { _, _ in
            jsonResponse(status: .ok, Health(status: "ok"))
        }
    }

    public static func addOperations<Context: RequestContext>(
        to router: Router<Context>, readiness: ReadinessBoard, registry: PrometheusCollectorRegistry
    ) {
        router.get("/readyz") { _, _ in
            readyz(readiness.report)
        }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }

    /// The `/readyz` answer for `report`.
    static func readyz(_ report: ReadinessBoard.Report) -> Response {
        let checks = report.checks.map {
            ReadyzBody.Check(name: $0.name, kind: $0.kind.rawValue, ready: $0.ready, gates: $0.gates, detail: $0.detail)
        }
        if report.ready {
            return jsonResponse(status: .ok, ReadyzBody(status: "ready", error: nil, message: nil, checks: checks))
        }
        let waiting = report.checks.filter { !$0.ready && $0.gates }.map(\.name)
        let message = waiting.isEmpty
            ? "No stage has started yet."
            : "Not ready: \(waiting.joined(separator: ", "))."
        var response = jsonResponse(
            status: .serviceUnavailable, ReadyzBody(status: "not_ready", error: "not_ready", message: message, checks: checks))
        response.headers[.retryAfter] = "1"
        return response
    }

    private struct Health: Encodable { var status: String }

    struct ReadyzBody: Codable, Equatable {
        struct Check: Codable, Equatable {
            var name: String
            var kind: String
            var ready: Bool
            var gates: Bool
            var detail: String
        }
        var status: String
        var error: String?
        var message: String?
        var checks: [Check]
    }

    private static func jsonResponse(status: HTTPResponse.Status, _ body: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(body)) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
