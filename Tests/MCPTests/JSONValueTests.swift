import MCP
import Testing

struct JSONValueTests {
    @Test(arguments: [
        ("{\"a\":1,\"a\":2}", "duplicate member name"),
        ("{\"name\":\"x\",\"n\\u0061me\":\"y\"}", "duplicate member name"),
        ("{\"a\":1,}", "expected a member name"),
        ("[1,]", "unexpected character"),
        ("{\"a\":01}", "invalid number (leading zero)"),
        ("{\"a\":NaN}", "unexpected character"),
        ("{\"a\":\"\\ud800\"}", "lone surrogate escape"),
        ("{\"a\":\"\\udc00x\"}", "lone surrogate escape"),
        ("{\"a\":\"\u{01}\"}", "control character in a string"),
        ("{\"a\":\"\\x41\"}", "invalid escape"),
        ("{\"a\":1} {}", "unexpected text after the value"),
        ("// c\n{}", "unexpected character"),
        ("", "unexpected end of the document"),
        ("{\"a\":tru}", "invalid literal"),
        ("\"abc", "unterminated string"),
    ])
    func refuses(_ text: String, _ reason: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(text.utf8)) }
        do { _ = try JSONValue.parse(Array(text.utf8)) } catch { #expect(error.reason == reason, "\(text)") }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse([0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test func refusesNestingPastTheLimit() throws {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(deep.utf8)) }
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        _ = try JSONValue.parse(Array(ok.utf8))
    }

    @Test(arguments: [
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"params\":{\"b\":[1,2.5e-3,-0,true,false,null],\"a\":\"x\\\"y\\\\z\\n\"}}",
        "[]",
        "{}",
        "\"caf\u{E9} \u{1F600}\"",
        "12345678901234567890123456789",
    ])
    func serializesWhatItParsed(_ text: String) throws {
        let value = try JSONValue.parse(Array(text.utf8))
        #expect(String(decoding: value.serialized(), as: UTF8.self) == text)
    }

    @Test func decodesEscapes() throws {
        let v = try JSONValue.parse(Array("{\"n\":\"del\\u0065te_\\ud83d\\ude00\\/\"}".utf8))
        #expect(v["n"]?.stringValue == "delete_\u{1F600}/")
        #expect(String(decoding: JSONValue.string("a\u{01}b").serialized(), as: UTF8.self) == "\"a\\u0001b\"")
    }
}
