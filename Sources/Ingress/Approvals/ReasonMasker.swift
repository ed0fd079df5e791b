import Detection

/// Masks secrets and PII in free text a person typed (an approver's reason) with the detection
/// engine, as a body is masked: each finding becomes `[MASKED:<rule>:<fingerprint>]`.
///
/// Guarantees: the text returned holds no finding's value; a text that cannot be scanned is a
/// failure, never returned unmasked.
struct ReasonMasker: Sendable {
    let engine: DetectionEngine

    struct Masked: Sendable, Equatable {
        var text: String
        /// The rules that matched, in order of their findings.
        var rules: [String]
    }

    func mask(_ text: String) -> Result<Masked, DetectionError> {
        guard !text.isEmpty else { return .success(Masked(text: text, rules: [])) }
        do {
            let (masked, findings) = try engine.scanAndMask(Array(text.utf8))
            return .success(Masked(text: String(decoding: masked, as: UTF8.self), rules: findings.map(\.rule)))
        } catch {
            return .failure(error)
        }
    }
}
