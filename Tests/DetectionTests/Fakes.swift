@testable import Detection

/// Deterministic generator of fake secrets in the right formats (valid checksums where
/// rules validate them). Nothing here is a real credential; literals that would look like
/// secrets are assembled from pieces so repository secret scanners stay quiet.
struct Fakes {
    var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E3779B97F4A7C15 | 1 }

    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }

    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    static let upper = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    static let lower = Array("abcdefghijklmnopqrstuvwxyz")
    static let digits = Array("0123456789")
    static let alnum = upper + lower + digits
    static let hex = Array("0123456789abcdef")
    static let b64 = alnum + Array("+/")
    static let b64url = alnum + Array("-_")

    mutating func s(_ set: [Character], _ n: Int) -> String { String((0..<n).map { _ in set[int(set.count)] }) }

    mutating func github(_ prefix: String = "gh" + "p_") -> String {
        let body = s(Fakes.alnum, 30)
        let crc = Checksums.crc32(Array(body.utf8))
        return prefix + body + String(decoding: Checksums.base62(crc), as: UTF8.self)
    }

    mutating func uuid() -> String { "\(s(Fakes.hex, 8))-\(s(Fakes.hex, 4))-4\(s(Fakes.hex, 3))-a\(s(Fakes.hex, 3))-\(s(Fakes.hex, 12))" }

    mutating func luhnCard(prefix: String, length: Int) -> String {
        var d = Array(prefix.utf8).map { Int($0 - 48) }
        while d.count < length - 1 { d.append(int(10)) }
        for check in 0..<10 {
            let cand = d + [check]
            if Checksums.luhnValid(cand.map { UInt8($0 + 48) }) { return cand.map(String.init).joined() }
        }
        return ""
    }

    mutating func iban(country: String = "DE", length: Int = 22) -> String {
        let bban = s(Fakes.digits, length - 4)
        // compute check digits: mod97 of bban + country + "00"
        var rem = 0
        for ch in (bban + country + "00").utf8 {
            if ch >= 65 { rem = (rem * 100 + Int(ch - 55)) % 97 } else { rem = (rem * 10 + Int(ch - 48)) % 97 }
        }
        let check = 98 - rem
        return country + (check < 10 ? "0\(check)" : "\(check)") + bban
    }

    mutating func ssn() -> String {
        var area = 1 + int(898); if area == 666 { area = 667 }
        let group = 1 + int(98), serial = 1 + int(9998)
        func pad(_ v: Int, _ w: Int) -> String { let t = String(v); return String(repeating: "0", count: w - t.count) + t }
        return "\(pad(area, 3))-\(pad(group, 2))-\(pad(serial, 4))"
    }

    mutating func phone() -> String {
        let area = "\(2 + int(8))\(s(Fakes.digits, 2))"
        let exch = "\(2 + int(8))\(s(Fakes.digits, 2))"
        switch int(3) {
        case 0: return "(\(area)) \(exch)-\(s(Fakes.digits, 4))"
        case 1: return "+1\(area)\(exch)\(s(Fakes.digits, 4))"
        default: return "\(area)-\(exch)-\(s(Fakes.digits, 4))"
        }
    }

    mutating func jwt() -> String {
        let header = Base64.encode(Array("{\"alg\":\"HS256\",\"typ\":\"JWT\"}".utf8), urlSafe: true, pad: false)
        let payload = Base64.encode(Array("{\"sub\":\"\(s(Fakes.digits, 8))\",\"iat\":\(1_700_000_000 + int(10_000_000))}".utf8), urlSafe: true, pad: false)
        return String(decoding: header, as: UTF8.self) + "." + String(decoding: payload, as: UTF8.self) + "." + s(Fakes.b64url, 43)
    }

    mutating func pem(_ label: String) -> String {
        var lines: [String] = []
        for _ in 0..<8 { lines.append(s(Fakes.b64, 64)) }
        return "-----BEGIN \(label)-----\n" + lines.joined(separator: "\n") + "\n-----END \(label)-----"
    }
}
