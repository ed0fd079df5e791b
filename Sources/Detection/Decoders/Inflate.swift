import CHyperscan

/// gzip / zlib / raw-deflate decompression through the system zlib (loaded at run
/// time by the CHyperscan shim), with a hard output limit.
enum Inflate {
    enum Mode: Int32 { case auto = 0, gzip = 1, zlib = 2, raw = 3 }

    /// Decompresses `data`. Throws `decodeLimitExceeded` when the output would exceed `maxOutput`
    /// (a decompression bomb), `corruptEncoding` on bad input, `libraryUnavailable` without zlib.
    static func inflate(_ data: [UInt8], mode: Mode, maxOutput: Int, name: String) throws(DetectionError) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var outLen = 0
        let rc = data.withUnsafeBufferPointer { b in
            cz_inflate(b.baseAddress, b.count, mode.rawValue, maxOutput, &out, &outLen)
        }
        defer { if let out { cz_free(out) } }
        switch rc {
        case 0:
            guard let out else { return [] }
            return Array(UnsafeBufferPointer(start: out, count: outLen))
        case -10: throw DetectionError.decodeLimitExceeded(decoder: name, limit: maxOutput)
        case -11: throw DetectionError.libraryUnavailable("zlib (libz.so.1)")
        case -12: throw DetectionError.corruptEncoding(decoder: name, reason: "out of memory")
        case -3: throw DetectionError.corruptEncoding(decoder: name, reason: "truncated stream")
        default: throw DetectionError.corruptEncoding(decoder: name, reason: "invalid compressed data (code \(rc))")
        }
    }

    static var available: Bool { cz_available() != 0 }
}
