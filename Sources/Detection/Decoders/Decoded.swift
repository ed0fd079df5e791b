/// The output of a decoder over a region of a parent buffer, with an offset map
/// so that every decoded byte range maps back to a parent byte range.
struct Decoded {
    /// Decoder name used in `Finding.decodedVia`.
    let via: String
    let bytes: [UInt8]
    /// For decoded byte `i`, its source span in the parent is `srcStart[i]..<srcEnd[i]`.
    /// Empty when the whole region must be masked (`wholeRegion`).
    let srcStart: [Int32]
    let srcEnd: [Int32]
    /// The region of the parent the decoded bytes came from.
    let region: Range<Int>

    /// Maps a decoded span to the parent span to mask.
    func mapSpan(_ s: Int, _ e: Int) -> (Int, Int) {
        srcStart.withUnsafeBufferPointer { a in
            srcEnd.withUnsafeBufferPointer { b in Self.mapSpan(s, e, srcStart: a, srcEnd: b, region: region) }
        }
    }

    /// Maps decoded `s..<e` to the parent: from the source start of byte `s` to the source end of
    /// byte `e - 1`; the whole `region` when there is no map or the span is empty or out of it.
    static func mapSpan(_ s: Int, _ e: Int, srcStart: UnsafeBufferPointer<Int32>, srcEnd: UnsafeBufferPointer<Int32>,
                        region: Range<Int>) -> (Int, Int) {
        guard !srcStart.isEmpty, s < e, e <= srcStart.count else { return (region.lowerBound, region.upperBound) }
        return (Int(srcStart[s]), Int(srcEnd[e - 1]))
    }
}

/// Decoded bytes held in a `DecodeBuffer` (valid until that buffer is written again): what
/// `Decoded` holds, without three arrays allocated and freed per decoded string.
struct DecodedView {
    let via: String
    let bytes: UnsafeBufferPointer<UInt8>
    let srcStart: UnsafeBufferPointer<Int32>
    let srcEnd: UnsafeBufferPointer<Int32>
    let region: Range<Int>

    /// The first `count` bytes of `buffer`, decoded from the parent's `region`.
    init(via: String, _ buffer: DecodeBuffer, count: Int, region: Range<Int>) {
        self.via = via
        bytes = UnsafeBufferPointer(start: buffer.bytes.baseAddress, count: count)
        srcStart = UnsafeBufferPointer(start: buffer.srcStart.baseAddress, count: count)
        srcEnd = UnsafeBufferPointer(start: buffer.srcEnd.baseAddress, count: count)
        self.region = region
    }

    func mapSpan(_ s: Int, _ e: Int) -> (Int, Int) {
        Decoded.mapSpan(s, e, srcStart: srcStart, srcEnd: srcEnd, region: region)
    }
}

/// Output space for one decoder call: decoded bytes and, per byte, its source span in the parent.
///
/// Guarantees: after `reserve(n)` each of the three buffers holds at least `n` elements; the
/// capacity only grows, and the memory is freed when the buffer is. A scan owns its buffers
/// (one per decoding depth, `ScanScratch.decodeBuffer`), so no two tasks ever share one.
final class DecodeBuffer {
    private(set) var bytes: UnsafeMutableBufferPointer<UInt8> = .init(start: nil, count: 0)
    private(set) var srcStart: UnsafeMutableBufferPointer<Int32> = .init(start: nil, count: 0)
    private(set) var srcEnd: UnsafeMutableBufferPointer<Int32> = .init(start: nil, count: 0)

    /// Grows the buffers to at least `n` elements (their contents are not kept).
    func reserve(_ n: Int) {
        guard n > bytes.count else { return }
        let cap = max(n, 2 * bytes.count, 256)
        free()
        bytes = .allocate(capacity: cap)
        srcStart = .allocate(capacity: cap)
        srcEnd = .allocate(capacity: cap)
    }

    private func free() {
        bytes.deallocate()
        srcStart.deallocate()
        srcEnd.deallocate()
    }

    deinit { free() }
}
