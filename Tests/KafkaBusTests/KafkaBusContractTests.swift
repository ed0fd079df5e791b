import BusContract
import Foundation
import KafkaBus
import Pipeline
import Testing

/// Where the Kafka tests find a broker: `SLUICE_KAFKA_BROKERS` (`make test` starts
/// Tansu and sets it; point it at a real Apache Kafka to test against that).
enum KafkaTestBroker {
    static let brokers: String? = {
        guard let value = ProcessInfo.processInfo.environment["SLUICE_KAFKA_BROKERS"], !value.isEmpty else { return nil }
        return value
    }()

    static var isAvailable: Bool { brokers != nil }

    static let skipReason: Comment = "SLUICE_KAFKA_BROKERS is not set: start a Kafka broker (make test starts Tansu) and set it to run the Kafka tests"

    /// The configuration the tests use: fast timeouts, unique client ids.
    static func configuration(_ brokers: String) -> KafkaBusConfiguration {
        KafkaBusConfiguration(
            brokers: brokers, clientId: "sluice-test-\(UUID().uuidString.prefix(6))",
            publishTimeout: .seconds(20), adminTimeout: .seconds(20))
    }
}

/// Makes independent `KafkaBus` clients of the test broker.
struct KafkaBusFactory: BusFactory {
    let brokers: String

    /// Time for a group to settle after a member joins or leaves. Measured on Tansu
    /// with session.timeout.ms=6000 / heartbeat.interval.ms=1000: joins settle in
    /// about one to three seconds; 8 s leaves room for a slower broker.
    var rebalanceTimeout: Duration { .seconds(8) }

    func makeBus() async throws -> any Bus {
        try KafkaBus(configuration: KafkaTestBroker.configuration(brokers))
    }
}

/// Everything that talks to the broker in `SLUICE_KAFKA_BROKERS`, one suite at a
/// time and one test at a time (`.serialized` applies to the nested suites):
/// group rebalances are timing-sensitive and the machine is small.
@Suite("KafkaBus with a broker", .serialized, .enabled(if: KafkaTestBroker.isAvailable, KafkaTestBroker.skipReason))
enum KafkaBrokerTests {}

extension KafkaBrokerTests {
    /// Every check of the bus contract, one test each.
    @Suite("contract")
    struct Contract {
        let suite = BusContractSuite(factory: KafkaBusFactory(brokers: KafkaTestBroker.brokers ?? ""))

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
}
