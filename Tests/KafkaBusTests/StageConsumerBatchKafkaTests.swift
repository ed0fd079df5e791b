import BusContract
import Testing

extension KafkaBrokerTests {
    /// `StageConsumer.run(maxBatch:_:)` on the test broker (the same checks as on the embedded bus).
    @Suite("StageConsumer batches")
    struct StageConsumerBatches {
        let checks = BusContractSuite(factory: KafkaBusFactory(brokers: KafkaTestBroker.brokers ?? ""), partitions: 3)

        @Test func batchesKeepOrderAndCommitOncePerPartition() async throws { try await checks.batchesKeepOrderAndCommitOncePerPartition() }
        @Test func loneMessageIsHandledAtOnce() async throws { try await checks.loneMessageIsHandledAtOnce() }
        @Test func failedBatchIsNotCommitted() async throws { try await checks.failedBatchIsNotCommitted() }
    }
}
