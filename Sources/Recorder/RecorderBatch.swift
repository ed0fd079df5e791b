import Pipeline

/// A batch of `audit` and `outcomes` messages reduced to the events to record, the same way for
/// every reader of the Recorder (the recordings and each sink's cursor).
///
/// Guarantees: `events` are the batch's audit events in delivery order (so in partition order),
/// with every outcome record that is not its request's first (`OutcomeLedger.isFirst`) left out,
/// and changelog markers skipped; `chains[i]`/`offsets[i]` are the source partition's chain id
/// and offset of `events[i]`; `spans` covers every partition of the batch, events or not.
/// Deciding is deterministic, so every reader leaves out the same records.
struct RecorderBatch: Sendable {
    var events: [AuditEvent] = []
    var chains: [String] = []
    var offsets: [Int64] = []
    var spans: [String: ChainSpan] = [:]
    /// Second outcome records of a request, left out.
    var laterOutcomes: [BusMessage] = []
    /// Messages that are not audit events, with why.
    var undecodable: [(message: BusMessage, reason: String)] = []

    /// `nil` when the ledger's reader stopped (shutdown or bus failure): commit nothing.
    static func prepare(_ messages: [BusMessage], context: StageContext, ledger: OutcomeLedger) async -> RecorderBatch? {
        var batch = RecorderBatch()
        batch.events.reserveCapacity(messages.count)
        for message in messages {
            let chainID = AuditChain.chainID(topic: message.topic, partition: message.partition)
            batch.spans[chainID, default: ChainSpan(first: message.offset, last: message.offset)].include(message.offset)
            if message.topic == context.topics.outcomes {
                if TopicFollower.isMarker(message) { continue }
                do {
                    guard try await ledger.isFirst(message) else {
                        batch.laterOutcomes.append(message)
                        continue
                    }
                } catch {
                    return nil
                }
            }
            do {
                batch.events.append(try context.codec.decodeAudit(message))
                batch.chains.append(chainID)
                batch.offsets.append(message.offset)
            } catch {
                batch.undecodable.append((message, "\(error)"))
            }
        }
        return batch
    }
}
