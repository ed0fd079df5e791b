import Foundation
import Testing
@testable import Detection
import Codings

@Suite struct EngineTests {
    static let engine = try! DetectionEngine(fingerprintKey: Array("engine-key".utf8))
    static let fallback = try! DetectionEngine(fingerprintKey: Array("engine-key".utf8), options: EngineOptions(useHyperscan: false))

    func tok() -> String { var f = Fakes(seed: 3); return f.github() }

    @Test func maskKeepsJSONValidAndRemovesSecret() throws {
        let t = tok()
        let inner = "{\"cmd\": \"git push https://x:\(t)@github.com/a/b\", \"note\": \"\\u0041KIA" + "QYLPMN5HFIQR7XYZ\"}"
        let doc = "{\"name\": \"run\", \"arguments\": \(CorpusGenerator.jsonString(inner)), \"b64\": \"\(String(decoding: Base64.encode(Array("token=\(t)".utf8)), as: UTF8.self))\"}"
        let (masked, findings) = try Self.engine.scanAndMask(Array(doc.utf8), context: ScanContext(hint: .json))
        #expect(findings.count >= 3)
        #expect(try JSONSerialization.jsonObject(with: Data(masked)) is [String: Any])
        let out = String(decoding: masked, as: UTF8.self)
        #expect(!out.contains(t))
        #expect(out.contains("[MASKED:github-pat-classic:"))
        // The same secret has the same fingerprint whatever the encoding.
        let fps = Set(findings.filter { $0.rule == "github-pat-classic" }.map(\.fingerprint))
        #expect(fps.count == 1)
        #expect(fps.first == Self.engine.fingerprint(of: Array(t.utf8)))
        #expect(findings.contains { $0.decodedVia == ["base64"] })
        #expect(findings.contains { $0.decodedVia.first == "json-escape" && $0.rule == "aws-access-key-id" })
        // Masking is idempotent: a masked body is clean.
        #expect(Self.engine.scan(masked, context: ScanContext(hint: .json)).isEmpty)
    }

    @Test func findingsCarryNoSecret() throws {
        let t = tok()
        let f = Self.engine.scan(Array("x \(t) y".utf8))
        let encoded = String(decoding: try JSONEncoder().encode(f), as: UTF8.self)
        #expect(!encoded.contains(t))
        #expect(!encoded.contains(String(t.dropFirst(4).prefix(12))))
        #expect(f.first?.fingerprint.count == 12)
    }

    @Test func percentEncodedSpanIsPrecise() {
        let t = tok()
        let q = "a=1&token=" + CorpusGenerator.percent(t + " ") + "&b=2"
        let f = Self.engine.scan(Array(q.utf8), context: ScanContext(hint: .query))
        let hit = f.first { $0.rule == "github-pat-classic" }
        #expect(hit != nil)
        if let hit { #expect(String(decoding: Array(q.utf8)[hit.start..<hit.end], as: UTF8.self) == t) }
    }

    @Test func gzipBodies() throws {
        let t = tok()
        let body = "{\"k\": \"\(t)\"}"
        let gz = try gzip(Array(body.utf8))
        let f = Self.engine.scan(gz, context: ScanContext(hint: .json, contentCodings: [.gzip]))
        #expect(f.count == 1 && f[0].decodedVia == ["gzip"] && f[0].start == 0 && f[0].end == gz.count)
        let (masked, found) = try Self.engine.scanAndMask(gz, context: ScanContext(hint: .json, contentCodings: [.gzip]))
        #expect(found.count == 1)
        #expect(String(decoding: masked, as: UTF8.self).hasPrefix("{\"k\": \"[MASKED:github-pat-classic:"))
        // gzip inside base64 inside JSON
        let doc = "{\"blob\": \"\(String(decoding: Base64.encode(gz), as: UTF8.self))\"}"
        #expect(Self.engine.scan(Array(doc.utf8)).first?.decodedVia == ["base64", "gzip"])
    }

    @Test func decompressionBombIsAnError() throws {
        let bomb = try gzip([UInt8](repeating: 0x41, count: 40 << 20))
        let small = try DetectionEngine(fingerprintKey: [1], options: EngineOptions(maxDecompressedBytes: 1 << 20))
        #expect(throws: DetectionError.self) { try small.scanThrowing(bomb, context: ScanContext(contentCodings: [.gzip])) }
        #expect(small.scan(bomb, context: ScanContext(contentCodings: [.gzip])).first?.rule == "decode-limit-exceeded")
        #expect(small.scan([1, 2, 3], context: ScanContext(contentCodings: [.gzip])).first?.rule == "undecodable-body")
    }

    @Test func headerHint() {
        let f = Self.engine.scan(Array("Bearer abcDEF123456ghiJKL789mnoPQR".utf8), context: ScanContext(hint: .header(name: "Authorization")))
        #expect(f.first?.rule == "authorization-bearer" && f.first?.start == 7)
        let g = Self.engine.scan(Array("Zk29aLq8Wm3nVx7Rt5Yp1Bc4".utf8), context: ScanContext(hint: .header(name: "X-Api-Key")))
        #expect(g.first?.rule == "generic-api-key" && g.first?.start == 0)
    }

    /// One-byte keywords (here `q`/`Q`, `#` and the built-in `@`) are found by the structural pass on
    /// the Hyperscan path and by the bigram pass on the fallback; both must agree, in both contexts.
    @Test func oneByteKeywordsAgree() throws {
        let specs = [RuleSpec(id: "q-num", pattern: "q[0-9]{10}", keywords: ["q"], severity: .high),
                     RuleSpec(id: "hash-code", pattern: "#[A-Z]{3}[0-9]{5}", keywords: ["#"], severity: .high)]
        let hs = try DetectionEngine(fingerprintKey: [3], customRules: specs)
        let fb = try DetectionEngine(fingerprintKey: [3], customRules: specs, options: EngineOptions(useHyperscan: false))
        var text = Array("{\"a\": \"q7351908264\", \"b\": \"mail bob.smith@corp-mail.net\", \"c\": \"#KQZ48213\"}".utf8)
        text += Array(repeating: UInt8(ascii: "x"), count: 100) + Array(" Q1234509876 tail #ABC12345".utf8)
        for ctx in [ScanContext(), ScanContext(pii: false)] {
            let a = hs.scan(text, context: ctx), b = fb.scan(text, context: ctx)
            #expect(a == b)
            #expect(a.filter { $0.rule == "q-num" }.count == 1) // `Q1234509876` does not match the lower-case pattern
            #expect(a.filter { $0.rule == "hash-code" }.count == 2)
            #expect(a.contains { $0.rule == "email" } == ctx.pii)
        }
    }

    @Test func customRules() throws {
        let spec = RuleSpec(id: "acme-key", pattern: "acme_([a-z0-9]{16})", keywords: ["acme_"], minEntropy: 2.5, severity: .critical)
        let e = try DetectionEngine(fingerprintKey: [1], customRules: [spec])
        let text = Array("k=acme_k3j9x8w7v6u5t4s2;".utf8)
        let f = e.scan(text)
        #expect(f.count == 1 && f[0].rule == "acme-key" && f[0].start == 7 && f[0].end == 23)
        #expect(e.scan(Array("k=acme_aaaaaaaaaaaaaaaa;".utf8)).isEmpty) // placeholder-like: filtered
        let noKw = try DetectionEngine(fingerprintKey: [1], customRules: [RuleSpec(id: "zz", pattern: "ZZ-[0-9]{6}-[A-Z]{3}", ruleClass: .pii, severity: .low)])
        #expect(noKw.scan(Array("id ZZ-123456-ABC".utf8)).first?.rule == "zz")
        do {
            _ = try DetectionEngine(fingerprintKey: [1], customRules: [RuleSpec(id: "broken", pattern: "([a-z")])
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("broken"))
        }
        #expect(throws: DetectionError.self) { try DetectionEngine(fingerprintKey: [1], customRules: [RuleSpec(id: "jwt", pattern: "x+")]) }
        #expect(throws: DetectionError.self) { try DetectionEngine(fingerprintKey: [1], customRules: [RuleSpec(id: "e", pattern: "a*")]) }
        let json = Array("{\"rules\": [{\"id\": \"r1\", \"pattern\": \"r1_[0-9]{8}\", \"class\": \"pii\", \"min_entropy\": 1.5}]}".utf8)
        let parsed = try ScanReport.parseRulesJSON(json)
        #expect(parsed.first?.ruleClass == .pii && parsed.first?.minEntropy == 1.5)
    }

    /// Scans reuse buffers and Hyperscan scratch from earlier scans (`ScratchPool`), per decoding
    /// depth: an engine that has scanned other inputs, nested deeper or larger ones (a JSON string
    /// over the pooled limits), finds exactly what a fresh engine finds, on both first passes.
    @Test(arguments: [true, false]) func reusedScratchFindsWhatAFreshEngineFinds(_ useHyperscan: Bool) throws {
        let t = tok()
        // The AWS key is `\u`-escaped inside a JSON string inside a JSON string: found at depth 2 only.
        let inner = "{\"cmd\": \"git push https://x:\(t)@github.com/a/b\", \"note\": \"\\u0041KIA" + "QYLPMN5HFIQR7XYZ\", "
            + "\"env\": \(CorpusGenerator.jsonString("{\"DB_PASSWORD\": \"Zq8#xW2vLm9k\"}"))}"
        // More JSON strings than a pooled scratch keeps room for (`ScanScratch.maxStrings`).
        let large = "[" + String(repeating: "\"a\\\"b\", ", count: ScanScratch.maxStrings + 100) + "\"password: \\\"Rk7pQ2mX9vLs\\\"\"]"
        let docs: [String] = [
            "{\"name\": \"run\", \"arguments\": \(CorpusGenerator.jsonString(inner))}",
            "grant_type=password&password=\(t.prefix(8))%23%21Qz&note=token%3D\(t)",
            "{\"b64\": \"\(String(decoding: Base64.encode(Array("token=\(t)".utf8)), as: UTF8.self))\", \"mail\": \"ann.lee@corp-mail.io\"}",
            large,
            "{\"plain\": \"nothing to see\"}",
            CorpusGenerator.jsonString(CorpusGenerator.jsonString(inner)),
        ]
        let options = EngineOptions(useHyperscan: useHyperscan)
        let shared = try DetectionEngine(fingerprintKey: Array("engine-key".utf8), options: options)
        let contexts = [ScanContext(hint: .json), ScanContext(credentials: true, pii: false, hint: .form)]
        // Each expected result from the first scan of an engine of its own (a new scratch).
        var want: [[[Finding]]] = []
        for doc in docs {
            want.append(try contexts.map { ctx in
                try DetectionEngine(fingerprintKey: Array("engine-key".utf8), options: options).scan(Array(doc.utf8), context: ctx)
            })
        }
        for round in 0..<3 {
            for i in (round == 1 ? Array(docs.indices.reversed()) : Array(docs.indices)) {
                for (c, ctx) in contexts.enumerated() {
                    #expect(shared.scan(Array(docs[i].utf8), context: ctx) == want[i][c], "round \(round), doc \(i), context \(c)")
                }
            }
        }
        // The documents above hold findings at every depth (else this test proves little).
        let all = docs.flatMap { shared.scan(Array($0.utf8), context: ScanContext(hint: .json)) }
        #expect(Set(all.map { $0.decodedVia.count }).isSuperset(of: [0, 1, 2]))
    }

    @Test func concurrentScansAgree() async {
        let t = tok()
        let doc = Array("{\"a\": \"\(t)\", \"mail\": \"ann.lee@corp-mail.io\"}".utf8)
        let expected = Self.engine.scan(doc)
        await withTaskGroup(of: Bool.self) { g in
            for _ in 0..<16 { g.addTask { (0..<50).allSatisfy { _ in Self.engine.scan(doc) == expected } } }
            for await ok in g { #expect(ok) }
        }
    }

    @Test func hostileInputsDoNotCrash() {
        var f = Fakes(seed: 11)
        let pieces = ["\\", "\\u", "\\ud800", "%", "%4", "=", "-----BEGIN ", "://", "@", "eyJ", "Bearer ", "password=", "\"", "+1", "(", "DE89"]
        for _ in 0..<300 {
            var s: [UInt8] = []
            for _ in 0..<f.int(40) { s += Array(pieces[f.int(pieces.count)].utf8); s += Array(f.s(Fakes.b64, f.int(30)).utf8) }
            let a = Self.engine.scan(s), b = Self.fallback.scan(s)
            #expect(a == b)
            _ = Self.engine.mask(s, findings: a)
        }
        #expect(Self.engine.scan([]).isEmpty)
        #expect(Self.engine.mask([1, 2], findings: [Finding(rule: "x", ruleClass: .pii, severity: .low, start: 5, end: 9, confidence: 1, fingerprint: "0", decodedVia: [])]) == [1, 2])
    }

    func gzip(_ data: [UInt8]) throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("det-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("x")
        try Data(data).write(to: file)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/gzip")
        p.arguments = ["-kn", file.path]
        try p.run()
        p.waitUntilExit()
        return Array(try Data(contentsOf: dir.appendingPathComponent("x.gz")))
    }
}

@Suite struct ReportTests {
    @Test func formats() throws {
        let e = try DetectionEngine(fingerprintKey: [1])
        var f = Fakes(seed: 5)
        let t = f.github()
        let text = Array("line one\nkey \(t)\n".utf8)
        let located = ScanReport.locate(text, path: "a/b.txt", findings: e.scan(text))
        #expect(located.count == 1 && located[0].line == 2 && located[0].column == 5)
        let jsonl = ScanReport.render(located, format: .jsonl)
        let obj = try JSONSerialization.jsonObject(with: Data(jsonl.utf8)) as? [String: Any]
        #expect(obj?["path"] as? String == "a/b.txt" && obj?["start"] as? Int == 13 && obj?["line"] as? Int == 2)
        #expect(obj?["rule"] as? String == "github-pat-classic" && obj?["class"] as? String == "credential")
        for fmt in ReportFormat.allCases { #expect(!ScanReport.render(located, format: fmt, rules: e.ruleInfos).contains(t)) }
        let sarif = try JSONSerialization.jsonObject(with: Data(ScanReport.render(located, format: .sarif, rules: e.ruleInfos).utf8)) as? [String: Any]
        #expect(sarif?["version"] as? String == "2.1.0")
        let runs = sarif?["runs"] as? [[String: Any]]
        #expect((runs?.first?["results"] as? [Any])?.count == 1)
        #expect(ScanReport.isBinary([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1]))
        #expect(!ScanReport.isBinary(text))
    }

    @Test func walking() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("walk-\(UUID().uuidString)")
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("sub/.git"), withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        try Data("a".utf8).write(to: dir.appendingPathComponent("a.txt"))
        try Data("b".utf8).write(to: dir.appendingPathComponent("sub/b.txt"))
        try Data("c".utf8).write(to: dir.appendingPathComponent("sub/.git/c"))
        let files = try ScanReport.collectFiles([dir.path])
        #expect(files.map { URL(fileURLWithPath: $0).lastPathComponent } == ["a.txt", "b.txt"])
        #expect(throws: DetectionError.self) { try ScanReport.collectFiles([dir.path + "/missing"]) }
    }
}
