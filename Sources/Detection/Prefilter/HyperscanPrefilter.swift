import CHyperscan
import Foundation

/// The Hyperscan first pass: one block-mode database holding every keyword
/// (caseless literal) and the structural triggers, each reported by end offset only
/// (no start-of-match tracking). Thread-safe: the database is immutable and each
/// scan borrows its own scratch from a pool.
///
/// `@unchecked Sendable`: the database pointer is never mutated after init and
/// Hyperscan documents concurrent `hs_scan` on one database as safe with distinct
/// scratch spaces; the scratch pool is guarded by `lock`.
final class HyperscanPrefilter: @unchecked Sendable {
    private let db: OpaquePointer
    private let collapse: [UInt8]
    private let lock = NSLock()
    private var pool: [OpaquePointer] = []

    static var available: Bool { chs_available() != 0 }

    /// Returns nil when Hyperscan is unavailable or the database does not compile.
    init?(keywords: [[UInt8]], minBase64: Int) {
        guard Self.available else { return nil }
        let K = UInt32(keywords.count)
        var pats: [String] = []
        var flags: [UInt32] = []
        var ids: [UInt32] = []
        for (i, kw) in keywords.enumerated() {
            pats.append(kw.map { isAlnum($0) ? String(UnicodeScalar($0)) : String(format: "\\x%02x", $0) }.joined())
            flags.append(1) // HS_FLAG_CASELESS
            ids.append(UInt32(i))
        }
        func add(_ p: String, _ t: Trigger) { pats.append(p); flags.append(0); ids.append(K + t.rawValue) }
        add("\\\\", .backslash)
        add("%[0-9A-Fa-f]{2}", .percent)
        add("[A-Za-z0-9+/_\\-]{\(minBase64)}", .base64)
        add("[0-9]{4}[ \\-]?[0-9]{4}", .numeric)
        add("[0-9]{3}[ \\-][0-9]{2}[ \\-][0-9]{4}", .numeric)
        add("\\+[0-9]", .numeric)
        add("\\([0-9]{3}\\)", .numeric)
        add("[0-9]{3}[\\-.][0-9]{3}[\\-.][0-9]{4}", .numeric)
        add("[A-Z]{2}[0-9]{2}", .iban)
        var errBuf = [CChar](repeating: 0, count: 512)
        var errIndex: Int32 = -1
        let cStrings = pats.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        let ptrs: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        let compiled = ptrs.withUnsafeBufferPointer { pp in
            chs_compile(pp.baseAddress, flags, ids, UInt32(pats.count), &errBuf, errBuf.count, &errIndex)
        }
        guard let compiled else { return nil }
        db = compiled
        var bits = [UInt8](repeating: 0, count: Int(K) / 8 + 2)
        for t in [Trigger.base64, .numeric, .iban] {
            let id = Int(K + t.rawValue)
            bits[id >> 3] |= UInt8(1 << (id & 7))
        }
        collapse = bits
    }

    deinit {
        for s in pool { chs_free_scratch(s) }
        chs_free_database(db)
    }

    private func acquire() -> OpaquePointer? {
        lock.lock()
        if let s = pool.popLast() { lock.unlock(); return s }
        lock.unlock()
        return chs_alloc_scratch(db)
    }

    private func release(_ s: OpaquePointer) {
        lock.lock()
        if pool.count < 64 { pool.append(s); lock.unlock() } else { lock.unlock(); chs_free_scratch(s) }
    }

    /// Appends events; returns false when the scan failed (the caller then uses the fallback).
    func events(_ p: UnsafeBufferPointer<UInt8>, into ev: inout [Event]) -> Bool {
        guard p.count > 0 else { return true }
        guard let scratch = acquire() else { return false }
        defer { release(scratch) }
        var e = chs_events(ids: nil, ends: nil, count: 0, capacity: 0, overflow: 0)
        defer { chs_events_free(&e) }
        let rc = collapse.withUnsafeBufferPointer { cb in
            chs_scan(db, scratch, p.baseAddress, p.count, cb.baseAddress, cb.count * 8, &e)
        }
        guard rc == 0 else { return false }
        ev.reserveCapacity(ev.count + e.count)
        for i in 0..<e.count {
            ev.append(Event(kind: e.ids[i], pos: Int(e.ends[i])))
        }
        return true
    }
}
