import Foundation
import Pipeline
import Testing

/// `ApproverCoverage.warnings`: held requests that no configured identity may decide.
@Suite("Approver coverage")
struct ApproverCoverageTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        /// `identities` as JSON.
        var identities: String
        /// `connections[0].policy` as JSON.
        var policy: String
        /// Substrings of each expected warning, in order (none: no warning).
        var warnings: [String]
        var testDescription: String { name }
    }

    static let sha = String(repeating: "a", count: 64)
    static func key(_ id: String, _ groups: [String], person: String? = nil) -> String {
        let g = groups.map { "\"\($0)\"" }.joined(separator: ",")
        return "{\"id\":\"\(id)\",\"sha256\":\"\(sha)\",\"groups\":[\(g)]\(person.map { ",\"person\":\"\($0)\"" } ?? "")}"
    }
    static let oidc = "\"oidc\":{\"issuer\":\"https://idp.example\",\"audience\":\"sluice\",\"jwks_url\":\"https://idp.example/jwks\"}"

    static let rows: [Row] = [
        Row(name: "an approver group with a member: nothing to say",
            identities: "{\"api_keys\":[\(key("alice", ["secops"]))]}", policy: "{\"on_secret\":\"hold\",\"approvers\":[\"secops\"]}", warnings: []),
        Row(name: "no hold clause and no approvers: nothing to say",
            identities: "{}", policy: "{}", warnings: []),
        Row(name: "holds but lists no approvers",
            identities: "{\"api_keys\":[\(key("alice", ["secops"]))]}", policy: "{\"hold\":{\"methods\":[\"DELETE\"]}}",
            warnings: ["connections[0].policy.approvers: connection \"billing\" can hold requests but lists no approvers"]),
        Row(name: "on_secret hold without approvers, even with OIDC",
            identities: "{\(oidc)}", policy: "{\"on_secret\":\"hold\"}", warnings: ["lists no approvers: its held requests can only expire"]),
        Row(name: "an approver group nobody belongs to, the other has a member",
            identities: "{\"api_keys\":[\(key("alice", ["secops"]))]}", policy: "{\"approvers\":[\"secops\",\"sre\"]}",
            warnings: ["no identity belongs to group \"sre\""]),
        Row(name: "no approver group has a member: can only expire",
            identities: "{\"api_keys\":[\(key("bot", ["ci"]))]}", policy: "{\"approvers\":[\"secops\",\"secops\"]}",
            warnings: ["no identity belongs to group \"secops\"", "nobody may approve connection \"billing\""]),
        Row(name: "with OIDC any group may come in a token: nothing to say",
            identities: "{\(oidc)}", policy: "{\"approvers\":[\"secops\"]}", warnings: []),
        Row(name: "fewer distinct persons than approvals_required",
            identities: "{\"api_keys\":[\(key("alice-1", ["secops"], person: "alice")),\(key("alice-2", ["secops"], person: "alice")),\(key("bob", ["sre"]))]}",
            policy: "{\"approvers\":[\"secops\"],\"approvals_required\":2}",
            warnings: ["needs 2 distinct approvers but its approver groups hold 1"]),
        Row(name: "enough persons across two groups",
            identities: "{\"api_keys\":[\(key("alice", ["secops"])),\(key("bob", ["sre"]))]}",
            policy: "{\"approvers\":[\"secops\",\"sre\"],\"approvals_required\":2}", warnings: []),
    ]

    @Test(arguments: rows)
    func warnings(_ row: Row) throws {
        let json = """
            {"sealing": {"keys": [{"id": "k1", "secret": "env:SEAL"}], "fingerprint_key": "env:FP"},
             "identities": \(row.identities),
             "connections": [{"name": "billing", "upstream": "http://127.0.0.1:9000", "allow_groups": ["ci"], "policy": \(row.policy)}]}
            """
        let config = try JSONDecoder().decode(SluiceConfig.self, from: Data(json.utf8))
        let got = ApproverCoverage.warnings(config)
        #expect(got.count == row.warnings.count, "\(got)")
        for (warning, expected) in zip(got, row.warnings) {
            #expect(warning.contains(expected), "\(warning) lacks \(expected)")
        }
    }
}
