import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// SIGTERM under load: `sluice run` drains instead of hanging or dropping callers.
@Suite("Graceful shutdown", .serialized)
struct ShutdownTests {
    /// `count` concurrent calls to `billing`, each on its own connection (at most the HTTP
    /// client's 8 per host, so every one is sent before the test signals the process).
    static func callConcurrently(_ gw: Gateway, count: Int) -> Task<[Result<Gateway.CallResult, any Error>], Never> {
        Task {
            await withTaskGroup(of: Result<Gateway.CallResult, any Error>.self) { group in
                for i in 0..<count {
                    group.addTask {
                        do { return .success(try await gw.call(connection: "billing", path: "/call/\(i)", timeout: .seconds(30))) } catch {
                            return .failure(error)
                        }
                    }
                }
                var out: [Result<Gateway.CallResult, any Error>] = []
                for await r in group { out.append(r) }
                return out
            }
        }
    }

    /// SIGTERM to `sluice run`; returns how long it took to exit (checked within 15 s).
    static func terminate(_ gw: Gateway) async throws -> Duration {
        let process = try #require(gw.process("run"))
        let signalled = ContinuousClock.now
        process.process.terminate()
        while process.isRunning, ContinuousClock.now - signalled < .seconds(15) { try await Task.sleep(for: .milliseconds(20)) }
        let took = ContinuousClock.now - signalled
        #expect(!process.isRunning, "still running \(took) after SIGTERM")
        if !process.isRunning { #expect(process.process.terminationStatus == 0, "exit status \(process.process.terminationStatus)") }
        return took
    }

    /// The answers, recording an issue for every call that got none (reset or closed connection).
    static func answers(_ results: [Result<Gateway.CallResult, any Error>]) -> [Gateway.CallResult] {
        results.compactMap { r in
            switch r {
            case .success(let answer): return answer
            case .failure(let error):
                Issue.record("a caller lost its call (connection reset or closed): \(error)")
                return nil
            }
        }
    }

    @Test("SIGTERM with calls in flight: every accepted call is answered, the process exits within shutdown_timeout")
    func drainsCallsInFlight() async throws {
        let gw = try await Gateway(mode: .embedded, extraTopLevel: "shutdown_timeout: 5s")
        defer { Task { await gw.stop() } }
        try await gw.start()
        await gw.upstream.setResponse(body: "{\"done\":true}", headers: [], delay: .milliseconds(1500))
        let calls = 8
        let results = Self.callConcurrently(gw, count: calls)
        _ = try await gw.waitUpstream(count: calls)
        let took = try await Self.terminate(gw)
        #expect(took < .seconds(5) + .seconds(3), "shutdown took \(took)")
        // The Inspector and Forwarder keep running while the Ingress drains, so every call in
        // flight is delivered and its response reaches its caller.
        let answered = Self.answers(await results.value).map(\.status)
        #expect(answered.count == calls && answered.allSatisfy { $0 == 200 }, "\(answered)")
        #expect(await gw.upstream.requests.count == calls)
        #expect(gw.processLogs.contains("graceful shutdown: draining calls in flight"))
        await gw.stop()
    }

    @Test("calls still waiting at shutdown_timeout are answered 504, and the process exits")
    func shutdownTimeoutAnswersTheRest() async throws {
        let gw = try await Gateway(mode: .embedded, extraTopLevel: "shutdown_timeout: 2s")
        defer { Task { await gw.stop() } }
        try await gw.start()
        await gw.upstream.setResponse(body: "{\"done\":true}", headers: [], delay: .seconds(20))
        let calls = 4
        let results = Self.callConcurrently(gw, count: calls)
        _ = try await gw.waitUpstream(count: calls)
        let took = try await Self.terminate(gw)
        #expect(took < .seconds(2) + .seconds(3), "shutdown took \(took)")
        let answers = Self.answers(await results.value)
        #expect(answers.count == calls)
        for answer in answers {
            #expect(answer.status == 504, "\(answer.status) \(answer.text)")
            #expect((answer.json?["message"] as? String)?.contains("shutting down") == true, "\(answer.text)")
        }
        #expect(gw.processLogs.contains("shutdown timeout reached"))
        await gw.stop()
    }
}
