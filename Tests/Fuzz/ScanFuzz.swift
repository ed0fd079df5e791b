// libFuzzer target for Detection's decoders (JSON string unescaping, percent/form decoding,
// base64 and base64+gzip), reached through a scan call. The mode is chosen at compile time:
// -D SCAN_JSON (input inside a JSON string), -D SCAN_PERCENT (input as a query string),
// -D SCAN_BASE64 (input base64-encoded inside JSON, and raw).
//
// Invariants (a violation traps, which libFuzzer reports as a crash):
// - scanning never crashes;
// - findings are inside the scanned bytes, non-empty, sorted by start;
// - scan and scanThrowing agree when scanThrowing does not throw;
// - masking keeps the bytes outside findings and never crashes; a masked body scans clean of the
//   same fingerprints.
import Detection

let engine: DetectionEngine = {
    do { return try DetectionEngine(fingerprintKey: Array("fuzz".utf8), options: EngineOptions(maxDecompressedBytes: 1 << 20)) }
    catch { fatalError("engine: \(error)") }
}()

func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("fuzz invariant violated: \(message())") }
}

func base64(_ bytes: [UInt8]) -> [UInt8] {
    let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    var i = 0
    while i + 2 < bytes.count {
        let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
        out += [table[n >> 18 & 63], table[n >> 12 & 63], table[n >> 6 & 63], table[n & 63]]
        i += 3
    }
    if i + 1 == bytes.count {
        let n = Int(bytes[i]) << 16
        out += [table[n >> 18 & 63], table[n >> 12 & 63], 61, 61]
    } else if i + 2 == bytes.count {
        let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8
        out += [table[n >> 18 & 63], table[n >> 12 & 63], table[n >> 6 & 63], 61]
    }
    return out
}

func scanChecked(_ bytes: [UInt8], _ context: ScanContext) {
    let found = engine.scan(bytes, context: context)
    var last = 0
    for f in found {
        check(f.start >= 0 && f.start < f.end && f.end <= bytes.count, "finding \(f.rule) \(f.start)..<\(f.end) outside 0..<\(bytes.count)")
        check(f.start >= last, "findings not sorted")
        last = f.start
    }
    if let thrown = try? engine.scanThrowing(bytes, context: context) {
        check(thrown == found, "scan and scanThrowing disagree")
    }
    let masked = engine.mask(bytes, findings: found)
    if found.isEmpty { check(masked == bytes, "masking without findings changed the bytes") }
    if let first = found.first { check(Array(masked.prefix(first.start)) == Array(bytes.prefix(first.start)), "masking changed bytes before the first finding") }
    let fingerprints = Set(found.map(\.fingerprint))
    for g in engine.scan(masked, context: context) where fingerprints.contains(g.fingerprint) && g.rule != "decode-limit-exceeded" && g.rule != "undecodable-body" {
        check(false, "masked body still holds \(g.rule)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    #if SCAN_JSON
    scanChecked(Array("{\"a\": \"".utf8) + input + Array("\"}".utf8), ScanContext(hint: .json))
    scanChecked(input, ScanContext(hint: .json))
    #elseif SCAN_PERCENT
    scanChecked(input, ScanContext(hint: .query))
    scanChecked(input, ScanContext(hint: .form))
    #elseif SCAN_BASE64
    scanChecked(Array("{\"blob\": \"".utf8) + base64(input) + Array("\"}".utf8), ScanContext(hint: .json))
    scanChecked(input, ScanContext(hint: .text))
    #else
    #error("define one of SCAN_JSON, SCAN_PERCENT, SCAN_BASE64")
    #endif
    return 0
}
