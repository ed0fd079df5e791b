/// Whether a connection's held requests can be decided by anyone the configuration knows of
/// (issue 17): a held request that no identity may approve can only expire.
///
/// Guarantees:
/// - Pure: reads the configuration only; returns warnings (never throws: none of this makes a
///   configuration invalid), in connection order, each naming the config path.
/// - With `identities.oidc` configured nothing about group membership is claimed (a token may
///   carry any group), except for a connection that holds with no `approvers` at all.
/// - Warns about: a connection that can hold but lists no `approvers`; each approver group no
///   `identities.api_keys` entry belongs to; a connection whose approver groups hold fewer
///   distinct persons than `approvals_required`.
public enum ApproverCoverage {
    /// One warning per problem, e.g. `connections[0].policy.approvers: no identity belongs to
    /// group "secops" ...`.
    public static func warnings(_ config: SluiceConfig) -> [String] {
        let knowsEveryGroup = config.identities.oidc == nil
        var warnings: [String] = []
        for (i, connection) in config.connections.enumerated() {
            let policy = connection.policy
            let path = "connections[\(i)].policy.approvers"
            if policy.approvers.isEmpty {
                if canHold(policy) {
                    warnings.append("\(path): connection \"\(connection.name)\" can hold requests but lists no approvers: its held requests can only expire")
                }
                continue
            }
            guard knowsEveryGroup else { continue }
            let approvers = Set(policy.approvers)
            let members = config.identities.apiKeys.filter { !approvers.isDisjoint(with: $0.groups) }
            var seen = Set<String>()
            for group in policy.approvers where seen.insert(group).inserted {
                guard !config.identities.apiKeys.contains(where: { $0.groups.contains(group) }) else { continue }
                warnings.append("\(path): no identity belongs to group \"\(group)\" (no identities.api_keys entry lists it and there is no identities.oidc)")
            }
            let persons = Set(members.map(\.person))
            if persons.isEmpty {
                warnings.append("\(path): nobody may approve connection \"\(connection.name)\": its held requests can only expire")
            } else if persons.count < policy.approvalsRequired {
                warnings.append(
                    "\(path): connection \"\(connection.name)\" needs \(policy.approvalsRequired) distinct approvers but its approver groups hold \(persons.count): its held requests can only expire")
            }
        }
        return warnings
    }

    /// Whether any clause of `policy` can hold a request.
    static func canHold(_ policy: PolicyConfig) -> Bool {
        policy.onSecret == .hold || !policy.hold.methods.isEmpty || !policy.hold.paths.isEmpty
            || !policy.hold.bodyPatterns.isEmpty || !policy.hold.groups.isEmpty
    }
}
