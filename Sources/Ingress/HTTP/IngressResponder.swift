import Foundation
import Hummingbird
import Logging

/// The Ingress's top-level HTTP responder: `/fn/...` goes to the ``FunctionCallHandler``
/// (any method, raw target preserved), everything else to a Hummingbird `Router` (on the
/// caller port: `/healthz` and the approvals API; on the admin port: health, readiness,
/// metrics, and `/fn/...` is not found).
///
/// Guarantees: never lets an error escape to Hummingbird — router errors become JSON
/// errors — and every response carries `X-Sluice-Request-Id`. On the caller port, once the
/// ``DrainGate`` drains, new calls are answered 503 `shutting_down` with `Connection: close`,
/// and calls in progress are answered with `Connection: close`.
struct IngressResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    /// `nil` on the admin port.
    let functions: FunctionCallHandler?
    let routes: RouterResponder<BasicRequestContext>
    let logger: Logger
    /// The caller port's drain (`nil` on the admin port, which answers until the end).
    var drain: DrainGate? = nil

    func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
        guard let drain else { return try await answer(request, context: context) }
        guard drain.enter() else {
            return Responses.error(
                .shuttingDown, requestID: UUID().uuidString.lowercased(), retryAfterSeconds: 1, closeConnection: true)
        }
        defer { drain.leave() }
        var response = try await answer(request, context: context)
        // Answered during the drain: the connection is not reused.
        if drain.isDraining { response.headers[.connection] = "close" }
        return response
    }

    private func answer(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let requestID = UUID().uuidString.lowercased()
        let target = request.head.path ?? ""
        if FunctionTarget.isFunctionCall(target) {
            guard let functions else { return Responses.error(.notFound, requestID: requestID) }
            guard let parsed = FunctionTarget(requestTarget: target) else {
                return Responses.error(.unknownConnection, requestID: requestID)
            }
            return await functions.handle(request, target: parsed, requestID: requestID)
        }
        do {
            var response = try await routes.respond(to: request, context: context)
            // Hummingbird's own errors (no route, wrong method) are not JSON; restate them.
            // The console's pages are HTML and stay so.
            if response.status.code >= 400, response.headers[.contentType] != "application/json",
                response.headers[.contentType]?.hasPrefix("text/html") != true {
                switch response.status.code {
                case 404: return Responses.error(.notFound, requestID: requestID)
                case 405: return Responses.error(.methodNotAllowed, requestID: requestID)
                case 400..<500: return Responses.error(.badRequest, requestID: requestID)
                default: return Responses.error(.internalError, requestID: requestID)
                }
            }
            if response.headers[IngressHeaders.requestID]?.isEmpty ?? true {
                response.headers[IngressHeaders.requestID] = requestID
            }
            return response
        } catch let error as HTTPError {
            switch error.status {
            case .notFound: return Responses.error(.notFound, requestID: requestID)
            case .methodNotAllowed: return Responses.error(.methodNotAllowed, requestID: requestID)
            default:
                logger.warning("route failed", metadata: ["status": "\(error.status.code)"])
                return Responses.error(.badRequest, requestID: requestID)
            }
        } catch {
            logger.error("route failed", metadata: ["error": "\(error)"])
            return Responses.error(.internalError, requestID: requestID)
        }
    }
}
