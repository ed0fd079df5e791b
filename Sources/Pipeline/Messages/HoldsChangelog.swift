import Foundation

/// One change read from the `holds` changelog.
public enum HoldsChange: Sendable, Hashable {
    /// The latest state of a held request.
    case record(HoldRecord)
    /// The request was pruned (an empty value under its key).
    case removed(requestID: String)
    /// The latest state of a scoped approval (key `grant:<id>`).
    case grant(ApprovalGrant)
    /// A grant was pruned.
    case grantRemoved(grantID: String)
}

/// Follows the `holds` changelog (a `TopicFollower`): hands each change to `apply`, forever.
///
/// Guarantees:
/// - `onCaughtUp` is called exactly once, after every record that was in the topic when
///   `follow` started has been applied (see `TopicFollower`).
/// - Records that cannot be opened or decoded are logged (ids only) and skipped; they never
///   stop the reader and never reach `apply`.
public struct HoldsChangelog: Sendable {
    let context: StageContext

    public init(context: StageContext) { self.context = context }

    /// Kind header of the catch-up markers.
    public static let markerKind = "holds-marker"

    /// Reads until the subscription ends (bus shut down, or the task is cancelled). `pace`: the
    /// Ingress answers polls and reviewers from what it reads (`.requestPath`); the Forwarder's
    /// upkeep can lag (`.background`).
    public func follow(
        pace: ReadPace = .background,
        apply: @Sendable (HoldsChange) async -> Void, onCaughtUp: @Sendable () async -> Void
    ) async throws {
        let context = self.context
        try await TopicFollower(context: context, topic: context.topics.holds, markerKind: Self.markerKind, pace: pace).follow(
            apply: { message in
                guard let key = message.keyString else { return }
                let isGrant = key.hasPrefix(ApprovalGrant.keyPrefix)
                if message.value.isEmpty {
                    await apply(isGrant ? .grantRemoved(grantID: String(key.dropFirst(ApprovalGrant.keyPrefix.count))) : .removed(requestID: key))
                    return
                }
                do {
                    if isGrant {
                        await apply(.grant(try context.codec.open(ApprovalGrant.self, from: message)))
                        return
                    }
                    let record = try context.codec.open(HoldRecord.self, from: message)
                    await apply(.record(record))
                } catch {
                    context.logger.error("unreadable holds record skipped", metadata: [
                        "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
                    ])
                }
            },
            onCaughtUp: onCaughtUp)
    }
}
