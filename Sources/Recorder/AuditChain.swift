import Crypto
import Foundation
import Pipeline

/// The hash chain of the audit lines the Recorder sends to its sinks (invariant 6,
/// docs/audit-chain.md).
///
/// A chained line is a JSON object whose last four members are added by the chain:
///
/// ```
/// canonical = body + ,"chain_id":"<topic>/<partition>","prev":"<64 hex>","seq":<N>
/// line      = canonical + ,"chain":"<64 hex>"}\n
/// chain     = HMAC-SHA256(chain_key, canonical)
/// ```
///
/// `body` is the line's own JSON without its closing `}` (for an event: `AuditEventLine.encode`
/// without `}\n`), `prev` the `chain` of the line before it in the same chain (32 zero bytes for
/// a `chain_start`), `seq` the bus offset the line follows. Because `prev` is inside the signed
/// bytes, every line is authenticated on its own (an edit is told apart from a missing or moved
/// line), and continuity is `prev == chain of the line before`.
///
/// The verifier recovers `canonical` from a stored line by cutting the fixed-length suffix
/// `,"chain":"<64 hex>"}` (76 bytes): no JSON is re-encoded.
public enum AuditChain {
    /// Bytes of `,"chain":"` + 64 hex + `"}`.
    static let suffixLength = 76
    static let zero = [UInt8](repeating: 0, count: 32)
    /// HKDF info of the key derived from `sealing.fingerprint_key` when `recorder.chain_key` is not set.
    static let derivationInfo = "sluice audit chain v1"

    /// The chain id of a topic partition: `<topic>/<partition>`.
    public static func chainID(topic: String, partition: Int) -> String { "\(topic)/\(partition)" }

    /// The chained line of `body` (a JSON object without its closing `}`) and its chain value.
    static func link(
        body: ArraySlice<UInt8>, chainID: String, seq: Int64, prev: [UInt8], key: SymmetricKey
    ) -> (line: [UInt8], chain: [UInt8]) {
        link(body: body, chainID: chainID, seq: seq, prev: prev, mac: HMAC<SHA256>(key: key))
    }

    /// As `link(body:chainID:seq:prev:key:)`, with `mac` a fresh HMAC of the key (copied per
    /// line: the key is not hashed again for every line).
    static func link(
        body: ArraySlice<UInt8>, chainID: String, seq: Int64, prev: [UInt8], mac: HMAC<SHA256>
    ) -> (line: [UInt8], chain: [UInt8]) {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + chainID.utf8.count + 200)
        out += body
        appendTail(chainID: chainID, prev: prev, seq: seq, to: &out)
        var h = mac
        h.update(data: out)
        let chain = Array(h.finalize())
        out += #","chain":""#.utf8
        appendHex(chain, to: &out)
        out += #""}"#.utf8
        out.append(UInt8(ascii: "\n"))
        return (out, chain)
    }

    /// `,"chain_id":"…","prev":"…","seq":N`: the members the chain adds to the signed bytes.
    static func appendTail(chainID: String, prev: [UInt8], seq: Int64, to out: inout [UInt8]) {
        out += #","chain_id":""#.utf8
        out += chainID.utf8  // topic names are [A-Za-z0-9._-]: nothing to escape
        out += #"","prev":""#.utf8
        appendHex(prev, to: &out)
        out += #"","seq":"#.utf8
        out += String(seq).utf8
    }

    /// The body of an event line: `AuditEventLine.encode(event)` without its `}\n`.
    static func eventBody(_ line: [UInt8]) -> ArraySlice<UInt8> {
        var end = line.endIndex
        if end > line.startIndex, line[end - 1] == UInt8(ascii: "\n") { end -= 1 }
        if end > line.startIndex, line[end - 1] == UInt8(ascii: "}") { end -= 1 }
        return line[line.startIndex..<end]
    }

    /// `{"count":C,"kind":"checkpoint","time_ms":T`
    static func checkpointBody(count: Int64, timeMillis: Int64) -> ArraySlice<UInt8> {
        ArraySlice(#"{"count":\#(count),"kind":"checkpoint","time_ms":\#(timeMillis)"#.utf8)
    }

    /// One record of a sink line: `lines[i]` the Recorder hands a sink is event `i`'s chained
    /// line, preceded by a `chain_start` line and followed by a `checkpoint` line when the chain
    /// has one there. A sink that sends one record per line (syslog, HEC, a webhook's array)
    /// sends each of these, in order.
    struct Record: Equatable {
        enum Kind: String { case event, chainStart = "chain_start", checkpoint }
        var kind: Kind
        /// The record's JSON object, without its newline.
        var bytes: ArraySlice<UInt8>
    }

    /// The records of a sink line, in order (an unchained line is one `event` record).
    static func records(of line: [UInt8]) -> [Record] {
        let checkpoint = Array(#"{"count":"#.utf8)
        let start = Array(#"{"after_offset":"#.utf8)
        return line.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).map { part in
            if part.starts(with: start) { return Record(kind: .chainStart, bytes: part) }
            if part.starts(with: checkpoint) { return Record(kind: .checkpoint, bytes: part) }
            return Record(kind: .event, bytes: part)
        }
    }

    /// `{"after_offset":N,"kind":"chain_start","time_ms":T`
    static func chainStartBody(afterOffset: Int64, timeMillis: Int64) -> ArraySlice<UInt8> {
        ArraySlice(#"{"after_offset":\#(afterOffset),"kind":"chain_start","time_ms":\#(timeMillis)"#.utf8)
    }

    static func appendHex(_ bytes: [UInt8], to out: inout [UInt8]) {
        for b in bytes {
            out.append(hexDigit(b >> 4))
            out.append(hexDigit(b & 0x0f))
        }
    }

    @inline(__always) static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? v + UInt8(ascii: "0") : v - 10 + UInt8(ascii: "a") }

    static func hex(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        appendHex(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of 64 lowercase hex digits, or `nil`.
    static func unhex<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        guard text.count == 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var high: UInt8?
        for c in text {
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            default: return nil
            }
            if let h = high {
                out.append(h << 4 | v)
                high = nil
            } else {
                high = v
            }
        }
        return out
    }

    /// The chain key of a configuration: `recorder.chain_key` when set (at least 16 bytes: base64
    /// of them, or the text), else HKDF-SHA256 of `sealing.fingerprint_key` with the info
    /// `sluice audit chain v1`. `source` says which, for the start-up log. Errors name the
    /// configuration path and never a value.
    public static func key(
        config: SluiceConfig, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> (key: SymmetricKey, source: String) {
        if let secret = config.recorder.chainKey {
            let text = try secret.resolve(path: "recorder.chain_key", environment: environment)
            let bytes: [UInt8]
            if let data = Data(base64Encoded: text), data.count >= 16 {
                bytes = Array(data)
            } else {
                guard text.utf8.count >= 16 else {
                    throw ConfigError(path: "recorder.chain_key", message: "\(secret) must hold at least 16 bytes")
                }
                bytes = Array(text.utf8)
            }
            return (SymmetricKey(data: bytes), "recorder.chain_key (\(secret))")
        }
        let base = try config.sealing.fingerprintKeyBytes(environment: environment)
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: base), info: Array(derivationInfo.utf8), outputByteCount: 32)
        return (key, "derived from sealing.fingerprint_key (recorder.chain_key not set)")
    }
}
