import Ingress
import Pipeline
import Testing

@Suite("Ingress reply key")
struct ReplyKeyTests {
    static func partitionOf(_ key: String, _ partitions: Int) -> Int { partition(forKey: Array(key.utf8), partitions: partitions) }

    @Test(arguments: [
        // instance id → replies partition, among 6
        ("0", 0), ("ingress-1", 1), ("sluice-ingress-5", 5), ("edge-7", 1), ("pod-12", 0), ("a-99999999999999999999999", 3),
    ] as [(String, Int)])
    func numberedInstancesGetTheirOrdinalsPartition(instance: String, expected: Int) {
        let key = IngressOptions.replyKey(instance: instance, unique: "host-1-abcd", partitions: 6)
        #expect(Self.partitionOf(key, 6) == expected, "\(key)")
        #expect(key.hasPrefix("ingress-\(instance)-host-1-abcd-"))
    }

    @Test func numberedInstancesNeverShareAPartition() {
        for partitions in [2, 3, 6, 12, 64] {
            let used = (0..<partitions).map { Self.partitionOf(IngressOptions.replyKey(instance: "ingress-\($0)", unique: "u\($0)", partitions: partitions), partitions) }
            #expect(Set(used).count == partitions, "\(partitions) partitions: \(used)")
        }
    }

    @Test func anUnnumberedInstanceKeepsItsPartitionAcrossRestarts() {
        for instance in ["edge-a", "west", "ingress-blue"] {
            let expected = partition(forKey: Array(instance.utf8), partitions: 12)
            let keys = ["h-1-aaaa", "h-2-bbbb", "other-9-cccc"].map { IngressOptions.replyKey(instance: instance, unique: $0, partitions: 12) }
            #expect(keys.allSatisfy { Self.partitionOf($0, 12) == expected }, "\(keys)")
            #expect(Set(keys).count == keys.count, "two processes with one instance id share a key: \(keys)")
        }
    }

    @Test func withoutAnInstanceIdOrWithOnePartitionTheKeyIsUniqueAsItIs() {
        #expect(IngressOptions.replyKey(instance: nil, unique: "h-1-aaaa", partitions: 6) == "ingress-h-1-aaaa-0")
        #expect(IngressOptions.replyKey(instance: "ingress-3", unique: "h-1-aaaa", partitions: 1) == "ingress-ingress-3-h-1-aaaa-0")
    }
}
