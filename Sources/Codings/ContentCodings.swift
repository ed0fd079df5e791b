import CCodings

/// Parses `Content-Encoding` and undoes content codings through the real libraries.
///
/// Guarantees:
/// - `parse` accepts only `gzip`, `x-gzip`, `deflate`, `br`, `zstd` and `identity` (any case), at most
///   `maxLayers` of them; anything else throws `.unsupported`.
/// - `decode` never returns a partial result: it returns every byte of every layer, or throws.
/// - No layer's output (nor the memory held for it) ever exceeds `maxOutput` bytes: decoders stream into a
///   buffer bounded by the cap and stop with `.tooLarge` the moment one more byte would be produced.
/// - gzip decodes every member and zstd every frame; bytes after the end of a stream are `.corrupt`.
/// - An empty body decodes to an empty body under any coding (there is nothing to hide in it).
public enum ContentCodings {
    /// The most layers `parse` accepts.
    public static let maxLayers = 8

    /// All `Content-Encoding` field values in the order received (comma lists allowed), case-insensitive,
    /// whitespace-trimmed; `identity` dropped; `x-gzip` = gzip. Returns the codings in the order they were
    /// APPLIED (as listed). Empty for none. Throws `.unsupported` for anything else, or more than `maxLayers` (8).
    public static func parse(_ headerValues: [String]) throws(ContentCodingError) -> [ContentCoding] {
        var codings: [ContentCoding] = []
        for value in headerValues {
            for element in value.split(separator: ",", omittingEmptySubsequences: false) {
                let token = trim(element).lowercased()
                if token.isEmpty || token == "identity" { continue }  // RFC 9110 §5.6.1: empty list elements are ignored
                let coding: ContentCoding
                switch token {
                case "gzip", "x-gzip": coding = .gzip
                case "deflate": coding = .deflate
                case "br": coding = .br
                case "zstd": coding = .zstd
                default: throw .unsupported(String(token.prefix(64)))
                }
                codings.append(coding)
                if codings.count > maxLayers {
                    throw .unsupported("more than \(maxLayers) content-coding layers")
                }
            }
        }
        return codings
    }

    /// Undoes `codings` (last listed first). Every layer's output is capped at `maxOutput` bytes (`.tooLarge`).
    /// gzip decodes every member; deflate accepts zlib-wrapped and raw deflate; br and zstd via their libraries
    /// (zstd: every frame). Trailing garbage after a complete stream is `.corrupt`.
    public static func decode(_ body: [UInt8], codings: [ContentCoding], maxOutput: Int) throws(ContentCodingError) -> [UInt8] {
        if codings.count > maxLayers { throw .unsupported("more than \(maxLayers) content-coding layers") }
        var bytes = body
        for coding in codings.reversed() {
            bytes = try decodeLayer(bytes, coding: coding, maxOutput: maxOutput).bytes
        }
        return bytes
    }

    /// What one layer's decoding cost (for tests and diagnostics).
    struct LayerStats: Sendable, Equatable {
        /// The largest output buffer allocated, in bytes.
        var peakCapacity: Int
        /// gzip members or zstd frames decoded (1 for deflate and br, 0 for an empty body).
        var units: Int
    }

    /// Decodes one layer.
    static func decodeLayer(_ input: [UInt8], coding: ContentCoding, maxOutput: Int) throws(ContentCodingError) -> (bytes: [UInt8], stats: LayerStats) {
        let (result, stats) = measuredLayer(input, coding: coding, maxOutput: maxOutput)
        return (try result.get(), stats)
    }

    /// Decodes one layer and reports what it cost, also when it fails (tests check the largest
    /// buffer of a refused bomb).
    static func measuredLayer(_ input: [UInt8], coding: ContentCoding, maxOutput: Int) -> (result: Result<[UInt8], ContentCodingError>, stats: LayerStats) {
        let cap = max(0, maxOutput)
        var out: UnsafeMutablePointer<UInt8>? = nil
        var outLen = 0
        var stats = cc_stats()
        var reason = [CChar](repeating: 0, count: 128)
        let rc = input.withUnsafeBufferPointer { inBuf in
            reason.withUnsafeMutableBufferPointer { r in
                cc_decode(code(coding), inBuf.baseAddress, inBuf.count, cap, &out, &outLen, r.baseAddress, r.count, &stats)
            }
        }
        defer { cc_free(out) }
        let layerStats = LayerStats(peakCapacity: stats.peak_capacity, units: stats.units)
        switch rc {
        case Int32(CC_OK):
            guard let out, outLen > 0 else { return (.success([]), layerStats) }
            return (.success(Array(UnsafeBufferPointer(start: out, count: outLen))), layerStats)
        case Int32(CC_TOO_LARGE):
            return (.failure(.tooLarge(limit: cap)), layerStats)
        case Int32(CC_NO_MEMORY):
            // Not the body's fault, but it was not inspected: refuse as undecodable rather than pass it.
            return (.failure(.corrupt(coding: coding.rawValue, reason: "out of memory while decoding")), layerStats)
        default:
            // cc_decode always NUL-terminates `reason` (snprintf into 128 bytes).
            let text = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return (.failure(.corrupt(coding: coding.rawValue, reason: text.isEmpty ? "invalid data" : text)), layerStats)
        }
    }

    private static func code(_ coding: ContentCoding) -> Int32 {
        switch coding {
        case .gzip: return Int32(CC_GZIP)
        case .deflate: return Int32(CC_DEFLATE)
        case .br: return Int32(CC_BR)
        case .zstd: return Int32(CC_ZSTD)
        }
    }

    private static func trim(_ s: Substring) -> Substring {
        var t = s
        while let f = t.first, f == " " || f == "\t" { t.removeFirst() }
        while let l = t.last, l == " " || l == "\t" { t.removeLast() }
        return t
    }
}
