import Testing
@testable import Codings

@Suite struct ContentCodingsDecodeTests {
    static let text = Array("{\"note\": \"a body with a secret ghp_0123456789abcdefABCDEF0123456789abcd in it\"}".utf8)
    static let mib = 1 << 20

    /// 20 KB of varied printable text (a fixed pseudo-random sequence), so compressed streams are not trivially short.
    static let varied: [UInt8] = {
        var x: UInt64 = 0x9E3779B97F4A7C15
        return (0..<20_000).map { i in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return i % 97 == 0 ? 10 : UInt8(0x20 + x % 95)
        }
    }()

    // MARK: round trips

    @Test(arguments: ContentCoding.allCases)
    func roundTrip(_ coding: ContentCoding) throws {
        for data in [Self.text, Self.varied, [0]] {
            let encoded = try Encode.stream(data, coding)
            #expect(try ContentCodings.decode(encoded, codings: [coding], maxOutput: Self.mib) == data)
        }
    }

    @Test func rawDeflateIsAccepted() throws {
        let raw = try Encode.stream(Self.varied, .deflate, raw: true)
        #expect(try ContentCodings.decode(raw, codings: [.deflate], maxOutput: Self.mib) == Self.varied)
    }

    @Test(arguments: ContentCoding.allCases)
    func emptyBodyDecodesToEmpty(_ coding: ContentCoding) throws {
        #expect(try ContentCodings.decode([], codings: [coding], maxOutput: Self.mib) == [])
    }

    @Test func noCodingsReturnsTheBodyUnchanged() throws {
        #expect(try ContentCodings.decode(Self.text, codings: [], maxOutput: 1) == Self.text)
    }

    static let stacks: [[ContentCoding]] = [
        [.gzip, .gzip], [.gzip, .br], [.br, .gzip], [.zstd, .deflate], [.deflate, .zstd, .br, .gzip],
        [.br, .br, .br], Array(repeating: .zstd, count: 8),
    ]

    @Test(arguments: stacks)
    func stacked(_ codings: [ContentCoding]) throws {
        let encoded = try Encode.apply(Self.text, codings)
        #expect(try ContentCodings.decode(encoded, codings: codings, maxOutput: Self.mib) == Self.text)
        // Undoing the layers in the wrong order does not decode (no layer is skipped silently).
        if codings != codings.reversed() {
            #expect(throws: ContentCodingError.self) {
                try ContentCodings.decode(encoded, codings: codings.reversed(), maxOutput: Self.mib)
            }
        }
    }

    @Test func moreThanMaxLayersIsUnsupported() throws {
        #expect(throws: ContentCodingError.unsupported("more than 8 content-coding layers")) {
            try ContentCodings.decode(Self.text, codings: Array(repeating: .gzip, count: 9), maxOutput: Self.mib)
        }
    }

    // MARK: every gzip member, every zstd frame

    @Test(arguments: [ContentCoding.gzip, .zstd])
    func everyMemberOrFrameIsDecoded(_ coding: ContentCoding) throws {
        let first = Array("first member, nothing to see\n".utf8)
        let second = Array("second member: ghp_0123456789abcdefABCDEF0123456789abcd\n".utf8)
        let third = Array("third\n".utf8)
        let body = try Encode.stream(first, coding) + Encode.stream(second, coding) + Encode.stream(third, coding)
        let (decoded, stats) = try ContentCodings.decodeLayer(body, coding: coding, maxOutput: Self.mib)
        #expect(decoded == first + second + third)
        #expect(stats.units == 3)
    }

    @Test func zstdSkippableFramesAreSkipped() throws {
        // A skippable frame (magic 0x184D2A50, 4-byte length, payload) between two frames.
        let skippable: [UInt8] = [0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]
        let body = try Encode.stream(Array("a".utf8), .zstd) + skippable + Encode.stream(Array("b".utf8), .zstd)
        #expect(try ContentCodings.decode(body, codings: [.zstd], maxOutput: Self.mib) == Array("ab".utf8))
    }

    @Test func membersCountAgainstTheCapTogether() throws {
        let half = [UInt8](repeating: 0x61, count: 600_000)
        let body = try Encode.stream(half, .gzip) + Encode.stream(half, .gzip)
        #expect(throws: ContentCodingError.tooLarge(limit: Self.mib)) {
            try ContentCodings.decode(body, codings: [.gzip], maxOutput: Self.mib)
        }
    }

    // MARK: bombs

    struct Bomb: Sendable, CustomTestStringConvertible {
        var coding: ContentCoding
        var raw = false
        var testDescription: String { raw ? "raw deflate" : coding.rawValue }
    }

    static let bombs: [Bomb] = ContentCoding.allCases.map { Bomb(coding: $0) } + [Bomb(coding: .deflate, raw: true)]

    /// 50 MB decoded against a 1 MiB cap: refused, and no buffer larger than the cap is ever allocated.
    @Test(arguments: bombs)
    func bombIsRefusedWithinTheCap(_ bomb: Bomb) throws {
        let body = try Encode.bomb(bomb.coding, size: 50_000_000, raw: bomb.raw)
        #expect(body.count < 200_000)  // it is a bomb: small on the wire
        #expect(throws: ContentCodingError.tooLarge(limit: Self.mib)) {
            try ContentCodings.decode(body, codings: [bomb.coding], maxOutput: Self.mib)
        }
        // The largest buffer the decoder held while refusing it: the cap, never 50 MB.
        let (result, refused) = ContentCodings.measuredLayer(body, coding: bomb.coding, maxOutput: Self.mib)
        #expect(result == .failure(.tooLarge(limit: Self.mib)))
        #expect(refused.peakCapacity <= Self.mib)
        #expect(refused.peakCapacity > 0)
        // The largest accepted output fits in a buffer of the cap too.
        let (bytes, stats) = try ContentCodings.decodeLayer(try Encode.bomb(bomb.coding, size: Self.mib, raw: bomb.raw),
                                                            coding: bomb.coding, maxOutput: Self.mib)
        #expect(bytes.count == Self.mib)
        #expect(stats.peakCapacity <= Self.mib)
    }

    /// A bomb wrapped in another coding is caught at the inner layer.
    @Test(arguments: ContentCoding.allCases)
    func nestedBombIsRefused(_ outer: ContentCoding) throws {
        let inner = try Encode.bomb(.gzip, size: 50_000_000)
        let body = try Encode.stream(inner, outer)
        #expect(throws: ContentCodingError.tooLarge(limit: Self.mib)) {
            try ContentCodings.decode(body, codings: [.gzip, outer], maxOutput: Self.mib)
        }
    }

    struct CapRow: Sendable { var coding: ContentCoding; var size: Int; var cap: Int; var fits: Bool }
    static let capRows: [CapRow] = ContentCoding.allCases.flatMap { c in
        [CapRow(coding: c, size: 1000, cap: 1000, fits: true), CapRow(coding: c, size: 1001, cap: 1000, fits: false),
         CapRow(coding: c, size: 1, cap: 0, fits: false), CapRow(coding: c, size: 70_000, cap: 70_000, fits: true),
         CapRow(coding: c, size: 70_001, cap: 70_000, fits: false)]
    }

    @Test(arguments: capRows)
    func capIsExact(_ row: CapRow) throws {
        let body = try Encode.bomb(row.coding, size: row.size)
        if row.fits {
            #expect(try ContentCodings.decode(body, codings: [row.coding], maxOutput: row.cap).count == row.size)
        } else {
            #expect(throws: ContentCodingError.tooLarge(limit: row.cap)) {
                try ContentCodings.decode(body, codings: [row.coding], maxOutput: row.cap)
            }
        }
    }

    // MARK: corrupt input

    static let garbage: [[UInt8]] = [
        Array("this is not compressed at all".utf8), [0], [0xff, 0xff, 0xff, 0xff], [0x1f, 0x8b], [0x28, 0xb5, 0x2f, 0xfd],
        Array(repeating: 0x41, count: 4096),
    ]

    @Test(arguments: ContentCoding.allCases)
    func garbageIsCorrupt(_ coding: ContentCoding) {
        for g in Self.garbage {
            do {
                let out = try ContentCodings.decode(g, codings: [coding], maxOutput: Self.mib)
                Issue.record("\(coding) decoded \(g.count) garbage bytes into \(out.count) bytes")
            } catch {
                guard case .corrupt(let name, let reason) = error else { Issue.record("\(error)"); continue }
                #expect(name == coding.rawValue)
                #expect(!reason.isEmpty)
            }
        }
    }

    @Test(arguments: ContentCoding.allCases)
    func truncatedIsCorrupt(_ coding: ContentCoding) throws {
        let encoded = try Encode.stream(Self.varied, coding)
        for cut in [1, 2, encoded.count / 2, encoded.count - 1] where cut > 0 && cut < encoded.count {
            #expect(throws: ContentCodingError.self) {
                try ContentCodings.decode(Array(encoded.prefix(cut)), codings: [coding], maxOutput: Self.mib)
            }
        }
    }

    @Test(arguments: ContentCoding.allCases)
    func trailingGarbageIsCorrupt(_ coding: ContentCoding) throws {
        let encoded = try Encode.stream(Self.text, coding)
        for tail in [[0x00], Array("trailing".utf8), [0x1f], [0x1f, 0x8b, 0x08]] as [[UInt8]] {
            do {
                _ = try ContentCodings.decode(encoded + tail, codings: [coding], maxOutput: Self.mib)
                Issue.record("\(coding) accepted \(tail.count) trailing bytes")
            } catch {
                guard case .corrupt(let name, _) = error else { Issue.record("\(error)"); continue }
                #expect(name == coding.rawValue)
            }
        }
    }

    @Test func wrongCodingIsCorrupt() throws {
        // Bytes labelled br that are gzip (and the other way round) do not pass as raw bytes.
        let gz = try Encode.stream(Self.text, .gzip)
        #expect(throws: ContentCodingError.self) { try ContentCodings.decode(gz, codings: [.br], maxOutput: Self.mib) }
        #expect(throws: ContentCodingError.self) { try ContentCodings.decode(gz, codings: [.zstd], maxOutput: Self.mib) }
        let br = try Encode.stream(Self.text, .br)
        #expect(throws: ContentCodingError.self) { try ContentCodings.decode(br, codings: [.gzip], maxOutput: Self.mib) }
    }

    @Test func corruptMemberAfterAGoodOneFailsTheWholeBody() throws {
        var second = try Encode.stream(Array("second member payload".utf8), .gzip)
        second[second.count - 5] ^= 0xff  // break the CRC32
        let body = try Encode.stream(Self.text, .gzip) + second
        #expect(throws: ContentCodingError.self) { try ContentCodings.decode(body, codings: [.gzip], maxOutput: Self.mib) }
    }
}
