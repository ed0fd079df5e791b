import BusContract
import Foundation
import Pipeline
import Testing

/// Embedded buses over one temporary directory; each `makeBus` waits for the previous
/// bus to release the directory lock, as a restarted process would.
struct EmbeddedBusFactory: BusFactory {
    let directory: URL
    var rebalanceTimeout: Duration { .milliseconds(200) }

    init() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-embedded-\(UUID().uuidString)")
    }

    func makeBus() async throws -> any Bus {
        var lastError: (any Error)?
        for _ in 0..<100 {
            do { return try EmbeddedBus(directory: directory, defaultPartitions: 4) } catch { lastError = error }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw lastError!
    }
}

@Suite("EmbeddedBus contract")
struct EmbeddedBusContractTests {
    let suite = BusContractSuite(factory: EmbeddedBusFactory())

    @Test func orderPerKey() async throws { try await suite.orderPerKey() }
    @Test func groupSplitsPartitions() async throws { try await suite.groupSplitsPartitions() }
    @Test func memberLeavesOtherTakesOver() async throws { try await suite.memberLeavesOtherTakesOver() }
    @Test func uncommittedAreRedelivered() async throws { try await suite.uncommittedAreRedelivered() }
    @Test func headersAndBinaryRoundTrip() async throws { try await suite.headersAndBinaryRoundTrip() }
    @Test func largeValues() async throws { try await suite.largeValues() }
    @Test func readAllPartitions() async throws { try await suite.readAllPartitions() }
    @Test func readChosenPartitions() async throws { try await suite.readChosenPartitions() }
    @Test func commitWithOutputs() async throws { try await suite.commitWithOutputs() }
    @Test func assignmentFollowsMembers() async throws { try await suite.assignmentFollowsMembers() }
    @Test func lagCountsUncommitted() async throws { try await suite.lagCountsUncommitted() }
    @Test func backlogReadInChunks() async throws { try await suite.backlogReadInChunks() }
}
