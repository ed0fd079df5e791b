/// Atlassian Data Center / Server personal access tokens (Jira 8.14+, Confluence 7.9+,
/// Bitbucket): 44 base64 symbols encoding a 12-digit numeric token id, `:`, and 20 secret
/// bytes. They have no prefix, so they are not found by keyword: `scanLevel` checks every
/// base64 run of exactly this length (the structural `base64` trigger) with ``matches``.
///
/// Guarantees: pure, allocation-free (decodes 33 bytes on the stack); true only for a run of
/// exactly 44 symbols, without padding, that decodes to `[0-9]{12}:` and 20 more bytes.
enum AtlassianDataCenterPAT {
    static let length = 44
    static let idDigits = 12

    static func matches(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> Bool {
        guard e - s == length else { return false }
        // The id's base64 starts with `M`, `N` or `O` (ASCII digits' top bits): a cheap first filter.
        let first = p[s]
        guard first == UInt8(ascii: "M") || first == UInt8(ascii: "N") || first == UInt8(ascii: "O") else { return false }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 36) { buf -> Bool in
            guard let n = Base64.decode(UnsafeBufferPointer(rebasing: p[s..<e]), into: buf, limit: Int.max), n == 33 else { return false }
            for i in 0..<idDigits where !isDigit(buf[i]) { return false }
            return buf[idDigits] == UInt8(ascii: ":")
        }
    }
}
