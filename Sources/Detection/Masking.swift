/// Masking: replaces finding spans with `[MASKED:<rule-id>:<fingerprint>]`. Pure.
enum Masking {
    static func apply(_ bytes: [UInt8], findings: [Finding]) -> [UInt8] {
        let valid = findings.filter { $0.start >= 0 && $0.end <= bytes.count && $0.start < $0.end }
            .sorted { $0.start != $1.start ? $0.start < $1.start : $0.end > $1.end }
        guard !valid.isEmpty else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + valid.count * 40)
        var pos = 0
        var i = 0
        while i < valid.count {
            let f = valid[i]
            var end = f.end
            var j = i + 1
            while j < valid.count && valid[j].start < end { end = max(end, valid[j].end); j += 1 }
            if f.start > pos { out += bytes[pos..<f.start] }
            out += Array(f.maskText.utf8)
            pos = max(pos, end)
            i = j
        }
        if pos < bytes.count { out += bytes[pos...] }
        return out
    }
}
