// libFuzzer target for one content coding (chosen at compile time: -D CODING_GZIP / _DEFLATE / _BR / _ZSTD).
// Compiled in one module with Sources/Codings/*.swift (see build.sh), so internal API is visible.
//
// The first input byte picks a mode: even → the rest is decoded as it is; odd → the rest is
// plain text, encoded with the real encoder (one or two members/frames), optionally with one
// byte changed, then decoded (the libraries are not coverage-instrumented, so this reaches
// deep into valid streams that random bytes rarely form).
//
// Invariants (a violation traps, which libFuzzer reports as a crash):
// - decoding never crashes and never returns more than the cap;
// - round trip: an unchanged encoding decodes to exactly the plain text (both members/frames);
// - the cap is exact: an output of L bytes decodes again under cap L, and is `.tooLarge` under cap L-1;
// - the decoder's largest buffer never exceeds the cap;
// - errors are `.tooLarge(limit: cap)` or `.corrupt(coding:, reason:)` naming this coding, never `.unsupported`.

import CodingsEncoders

#if CODING_GZIP
let coding = ContentCoding.gzip
#elseif CODING_DEFLATE
let coding = ContentCoding.deflate
#elseif CODING_BR
let coding = ContentCoding.br
#elseif CODING_ZSTD
let coding = ContentCoding.zstd
#else
#error("define one of CODING_GZIP, CODING_DEFLATE, CODING_BR, CODING_ZSTD")
#endif

/// Small enough that libFuzzer finds inputs that hit it; large enough for real streams.
let cap = 1 << 16

func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("fuzz invariant violated (\(coding.rawValue)): \(message())") }
}

func encoderId(raw: Bool) -> Int32 {
    switch coding {
    case .gzip: return 1
    case .deflate: return raw ? 5 : 2
    case .br: return 3
    case .zstd: return 4
    }
}

func encode(_ plain: [UInt8], raw: Bool) -> [UInt8] {
    var out: UnsafeMutablePointer<UInt8>? = nil
    var len = 0
    let rc = plain.withUnsafeBufferPointer { cce_encode(encoderId(raw: raw), $0.baseAddress, $0.count, &out, &len) }
    defer { cce_free(out) }
    check(rc == 0, "the encoder failed")
    guard let out else { return [] }
    return Array(UnsafeBufferPointer(start: out, count: len))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    guard let mode = bytes.first else { decodeChecked([]); return 0 }
    if mode & 1 == 0 {
        decodeChecked(Array(bytes.dropFirst()))
        return 0
    }
    // Round trip through the real encoder.
    let plain = Array(bytes.dropFirst(min(bytes.count, 3)))
    let twice = mode & 2 != 0 && (coding == .gzip || coding == .zstd)
    var wire = encode(plain, raw: mode & 4 != 0)
    if twice { wire += encode(plain, raw: false) }
    let expected = twice ? plain + plain : plain
    if mode & 8 != 0, bytes.count >= 3, !wire.isEmpty {
        // Change one byte: must decode to something within the cap, or fail cleanly.
        let at = (Int(bytes[1]) << 8 | Int(bytes[2])) % wire.count
        wire[at] ^= mode | 1
        decodeChecked(wire)
        return 0
    }
    do {
        let out = try ContentCodings.decode(wire, codings: [coding], maxOutput: cap)
        check(expected.count <= cap, "\(expected.count) bytes decoded under a cap of \(cap)")
        check(out == expected, "round trip changed \(expected.count) bytes into \(out.count) bytes")
    } catch {
        check(expected.count > cap && error == .tooLarge(limit: cap), "round trip of \(expected.count) bytes failed: \(error)")
    }
    return 0
}

func decodeChecked(_ input: [UInt8]) {
    do {
        let (out, stats) = try ContentCodings.decodeLayer(input, coding: coding, maxOutput: cap)
        check(out.count <= cap, "output \(out.count) over the cap \(cap)")
        check(stats.peakCapacity <= cap, "buffer \(stats.peakCapacity) over the cap \(cap)")
        check(input.isEmpty || !out.isEmpty || stats.units > 0, "an empty result without any decoded unit")
        // Exact cap.
        let again = try ContentCodings.decode(input, codings: [coding], maxOutput: out.count)
        check(again == out, "decoding is not deterministic")
        if !out.isEmpty {
            do {
                _ = try ContentCodings.decode(input, codings: [coding], maxOutput: out.count - 1)
                check(false, "\(out.count) bytes decoded under a cap of \(out.count - 1)")
            } catch {
                check(error == .tooLarge(limit: out.count - 1), "cap-1 gave \(error)")
            }
        }
    } catch {
        switch error {
        case .tooLarge(let limit): check(limit == cap, "tooLarge with limit \(limit)")
        case .corrupt(let name, let reason): check(name == coding.rawValue && !reason.isEmpty, "corrupt(\(name), \(reason))")
        case .unsupported(let what): check(false, "unsupported(\(what)) from decode")
        }
    }
}
