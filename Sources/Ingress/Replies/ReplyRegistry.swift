import Pipeline

/// Requests waiting for their reply, by request id.
///
/// Guarantees:
/// - A request is registered before it is published, so a reply arriving before the
///   caller starts waiting is kept and handed over, never lost.
/// - Each registered request gets at most one reply; `wait` returns it, or `nil` at the
///   timeout or when the waiting task is cancelled. Either way the entry is removed.
/// - A reply for an unknown, already answered or timed-out request is refused
///   (`deliver` returns `false`), so late replies cannot leak to another request.
public actor ReplyRegistry {
    private enum Slot {
        case registered
        case waiting(OneShot<Reply?>)
        case arrived(Reply)
    }

    private var slots: [String: Slot] = [:]
    /// Set by ``abandonAll()``: the Ingress is shutting down and waits no longer for replies.
    public private(set) var draining = false

    public init() {}

    /// Starts expecting a reply for `requestID`.
    public func register(_ requestID: String) {
        slots[requestID] = .registered
    }

    /// Stops expecting a reply (for example when publishing the request failed).
    /// Ends every wait now (each returns `nil`) and every later one at once: the Ingress's
    /// shutdown timeout has passed, so callers still waiting are answered 503 instead of
    /// holding the process open.
    public func abandonAll() {
        draining = true
        for (id, slot) in slots {
            if case .waiting(let waiter) = slot {
                slots[id] = nil
                waiter.resume(with: nil)
            }
        }
    }

    public func remove(_ requestID: String) {
        if case .waiting(let waiter) = slots.removeValue(forKey: requestID) {
            waiter.resume(with: nil)
        }
    }

    /// Hands `reply` to the request waiting for it; `false` when no registered request is.
    @discardableResult
    ///
    /// A "pending approval" reply (see ``Reply/isPendingApproval``) does not end the
    /// registration: the request stays registered for its final reply, which the caller
    /// awaits with another `wait` (and then `remove`s). A final reply that arrives before the
    /// caller took the pending one replaces it.
    public func deliver(_ reply: Reply) -> Bool {
        switch slots[reply.requestID] {
        case .registered:
            slots[reply.requestID] = .arrived(reply)
            return true
        case .waiting(let waiter):
            // `false`: the wait timed out or was cancelled a moment ago and has not yet
            // cleaned up; the reply is late, like one for a removed request.
            guard waiter.resume(with: reply) else {
                slots[reply.requestID] = nil
                return false
            }
            slots[reply.requestID] = reply.isPendingApproval ? .registered : nil
            return true
        case .arrived(let earlier):
            guard earlier.isPendingApproval, !reply.isPendingApproval else { return false }
            slots[reply.requestID] = .arrived(reply)
            return true
        case nil:
            return false
        }
    }

    /// Waits up to `timeout` for the reply of a registered request.
    public func wait(for requestID: String, timeout: Duration) async -> Reply? {
        switch slots[requestID] {
        case nil, .waiting:
            return nil
        case .arrived(let reply):
            slots[requestID] = reply.isPendingApproval ? .registered : nil
            return reply
        case .registered:
            if draining {
                slots[requestID] = nil
                return nil
            }
        }
        // The timer and a cancellation hand the waiter `nil` directly (no task, no actor hop);
        // a NIO timer, unlike `Task.sleep`, frees its memory when cancelled.
        let waiter = OneShot<Reply?>()
        slots[requestID] = .waiting(waiter)
        let timer = Deadlines.schedule(after: timeout) { waiter.resume(with: nil) }
        let reply = await withTaskCancellationHandler {
            await waiter.value()
        } onCancel: {
            waiter.resume(with: nil)
        }
        timer.cancel()
        // Timed out or cancelled: the slot still names this waiter; forget it.
        if case .waiting(let current) = slots[requestID], current === waiter {
            slots[requestID] = nil
        }
        return reply
    }

    /// Requests currently registered.
    public var count: Int { slots.count }
}

extension Reply {
    /// Whether this is the Forwarder's "held for approval" notice (202 with
    /// `X-Sluice-Status: pending_approval`) rather than a final answer.
    public var isPendingApproval: Bool {
        response.status == 202
            && response.headers.contains { $0.name.caseInsensitiveCompare("X-Sluice-Status") == .orderedSame && $0.value == "pending_approval" }
    }
}
