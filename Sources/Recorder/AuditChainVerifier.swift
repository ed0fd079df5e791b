import Crypto
import Foundation

/// Checks chained audit lines (`AuditChain`) as a sink stored them: `sluice audit verify`.
///
/// Per chain id, in input order: every line must be authentic (its `chain` is the HMAC of its
/// own canonical bytes), continue the line before it (`prev` = that line's `chain`), and follow
/// it in sequence (an event's `seq` above the one before; a checkpoint right after an event, at
/// its `seq`, with `count` = the segment's events so far). A `chain_start` line begins a new
/// segment (reported, not a failure). An exact copy of a line already seen is an at-least-once
/// duplicate: counted and skipped. The first line that breaks a rule ends the check, with the
/// reason:
///
/// - `edited`: the line's bytes are not the ones the Recorder signed;
/// - `reordered`: the line it continues comes later in the input;
/// - `missing line before`: the line it continues is nowhere in the input;
/// - `bad chain`: it continues an older line, or its `seq` does not follow;
/// - `checkpoint count …`: a checkpoint's count differs from the events seen;
/// - `not JSON`, `not a chained line`.
///
/// Rotated files given in order (oldest first, then the current file) are one stream: a file
/// missing from between them fails as `missing line before` at the first line after the gap,
/// and the failure's ``Failure/lastGood`` names the chain's last line before it (in the file
/// before the gap).
///
/// It cannot see lines cut from the end of the input (compare the last checkpoint's time with
/// the time of the check) or a whole segment removed from between two others.
public enum AuditChainVerifier {
    /// Why a line failed.
    public enum Reason: Equatable, Sendable, CustomStringConvertible {
        case notJSON
        case notChained
        case edited
        case reordered
        case missingLineBefore
        case badChain(String)
        case badCheckpoint(expected: Int64, found: Int64)

        public var description: String {
            switch self {
            case .notJSON: "not JSON"
            case .notChained: "not a chained line"
            case .edited: "edited"
            case .reordered: "reordered"
            case .missingLineBefore: "missing line before"
            case .badChain(let why): "bad chain (\(why))"
            case .badCheckpoint(let expected, let found): "checkpoint count \(found), expected \(expected): events are missing or added"
            }
        }
    }

    /// A line of the input: which source (index into the sources) and its 1-based line number.
    public struct Location: Equatable, Sendable {
        public var source: Int
        public var line: Int
    }

    public struct Failure: Equatable, Sendable {
        public var location: Location
        public var chainID: String?
        public var reason: Reason
        /// The chain's last verified line before the failing one (`nil`: none, or a parse
        /// failure). With `missing line before`, the lines lost lie between the two; in another
        /// source, a whole file is missing between them or that file's end was cut.
        public var lastGood: Location? = nil
    }

    /// A segment start seen (a `chain_start` line, or with `partial` a chain's first line).
    public struct SegmentStart: Equatable, Sendable {
        public var location: Location
        public var chainID: String
        /// The offset the segment starts after (`nil`: a chain entered mid-segment with `partial`).
        public var afterOffset: Int64?
    }

    /// The last checkpoint of a chain and the events after it.
    public struct Tail: Equatable, Sendable {
        public var chainID: String
        public var lastCheckpointTimeMillis: Int64?
        public var eventsAfterCheckpoint: Int64
    }

    public struct Report: Sendable {
        /// Distinct events verified (duplicates not counted).
        public var events: Int64 = 0
        public var chains: Int = 0
        public var duplicates: Int64 = 0
        /// Non-empty lines read, up to and including the bad one (all of them when the input verified).
        public var linesChecked: Int = 0
        public var segmentStarts: [SegmentStart] = []
        public var tails: [Tail] = []
        /// The first bad line; `nil` when the input verified.
        public var failure: Failure?

        public var verified: Bool { failure == nil }
    }

    private enum Kind { case event, checkpoint, chainStart }

    private struct Record {
        var location: Location
        var chainID: String
        var kind: Kind
        var seq: Int64
        var prev: [UInt8]
        var chain: [UInt8]
        var authentic: Bool
        var count: Int64?
        var afterOffset: Int64?
        var timeMillis: Int64?
    }

    private struct ChainState {
        var head: [UInt8]
        var headLocation: Location
        var lastSeq: Int64
        var lastWasEvent: Bool
        var seen: Set<[UInt8]>
        var segmentEvents: Int64
        /// `nil` until known: checkpoint counts minus the events seen (0 for a segment seen whole).
        var countBase: Int64?
        var lastCheckpointTime: Int64?
        var eventsAfterCheckpoint: Int64
    }

    /// Verifies `sources` (each the bytes of one file, read in the order given, as one stream).
    /// `partial`: a chain's first line need not be its `chain_start` (the input starts after
    /// older lines were rotated away); the line is trusted as the start (and reported).
    public static func verify(sources: [[UInt8]], key: SymmetricKey, partial: Bool = false) -> Report {
        var report = Report()
        var records: [Record] = []
        // Pass 1: parse every line; a line that does not parse ends the check there.
        var parseFailure: Failure?
        parsing: for (s, bytes) in sources.enumerated() {
            var number = 0
            for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                number += 1
                if line.isEmpty { continue }
                let location = Location(source: s, line: number)
                switch parse(line, key: key, at: location) {
                case .success(let record): records.append(record)
                case .failure(let reason):
                    parseFailure = Failure(location: location, chainID: nil, reason: reason)
                    break parsing
                }
            }
        }
        // Where each chain value first appears (to tell a moved line from a missing one).
        var firstIndex: [String: [[UInt8]: Int]] = [:]
        for (i, r) in records.enumerated() where firstIndex[r.chainID]?[r.chain] == nil {
            firstIndex[r.chainID, default: [:]][r.chain] = i
        }
        var chains: [String: ChainState] = [:]
        var order: [String] = []
        func fail(_ r: Record, _ reason: Reason) -> Report {
            var out = report
            out.failure = Failure(location: r.location, chainID: r.chainID, reason: reason, lastGood: chains[r.chainID]?.headLocation)
            out.chains = chains.count
            return out
        }
        for (i, r) in records.enumerated() {
            report.linesChecked += 1
            guard r.authentic else { return fail(r, .edited) }
            if let state = chains[r.chainID], state.seen.contains(r.chain) {
                // An exact copy (same signed bytes) of a line already verified: at-least-once.
                // The head stays where it was.
                report.duplicates += 1
                continue
            }
            if r.kind == .chainStart {
                guard r.prev == AuditChain.zero else { return fail(r, .badChain("a chain_start continues nothing")) }
                var seen = chains[r.chainID]?.seen ?? []
                seen.insert(r.chain)
                if chains[r.chainID] == nil { order.append(r.chainID) }
                chains[r.chainID] = ChainState(
                    head: r.chain, headLocation: r.location, lastSeq: r.seq, lastWasEvent: false, seen: seen, segmentEvents: 0, countBase: 0,
                    lastCheckpointTime: r.timeMillis, eventsAfterCheckpoint: 0)
                report.segmentStarts.append(SegmentStart(location: r.location, chainID: r.chainID, afterOffset: r.afterOffset ?? r.seq))
                continue
            }
            guard var state = chains[r.chainID] else {
                guard partial else { return fail(r, .missingLineBefore) }
                // Entered mid-segment: trusted as the start, counts checked from here.
                order.append(r.chainID)
                var state = ChainState(
                    head: r.chain, headLocation: r.location, lastSeq: r.seq, lastWasEvent: r.kind == .event, seen: [r.chain], segmentEvents: 0, countBase: nil,
                    lastCheckpointTime: nil, eventsAfterCheckpoint: 0)
                if r.kind == .event {
                    state.segmentEvents = 1
                    state.eventsAfterCheckpoint = 1
                    report.events += 1
                } else if let count = r.count {
                    state.countBase = count
                    state.lastCheckpointTime = r.timeMillis
                }
                chains[r.chainID] = state
                report.segmentStarts.append(SegmentStart(location: r.location, chainID: r.chainID, afterOffset: nil))
                continue
            }
            if r.prev != state.head {
                if let j = firstIndex[r.chainID]?[r.prev], j > i { return fail(r, .reordered) }
                if state.seen.contains(r.prev) { return fail(r, .badChain("continues an older line, not the one before it")) }
                return fail(r, .missingLineBefore)
            }
            switch r.kind {
            case .event:
                guard r.seq > state.lastSeq else {
                    return fail(r, .badChain("seq \(r.seq) does not follow \(state.lastSeq)"))
                }
                state.segmentEvents += 1
                state.eventsAfterCheckpoint += 1
                report.events += 1
                state.lastWasEvent = true
            case .checkpoint:
                guard state.lastWasEvent, r.seq == state.lastSeq else {
                    return fail(r, .badChain("a checkpoint must follow an event at its seq"))
                }
                let found = r.count ?? -1
                if let base = state.countBase {
                    guard found == base + state.segmentEvents else {
                        return fail(r, .badCheckpoint(expected: base + state.segmentEvents, found: found))
                    }
                } else {
                    state.countBase = found - state.segmentEvents
                }
                state.lastCheckpointTime = r.timeMillis
                state.eventsAfterCheckpoint = 0
                state.lastWasEvent = false
            case .chainStart:
                break  // handled above
            }
            state.head = r.chain
            state.headLocation = r.location
            state.lastSeq = r.seq
            state.seen.insert(r.chain)
            chains[r.chainID] = state
        }
        report.chains = chains.count
        report.tails = order.compactMap { id in
            chains[id].map { Tail(chainID: id, lastCheckpointTimeMillis: $0.lastCheckpointTime, eventsAfterCheckpoint: $0.eventsAfterCheckpoint) }
        }
        if let parseFailure {
            report.failure = parseFailure
            report.linesChecked += 1
        }
        return report
    }

    private enum Parsed {
        case success(Record)
        case failure(Reason)
    }

    private static func parse(_ line: ArraySlice<UInt8>, key: SymmetricKey, at location: Location) -> Parsed {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)), let dict = object as? [String: Any] else {
            return .failure(.notJSON)
        }
        guard let chainID = dict["chain_id"] as? String, let seq = (dict["seq"] as? NSNumber)?.int64Value,
            let prevText = dict["prev"] as? String, let prev = AuditChain.unhex(Array(prevText.utf8)),
            let chainText = dict["chain"] as? String, let chain = AuditChain.unhex(Array(chainText.utf8)),
            line.count > AuditChain.suffixLength
        else { return .failure(.notChained) }
        // The stored bytes end with the chain member exactly; before it, the signed bytes end
        // with the members the chain added.
        let cut = line.endIndex - AuditChain.suffixLength
        var suffix: [UInt8] = Array(#","chain":""#.utf8)
        AuditChain.appendHex(chain, to: &suffix)
        suffix += #""}"#.utf8
        guard line[cut...].elementsEqual(suffix) else { return .failure(.notChained) }
        let canonical = line[line.startIndex..<cut]
        var tail: [UInt8] = []
        AuditChain.appendTail(chainID: chainID, prev: prev, seq: seq, to: &tail)
        guard canonical.count > tail.count, canonical.suffix(tail.count).elementsEqual(tail) else { return .failure(.notChained) }
        let authentic = HMAC<SHA256>.isValidAuthenticationCode(chain, authenticating: Array(canonical), using: key)
        let kind: Kind
        switch dict["kind"] as? String {
        case "checkpoint": kind = .checkpoint
        case "chain_start": kind = .chainStart
        default: kind = .event
        }
        return .success(Record(
            location: location, chainID: chainID, kind: kind, seq: seq, prev: prev, chain: chain, authentic: authentic,
            count: (dict["count"] as? NSNumber)?.int64Value, afterOffset: (dict["after_offset"] as? NSNumber)?.int64Value,
            timeMillis: (dict["time_ms"] as? NSNumber)?.int64Value))
    }
}
