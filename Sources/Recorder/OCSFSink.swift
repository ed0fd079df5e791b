import Pipeline

/// A sink that receives OCSF instead of Sluice's own events (`schema: ocsf`): it encodes each
/// event of a batch with ``OCSFEvent`` and hands the lines to the sink it wraps (a file,
/// syslog, HEC or webhook sink), which delivers them as it would Sluice's lines.
///
/// Guarantees: the same delivery guarantees as the wrapped sink (it is one attempt per batch);
/// only the event's own fields are sent (``OCSFEvent``). When the audit chain is on, the chain
/// values of each event's Sluice line (`chain_id`, `seq`, `chain`) are carried under
/// `unmapped.sluice` for correlation; the chain is verified on a `schema: sluice` copy, whose
/// bytes it covers.
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

/// The audit chain's members at the end of a Sluice line (`…,"chain_id":"…","seq":N,"chain":"…"}`),
/// when present.
struct ChainFields: Equatable, Sendable {
    var chainID: String
    var seq: Int64
    var chain: String

    /// Reads the three members from the end of `line`; `nil` when the line has no chain.
    static func parse(_ line: [UInt8]) -> ChainFields? {
        var text = String(decoding: line, as: UTF8.self)
        while text.hasSuffix("\n") { text.removeLast() }
        guard text.hasSuffix("\"}"), let idRange = text.range(of: ",\"chain_id\":\"", options: .backwards) else { return nil }
        let tail = text[idRange.upperBound...]
        guard let idEnd = tail.firstIndex(of: "\"") else { return nil }
        let id = String(tail[..<idEnd])
        let afterID = tail[tail.index(after: idEnd)...]
        guard afterID.hasPrefix(",\"seq\":") else { return nil }
        let seqText = afterID.dropFirst(",\"seq\":".count).prefix { $0.isNumber || $0 == "-" }
        guard let seq = Int64(seqText) else { return nil }
        let afterSeq = afterID.dropFirst(",\"seq\":".count + seqText.count)
        guard afterSeq.hasPrefix(",\"chain\":\"") else { return nil }
        let chain = afterSeq.dropFirst(",\"chain\":\"".count).dropLast(2)
        guard !chain.isEmpty, chain.allSatisfy(\.isHexDigit) else { return nil }
        return ChainFields(chainID: id, seq: seq, chain: String(chain))
    }
}
