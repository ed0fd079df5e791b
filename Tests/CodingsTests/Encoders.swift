import CodingsEncoders
@testable import Codings

/// Real encoders (zlib, libbrotlienc, libzstd) for building test inputs at run time.
enum Encode {
    /// The encoder id for `coding`; `raw` picks raw deflate instead of zlib-wrapped.
    static func id(_ coding: ContentCoding, raw: Bool = false) -> Int32 {
        switch coding {
        case .gzip: return 1
        case .deflate: return raw ? 5 : 2
        case .br: return 3
        case .zstd: return 4
        }
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// One stream (one gzip member, one zstd frame) of `data`.
    static func stream(_ data: [UInt8], _ coding: ContentCoding, raw: Bool = false) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var len = 0
        let rc = data.withUnsafeBufferPointer { cce_encode(id(coding, raw: raw), $0.baseAddress, $0.count, &out, &len) }
        defer { cce_free(out) }
        guard rc == 0 else { throw Failure(description: "encoding \(coding) failed") }
        guard let out else { return [] }
        return Array(UnsafeBufferPointer(start: out, count: len))
    }

    /// `data` with `codings` applied in order (first listed applied first).
    static func apply(_ data: [UInt8], _ codings: [ContentCoding]) throws -> [UInt8] {
        var bytes = data
        for c in codings { bytes = try stream(bytes, c) }
        return bytes
    }

    /// A stream that decodes to `size` bytes of `fill`, made without ever holding the decoded bytes.
    static func bomb(_ coding: ContentCoding, size: Int, fill: UInt8 = 0x41, raw: Bool = false) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var len = 0
        let rc = cce_bomb(id(coding, raw: raw), size, fill, &out, &len)
        defer { cce_free(out) }
        guard rc == 0, let out else { throw Failure(description: "bomb \(coding) failed") }
        return Array(UnsafeBufferPointer(start: out, count: len))
    }
}
