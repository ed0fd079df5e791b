// DetectionBench: single-threaded throughput of the Detection engine on both first-pass paths.
// Build in release: swift build -c release --product DetectionBench && .build/release/DetectionBench [MiB] [options]
// Options: --path hyperscan|fallback|both (default both), --only clean|dirty|kib (repeatable),
//          --rounds N (best of N timed runs per figure, default 3), --breakdown,
//          --pii on|off|both (default both: `detection/<path>` lines scan with credentials + PII,
//          `detection/<path>-credonly` lines with PII disabled, the common production setting),
//          --requests N (number of 1 KiB requests, default 20000), --no-warmup (for callgrind:
//          `valgrind --tool=callgrind --toggle-collect='$s9Detection0A6EngineC4scan_7context*'`).
// Prints one labelled line per figure, e.g. `detection/hyperscan clean-json: 812.3 MB/s` (MB = 2^20 bytes).
import Detection
import Foundation

struct Rng {
    var s: UInt64
    mutating func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func str(_ alphabet: [UInt8], _ n: Int) -> String { String(decoding: (0..<n).map { _ in alphabet[int(alphabet.count)] }, as: UTF8.self) }
}

let alnum = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
let hex = Array("0123456789abcdef".utf8)
let words = ["the", "build", "failed", "because", "test", "suite", "timed", "out", "please", "summarize", "logs", "and",
             "retry", "deployment", "service", "returned", "error", "for", "user", "request", "with", "context", "window"]

/// A realistic clean JSON request body (LLM/tool-call style), about 0.5–2 KiB.
func cleanBody(_ r: inout Rng) -> String {
    let text = (0..<(20 + r.int(120))).map { _ in words[r.int(words.count)] }.joined(separator: " ")
    return """
    {"model":"gpt-4o-mini","max_tokens":\(256 + r.int(4000)),"temperature":0.\(r.int(9)),"stream":false,\
    "request_id":"\(r.str(hex, 8))-\(r.str(hex, 4))-\(r.str(hex, 4))-\(r.str(hex, 4))-\(r.str(hex, 12))",\
    "messages":[{"role":"system","content":"You are a CI assistant."},{"role":"user","content":"\(text)"}],\
    "tools":[{"type":"function","function":{"name":"run_job","parameters":{"type":"object","properties":{"job":{"type":"string"}}}}}],\
    "metadata":{"commit":"\(r.str(hex, 40))","pipeline":\(r.int(1_000_000)),"created":\(1_700_000_000 + r.int(9_999_999))}}
    """
}

func secretBody(_ r: inout Rng) -> String {
    let body = r.str(alnum, 30)
    let crc = body.utf8.reduce(UInt32(0xFFFF_FFFF)) { c, b in
        var c = c ^ UInt32(b)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1 }
        return c
    } ^ 0xFFFF_FFFF
    var v = crc
    var cs: [UInt8] = []
    while v > 0 { cs.append(alnum.sorted()[Int(v % 62)]); v /= 62 }
    while cs.count < 6 { cs.append(48) }
    let tok = "gh" + "p_" + body + String(decoding: cs.reversed(), as: UTF8.self)
    let secrets = [tok, "postgres://app:\(r.str(alnum, 16))@db:5432/x", "\\\"password\\\": \\\"\(r.str(alnum, 12))#1\\\""]
    var b = cleanBody(&r)
    let insert = "\"env\":\"\(secrets[r.int(secrets.count)])\","
    b.insert(contentsOf: insert, at: b.index(after: b.startIndex))
    return b
}

func buffer(mib: Int, secretRate: Int, _ r: inout Rng) -> (all: [UInt8], bodies: [[UInt8]]) {
    var all: [UInt8] = []
    var bodies: [[UInt8]] = []
    all.reserveCapacity(mib << 20)
    var i = 0
    while all.count < mib << 20 {
        let b = Array(((secretRate > 0 && i % secretRate == 0) ? secretBody(&r) : cleanBody(&r)).utf8)
        bodies.append(b)
        all += b
        all.append(10)
        i += 1
    }
    return (all, bodies)
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

let args = Array(CommandLine.arguments.dropFirst())
func opt(_ name: String) -> [String] {
    var out: [String] = []
    var i = 0
    while i < args.count { if args[i] == name, i + 1 < args.count { out.append(args[i + 1]); i += 1 }; i += 1 }
    return out
}
let mib = args.first.flatMap { Int($0) } ?? 64
let pathOpt = opt("--path").last ?? "both"
let only = Set(opt("--only"))
let rounds = max(1, opt("--rounds").last.flatMap { Int($0) } ?? 3)
let piiOpt = opt("--pii").last ?? "both"
let maxRequests = opt("--requests").last.flatMap { Int($0) } ?? 20000
let warmup = !args.contains("--no-warmup")
func wants(_ what: String) -> Bool { only.isEmpty || only.contains(what) }

var rng = Rng(s: 0x5EED)
let clean = buffer(mib: mib, secretRate: 0, &rng)
let dirty = wants("dirty") ? buffer(mib: mib, secretRate: 50, &rng) : (all: [], bodies: []) // 2% of bodies carry a secret
// 1 KiB requests for the hot-path figure.
var kib: [[UInt8]] = []
for b in clean.bodies where kib.count < maxRequests {
    var x = b
    if x.count > 1024 { x = Array(x.prefix(1024)) }
    while x.count < 1024 { x.append(32) }
    kib.append(x)
}

let key = Array("bench-key".utf8)
print("DetectionBench: \(mib) MiB buffers, \(clean.bodies.count) bodies; Hyperscan available: \(DetectionEngine.hyperscanAvailable)")
var paths: [Bool] = []
if pathOpt == "both" || pathOpt == "hyperscan" { paths.append(true) }
if pathOpt == "both" || pathOpt == "fallback" { paths.append(false) }
var runs: [(hs: Bool, pii: Bool)] = []
for useHS in paths {
    if piiOpt != "off" { runs.append((useHS, true)) }
    if piiOpt != "on" { runs.append((useHS, false)) }
}
for (useHS, pii) in runs {
    guard let engine = try? DetectionEngine(fingerprintKey: key, options: EngineOptions(useHyperscan: useHS)) else {
        print("engine init failed"); exit(2)
    }
    if useHS && !engine.usesHyperscan { print("detection/hyperscan: unavailable, skipped"); continue }
    let name = "detection/" + (engine.usesHyperscan ? "hyperscan" : "fallback") + (pii ? "" : "-credonly")
    let ctx = ScanContext(credentials: true, pii: pii, hint: .json)
    if warmup { _ = engine.scan(Array(clean.all.prefix(1 << 20)), context: ctx) }
    func best(_ bytes: Int, _ body: () -> Int) -> (rate: Double, findings: Int) {
        var rate = 0.0, n = 0
        for _ in 0..<rounds {
            let t = now()
            n = body()
            rate = max(rate, Double(bytes) / (now() - t) / 1_048_576)
        }
        return (rate, n)
    }
    if wants("clean") {
        let r = best(clean.all.count) { engine.scan(clean.all, context: ctx).count }
        print("\(name) clean-json: \(String(format: "%.1f", r.rate)) MB/s (\(mib) MiB, \(r.findings) findings)")
    }
    if wants("dirty") {
        let r = best(dirty.all.count) { engine.scan(dirty.all, context: ctx).count }
        print("\(name) 2%-secrets: \(String(format: "%.1f", r.rate)) MB/s (\(mib) MiB, \(r.findings) findings)")
        let bodies = Array(dirty.bodies.prefix(20000))
        let bytes = bodies.reduce(0) { $0 + $1.count }
        let rb = best(bytes) { bodies.reduce(0) { $0 + engine.scan($1, context: ctx).count } }
        print("\(name) 2%-secrets-per-body: \(String(format: "%.1f", rb.rate)) MB/s (\(bodies.count) bodies scanned one by one, \(rb.findings) findings)")
    }
    if wants("kib") {
        let r = best(kib.count * 1024) { kib.reduce(0) { $0 + engine.scan($1, context: ctx).count } }
        let us = 1024 / (r.rate * 1_048_576) * 1e6
        print("\(name) 1KiB-request: \(String(format: "%.2f", us)) µs (\(kib.count) requests, \(r.findings) findings)")
    }
}

if args.contains("--breakdown"), let e = try? DetectionEngine(fingerprintKey: key) {
    // Where the time of one 1 KiB request goes (default path).
    let b = kib[0]
    let n = 20000
    var t = now()
    for _ in 0..<n { _ = e.scan(b, context: ScanContext(hint: .json)) }
    print("breakdown: full scan \(Int((now() - t) / Double(n) * 1e9)) ns")
    t = now()
    for _ in 0..<n { _ = e.scan(b, context: ScanContext(credentials: false, pii: true, hint: .json)) }
    print("breakdown: pii only \(Int((now() - t) / Double(n) * 1e9)) ns")
    t = now()
    for _ in 0..<n { _ = e.scan(b, context: ScanContext(credentials: true, pii: false, hint: .json)) }
    print("breakdown: credentials only \(Int((now() - t) / Double(n) * 1e9)) ns")
    let e2 = try! DetectionEngine(fingerprintKey: key, options: EngineOptions(maxDecodeDepth: 0))
    t = now()
    for _ in 0..<n { _ = e2.scan(b, context: ScanContext(hint: .json)) }
    print("breakdown: no decoders \(Int((now() - t) / Double(n) * 1e9)) ns")
}
