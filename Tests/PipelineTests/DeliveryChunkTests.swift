@testable import Pipeline
import Synchronization
import Testing

@Suite("DeliveryChunk")
struct DeliveryChunkTests {
    /// Chunks the bus hands out, in turn; `nil` ends the subscription.
    final class Takes: Sendable {
        private let chunks: Mutex<[[BusMessage]?]>
        private let calls = Mutex(0)
        init(_ chunks: [[BusMessage]?]) { self.chunks = Mutex(chunks) }
        func take() -> [BusMessage]? {
            calls.withLock { $0 += 1 }
            return chunks.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        }
        var count: Int { calls.withLock { $0 } }
    }

    static func message(_ offset: Int64) -> BusMessage {
        BusMessage(topic: "t", partition: 0, offset: offset, key: nil, headers: [], value: [], timestampMillis: 0)
    }

    @Test(arguments: [
        // chunks handed out → offsets delivered, calls to the bus
        ([[0, 1, 2], [3], [4, 5]], [0, 1, 2, 3, 4, 5], 4),
        ([[0]], [0], 2),
        ([[Int64]](), [Int64](), 1),
    ] as [([[Int64]], [Int64], Int)])
    func deliversInOrderAndAsksOnlyWhenEmpty(chunks: [[Int64]], expected: [Int64], calls: Int) async throws {
        let takes = Takes(chunks.map { $0.map(Self.message) })
        let chunk = DeliveryChunk()
        // The bus is asked again only once everything in hand is out: message j of chunk i
        // comes out after exactly i + 1 takes.
        let takesBefore = chunks.enumerated().flatMap { i, chunk in chunk.map { _ in i + 1 } }
        var got: [Int64] = []
        var takesSeen: [Int] = []
        while let m = try await chunk.next({ takes.take() }) {
            got.append(m.offset)
            takesSeen.append(takes.count)
        }
        #expect(takesSeen == takesBefore)
        #expect(got == expected)
        #expect(takes.count == calls)
    }

    @Test func errorEndsTheStream() async throws {
        struct Broken: Error {}
        let chunk = DeliveryChunk()
        let first = try await chunk.next { [Self.message(7), Self.message(8)] }
        #expect(first?.offset == 7)
        // What is in hand comes out before the bus is asked again.
        let second = try await chunk.next { throw Broken() }
        #expect(second?.offset == 8)
        await #expect(throws: Broken.self) { _ = try await chunk.next { throw Broken() } }
    }
}
