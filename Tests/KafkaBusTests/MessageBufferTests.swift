import Pipeline
import Testing

@testable import KafkaBus

/// The subscription buffer: revoked partitions' messages are withdrawn, close ends
/// the stream, cancellation does not lose a message.
@Suite("KafkaBus message buffer")
struct MessageBufferTests {
    func message(_ partition: Int, _ offset: Int64) -> BusMessage {
        BusMessage(topic: "t", partition: partition, offset: offset, key: nil, headers: [], value: [UInt8(offset)], timestampMillis: 0)
    }

    @Test func dropRemovesOnlyRevokedPartitions() async throws {
        let buffer = MessageBuffer()
        for offset in 0..<4 { buffer.push(message(0, Int64(offset))); buffer.push(message(1, Int64(offset))) }
        #expect(buffer.drop([TopicPartition(topic: "t", partition: 1)]) == 4)
        var offsets: [Int64] = []
        for _ in 0..<4 { offsets.append(try #require(try await buffer.next()).offset) }
        #expect(offsets == [0, 1, 2, 3])
        buffer.push(message(1, 9))
        #expect(try await buffer.next()?.partition == 1)
    }

    @Test func finishEndsTheStreamAndDiscardsTheRest() async throws {
        let buffer = MessageBuffer()
        buffer.push(message(0, 0))
        buffer.finish()
        buffer.push(message(0, 1))
        #expect(try await buffer.next() == nil)
        #expect(try await buffer.next() == nil)
    }

    @Test func waitingIteratorGetsPushedMessageOrError() async throws {
        let buffer = MessageBuffer()
        async let first = buffer.next()
        try await Task.sleep(for: .milliseconds(50))
        buffer.push(message(2, 7))
        #expect(try await first?.offset == 7)
        let second = Task { try await buffer.next() }
        try await Task.sleep(for: .milliseconds(50))
        buffer.finish(throwing: BusError(.broker, "boom"))
        await #expect(throws: BusError.self) { _ = try await second.value }
    }

    @Test func cancelledWaitReturnsNilAndKeepsLaterMessages() async throws {
        let buffer = MessageBuffer()
        let waiter = Task { try await buffer.next() }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        #expect(try await waiter.value == nil)
        buffer.push(message(0, 3))
        #expect(try await buffer.next()?.offset == 3)
    }
}
