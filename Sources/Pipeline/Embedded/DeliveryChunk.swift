import Synchronization

/// The messages an embedded subscription took from the bus in one turn of the actor, handed to
/// its iterator one at a time.
///
/// Guarantees:
/// - Messages leave in the order the bus handed them out; `next` asks the bus (`take`) only when
///   none is left, so a subscription never holds more than one chunk.
/// - `take` returning `nil` (the subscription ended) or throwing ends the stream the same way
///   (nothing is left in hand then).
///
/// A subscription's stream has one iterator (`AsyncThrowingStream(unfolding:)` is iterated
/// once), so `next` is never called concurrently; the `Mutex` only makes the type `Sendable`.
final class DeliveryChunk: Sendable {
    private struct State {
        var messages: [BusMessage] = []
        var next = 0
    }
    private let state = Mutex(State())

    /// The next message in hand, or the first of a new chunk from `take`; `nil` when `take` is.
    func next(_ take: () async throws -> [BusMessage]?) async throws -> BusMessage? {
        if let message = pop() { return message }
        guard let chunk = try await take(), let first = chunk.first else { return nil }
        if chunk.count > 1 {
            state.withLock { s in
                s.messages = chunk
                s.next = 1
            }
        }
        return first
    }

    private func pop() -> BusMessage? {
        state.withLock { s in
            guard s.next < s.messages.count else { return nil }
            defer {
                s.next += 1
                if s.next == s.messages.count {
                    s.messages = []
                    s.next = 0
                }
            }
            return s.messages[s.next]
        }
    }
}
