import Testing
@testable import Codings

@Suite struct ContentCodingsParseTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var values: [String]
        var expected: Result<[ContentCoding], ContentCodingError>
        var testDescription: String { values.debugDescription }
    }

    static let rows: [Row] = [
        Row(values: [], expected: .success([])),
        Row(values: [""], expected: .success([])),
        Row(values: ["identity"], expected: .success([])),
        Row(values: ["IDENTITY"], expected: .success([])),
        Row(values: ["gzip"], expected: .success([.gzip])),
        Row(values: ["GZIP"], expected: .success([.gzip])),
        Row(values: ["x-gzip"], expected: .success([.gzip])),
        Row(values: ["X-Gzip"], expected: .success([.gzip])),
        Row(values: ["deflate"], expected: .success([.deflate])),
        Row(values: ["br"], expected: .success([.br])),
        Row(values: ["zstd"], expected: .success([.zstd])),
        Row(values: ["gzip, gzip"], expected: .success([.gzip, .gzip])),
        Row(values: ["gzip,gzip"], expected: .success([.gzip, .gzip])),
        Row(values: [" gzip ,\tbr "], expected: .success([.gzip, .br])),
        Row(values: ["gzip", "br"], expected: .success([.gzip, .br])),
        Row(values: ["deflate, identity, zstd"], expected: .success([.deflate, .zstd])),
        Row(values: ["gzip,,br"], expected: .success([.gzip, .br])),
        Row(values: ["x-custom"], expected: .failure(.unsupported("x-custom"))),
        Row(values: ["gzip, x-custom"], expected: .failure(.unsupported("x-custom"))),
        Row(values: ["gzip", "compress"], expected: .failure(.unsupported("compress"))),
        Row(values: ["gzip;q=1"], expected: .failure(.unsupported("gzip;q=1"))),
        Row(values: ["g zip"], expected: .failure(.unsupported("g zip"))),
        Row(values: ["*"], expected: .failure(.unsupported("*"))),
        Row(values: [Array(repeating: "gzip", count: 8).joined(separator: ", ")], expected: .success(Array(repeating: .gzip, count: 8))),
        Row(values: [Array(repeating: "gzip", count: 9).joined(separator: ", ")],
            expected: .failure(.unsupported("more than 8 content-coding layers"))),
        Row(values: Array(repeating: "br", count: 9), expected: .failure(.unsupported("more than 8 content-coding layers"))),
        Row(values: [String(repeating: "identity,", count: 50)], expected: .success([])),
    ]

    @Test(arguments: rows)
    func parse(_ row: Row) {
        let got = Result { () throws(ContentCodingError) -> [ContentCoding] in try ContentCodings.parse(row.values) }
        #expect(got == row.expected)
    }

    @Test func unsupportedNameIsBounded() {
        let long = "x" + String(repeating: "y", count: 5000)
        #expect(throws: ContentCodingError.unsupported(String(long.prefix(64)))) { try ContentCodings.parse([long]) }
    }

    @Test func errorsDescribeThemselves() {
        #expect(ContentCodingError.tooLarge(limit: 10).description.contains("10"))
        #expect(ContentCodingError.corrupt(coding: "br", reason: "truncated stream").description.contains("br"))
        #expect(ContentCodingError.unsupported("x-custom").description.contains("x-custom"))
    }
}
