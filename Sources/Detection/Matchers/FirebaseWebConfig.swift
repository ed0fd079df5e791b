/// A Firebase web-app config (`const firebaseConfig = { apiKey: …, authDomain: …, … }`): its
/// `apiKey` is public by design (shipped to every browser; access is governed by security rules).
enum FirebaseWebConfig {
    static let markers: [[UInt8]] = ["authdomain", "messagingsenderid", ".firebaseapp.com"].map { Array($0.utf8) }
    static let reach = 400
    /// Google API keys start with it.
    static let keyPrefix: [UInt8] = Array("AIza".utf8)

    /// True when two of the config's other fields are within `reach` bytes of `p[start..<end]`.
    static func surrounds(_ p: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        let lo = max(0, start - reach), hi = min(p.count, end + reach)
        var found = 0
        for m in markers where Scan.findCI(p, m, from: lo, to: hi) != nil { found += 1 }
        return found >= 2
    }
}
