// DetectionBench: single-threaded throughput of the Detection engine on both first-pass paths.
// Build in release: swift build -c release --product DetectionBench && .build/release/DetectionBench [MiB]
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

let mib = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 64 : 64
var rng = Rng(s: 0x5EED)
let clean = buffer(mib: mib, secretRate: 0, &rng)
let dirty = buffer(mib: mib, secretRate: 50, &rng) // 2% of bodies carry a secret
// 1 KiB requests for the hot-path figure.
var kib: [[UInt8]] = []
for b in clean.bodies where kib.count < 20000 {
    var x = b
    if x.count > 1024 { x = Array(x.prefix(1024)) }
    while x.count < 1024 { x.append(32) }
    kib.append(x)
}

let key = Array("bench-key".utf8)
print("DetectionBench: \(mib) MiB buffers, \(clean.bodies.count) bodies; Hyperscan available: \(DetectionEngine.hyperscanAvailable)")
for useHS in [true, false] {
    guard let engine = try? DetectionEngine(fingerprintKey: key, options: EngineOptions(useHyperscan: useHS)) else {
        print("engine init failed"); exit(2)
    }
    if useHS && !engine.usesHyperscan { print("hyperscan path: unavailable, skipped"); continue }
    let name = engine.usesHyperscan ? "hyperscan" : "fallback "
    let ctx = ScanContext(hint: .json)
    _ = engine.scan(Array(clean.all.prefix(1 << 20)), context: ctx) // warm-up
    var t = now()
    let f1 = engine.scan(clean.all, context: ctx)
    let cleanRate = Double(clean.all.count) / (now() - t) / 1_048_576
    t = now()
    let f2 = engine.scan(dirty.all, context: ctx)
    let dirtyRate = Double(dirty.all.count) / (now() - t) / 1_048_576
    var per: [Double] = []
    for round in 0..<3 {
        t = now()
        var n = 0
        for b in kib { n += engine.scan(b, context: ctx).count }
        per.append((now() - t) / Double(kib.count) * 1e9)
        if round == 0 && n < 0 { print(n) }
    }
    var tb = now()
    var bodiesN = 0
    for b in dirty.bodies.prefix(20000) { bodiesN += engine.scan(b, context: ctx).count }
    let perBody = (now() - tb) / Double(min(20000, dirty.bodies.count)) * 1e9
    tb = now()
    print("\(name): clean JSON \(String(format: "%7.1f", cleanRate)) MB/s (\(f1.count) findings) | 2% secrets \(String(format: "%7.1f", dirtyRate)) MB/s (\(f2.count) findings) | 1 KiB request \(String(format: "%6.0f", per.min() ?? 0)) ns | per body (2% dirty) \(String(format: "%6.0f", perBody)) ns")
}

if CommandLine.arguments.contains("--breakdown"), let e = try? DetectionEngine(fingerprintKey: key) {
    // Where the time of one 1 KiB request goes (Hyperscan path).
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
