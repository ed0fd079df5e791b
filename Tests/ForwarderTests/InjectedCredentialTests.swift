import Detection
import Foundation
import Pipeline
import Testing
@testable import Forwarder

/// The injected credential never returns: every form an upstream might reflect it in is masked.
@Suite("Injected credential masking")
struct InjectedCredentialTests {
    static let secret = "tok-UPSTREAM/credential+42=x"
    static let header = CredentialHeader(name: "Authorization", value: "Bearer \(secret)")
    static let credential = InjectedCredential(header: header, template: "Bearer env:TOKEN", fingerprintKey: Array(repeating: 3, count: 32))

    static func b64(_ s: String, url: Bool = false, pad: Bool = true) -> String {
        var t = Data(s.utf8).base64EncodedString()
        if url { t = t.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_") }
        if !pad { while t.hasSuffix("=") { t.removeLast() } }
        return t
    }

    static func pct(_ s: String, allowed: CharacterSet) -> String { s.addingPercentEncoding(withAllowedCharacters: allowed)! }
    /// `text` with the hex digits of its percent escapes lower-cased (nothing else).
    static func lowerHex(_ text: String) -> String {
        var out = ""
        var pending = 0
        for c in text {
            if c == "%" { pending = 2; out.append(c) } else if pending > 0 { out += c.lowercased(); pending -= 1 } else { out.append(c) }
        }
        return out
    }

    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// One row per reflection: the text an upstream sends back, and what must not survive in it.
    struct Row: Sendable, CustomStringConvertible {
        var name: String
        var text: String
        var forbidden: [String]
        var description: String { name }
    }

    static let rows: [Row] = {
        let s = secret
        let full = "Bearer \(s)"
        let form = pct(s, allowed: unreserved)  // '/' '+' '=' escaped
        let fullForm = pct(full, allowed: unreserved).replacingOccurrences(of: "%20", with: "+")
        let inJSON = #"{"debug":{"auth":"\#(full)","n":1}}"#
        return [
            Row(name: "full header value", text: "echo: \(full)", forbidden: [s]),
            Row(name: "secret alone", text: "token=\(s);", forbidden: [s]),
            Row(name: "percent-encoded, upper hex", text: "https://x/cb?auth=\(form)&y=1", forbidden: [s, form]),
            Row(name: "percent-encoded, lower hex", text: "https://x/cb?auth=\(lowerHex(form))", forbidden: [lowerHex(form)]),
            Row(name: "form-encoded full value (space as +)", text: "a=1&auth=\(fullForm)", forbidden: [fullForm]),
            Row(name: "percent-encoded, / kept (Python quote)", text: "/r/\(pct(s, allowed: unreserved.union(CharacterSet(charactersIn: "/"))))",
                forbidden: [pct(s, allowed: unreserved.union(CharacterSet(charactersIn: "/")))]),
            Row(name: "base64 of the secret", text: "x-b64: \(b64(s))", forbidden: [b64(s), b64(s, pad: false)]),
            Row(name: "base64 of the full value", text: "\(b64(full))", forbidden: [b64(full, pad: false)]),
            Row(name: "base64url unpadded", text: "\(b64(s, url: true, pad: false)).sig", forbidden: [b64(s, url: true, pad: false)]),
            Row(name: "base64 of a JSON document holding the value (unaligned)", text: "{\"blob\":\"\(b64(inJSON))\"}",
                forbidden: []),  // checked by decoding below
            Row(name: "JSON-escaped slashes", text: #"{"t":"\#(s.replacingOccurrences(of: "/", with: "\\/"))"}"#,
                forbidden: [s.replacingOccurrences(of: "/", with: "\\/")]),
            Row(name: "hex dump", text: "dump=\(Hex.encode(Array(s.utf8)))", forbidden: [Hex.encode(Array(s.utf8))]),
            Row(name: "twice, adjacent", text: "\(s)\(s)", forbidden: [s]),
        ]
    }()

    @Test("every reflected form is masked", arguments: rows)
    func masksEveryForm(row: Row) throws {
        let (masked, ranges) = Self.credential.mask(Array(row.text.utf8))
        let out = String(decoding: masked, as: UTF8.self)
        #expect(!ranges.isEmpty, "nothing masked in \(row.name)")
        #expect(out.contains(InjectedCredential.maskText))
        for f in row.forbidden { #expect(!out.contains(f), "\(row.name): a form survived") }
        #expect(!out.contains(Self.secret))
        // Whatever base64 remains must not decode to anything holding the secret.
        for token in out.split(whereSeparator: { !($0.isLetter || $0.isNumber || "+/=-_".contains($0)) }) where token.count >= 8 {
            for candidate in [String(token), String(token).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")] {
                var padded = candidate
                while padded.count % 4 != 0 { padded += "=" }
                if let data = Data(base64Encoded: padded) {
                    #expect(!String(decoding: data, as: UTF8.self).contains("UPSTREAM/credential"), "\(row.name): decodable remnant")
                }
            }
        }
    }

    @Test("text without the credential is unchanged, byte for byte")
    func leavesOtherTextAlone() {
        for text in ["", "{\"ok\":true}", "Bearer someone-else", "tok-UPSTREAM", String(repeating: "a", count: 10_000)] {
            let (masked, ranges) = Self.credential.mask(Array(text.utf8))
            #expect(ranges.isEmpty && masked == Array(text.utf8))
        }
    }

    @Test("findings carry rule, location and a fingerprint, never the value")
    func findings() {
        let (_, ranges) = Self.credential.mask(Array("a \(Self.secret) b".utf8))
        let found = Self.credential.findings(ranges, location: "response-header:x-debug-auth")
        #expect(found.count == 1)
        #expect(found[0].rule == "injected-credential" && found[0].location == "response-header:x-debug-auth")
        #expect(found[0].start == 2 && found[0].end == 2 + Self.secret.utf8.count)
        #expect(found[0].fingerprint.count == 12 && !Self.secret.contains(found[0].fingerprint))
        #expect(!"\(Self.credential)".contains(Self.secret))
    }

    @Test("a 4 MiB body with the credential at its end is masked; the time is reported")
    func largeBody() {
        var body = Array(repeating: UInt8(ascii: "a"), count: 4 << 20)
        body.append(contentsOf: Array("Bearer \(Self.secret)".utf8))
        let clock = ContinuousClock()
        let started = clock.now
        let (masked, ranges) = Self.credential.mask(body)
        let took = clock.now - started
        print("[measure] injected-credential masking, \(Self.credential.forms.count) forms, 4 MiB body: \(took)")
        #expect(ranges == [(4 << 20)..<(body.count)])
        #expect(masked.count == (4 << 20) + InjectedCredential.maskText.utf8.count)
    }

    struct SecretPartRow: Sendable, CustomStringConvertible {
        var template: String
        var resolved: String
        var secret: String?
        var description: String { template }
    }

    @Test("the secret part is what the reference resolved to", arguments: [
        SecretPartRow(template: "Bearer env:T", resolved: "Bearer abc", secret: "abc"),
        SecretPartRow(template: "env:T", resolved: "abc def", secret: "abc def"),
        SecretPartRow(template: "Token file:/run/t suffix", resolved: "Token xyz suffix", secret: "xyz"),
        SecretPartRow(template: "Bearer env:T", resolved: "Basic abc", secret: nil),
    ])
    func secretPart(row: SecretPartRow) {
        let part = InjectedCredential.secretPart(resolved: row.resolved, template: row.template)
        #expect(part.map { String(decoding: $0, as: UTF8.self) } == row.secret)
    }
}
