import BusContract
import Foundation
import GatewayHarness
import NIOHTTP1
import Testing

/// Issue 11: `sluice run` with every kind of sink at once — a file, a file with `schema: ocsf`,
/// syslog over TCP to a real `rsyslogd`, HEC and a webhook over TLS to a receiver signed by a
/// private CA (`ca_file`) — fed requests carrying canary secrets everywhere a caller can put one.
@Suite("SIEM sinks end to end", .serialized)
struct SIEMSinksTests {
    /// The event ids each sink received so far.
    struct Seen {
        var file: Set<String> = []
        var ocsf: Set<String> = []
        var syslog: Set<String> = []
        var hec: Set<String> = []
        var webhook: Set<String> = []
        var kinds: [String: Set<String>] = [:]  // request id → the kinds of its events in the file sink
    }

    static func objects(_ text: some StringProtocol) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    static func seen(dir: URL, rsyslog: RsyslogServer, receiver: HTTPSReceiver) -> Seen {
        var s = Seen()
        func text(_ name: String) -> String {
            String(decoding: FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) ?? Data(), as: UTF8.self)
        }
        for o in objects(text("audit.jsonl")) {
            guard let id = o["event_id"] as? String else { continue }  // chain_start, checkpoint
            s.file.insert(id)
            if let request = o["request_id"] as? String, let kind = o["kind"] as? String { s.kinds[request, default: []].insert(kind) }
        }
        for o in objects(text("audit-ocsf.jsonl")) {
            if let id = (o["metadata"] as? [String: Any])?["uid"] as? String { s.ocsf.insert(id) }
        }
        for fields in rsyslog.parsed(.tcp) where fields.count == 8 {
            if let id = objects(fields[7]).first?["event_id"] as? String { s.syslog.insert(id) }
        }
        for r in receiver.requests() {
            let body = String(decoding: r.body, as: UTF8.self)
            if r.path == "/services/collector/event" {
                for o in objects(body) { if let id = (o["event"] as? [String: Any])?["event_id"] as? String { s.hec.insert(id) } }
            } else if r.path == "/in", let array = try? JSONSerialization.jsonObject(with: r.body) as? [[String: Any]] {
                for o in array { if let id = o["event_id"] as? String { s.webhook.insert(id) } }
            }
        }
        return s
    }

    @Test("every event in every sink; no canary in any sink's bytes or the recordings; the file sink verifies")
    func everyEventEverySinkNoCanary() async throws {
        let rsyslog = try RsyslogServer()
        defer { rsyslog.shutdown() }
        let receiver = try HTTPSReceiver.start()
        defer { receiver.shutdown() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-siem-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenFile = dir.appendingPathComponent("hec.token").path
        try Data("hec-token-e2e".utf8).write(to: URL(fileURLWithPath: tokenFile))
        let sinks = """
            [ { kind: file, path: "\(dir.path)/audit.jsonl" }, \
            { kind: file, path: "\(dir.path)/audit-ocsf.jsonl", schema: ocsf }, \
            { kind: syslog, address: "127.0.0.1:\(rsyslog.port(.tcp))", transport: tcp }, \
            { kind: hec, url: "\(receiver.url)", token: "file:\(tokenFile)", ca_file: "\(receiver.ca.caFile)" }, \
            { kind: webhook, url: "\(receiver.url)/in", ca_file: "\(receiver.ca.caFile)" } ]
            """
        let gw = try await Gateway(mode: .embedded, holdWait: "200ms", sinks: sinks)
        defer { Task { await gw.stop() } }
        try await gw.start()

        let canaries = Canaries.make()
        let json = [("Content-Type", "application/json")]
        // Allowed (masked and delivered): canaries in the body, the query, the path and a header.
        var body: [String: Any] = [:]
        for c in canaries { body[c.field] = c.secret }
        let allowed = try await gw.call(
            connection: "billing", path: "/ingest/\(canaries[4].secret)", query: "token=\(canaries[2].secret)",
            headers: json + [("X-Github-Token", canaries[3].secret)], body: gw.json(body))
        #expect(allowed.status == 200, "\(allowed.text)")
        // Blocked.
        let blocked = try await gw.call(connection: "strict", path: "/x", query: "k=\(canaries[7].secret)", headers: json, body: gw.json(["k": canaries[5].secret]))
        #expect(blocked.status == 403)
        // Refused at the edge: a canary as the API key.
        let rejected = try await gw.call(connection: "billing", path: "/x", key: canaries[6].secret)
        #expect(rejected.status == 401)
        // Held, then denied with a canary in the approver's reason.
        let held = try await gw.call(connection: "held", path: "/deploy", headers: json, body: gw.json(["key": canaries[0].secret]))
        try #require(held.status == 202, "\(held.status) \(held.text)")
        let heldID = try #require(held.json?["request_id"] as? String)
        try await gw.waitPending(heldID)
        #expect(try await gw.deny(heldID, key: Gateway.aliceKey, reason: "no; key \(canaries[1].secret)").status == 200)
        #expect(try await gw.waitFinal(heldID).status == 403)

        let ids = [allowed, blocked, rejected].compactMap { $0.header("X-Sluice-Request-Id") } + [heldID]
        try #require(ids.count == 4)
        let outcomes: [(String, String)] = [(ids[0], "delivered"), (ids[1], "blocked"), (ids[2], "request_rejected"), (heldID, "denied")]
        // Wait until the file sink has every request's last event and every other sink has every
        // event the file sink has.
        var seen = Seen()
        _ = await eventually(timeout: .seconds(60)) {
            seen = Self.seen(dir: dir, rsyslog: rsyslog, receiver: receiver)
            let complete = outcomes.allSatisfy { seen.kinds[$0.0]?.contains($0.1) == true }
                && (seen.kinds[heldID]?.contains("approval_decided") ?? false)
            return complete && [seen.ocsf, seen.syslog, seen.hec, seen.webhook].allSatisfy { seen.file.isSubset(of: $0) }
        }
        #expect(seen.file.count >= 10, "\(seen.file.count) events in the file sink")
        for (name, got) in [("ocsf file", seen.ocsf), ("syslog", seen.syslog), ("hec", seen.hec), ("webhook", seen.webhook)] {
            #expect(seen.file.subtracting(got).isEmpty, "\(name) is missing \(seen.file.subtracting(got).count) of \(seen.file.count) events")
            #expect(got.subtracting(seen.file).isEmpty, "\(name) has events the file sink has not")
        }
        for (id, kind) in outcomes { #expect(seen.kinds[id]?.contains(kind) == true, "no \(kind) for \(id)") }
        #expect(receiver.requests().allSatisfy { $0.path != "/services/collector/event" || $0.headers["authorization"] == "Splunk hec-token-e2e" })

        await gw.stop()
        // No canary in anything a sink received, nor in the data directory (the recordings).
        var received: [(String, Data)] = [
            ("file sink", FileManager.default.contents(atPath: dir.appendingPathComponent("audit.jsonl").path) ?? Data()),
            ("ocsf file sink", FileManager.default.contents(atPath: dir.appendingPathComponent("audit-ocsf.jsonl").path) ?? Data()),
            ("rsyslog", rsyslog.receivedBytes(.tcp)),
            ("data directory", gw.dataDirectoryBytes()),
        ]
        for r in receiver.requests() {
            received.append(("\(r.path) body", r.body))
            received.append(("\(r.path) headers", Data(r.headers.map { "\($0.key): \($0.value)" }.joined(separator: "\n").utf8)))
        }
        #expect(received.allSatisfy { !$0.1.isEmpty })
        for c in canaries {
            for (name, bytes) in received {
                #expect(bytes.range(of: Data(c.secret.utf8)) == nil, "\(c.rule) in clear in \(name)")
            }
        }

        // The file sink's chain verifies with the real command.
        let (status, output) = try auditVerify(gw, [dir.appendingPathComponent("audit.jsonl").path])
        #expect(status == 0, "\(output)")
        // Every event of the file sink (a redelivered event chained anew would count twice).
        let verified = output.split(separator: "\n").last { $0.hasPrefix("verified ") }.flatMap { Int($0.split(separator: " ")[1]) }
        #expect((verified ?? 0) >= seen.file.count, "\(output)")
    }
}

/// Runs `sluice audit verify --config <gw's config> paths…` with gw's environment: exit status and output.
func auditVerify(_ gw: Gateway, _ paths: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = SluiceProcess.binary
    p.arguments = ["audit", "verify", "--config", gw.configPath.path] + paths
    p.environment = gw.environment
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, output)
}

/// `sluice run` with a rotating file sink, then `sluice audit verify` on what it left.
@Suite("File sink rotation end to end", .serialized)
struct FileSinkRotationEndToEndTests {
    @Test("rotate_bytes: the rotated files then the current one verify as one chain; without a middle file verify fails naming the gap")
    func rotatedSetVerifies() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-rot-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("audit.jsonl").path
        let gw = try await Gateway(mode: .embedded, sinks: "[ { kind: file, path: \"\(path)\", rotate_bytes: 2048 } ]")
        defer { Task { await gw.stop() } }
        try await gw.start()
        var ids: [String] = []
        for i in 0..<12 {
            // One session: every event on one partition, one chain (a removed file then breaks it at once).
            let r = try await gw.call(
                connection: "billing", path: "/r\(i)", headers: [("X-Sluice-Session", "rotation-session")], body: Data("{\"n\":\(i)}".utf8))
            #expect(r.status == 200)
            if let id = r.header("X-Sluice-Request-Id") { ids.append(id) }
        }
        func rotated() -> [String] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.filter { $0.hasPrefix("audit.jsonl.") }.sorted().map { dir.path + "/" + $0 }
        }
        func delivered() -> Set<String> {
            let text = (rotated() + [path]).map { String(decoding: FileManager.default.contents(atPath: $0) ?? Data(), as: UTF8.self) }.joined()
            return Set(text.split(separator: "\n").compactMap { line -> String? in
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["kind"] as? String == "delivered" else { return nil }
                return o["request_id"] as? String
            })
        }
        _ = await eventually(timeout: .seconds(30)) { Set(ids).isSubset(of: delivered()) }
        await gw.stop()
        #expect(ids.count == 12 && Set(ids).isSubset(of: delivered()))
        let files = rotated()
        #expect(files.count >= 3, "\(files)")
        for file in files + [path] {
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? -1
            #expect(size > 0, "\(file): \(size) bytes")
        }
        let whole = try auditVerify(gw, files + [path])
        #expect(whole.status == 0, "\(whole.output)")
        #expect(whole.output.contains("verified "), "\(whole.output)")

        try FileManager.default.removeItem(atPath: files[1])
        let gap = try auditVerify(gw, [files[0]] + files[2...] + [path])
        #expect(gap.status == 1, "\(gap.output)")
        #expect(gap.output.contains("\(files.count > 2 ? files[2] : path) line "), "\(gap.output)")
        // The first line after the gap may be of the audit chain or of the outcomes chain (both
        // are in the file, interleaved as the batches came); the gap line names the last good line
        // of that chain when the first file has one.
        #expect(gap.output.contains(": missing line before (chain sluice."), "\(gap.output)")
        if gap.output.contains(": missing line before (chain sluice.audit/0)") {
            #expect(gap.output.contains("gap: the chain's last good line is \(files[0]) line"), "\(gap.output)")
        }
    }
}
