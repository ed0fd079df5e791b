import Codings
import CodingsEncoders
import Testing
@testable import Detection

/// Detection decodes content codings through `Codings`: every coding, stacked, every gzip member,
/// and fails closed (a finding over the whole body) when a body cannot be decoded.
@Suite struct ContentCodingScanTests {
    static let engine = try! DetectionEngine(fingerprintKey: Array("codings-key".utf8),
                                             options: EngineOptions(maxDecompressedBytes: 1 << 20))

    static func encode(_ data: [UInt8], _ coding: ContentCoding) -> [UInt8] {
        let id: Int32 = switch coding { case .gzip: 1; case .deflate: 2; case .br: 3; case .zstd: 4 }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var len = 0
        let rc = data.withUnsafeBufferPointer { cce_encode(id, $0.baseAddress, $0.count, &out, &len) }
        defer { cce_free(out) }
        precondition(rc == 0 && out != nil, "test encoder failed")
        return Array(UnsafeBufferPointer(start: out!, count: len))
    }

    static func bomb(_ coding: ContentCoding, size: Int) -> [UInt8] {
        let id: Int32 = switch coding { case .gzip: 1; case .deflate: 2; case .br: 3; case .zstd: 4 }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var len = 0
        let rc = cce_bomb(id, size, 0x41, &out, &len)
        defer { cce_free(out) }
        precondition(rc == 0 && out != nil, "test encoder failed")
        return Array(UnsafeBufferPointer(start: out!, count: len))
    }

    static let stacks: [[ContentCoding]] = ContentCoding.allCases.map { [$0] } + [[.gzip, .gzip], [.zstd, .br], [.br, .deflate, .gzip]]

    @Test(arguments: stacks)
    func secretsInsideCodingsAreFoundAndMasked(_ codings: [ContentCoding]) throws {
        var f = Fakes(seed: 11)
        let token = f.github()
        let body = Array("{\"k\": \"\(token)\"}".utf8)
        var wire = body
        for c in codings { wire = Self.encode(wire, c) }
        let context = ScanContext(hint: .json, contentCodings: codings)
        let found = Self.engine.scan(wire, context: context)
        #expect(found.count == 1)
        #expect(found.first?.rule == "github-pat-classic")
        #expect(found.first?.decodedVia == codings.reversed().map(\.rawValue))
        #expect(found.first?.start == 0 && found.first?.end == wire.count)
        let (masked, findings) = try Self.engine.scanAndMask(wire, context: context)
        #expect(findings.count == 1)
        let out = String(decoding: masked, as: UTF8.self)
        #expect(!out.contains(token))
        #expect(out.hasPrefix("{\"k\": \"[MASKED:github-pat-classic:"))
    }

    @Test func aSecretInTheSecondGzipMemberIsFound() throws {
        var f = Fakes(seed: 12)
        let token = f.github()
        let wire = Self.encode(Array("harmless first member\n".utf8), .gzip) + Self.encode(Array("token=\(token)\n".utf8), .gzip)
        let found = Self.engine.scan(wire, context: ScanContext(contentCodings: [.gzip]))
        #expect(found.map(\.rule) == ["github-pat-classic"])
        let (masked, _) = try Self.engine.scanAndMask(wire, context: ScanContext(contentCodings: [.gzip]))
        #expect(String(decoding: masked, as: UTF8.self).hasPrefix("harmless first member\ntoken=[MASKED:"))
    }

    @Test func aSecretInASecondGzipMemberInsideBase64IsFound() {
        var f = Fakes(seed: 13)
        let token = f.github()
        let gz = Self.encode(Array("nothing here at all, just text\n".utf8), .gzip) + Self.encode(Array("token=\(token)\n".utf8), .gzip)
        let doc = "{\"blob\": \"\(String(decoding: Base64.encode(gz), as: UTF8.self))\"}"
        #expect(Self.engine.scan(Array(doc.utf8), context: ScanContext(hint: .json)).first?.decodedVia == ["base64", "gzip"])
    }

    @Test(arguments: ContentCoding.allCases)
    func bombsFailClosed(_ coding: ContentCoding) {
        let wire = Self.bomb(coding, size: 50_000_000)
        let context = ScanContext(contentCodings: [coding])
        #expect(throws: DetectionError.decodeLimitExceeded(decoder: coding.rawValue, limit: 1 << 20)) {
            try Self.engine.scanThrowing(wire, context: context)
        }
        let found = Self.engine.scan(wire, context: context)
        #expect(found.count == 1 && found[0].rule == "decode-limit-exceeded" && found[0].start == 0 && found[0].end == wire.count)
        #expect(throws: DetectionError.self) { try Self.engine.scanAndMask(wire, context: context) }
    }

    @Test(arguments: ContentCoding.allCases)
    func undecodableBodiesFailClosed(_ coding: ContentCoding) {
        let wire = Array("plain text pretending to be compressed".utf8)
        let context = ScanContext(contentCodings: [coding])
        let found = Self.engine.scan(wire, context: context)
        #expect(found.count == 1 && found[0].rule == "undecodable-body" && found[0].start == 0 && found[0].end == wire.count)
        #expect(throws: DetectionError.self) { try Self.engine.scanAndMask(wire, context: context) }
        // Trailing bytes after a complete stream fail closed too.
        let trailing = Self.encode(Array("ok".utf8), coding) + Array("tail".utf8)
        #expect(Self.engine.scan(trailing, context: context).first?.rule == "undecodable-body")
    }
}
