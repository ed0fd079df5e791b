import BusContract
import Foundation
import Pipeline
import Testing

@testable import Ingress

@Suite("Ingress: replies read and answered counters")
struct RepliesCountersTests {
    /// The value of an unlabelled counter on the admin `/metrics` page (0 when absent).
    static func counter(_ name: String, _ h: IngressHarness) async throws -> Double {
        let page = try await h.call("GET", "/metrics", admin: true).text
        for line in page.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1)) ?? -1
        }
        return 0
    }

    /// Waits until both counters have the expected values (at most 5 s, `eventually`), then returns them.
    static func settled(read: Double, answered: Double, _ h: IngressHarness) async throws -> (Double, Double) {
        var last = (-1.0, -1.0)
        _ = try await eventually(timeout: .seconds(5)) {
            last = (try await counter("sluice_ingress_replies_read_total", h), try await counter("sluice_ingress_replies_answered_total", h))
            return last == (read, answered)
        }
        return last
    }

    static func expectCounts(read: Double, answered: Double, _ h: IngressHarness, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let (r, a) = try await settled(read: read, answered: answered, h)
        #expect(r == read, "replies read", sourceLocation: sourceLocation)
        #expect(a == answered, "replies answered", sourceLocation: sourceLocation)
    }

    @Test("replies_read counts every message on this instance's partition, replies_answered only those handed to a waiting call")
    func counts() async throws {
        try await IngressHarness.with { h in
            let responder = try await h.startResponder { _ in HTTPResponseData(status: 200, headers: [], body: Data("ok".utf8)) }
            defer { responder.cancel() }
            try await Self.expectCounts(read: 0, answered: 0, h)

            // The instance's partition, a key sharing it and one that does not (the harness has 3).
            let own = partition(forKey: Array(h.options.instanceID.utf8), partitions: 3)
            let keys = (0..<200).map { "ingress-other-\($0)" }
            let neighbour = try #require(keys.first { partition(forKey: Array($0.utf8), partitions: 3) == own })
            let stranger = try #require(keys.first { partition(forKey: Array($0.utf8), partitions: 3) != own })
            func reply(_ id: String = UUID().uuidString.lowercased()) -> Reply {
                Reply(requestID: id, sessionID: "s", response: HTTPResponseData(status: 200, headers: [], body: Data()))
            }
            // Another partition: never read. Published first, so it is long delivered when the
            // counts below are checked.
            try await h.bus.publish(h.codec.reply(reply(), to: stranger))

            for _ in 0..<3 {
                let answer = try await h.call("POST", "/fn/billing/x", bearer: TestKeys.alice, body: Data("{}".utf8))
                #expect(answer.status == 200)
            }
            try await Self.expectCounts(read: 3, answered: 3, h)

            // Read but not answered: a reply for another instance on this partition, and one for
            // this instance that nobody waits for.
            try await h.bus.publish(h.codec.reply(reply(), to: neighbour))
            try await h.bus.publish(h.codec.reply(reply(), to: h.options.instanceID))
            try await Self.expectCounts(read: 5, answered: 3, h)

            let answer = try await h.call("POST", "/fn/billing/x", bearer: TestKeys.alice, body: Data("{}".utf8))
            #expect(answer.status == 200)
            try await Self.expectCounts(read: 6, answered: 4, h)
        }
    }
}
