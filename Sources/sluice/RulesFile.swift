import Detection
import Foundation
import Pipeline

/// A custom rules file (`sluice scan --rules FILE`, YAML or JSON): a list of rules, or
/// `{rules: [...]}`, each with `id`, `pattern` and optionally `keywords`, `min_entropy`,
/// `class`, `severity`, `description`.
///
/// Guarantees: read like the configuration file: unknown keys are refused, and every problem of every rule is reported in one
/// run, in the file's order, as `FILE:LINE:COL: <key path>: <message>` (an enum names its allowed
/// values, a wrong type says what was expected and found), never a raw `DecodingError`.
struct RulesFile: Decodable {
    let rules: [RuleSpec]

    enum CodingKeys: String, CodingKey, CaseIterable { case rules }

    init(from decoder: any Decoder) throws {
        if (try? decoder.unkeyedContainer()) != nil {
            rules = try decoder.singleValueContainer().decode(CollectedList<Entry>.self).values.map(\.spec)
        } else {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            rules = try c.need(CollectedList<Entry>.self, forKey: .rules).values.map(\.spec)
        }
    }

    /// The file's rules; a problem throws `ConfigErrors` listing them all.
    static func parse(_ text: String, source: String) throws(ConfigErrors) -> [RuleSpec] {
        try YAMLSource.decode(RulesFile.self, from: text, source: source).rules
    }

    /// One rule: each key is read even after a bad one, so all of its problems are reported.
    struct Entry: Decodable {
        let spec: RuleSpec

        enum CodingKeys: String, CodingKey, CaseIterable {
            case id, pattern, keywords, description, severity
            case minEntropy = "min_entropy"
            case ruleClass = "class"
        }

        init(from decoder: any Decoder) throws {
            // A misspelt key (`keyword`, `min_entrophy`) would change what the rule finds
            // without a word: refused, naming the allowed keys.
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let id = try c.collect(String.self, forKey: .id)
            let pattern = try c.collect(String.self, forKey: .pattern)
            let keywords = try c.collect([String].self, forKey: .keywords) ?? []
            let minEntropy = try c.collect(Double.self, forKey: .minEntropy) ?? 0
            let ruleClass = try c.collect(ConfigChoice<RuleClass>.self, forKey: .ruleClass)?.value ?? .credential
            let severity = try c.collect(ConfigChoice<Severity>.self, forKey: .severity)?.value ?? .high
            let description = try c.collect(String.self, forKey: .description)
            spec = RuleSpec(
                id: try c.required(id, forKey: .id), pattern: try c.required(pattern, forKey: .pattern), keywords: keywords,
                minEntropy: minEntropy, ruleClass: ruleClass, severity: severity, description: description)
        }
    }
}
