import Testing
@testable import Ingress

/// MCP session ids bound to the caller that opened them.
struct MCPSessionBindingTests {
    let binding = MCPSessionBinding(secret: Array("fingerprint key of the test".utf8))

    @Test func bindsAndChecks() {
        let bound = binding.bind("abc123", identity: "apikey:ci-bot")
        #expect(bound.hasPrefix("abc123~") && bound.count == "abc123~".count + 32)
        #expect(binding.unbind(bound, identity: "apikey:ci-bot") == "abc123")
        // The same key on another Ingress checks it too; another key does not.
        #expect(MCPSessionBinding(secret: Array("fingerprint key of the test".utf8)).unbind(bound, identity: "apikey:ci-bot") == "abc123")
        #expect(MCPSessionBinding(secret: Array("another key".utf8)).unbind(bound, identity: "apikey:ci-bot") == nil)
        // A server id holding the separator itself.
        let odd = binding.bind("a~b", identity: "apikey:ci-bot")
        #expect(binding.unbind(odd, identity: "apikey:ci-bot") == "a~b")
    }

    @Test(arguments: [
        ("apikey:carol", nil as String?),  // another caller
        ("apikey:ci-bot", "abc124"),  // another server id under the same tag
        ("apikey:ci-bot", ""),  // no tag
        ("apikey:ci-bot", "upper"),  // upper-case hex
        ("apikey:ci-bot", "short"),  // a cut tag
    ])
    func refuses(_ identity: String, _ change: String?) {
        let bound = binding.bind("abc123", identity: "apikey:ci-bot")
        let presented: String
        switch change {
        case nil: presented = bound
        case "": presented = "abc123"
        case "upper": presented = bound.uppercased().replacingOccurrences(of: "ABC123", with: "abc123")
        case "short": presented = String(bound.dropLast(2))
        case let other?: presented = other + bound.dropFirst(6)
        }
        #expect(binding.unbind(presented, identity: identity) == nil, "\(presented)")
    }
}
