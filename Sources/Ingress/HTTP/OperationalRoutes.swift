import Hummingbird
import Prometheus
import Synchronization

/// Whether the Ingress can take requests: set once the `replies` reader is running.
final class Readiness: Sendable {
    private let ready = Atomic<Bool>(false)
    var isReady: Bool { ready.load(ordering: .acquiring) }
    func set(_ value: Bool) { ready.store(value, ordering: .releasing) }
}

/// `GET /healthz`, `GET /readyz` and `GET /metrics`.
///
/// `/healthz` answers 200 while the process serves HTTP (on both ports); `/readyz` (admin port
/// only) answers 200 only once the `replies` reader runs (503 with `Retry-After` before);
/// `/metrics` (admin port only) renders the Prometheus registry.
enum OperationalRoutes {
    static func addHealth(to router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in
            Responses.json(status: 200, ["status": "ok"], requestID: "")
        }
    }

    static func addOperations(to router: Router<BasicRequestContext>, readiness: Readiness, registry: PrometheusCollectorRegistry) {
        router.get("/readyz") { _, _ in
            readiness.isReady
                ? Responses.json(status: 200, ["status": "ready"], requestID: "")
                : Responses.json(
                    status: 503,
                    ["status": "starting", "error": "not_ready", "message": "The Ingress is still reading the holds changelog."],
                    requestID: "")
        }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }
}
