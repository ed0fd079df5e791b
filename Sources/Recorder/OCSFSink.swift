import Foundation
import Pipeline

/// A sink that receives OCSF instead of Sluice's own events (`schema: ocsf`): it encodes each
/// event of a batch with ``OCSFEvent`` and hands the lines to the sink it wraps (a file,
/// syslog, HEC or webhook sink), which delivers them as it would Sluice's lines.
///
/// Guarantees: the same delivery guarantees as the wrapped sink (it is one attempt per batch);
/// only the event's own fields are sent (``OCSFEvent``). When the audit chain is on, the chain
/// values of each event's Sluice line (`chain_id`, `prev`, `seq`, `chain`) are carried under
/// `unmapped.sluice.chain` for correlation, and the chain's own records (`chain_start`,
/// `checkpoint`) are not sent (OCSF has no class for them): the chain is verified on a
/// `schema: sluice` copy, whose bytes it covers.
struct OCSFSink: AuditSink {
    let inner: any AuditSink
    let productVersion: String

    var label: String { inner.label + " (ocsf)" }

    func write(_ event: AuditEvent) async throws {
        try await write(batch: [event], lines: [AuditEventLine.encode(event)])
    }

    func write(_ event: AuditEvent, line: [UInt8]) async throws {
        try await write(batch: [event], lines: [line])
    }

    func write(batch events: [AuditEvent], lines: [[UInt8]]) async throws {
        let ocsf = zip(events, lines).map { event, line in
            OCSFEvent.line(event, productVersion: productVersion, chain: ChainFields.parse(line))
        }
        try await inner.write(batch: events, lines: ocsf)
    }
}

/// The audit chain's members of a Sluice line (`chain_id`, `prev`, `seq`, `chain`), when present.
struct ChainFields: Equatable, Sendable {
    var chainID: String
    var prev: String
    var seq: Int64
    var chain: String

    /// Reads the members from the event record of `line` (``AuditChain/records(of:)``); `nil` when
    /// the line is not chained.
    static func parse(_ line: [UInt8]) -> ChainFields? {
        guard let record = AuditChain.records(of: line).first(where: { $0.kind == .event }),
              let object = try? JSONSerialization.jsonObject(with: Data(record.bytes)) as? [String: Any],
              let chainID = object["chain_id"] as? String, let prev = object["prev"] as? String,
              let seq = (object["seq"] as? NSNumber)?.int64Value, let chain = object["chain"] as? String
        else { return nil }
        return ChainFields(chainID: chainID, prev: prev, seq: seq, chain: chain)
    }
}
