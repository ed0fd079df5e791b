// DetectionBench: single-threaded throughput of the Detection engine on both first-pass paths.
// Build in release: swift build -c release --product DetectionBench && .build/release/DetectionBench [MiB] [options]
// Options: --path hyperscan|fallback|both (default both), --only clean|dirty|kib|realistic|adversarial (repeatable),
//          --rounds N (best of N timed runs per figure, default 3), --breakdown,
//          --pii on|off|both (default both: `detection/<path>` lines scan with credentials + PII,
//          `detection/<path>-credonly` lines with PII disabled, the common production setting),
//          --requests N (number of 1 KiB requests, default 20000), --no-warmup (for callgrind:
//          `valgrind --tool=callgrind --toggle-collect='$s9Detection0A6EngineC4scan_7context*'`).
//          --cpu (thread CPU time instead of wall time, for a machine shared with builds),
//          --dump DIR (write every finding of the realistic buffer, one line each, to DIR/<label>.txt,
//          so two builds can be diffed: a speed-up must not change a single finding),
//          --write-realistic FILE (write the realistic buffer itself, e.g. to count its escapes and runs).
// Prints one labelled line per figure, e.g. `detection/hyperscan clean-json: 812.3 MB/s` (MB = 2^20 bytes).
// `realistic` is a seeded mix of agent and CI payloads (OpenAI/Anthropic/MCP tool calls with JSON
// escaped inside JSON strings, CI job definitions in YAML and JSON, env dumps, HTTP access and debug
// logs, base64 and URL-encoded carriers), 2 % of payloads carrying a fake secret; its line prints the
// number of findings so that a speed-up which loses findings shows, and the share of the matchers'
// work budget it spends (bytes the matchers read per input byte: over all payloads, and the most for one).
// `adversarial` scans 1 MiB bodies built to be slow (docs/detection.md "Inputs built to be slow")
// and prints MB/s and the outcome of each: the number of findings, or that the budget refused it.
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

// MARK: realistic agent / CI payloads

let lower = Array("abcdefghijklmnopqrstuvwxyz".utf8)
let upperDigits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
let b64chars = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
let b64url = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
let digits = Array("0123456789".utf8)

/// JSON string body escaping (no surrounding quotes), as `sluice scan` writes JSON strings.
func esc(_ s: String) -> String { String(ScanReport.q(s).dropFirst().dropLast()) }

func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

func pct(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
}

/// Fake secrets of the formats the rules detect (checksums valid where a rule validates them),
/// assembled from pieces so repository secret scanners stay quiet.
func fakeSecret(_ r: inout Rng) -> String {
    let P = "_", D = "-"
    switch r.int(14) {
    case 0:
        let body = r.str(alnum, 30)
        let cs = String(decoding: Checksums.base62(Checksums.crc32(Array(body.utf8))), as: UTF8.self)
        return "gh" + "p" + P + body + cs
    case 1: return "AK" + "IA" + r.str(upperDigits, 16)
    case 2: return "aws_secret_access_key=" + r.str(b64chars, 40)
    case 3: return "sk" + P + "live" + P + r.str(alnum, 24)
    case 4: return "xo" + "xb" + D + r.str(digits, 12) + D + r.str(digits, 13) + D + r.str(alnum, 24)
    case 5: return "sk" + D + "proj" + D + r.str(b64url, 58) + "T3Blbk" + "FJ" + r.str(b64url, 58)
    case 6: return "sk" + D + "ant" + D + "api03" + D + r.str(b64url, 93) + "AA"
    case 7: return "postgres://app_user:" + r.str(alnum, 16) + "@db.internal.corp:5432/orders"
    case 8: return "Authorization: Bearer " + r.str(alnum, 40)
    case 9: return "DB_PASSWORD=" + r.str(alnum, 10) + "#" + r.str(digits, 2)
    case 10: return "AI" + "za" + r.str(b64url, 35)
    case 11: return "npm" + P + r.str(alnum, 36)
    case 12:
        let h = b64("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"), p = b64("{\"sub\":\"\(r.str(digits, 8))\",\"iat\":\(1_700_000_000 + r.int(10_000_000))}")
        func url(_ s: String) -> String { s.replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_") }
        return url(h) + "." + url(p) + "." + r.str(b64url, 43)
    default: return "gl" + "pat" + D + r.str(alnum, 20)
    }
}

func uuid(_ r: inout Rng) -> String { "\(r.str(hex, 8))-\(r.str(hex, 4))-4\(r.str(hex, 3))-a\(r.str(hex, 3))-\(r.str(hex, 12))" }
func sentence(_ r: inout Rng, _ n: Int) -> String { (0..<n).map { _ in words[r.int(words.count)] }.joined(separator: " ") }

/// One realistic payload (a JSON line, or a multi-line YAML / env / log block). `secret`, when
/// given, is embedded in the family's natural carrier (escaped nested JSON, base64, form body...).
func realisticPayload(_ r: inout Rng, secret: String?) -> String {
    let s = secret ?? ""
    switch r.int(10) {
    case 0: // OpenAI chat completion with a tool call whose arguments hold JSON with a JSON string inside (2 levels).
        let inner = "{\"LOG_LEVEL\":\"debug\",\"REGION\":\"eu-west-1\",\"EXTRA\":\"\(esc(secret ?? "replicas=\(r.int(9))"))\"}"
        let args = "{\"command\":\"kubectl rollout restart deploy/api -n prod\",\"env\":\"\(esc(inner))\",\"timeout\":\(r.int(600))}"
        return "{\"id\":\"chatcmpl-\(r.str(alnum, 29))\",\"object\":\"chat.completion\",\"created\":\(1_700_000_000 + r.int(9_999_999)),"
            + "\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
            + "\"tool_calls\":[{\"id\":\"call_\(r.str(alnum, 24))\",\"type\":\"function\",\"function\":{\"name\":\"run_shell\","
            + "\"arguments\":\"\(esc(args))\"}}]},\"finish_reason\":\"tool_calls\"}],"
            + "\"usage\":{\"prompt_tokens\":\(r.int(9000)),\"completion_tokens\":\(r.int(900)),\"total_tokens\":\(r.int(9900))},"
            + "\"system_fingerprint\":\"fp_\(r.str(hex, 10))\"}"
    case 1: // Anthropic messages request with a tool_result carrying command output (escaped, with a nested JSON document).
        let output = "$ cat deploy.json\n{\"service\": \"api\", \"replicas\": \(r.int(9)), \"note\": \"\(esc(s))\"}\n"
            + (0..<(3 + r.int(6))).map { _ in "[\(r.int(60))s] \(sentence(&r, 6 + r.int(10)))" }.joined(separator: "\n")
        return "{\"model\":\"claude-3-5-sonnet-20241022\",\"max_tokens\":4096,\"system\":\"You are a release engineer.\","
            + "\"messages\":[{\"role\":\"user\",\"content\":\"\(esc(sentence(&r, 12 + r.int(20))))\"},"
            + "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_\(r.str(alnum, 24))\",\"name\":\"bash\",\"input\":{\"command\":\"cat deploy.json && tail -n 20 build.log\"}}]},"
            + "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_\(r.str(alnum, 24))\",\"content\":\"\(esc(output))\"}]}],"
            + "\"metadata\":{\"user_id\":\"\(uuid(&r))\"}}"
    case 2: // MCP JSON-RPC tools/call result: text content that is itself JSON with escaped JSON inside.
        let doc = "{\"files\":[" + (0..<(2 + r.int(5))).map { _ in "{\"path\":\"src/\(words[r.int(words.count)]).ts\",\"sha\":\"\(r.str(hex, 40))\",\"size\":\(r.int(90000))}" }.joined(separator: ",")
            + "],\"config\":\"\(esc("{\"token\":\"\(esc(s.isEmpty ? "${TOKEN}" : s))\",\"retries\":\(r.int(5))}"))\"}"
        return "{\"jsonrpc\":\"2.0\",\"id\":\(r.int(100000)),\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"\(esc(doc))\"}],\"isError\":false}}"
    case 3: // CI job definition, YAML.
        return "name: build-and-deploy\non:\n  push:\n    branches: [main]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    timeout-minutes: \(10 + r.int(50))\n"
            + "    steps:\n      - uses: actions/checkout@v4\n      - uses: actions/setup-node@v4\n        with:\n          node-version: 20\n"
            + "      - run: npm ci && npm test -- --shard=\(1 + r.int(4))/4\n        env:\n          NODE_ENV: test\n          API_TOKEN: ${{ secrets.API_TOKEN }}\n"
            + (s.isEmpty ? "" : "          EXTRA: \(s)\n")
            + "      - run: echo \"sha=\(r.str(hex, 40))\" >> $GITHUB_OUTPUT\n"
    case 4: // CI job definition, JSON (Buildkite/GitLab style).
        return "{\"pipeline\":\"api\",\"build\":\(r.int(100000)),\"commit\":\"\(r.str(hex, 40))\",\"steps\":[{\"label\":\":hammer: build\","
            + "\"command\":\"make build && make test\",\"env\":{\"GOFLAGS\":\"-mod=vendor\",\"CACHE_KEY\":\"\(r.str(hex, 64))\"\(s.isEmpty ? "" : ",\"DEPLOY\":\"\(esc(s))\"")},"
            + "\"agents\":{\"queue\":\"linux-amd64\"},\"timeout_in_minutes\":\(r.int(120))},{\"wait\":null},{\"label\":\"deploy\",\"command\":\"./deploy.sh \(words[r.int(words.count)])\"}]}"
    case 5: // Env dump.
        var lines = ["HOME=/home/runner", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=\(r.str(hex, 12))",
                     "GITHUB_SHA=\(r.str(hex, 40))", "GITHUB_RUN_ID=\(r.int(1_000_000_000))", "RUNNER_OS=Linux", "CI=true", "LANG=C.UTF-8",
                     "GITHUB_REF=refs/heads/main", "JAVA_HOME=/usr/lib/jvm/temurin-17-jdk-amd64", "NODE_OPTIONS=--max-old-space-size=4096",
                     "REQUEST_ID=\(uuid(&r))", "GITHUB_WORKSPACE=/home/runner/work/api/api"]
        if !s.isEmpty { lines.insert(s.contains("=") ? s : "DEPLOY_KEY=\(s)", at: 3 + r.int(5)) }
        return lines.joined(separator: "\n")
    case 6: // HTTP access log lines and a debug dump.
        let ip = "10.\(r.int(255)).\(r.int(255)).\(r.int(255))"
        return "\(ip) - - [12/Mar/2025:10:\(10 + r.int(49)):\(10 + r.int(49)) +0000] \"GET /v1/runs/\(r.int(99999))?page=\(r.int(9))&q=\(pct(sentence(&r, 3))) HTTP/1.1\" 200 \(r.int(90000)) \"-\" \"python-requests/2.31.0\" rt=0.0\(r.int(99))\n"
            + "> POST /v1/messages HTTP/1.1\n> Host: api.internal.dev\n> Content-Type: application/json\n> X-Request-Id: \(uuid(&r))\n"
            + (s.isEmpty ? "> Authorization: Bearer ${TOKEN}\n" : "> X-Debug: \(s)\n")
            + "< HTTP/1.1 200 OK\n< Date: Wed, 12 Mar 2025 10:\(10 + r.int(49)):00 GMT\n< ETag: \"\(r.str(hex, 32))\"\n< Content-Length: \(r.int(9000))"
    case 7: // base64 carrier: a JSON / env blob base64-encoded inside a JSON field.
        let blob = r.int(2) == 0
            ? "{\"service\":\"api\",\"region\":\"eu-west-1\",\"replicas\":\(r.int(9)),\"notes\":\"\(esc(s.isEmpty ? sentence(&r, 8) : s))\"}"
            : "LOG_LEVEL=info\nREGION=eu-west-1\n\(s.isEmpty ? "FEATURE_FLAGS=a,b,c" : s)\nWORKERS=\(r.int(32))\n"
        return "{\"event\":\"config.updated\",\"id\":\"\(uuid(&r))\",\"payload\":\"\(b64(blob))\",\"encoding\":\"base64\",\"ts\":\(1_700_000_000_000 + r.int(1_000_000_000))}"
    case 8: // URL-encoded form body.
        return "grant_type=client_credentials&client_id=\(r.str(alnum, 20))&scope=\(pct("read:runs write:runs"))"
            + "&redirect_uri=\(pct("https://app.example.dev/callback?state=\(r.str(alnum, 12))"))&note=\(pct(s.isEmpty ? sentence(&r, 6) : s))"
    default: // Plain chat request with prose and a JSON document quoted in the prompt.
        return "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"\(esc(sentence(&r, 30 + r.int(60)) + "\n```json\n{\"status\": \"failed\", \"job\": \(r.int(9999)), \"detail\": \"\(esc(s.isEmpty ? sentence(&r, 5) : s))\"}\n```"))\"}]}"
    }
}

/// Realistic mix of `mib` MiB: one payload per line; 2 % of payloads carry a secret.
func realisticBuffer(mib: Int, _ r: inout Rng) -> (all: [UInt8], bodies: [[UInt8]], secrets: Int) {
    var all: [UInt8] = []
    var bodies: [[UInt8]] = []
    var secrets = 0
    all.reserveCapacity(mib << 20)
    var i = 0
    while all.count < mib << 20 {
        let withSecret = i % 50 == 7
        let b = Array(realisticPayload(&r, secret: withSecret ? fakeSecret(&r) : nil).utf8)
        if withSecret { secrets += 1 }
        bodies.append(b)
        all += b
        all.append(10)
        i += 1
    }
    return (all, bodies, secrets)
}

/// `--cpu`: time with this thread's CPU clock instead of the wall clock (on a shared machine,
/// other processes then cost nothing but cache misses); the lines say `MB/s cpu`.
let cpuClock = CommandLine.arguments.contains("--cpu")
func now() -> Double {
    if cpuClock {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
    return Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}
let unit = cpuClock ? "MB/s cpu" : "MB/s"

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
var realisticRng = Rng(s: 0xA6E47) // its own seed: clean and dirty stay the buffers they always were
let realistic = wants("realistic") ? realisticBuffer(mib: mib, &realisticRng) : (all: [], bodies: [], secrets: 0)
let dumpDir = opt("--dump").last
if let f = opt("--write-realistic").last { _ = FileManager.default.createFile(atPath: f, contents: Data(realistic.all)) }
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
        print("\(name) clean-json: \(String(format: "%.1f", r.rate)) \(unit) (\(mib) MiB, \(r.findings) findings)")
    }
    if wants("dirty") {
        let r = best(dirty.all.count) { engine.scan(dirty.all, context: ctx).count }
        print("\(name) 2%-secrets: \(String(format: "%.1f", r.rate)) \(unit) (\(mib) MiB, \(r.findings) findings)")
        let bodies = Array(dirty.bodies.prefix(20000))
        let bytes = bodies.reduce(0) { $0 + $1.count }
        let rb = best(bytes) { bodies.reduce(0) { $0 + engine.scan($1, context: ctx).count } }
        print("\(name) 2%-secrets-per-body: \(String(format: "%.1f", rb.rate)) \(unit) (\(bodies.count) bodies scanned one by one, \(rb.findings) findings)")
    }
    if wants("kib") {
        let r = best(kib.count * 1024) { kib.reduce(0) { $0 + engine.scan($1, context: ctx).count } }
        let us = 1024 / (r.rate * 1_048_576) * 1e6
        print("\(name) 1KiB-request: \(String(format: "%.2f", us)) µs (\(kib.count) requests, \(r.findings) findings)")
    }
    if wants("realistic") {
        let r = best(realistic.all.count) { engine.scan(realistic.all, context: ctx).count }
        print("\(name) realistic: \(String(format: "%.1f", r.rate)) \(unit) (\(mib) MiB, \(realistic.bodies.count) payloads, \(realistic.secrets) with a secret, \(r.findings) findings)")
        let bytes = realistic.bodies.reduce(0) { $0 + $1.count }
        let rb = best(bytes) { realistic.bodies.reduce(0) { $0 + engine.scan($1, context: ctx).count } }
        print("\(name) realistic-per-payload: \(String(format: "%.1f", rb.rate)) \(unit) (\(realistic.bodies.count) payloads scanned one by one, \(rb.findings) findings)")
        var spent = 0, largest = 0.0
        for b in realistic.bodies {
            let w = engine.matcherWork(b, context: ctx)
            spent += w.spent
            largest = max(largest, Double(w.spent) / Double(max(1, b.count)))
        }
        print("\(name) realistic-work: matchers read \(String(format: "%.3f", Double(spent) / Double(bytes))) bytes per input byte, at most \(String(format: "%.2f", largest)) for one payload (budget: \(DetectionEngine.matcherWorkFactor) per byte + 1 MiB)")
        if let dumpDir {
            let lines = engine.scan(realistic.all, context: ctx).map { f in
                "\(f.start) \(f.end) \(f.rule) \(f.severity) \(f.confidence) \(f.fingerprint) \(f.decodedVia.joined(separator: ">"))"
            }
            let file = dumpDir + "/" + name.replacingOccurrences(of: "/", with: "-") + ".txt"
            _ = FileManager.default.createFile(atPath: file, contents: Data((lines.joined(separator: "\n") + "\n").utf8))
        }
    }
}

if wants("adversarial"), let e = try? DetectionEngine(fingerprintKey: key) {
    // Bodies built to make scanning slow (each once quadratic); credentials + PII, JSON hint.
    func repeated(_ unit: String, _ size: Int = 1 << 20) -> [UInt8] { Array(String(repeating: unit, count: size / unit.utf8.count).utf8) }
    func jsonString(_ unit: String) -> [UInt8] { Array("{\"a\":\"".utf8) + repeated(unit, 2_300_000) + Array("\"}".utf8) }
    var r = Rng(s: 0xBAD)
    let shapes: [(String, [UInt8])] = [
        ("2.3 MB JSON string of \\n escapes", jsonString("abcdefgh\\n")),
        ("2.3 MB JSON string of \\\\", jsonString("\\\\")),
        ("2.3 MB JSON string of \\u0041", jsonString("\\u0041")),
        ("GitHub tokens only (25,000)", Array((0..<25_000).map { _ in "ghp_" + r.str(alnum, 36) }.joined(separator: " ").utf8)),
        ("kind: Secret per line", repeated("kind: Secret\n")),
        ("token= repeated", repeated("token=")),
        ("api_key: repeated", repeated("api_key: ")),
        ("password: x repeated", repeated("password: x ")),
        (":// repeated", repeated("://")),
        ("@ repeated", repeated("@")),
        ("-----BEGIN  repeated", repeated("-----BEGIN ")),
        ("curl -u repeated", repeated("curl -u ")),
        ("base64 of zeros", repeated("A")),
    ]
    for (label, body) in shapes {
        let ctx = ScanContext(credentials: true, pii: true, hint: .json)
        let t = now()
        let found = e.scan(body, context: ctx)
        let seconds = now() - t
        let outcome = found.first?.rule == "inspection-limit-exceeded" ? "refused (inspection-limit-exceeded)" : "\(found.count) findings"
        print("adversarial \(label): \(String(format: "%.1f", Double(body.count) / seconds / 1_048_576)) MB/s (\(body.count) bytes, \(outcome))")
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
    if let e2 = try? DetectionEngine(fingerprintKey: key, options: EngineOptions(maxDecodeDepth: 0)) {
        t = now()
        for _ in 0..<n { _ = e2.scan(b, context: ScanContext(hint: .json)) }
        print("breakdown: no decoders \(Int((now() - t) / Double(n) * 1e9)) ns")
    }
}
