import Foundation

/// Custom rules on NSRegularExpression, run in a window around each keyword hit
/// (or over the whole input when the rule has no keyword). Bytes are mapped 1:1 to
/// UTF-16 units through ISO-8859-1 so match offsets are byte offsets.
enum CustomMatcher {
    static let before = 256
    static let after = 1024

    static func run(_ rule: Rule, _ box: RegexBox, p: UnsafeBufferPointer<UInt8>, window: Range<Int>, emit: (Match) -> Void) {
        guard !window.isEmpty else { return }
        let slice = UnsafeBufferPointer(rebasing: p[window])
        guard let text = String(bytes: slice, encoding: .isoLatin1) else { return }
        let ns = text as NSString
        let matches = box.regex.matches(in: text, options: [], range: NSRange(location: 0, length: ns.length))
        for m in matches {
            var r = m.range
            if m.numberOfRanges > 1, m.range(at: 1).location != NSNotFound { r = m.range(at: 1) }
            guard r.length > 0 else { continue }
            let s = window.lowerBound + r.location, e = s + r.length
            let v = Scan.bytes(p, s, e)
            if Placeholders.isPlaceholder(v) { continue }
            if rule.minEntropy > 0 && Entropy.shannon(v) < rule.minEntropy { continue }
            emit(Match(start: s, end: e, secret: v, confidence: rule.confidence))
        }
    }
}
