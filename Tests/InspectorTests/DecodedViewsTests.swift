import Foundation
@testable import Inspector
import Pipeline
import Testing

/// Hold clauses against encodings that try to hide a body from a pattern or a path from a glob.
@Suite("Hold clauses see decoded bodies and canonical paths")
struct DecodedViewsTests {
    static func rules() -> (PolicyConfig, HoldRules) {
        var p = PolicyConfig(onSecret: .mask)
        p.hold.paths = ["/admin/*", "/ops/**/restart"]
        p.hold.bodyPatterns = ["(?i)drop\\s+table", "rm\\s+-rf\\s+/"]
        return (p, try! HoldRules(p.hold))  // test fixture: the patterns are literals above
    }

    /// `inner` (JSON text) wrapped as a JSON string value `levels - 1` times: JSON `levels` deep.
    static func nested(_ inner: String, levels: Int) -> String {
        var s = inner
        for _ in 1..<levels {
            s = "{\"v\":\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"}"
        }
        return s
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var path = "/v1/x"
        var body = ""
        var decision: Decision
        var rules: [String] = []
        var reasons: [String] = []
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        // Bodies.
        Case(name: "plain text", body: "DROP TABLE t", decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "JSON \\u escape", body: #"{"q":"\u0044ROP TABLE t"}"#, decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "JSON every letter escaped", body: #"{"q":"\u0064\u0072\u006F\u0070\u0020\u0074\u0061\u0062\u006c\u0065"}"#,
             decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "JSON short escapes", body: #"{"c":"rm\t-rf \/"}"#, decision: .hold, reasons: ["body pattern #1"]),
        Case(name: "invalid JSON still unescaped", body: #"not json \u0044ROP TABLE {"#, decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "form percent", body: "q=DROP%20TABLE+t", decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "form plus", body: "q=drop+table", decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "double percent", body: "q=DROP%2520TABLE", decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "percent inside JSON", body: #"{"q":"DROP%09TABLE"}"#, decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "percent-encoded JSON escape", body: "q=%5Cu0044ROP%20TABLE", decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "JSON inside JSON", body: #"{"outer":"{\"q\":\"\\u0044ROP TABLE\"}"}"#, decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "JSON 10 levels deep", body: nested(#"{"q":"\u0044ROP TABLE"}"#, levels: 10), decision: .hold,
             reasons: ["body pattern #0"]),
        Case(name: "fullwidth letters (NFKC)", body: #"{"q":"ＤＲＯＰ　ＴＡＢＬＥ"}"#, decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "zero-width space inside the word", body: "{\"q\":\"DR\u{200B}OP TA\u{00AD}BLE\"}", decision: .hold,
             reasons: ["body pattern #0"]),
        Case(name: "escaped zero-width joiner", body: #"{"q":"D\u200DROP TABLE"}"#, decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "mathematical bold letters", body: "{\"q\":\"𝐃𝐑𝐎𝐏 table\"}", decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "escaped fullwidth letters", body: #"{"q":"\uFF24\uFF32\uFF2F\uFF30 TABLE"}"#, decision: .hold,
             reasons: ["body pattern #0"]),
        Case(name: "percent-encoded fullwidth", body: "q=%EF%BC%A4ROP+TABLE", decision: .hold, reasons: ["body pattern #0"]),
        Case(name: "surrogate pair before the text", body: #"{"q":"\uD83D\uDE00 DROP\u0020TABLE"}"#, decision: .hold,
             reasons: ["body pattern #0"]),
        Case(name: "both patterns", body: #"{"a":"\u0044ROP TABLE","b":"rm%20-rf%20/"}"#, decision: .hold,
             reasons: ["body pattern #0", "body pattern #1"]),
        Case(name: "lone surrogate, nothing to hold", body: #"{"q":"\uD800 drop the table"}"#, decision: .allow),
        Case(name: "escapes that spell nothing", body: #"{"q":"a\\b \"c\" 100%25 x+y"}"#, decision: .allow),
        Case(name: "JSON 12 levels deep fails closed", body: nested(#"{"q":"\u0044ROP TABLE"}"#, levels: 12), decision: .block,
             rules: ["undecodable-body"]),
        Case(name: "percent-encoding 12 times fails closed", body: "DROP%" + String(repeating: "25", count: 11) + "20TABLE",
             decision: .block, rules: ["undecodable-body"]),
        // Paths: canonical ones are matched case-insensitively and without matrix parameters.
        Case(name: "path", path: "/admin/users", decision: .hold, reasons: ["path /admin/*"]),
        Case(name: "path in upper case", path: "/ADMIN/users", decision: .hold, reasons: ["path /admin/*"]),
        Case(name: "path ** in mixed case", path: "/Ops/eu/web/ReStart", decision: .hold, reasons: ["path /ops/**/restart"]),
        Case(name: "matrix parameter on a segment", path: "/admin;jsessionid=1/users", decision: .hold, reasons: ["path /admin/*"]),
        Case(name: "matrix parameters on every segment", path: "/admin;a=1/users;b=2", decision: .hold, reasons: ["path /admin/*"]),
        Case(name: "encoded matrix parameter", path: "/admin%3Bv=1/users", decision: .hold, reasons: ["path /admin/*"]),
        Case(name: "percent-encoded reserved character in a segment", path: "/adm%40in/users", decision: .allow),
        Case(name: "glob still does not cross segments", path: "/admin/users/1", decision: .allow),
        Case(name: "other path", path: "/administrators/x/y", decision: .allow),
        // Paths that are not canonical: the Ingress refuses them; the Inspector blocks them too.
        Case(name: "percent-encoded unreserved letter", path: "/%61dmin/users", decision: .block, rules: ["non-canonical-path"]),
        Case(name: "double slash", path: "//admin/users", decision: .block, rules: ["non-canonical-path"]),
        Case(name: "dot segment", path: "/./admin/users", decision: .block, rules: ["non-canonical-path"]),
        Case(name: "dot-dot segment", path: "/x/../admin/users", decision: .block, rules: ["non-canonical-path"]),
        Case(name: "encoded slash", path: "/admin%2Fusers", decision: .block, rules: ["non-canonical-path"]),
        Case(name: "lower-case escape", path: "/admin/a%3fb", decision: .block, rules: ["non-canonical-path"]),
        Case(name: "fullwidth look-alike", path: "/ａdmin/users", decision: .block, rules: ["non-canonical-path"]),
        Case(name: "dot-dot behind a matrix parameter", path: "/x/..;y/admin/users", decision: .block, rules: ["non-canonical-path"]),
        Case(name: "climbs above the root", path: "/../admin/users", decision: .block, rules: ["non-canonical-path"]),
        Case(name: "empty path", path: "", decision: .block, rules: ["non-canonical-path"]),
    ]

    @Test(arguments: cases)
    func verdict(_ c: Case) {
        let (policy, rules) = Self.rules()
        let v = PolicyEvaluator.verdict(
            for: PolicyInput(findings: [], method: "POST", path: c.path, groups: ["ci"], body: Data(c.body.utf8)),
            policy: policy, hold: rules, holdSupported: true)
        #expect(v.decision == c.decision)
        #expect(v.rules == c.rules)
        if c.decision == .hold { #expect(v.reasons == c.reasons) }
        // Reasons never repeat request content.
        for reason in v.reasons where !c.body.isEmpty { #expect(!reason.contains(c.body)) }
    }

    @Test("a body that cannot be decoded is blocked before anything else is matched")
    func undecodableBody() {
        let (policy, rules) = Self.rules()
        let v = PolicyEvaluator.verdict(
            for: PolicyInput(findings: [], method: "DELETE", path: "/admin/x", groups: [], body: Data(),
                             undecodableBody: "it does not decode as br"),
            policy: policy, hold: rules, holdSupported: true)
        #expect(v.decision == .block)
        #expect(v.rules == ["undecodable-body"])
        #expect(v.reasons == ["the body cannot be decoded: it does not decode as br"])
    }

    @Test("the delivered (masked) path is matched too")
    func deliveredPath() {
        let (policy, rules) = Self.rules()
        let v = PolicyEvaluator.verdict(
            for: PolicyInput(findings: [], method: "GET", path: "/v1/x", groups: [], deliveredPath: "/admin/x"),
            policy: policy, hold: rules, holdSupported: true)
        #expect(v.decision == .hold)
        #expect(v.reasons == ["path /admin/*"])
    }

    struct ViewCase: Sendable, CustomTestStringConvertible {
        var name: String
        var body: String
        var contains: String
        var testDescription: String { name }
    }

    static let viewCases: [ViewCase] = [
        ViewCase(name: "unicode escape", body: #"\u0041"#, contains: "A"),
        ViewCase(name: "surrogate pair", body: #"\uD83D\uDE00"#, contains: "😀"),
        ViewCase(name: "lone surrogate becomes U+FFFD", body: #"x\uDC00y"#, contains: "x\u{FFFD}y"),
        ViewCase(name: "short escapes", body: #"a\"b\\c\/d\te"#, contains: "a\"b\\c/d\te"),
        ViewCase(name: "unknown escape kept", body: #"\q\u12"#, contains: #"\q\u12"#),
        ViewCase(name: "percent and plus", body: "a%41+b", contains: "aA b"),
        ViewCase(name: "broken percent kept", body: "100%zz%4", contains: "100%zz%4"),
        ViewCase(name: "NFKC ligature", body: "ﬁle", contains: "file"),
        ViewCase(name: "percent then JSON", body: "%5Cu0041", contains: "A"),
    ]

    @Test(arguments: viewCases)
    func views(_ c: ViewCase) throws {
        let views = try BodyViews.views(of: Array(c.body.utf8))
        #expect(views.first == c.body)
        #expect(views.contains { $0.utf8.elementsEqual(c.contains.utf8) })
        #expect(Set(views.map { Array($0.utf8) }).count == views.count, "views are distinct")
    }

    struct BoundCase: Sendable, CustomTestStringConvertible {
        var name: String
        var body: String
        var maxLevels = 10
        var maxViews = 64
        var budget = 1 << 20
        var builds: Bool
        var testDescription: String { name }
    }

    static let boundCases: [BoundCase] = [
        BoundCase(name: "three readings and their mixes fit eight views", body: #"\u0041 %41 ｆ"#, maxViews: 8, builds: true),
        BoundCase(name: "three readings and their mixes exceed four views", body: #"\u0041 %41 ｆ"#, maxViews: 4, builds: false),
        BoundCase(name: "views within the byte budget", body: "a+b", budget: 6, builds: true),
        BoundCase(name: "views over the byte budget", body: "a+b", budget: 5, builds: false),
        BoundCase(name: "two rounds allowed, fixpoint after two", body: "%2541", maxLevels: 2, builds: true),
        BoundCase(name: "two rounds allowed, a third still changes", body: "%252541", maxLevels: 2, builds: false),
    ]

    @Test(arguments: boundCases)
    func bounds(_ c: BoundCase) {
        let result = Result { () throws(BodyViews.Unbuildable) -> [String] in
            try BodyViews.views(of: Array(c.body.utf8), maxLevels: c.maxLevels, maxViews: c.maxViews, budget: c.budget)
        }
        switch result {
        case .success(let views): #expect(c.builds, "built \(views.count) views")
        case .failure(let error): #expect(!c.builds, "\(error)")
        }
    }
}
