import Detection
import Foundation
import Pipeline
import Testing
@testable import Forwarder

/// Response checks: the injected credential is masked in headers and bodies always, whatever
/// the coding; response headers are scanned like bodies; what cannot be checked is withheld.
@Suite("Response inspector")
struct ResponseInspectorTests {
    static let token = ForwarderTestEnv.token

    static func target(scanResponses: Bool, credentials: Bool = true) throws -> UpstreamTarget {
        let json = """
        {"name": "billing", "upstream": "http://127.0.0.1:9", "allow_groups": ["ci"],
         \(credentials ? #""credentials": {"header": "Authorization", "value": "Bearer env:BILLING_TOKEN"},"# : "")
         "policy": {"scan_responses": \(scanResponses)}}
        """
        let config = try JSONDecoder().decode(ConnectionConfig.self, from: Data(json.utf8))
        return try UpstreamTarget(config, index: 0, environment: ["BILLING_TOKEN": token], fingerprintKey: Array(repeating: 1, count: 32))
    }

    static let engine = Result { try ForwarderTestEnv.engine() }

    static var inspector: ResponseInspector {
        get throws { ResponseInspector(engine: try engine.get(), maxDecodedBytes: 1 << 20) }
    }

    static func pct(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"))!
    }

    @Test("reflected in headers: masked with scan_responses on and off", arguments: [true, false])
    func headers(scanResponses: Bool) throws {
        let headers = [
            HTTPField("Content-Type", "application/json"),
            HTTPField("X-Debug-Auth", "Bearer \(Self.token)"),
            HTTPField("Location", "https://example.test/cb?auth=\(Self.pct("Bearer \(Self.token)"))&next=1"),
            HTTPField("Set-Cookie", "s=\(Data(Self.token.utf8).base64EncodedString()); Path=/"),
        ]
        let r = try Self.inspector.inspect(body: Array("{\"ok\":true}".utf8), headers: headers, target: try Self.target(scanResponses: scanResponses))
        #expect(r.withheld == nil)
        for h in r.headers {
            #expect(!h.value.contains(Self.token) && !h.value.contains(Self.pct(Self.token)) && !h.value.contains(Data(Self.token.utf8).base64EncodedString()))
        }
        #expect(r.headers.first { $0.name == "Location" }?.value.hasPrefix("https://example.test/cb?auth=") == true)
        #expect(r.headers.first { $0.name == "Content-Type" }?.value == "application/json")
        let locations = Set(r.findings.filter { $0.rule == "injected-credential" }.map(\.location))
        #expect(locations == ["response-header:x-debug-auth", "response-header:location", "response-header:set-cookie"])
        #expect(r.body == Array("{\"ok\":true}".utf8), "a clean body passes byte for byte")
    }

    @Test("reflected in the body, plain, base64 and gzip: masked even with scan_responses off", arguments: [true, false])
    func body(scanResponses: Bool) throws {
        let target = try Self.target(scanResponses: scanResponses)
        let plain = Array("{\"you_sent\":\"Bearer \(Self.token)\",\"b64\":\"\(Data(Self.token.utf8).base64EncodedString())\"}".utf8)
        let r1 = try Self.inspector.inspect(body: plain, headers: [HTTPField("Content-Type", "application/json")], target: target)
        let text1 = String(decoding: r1.body, as: UTF8.self)
        #expect(!text1.contains(Self.token) && !text1.contains(Data(Self.token.utf8).base64EncodedString()))
        #expect(text1.contains(InjectedCredential.maskText) && !r1.decoded)
        #expect(r1.findings.filter { $0.rule == "injected-credential" }.count == 2)

        let gz = Gzip.stored(plain)
        let r2 = try Self.inspector.inspect(body: gz, headers: [HTTPField("Content-Encoding", "gzip")], target: target)
        #expect(r2.withheld == nil && r2.decoded)
        #expect(!String(decoding: r2.body, as: UTF8.self).contains(Self.token))
        #expect(r2.findings.contains { $0.location == "response" && $0.rule == "injected-credential" })
    }

    @Test("a body that cannot be decoded to check is withheld when a credential was injected", arguments: [
        ("x-custom", [UInt8]("anything".utf8)), ("gzip", [UInt8]("not gzip at all".utf8)), ("br", [UInt8]([0xff, 0xfe, 0x00, 0x01])),
    ])
    func undecodableWithheld(coding: String, body: [UInt8]) throws {
        let r = try Self.inspector.inspect(body: body, headers: [HTTPField("Content-Encoding", coding)], target: try Self.target(scanResponses: false))
        #expect(r.withheld != nil)
        #expect(r.body.isEmpty)
    }

    @Test("nothing to check (no credential, no scanning): passes as received")
    func nothingToCheck() throws {
        let body = Array("opaque".utf8)
        let r = try Self.inspector.inspect(
            body: body, headers: [HTTPField("Content-Encoding", "x-custom")], target: try Self.target(scanResponses: false, credentials: false))
        #expect(r.withheld == nil && r.body == body && r.findings.isEmpty)
    }

    @Test("scan_responses: a secret in a response header value is masked like in a body")
    func headerSecretsScanned() throws {
        let secret = fakeGitHubToken()
        let headers = [HTTPField("X-Leak", "token \(secret)"), HTTPField("X-Plain", "hello")]
        let on = try Self.inspector.inspect(body: [], headers: headers, target: try Self.target(scanResponses: true))
        #expect(!(on.headers.first { $0.name == "X-Leak" }?.value.contains(secret) ?? true))
        #expect(on.headers.first { $0.name == "X-Plain" }?.value == "hello")
        #expect(on.findings.contains { $0.location == "response-header:x-leak" })
        let off = try Self.inspector.inspect(body: [], headers: headers, target: try Self.target(scanResponses: false))
        #expect(off.headers.first { $0.name == "X-Leak" }?.value.contains(secret) == true, "scanning is the connection's choice")
    }
}

/// A gzip stream of stored (uncompressed) deflate blocks: valid gzip without a compressor.
enum Gzip {
    static func stored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]
        var offset = 0
        repeat {
            let n = min(65_535, data.count - offset)
            let last: UInt8 = offset + n >= data.count ? 1 : 0
            out.append(last)
            out += [UInt8(n & 0xff), UInt8(n >> 8), UInt8(~n & 0xff), UInt8((~n >> 8) & 0xff)]
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        let crc = crc32(data)
        out += [UInt8(crc & 0xff), UInt8((crc >> 8) & 0xff), UInt8((crc >> 16) & 0xff), UInt8(crc >> 24)]
        let size = UInt32(truncatingIfNeeded: data.count)
        out += [UInt8(size & 0xff), UInt8((size >> 8) & 0xff), UInt8((size >> 16) & 0xff), UInt8(size >> 24)]
        return out
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for b in data {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0xedb8_8320 & (0 &- (crc & 1))) }
        }
        return ~crc
    }
}
