import BusContract
import Testing

/// `StageConsumer.run(maxBatch:_:)` on the embedded bus (the same checks run on Kafka in KafkaBusTests).
@Suite("StageConsumer batches, embedded bus")
struct StageConsumerBatchTests {
    let checks = BusContractSuite(factory: EmbeddedBusFactory(), partitions: 3)

    @Test func batchesKeepOrderAndCommitOncePerPartition() async throws { try await checks.batchesKeepOrderAndCommitOncePerPartition() }
    @Test func loneMessageIsHandledAtOnce() async throws { try await checks.loneMessageIsHandledAtOnce() }
    @Test func failedBatchIsNotCommitted() async throws { try await checks.failedBatchIsNotCommitted() }
}
