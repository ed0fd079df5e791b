/// The findings a request's messages carry: the first `limit` (in the order they were found:
/// body, query, path, headers; or a response's), and how many were left out.
///
/// Guarantees: `findings` holds at most `limit` entries, so the `inspected` message, its audit
/// event, the hold a reviewer sees and the recording grow by a bounded amount however many
/// findings a body holds (a 1 MiB body of AWS-key-shaped strings holds 50,000; an upstream
/// that echoes it returns as many). Masking and the verdict are not affected: they use every
/// finding.
public struct FindingsCarried: Sendable {
    /// The most findings one message carries.
    public static let limit = 256

    public let findings: [FindingSummary]
    public let total: Int
    public var omitted: Int { total - findings.count }

    public init(_ all: [FindingSummary], limit: Int = Self.limit) {
        total = all.count
        findings = all.count > limit ? Array(all.prefix(limit)) : all
    }

    /// The verdict's reason when findings were left out.
    public var reason: String {
        "\(total) findings: the first \(findings.count) are listed, \(omitted) more were masked and counted but are not listed"
    }

    /// `details` with `findings_total` and `findings_omitted` added when findings were left out.
    public func details(_ details: [String: String]) -> [String: String] {
        guard omitted > 0 else { return details }
        var d = details
        d["findings_total"] = String(total)
        d["findings_omitted"] = String(omitted)
        return d
    }
}
