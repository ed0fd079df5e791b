import ArgumentParser
import Detection
import Foundation
import Pipeline

/// `sluice apikey new`: makes a caller's API key and the `identities.api_keys` line that admits
/// it. The key is printed once and never stored: the configuration holds only its SHA-256.
struct APIKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apikey", abstract: "Make API keys for callers and reviewers.", subcommands: [New.self])

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a fresh API key (once) and the identities.api_keys line with its sha256.",
            discussion: """
                The key is 32 random bytes from the system's secure generator, base64url-encoded after \
                the prefix "sluice_". Give it to its holder (or a secret manager) now: it is not \
                stored anywhere, and the configuration line holds only its SHA-256. With --json both \
                are printed as one JSON object.
                """)

        @Option(help: "The identity's id (letters, digits, . _ - :).")
        var id: String

        @Option(help: "Comma-separated groups the identity belongs to (allow_groups, approvers).")
        var groups: String = ""

        @Option(help: "The person holding the key (default: the id); approvals compare persons.")
        var person: String?

        @Flag(help: "Print {\"key\", \"sha256\", \"config\"} as JSON.")
        var json = false

        func validate() throws {
            try Self.checkName(id, what: "--id")
            for g in groupList { try Self.checkName(g, what: "group") }
            if let person { try Self.checkName(person, what: "--person") }
        }

        var groupList: [String] { groups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

        static func checkName(_ s: String, what: String) throws {
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:@")
            guard !s.isEmpty, s.count <= 128, s.allSatisfy(allowed.contains) else {
                throw ValidationError("\(what) \"\(s)\" must be 1-128 of letters, digits and . _ - : @")
            }
        }

        func run() throws {
            let key = Self.makeKey()
            let digest = SHA256.hash(Data(key.utf8)).map { String(format: "%02x", $0) }.joined()
            let line = Self.configLine(id: id, sha256: digest, groups: groupList, person: person)
            if json {
                let object: [String: String] = ["key": key, "sha256": digest, "config": line]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("API key for \(id) (shown once: hand it over or store it in a secret manager now):")
            print("  \(key)")
            print("")
            print("Add to identities.api_keys in the configuration:")
            print("  \(line)")
        }

        /// "sluice_" + base64url (no padding) of 32 bytes from the system's secure generator.
        static func makeKey() -> String {
            "sluice_" + URLText.randomToken()
        }

        /// The YAML flow mapping for `identities.api_keys` (names are checked to need no quoting
        /// beyond the double quotes given).
        static func configLine(id: String, sha256: String, groups: [String], person: String?) -> String {
            var line = "- { id: \"\(id)\", sha256: \"\(sha256)\", groups: [\(groups.map { "\"\($0)\"" }.joined(separator: ", "))]"
            if let person { line += ", person: \"\(person)\"" }
            return line + " }"
        }
    }
}
