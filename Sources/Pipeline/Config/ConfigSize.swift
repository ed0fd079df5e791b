import Foundation

/// A byte size written as a whole number of bytes (`1048576`) or a number with a unit: `B`,
/// decimal `KB`/`MB`/`GB` (1000) or binary `KiB`/`MiB`/`GiB` (1024), e.g. `64KiB`, `1MiB`,
/// `1.5MB`. Units are case-sensitive, as written here (`mb` is refused, not guessed).
///
/// Guarantees: `bytes` is never negative; a fraction is accepted only when it comes to whole
/// bytes (`1.5KiB` = 1536, `0.5B` is refused); a size past `Int.max` bytes is refused, never
/// wrapped. Encodes as the bare number of bytes, which decodes to the same size.
public struct ConfigSize: Codable, Sendable, Hashable, CustomStringConvertible {
    public let bytes: Int

    public init(bytes: Int) { self.bytes = bytes }

    /// Units by suffix, longest first so `MiB` is not read as `B`.
    static let units: [(suffix: String, scale: Int)] = [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1),
    ]

    static let help = "a whole number of bytes, or a number with a unit: B, KB, MB, GB (1000), KiB, MiB, GiB (1024); e.g. 65536, 64KiB, 1MiB"

    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        var number = Substring(t)
        var scale = 1
        if let unit = Self.units.first(where: { t.hasSuffix($0.suffix) }) {
            number = t.dropLast(unit.suffix.count)
            scale = unit.scale
        }
        number = Substring(number.trimmingCharacters(in: .whitespaces))
        let negative = number.hasPrefix("-")
        if negative { number = number.dropFirst() }
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { ("0"..."9").contains($0) } }) else {
            throw ConfigError(path: "", message: "\"\(text)\" is not a size (\(Self.help))")
        }
        guard !negative else { throw ConfigError(path: "", message: "\"\(text)\" must not be negative") }
        // Exact arithmetic on the digits: whole * scale + fraction * scale / 10^digits.
        let tooLarge = ConfigError(path: "", message: "\"\(text)\" is too large (at most \(Int.max) bytes)")
        guard let wholeValue = Int(whole) else { throw tooLarge }
        var (total, overflow) = wholeValue.multipliedReportingOverflow(by: scale)
        guard !overflow else { throw tooLarge }
        if parts.count == 2 {
            var digits = String(parts[1])
            while digits.hasSuffix("0") { digits.removeLast() }
            guard digits.count <= 18, let fraction = Int(digits.isEmpty ? "0" : digits) else {
                throw ConfigError(path: "", message: "\"\(text)\" has too many decimal places")
            }
            var power = 1
            for _ in digits { power *= 10 }
            let (scaled, lost) = fraction.multipliedReportingOverflow(by: scale)
            guard !lost else { throw ConfigError(path: "", message: "\"\(text)\" has too many decimal places") }
            guard scaled % power == 0 else { throw ConfigError(path: "", message: "\"\(text)\" is not a whole number of bytes") }
            (total, overflow) = total.addingReportingOverflow(scaled / power)
            guard !overflow else { throw tooLarge }
        }
        bytes = total
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text: String
        if let s = try? c.decode(String.self) {
            text = s
        } else if let n = try? c.decode(Int.self) {
            text = "\(n)"
        } else if let d = try? c.decode(Double.self) {
            text = "\(d)"
        } else {
            let found = ConfigError.found(at: decoder, showingScalars: false).map { ", found \($0)" } ?? ""
            throw ConfigError(path: decoder.codingPath.configPath, message: "expected a size (\(Self.help))\(found)")
        }
        do { try self.init(parsing: text) } catch let e as ConfigError {
            throw ConfigError(path: decoder.codingPath.configPath, message: e.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(bytes)
    }

    public var description: String { "\(bytes)" }
}
