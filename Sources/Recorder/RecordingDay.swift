/// A UTC calendar day, the unit in which recordings are filed and deleted.
///
/// Pure: no clock, no calendar, no locale; the conversion is the proleptic Gregorian
/// calendar on days since 1970-01-01 (UTC).
///
/// Guarantees:
/// - `init(millis:)` is a pure function of the timestamp, so an event redelivered by the bus
///   is filed under the same day as its first copy.
/// - `name` is always `YYYY-MM-DD` (ten bytes, digits and two `-`): days before 0000-01-01 or
///   after 9999-12-31 are clamped to those, so any timestamp gives a safe directory name.
/// - `init?(name:)` accepts exactly the names `name` produces (a real date, zero-padded) and
///   nothing else, so a directory that is not a day is never taken for one.
public struct RecordingDay: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Days since 1970-01-01.
    public let daysSinceEpoch: Int64

    static let millisPerDay: Int64 = 86_400_000
    /// 0000-01-01 and 9999-12-31 in days since 1970-01-01.
    static let firstDay: Int64 = -719_528
    static let lastDay: Int64 = 2_932_896

    /// The day that holds `millis` (milliseconds since 1970-01-01T00:00:00Z), clamped to years 0...9999.
    public init(millis: Int64) {
        var days = millis / Self.millisPerDay
        if millis % Self.millisPerDay < 0 { days -= 1 }  // floor, also before 1970
        daysSinceEpoch = min(max(days, Self.firstDay), Self.lastDay)
    }

    init(daysSinceEpoch: Int64) {
        self.daysSinceEpoch = min(max(daysSinceEpoch, Self.firstDay), Self.lastDay)
    }

    /// The day named `YYYY-MM-DD`, or `nil` when `name` is anything else.
    public init?(name: String) {
        let b = Array(name.utf8)
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-") else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var n: Int64 = 0
            for i in range {
                guard b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") else { return nil }
                n = n * 10 + Int64(b[i] - UInt8(ascii: "0"))
            }
            return n
        }
        guard let y = number(0..<4), let m = number(5..<7), let d = number(8..<10), (1...12).contains(m), d >= 1 else { return nil }
        let day = RecordingDay(daysSinceEpoch: Self.days(year: y, month: m, day: d))
        guard day.name == name else { return nil }  // 2025-02-30 and the like
        self = day
    }

    /// `YYYY-MM-DD`.
    public var name: String {
        let (y, m, d) = Self.civil(days: daysSinceEpoch)
        return pad(y, 4) + "-" + pad(m, 2) + "-" + pad(d, 2)
    }

    public var description: String { name }

    /// The first millisecond of the day.
    public var startMillis: Int64 { daysSinceEpoch * Self.millisPerDay }
    /// The first millisecond after the day.
    public var endMillis: Int64 { (daysSinceEpoch + 1) * Self.millisPerDay }

    public static func < (a: RecordingDay, b: RecordingDay) -> Bool { a.daysSinceEpoch < b.daysSinceEpoch }

    private func pad(_ n: Int64, _ width: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// Year, month, day of a day count (H. Hinnant's `civil_from_days`).
    static func civil(days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// The day count of a date (H. Hinnant's `days_from_civil`); `day` may overflow its month.
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
