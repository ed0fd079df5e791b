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
        guard !srcStart.isEmpty, s < e, e <= srcStart.count else { return (region.lowerBound, region.upperBound) }
        return (Int(srcStart[s]), Int(srcEnd[e - 1]))
    }
}
