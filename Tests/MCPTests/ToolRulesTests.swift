import MCP
import Testing

struct ToolRulesTests {
    static let rules = ToolRules(allow: ["read_*", "run_sql", "delete_*", "transfer_funds"], deny: ["delete_repo*"], hold: ["transfer_*", "delete_*"])

    @Test(arguments: [
        ("read_file", nil),
        ("run_sql", nil),
        ("delete_branch", nil),
        ("delete_repository", "tools.deny[0] \"delete_repo*\""),
        ("DELETE_REPOSITORY", "tools.deny[0] \"delete_repo*\""),
        ("\u{FF44}elete_repository", "tools.deny[0] \"delete_repo*\""),  // fullwidth d
        ("delete\u{200B}_repository", "tools.deny[0] \"delete_repo*\""),  // zero-width space
        (" delete_repository\t", "tools.deny[0] \"delete_repo*\""),  // a server may trim
        ("Read_file", "tools.allow (not listed)"),  // allow is exact
        ("write_file", "tools.allow (not listed)"),
        ("run_sql2", "tools.allow (not listed)"),
    ] as [(String, String?)])
    func refusal(_ name: String, _ expected: String?) {
        #expect(Self.rules.refusal(of: name) == expected, "\(name)")
        #expect(Self.rules.isVisible(name) == (expected == nil))
    }

    @Test(arguments: [
        ("transfer_funds", ["tools.hold[0] \"transfer_*\""]),
        ("TRANSFER_funds", ["tools.hold[0] \"transfer_*\""]),
        ("delete_branch", ["tools.hold[1] \"delete_*\""]),
        ("read_file", []),
    ])
    func holds(_ name: String, _ expected: [String]) {
        #expect(Self.rules.holdReasons(for: name) == expected)
    }

    @Test(arguments: [
        ("*", "", true), ("*", "abc", true), ("a*c", "abbbc", true), ("a*c", "abcd", false),
        ("a?c", "abc", true), ("a?c", "ac", false), ("*_*", "a_b", true), ("x", "X", false), ("**", "z", true),
    ])
    func glob(_ glob: String, _ text: String, _ matches: Bool) {
        #expect(ToolRules.glob(glob, matches: text) == matches)
    }

    @Test func filtersToolLists() throws {
        let response = try JSONValue.parse(Array("""
            {"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"read_file"},{"name":"delete_repository"},{"name":"write_file"},{"title":"no name"},{"name":"run_sql","x":1}],"nextCursor":"c"}}
            """.utf8))
        let (filtered, removed) = ToolListFilter.filter(response, listIDs: ["3"], knownIDs: ["3"], rules: Self.rules)
        #expect(removed == 3)
        #expect(String(decoding: filtered.serialized(), as: UTF8.self) == """
            {"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"read_file"},{"name":"run_sql","x":1}],"nextCursor":"c"}}
            """)
        // The answer to another call is left alone; an id the request never sent is filtered.
        #expect(ToolListFilter.filter(response, listIDs: [], knownIDs: ["3"], rules: Self.rules).removed == 0)
        #expect(ToolListFilter.filter(response, listIDs: [], knownIDs: ["4"], rules: Self.rules).removed == 3)
    }
}
