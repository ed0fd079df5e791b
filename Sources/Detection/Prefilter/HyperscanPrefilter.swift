import CHyperscan
import Foundation

/// The Hyperscan first pass: one block-mode database holding every keyword as a
/// caseless literal, reported by end offset only (no start-of-match tracking). Structural
/// triggers (escapes, `%XX`, base64 runs, digit regions, IBAN starts) come from
/// `StructuralScanner`, shared with the fallback: bounded-repeat regexes such as
/// `[A-Za-z0-9+/_-]{16}` report at every byte of a long run and made Hyperscan ~10x
/// slower than the literal set alone on JSON full of UUIDs and hex digests.
///
/// Thread-safe: the database is immutable and each scan borrows its own scratch (and
/// event buffer, reused across scans) from a pool.
///
/// `@unchecked Sendable`: the database pointer is never mutated after init and
/// Hyperscan documents concurrent `hs_scan` on one database as safe with distinct
/// scratch spaces; the pool is guarded by `lock`.
final class HyperscanPrefilter: @unchecked Sendable {
    /// A scratch space plus its event buffer (grown by the C callback, never shrunk).
    final class Slot {
        let scratch: OpaquePointer
        var events = chs_events(ids: nil, ends: nil, count: 0, capacity: 0, overflow: 0)
        init(_ s: OpaquePointer) { scratch = s }
        deinit { chs_events_free(&events); chs_free_scratch(scratch) }
    }

    private let db: OpaquePointer
    private let keywordCount: UInt32
    private let minBase64: Int
    private let lock = NSLock()
    private var pool: [Slot] = []

    static var available: Bool { chs_available() != 0 }

    /// Returns nil when Hyperscan is unavailable or the database does not compile.
    init?(keywords: [[UInt8]], minBase64: Int) {
        guard Self.available, !keywords.isEmpty else { return nil }
        keywordCount = UInt32(keywords.count)
        self.minBase64 = minBase64
        var pats: [String] = []
        var flags: [UInt32] = []
        var ids: [UInt32] = []
        for (i, kw) in keywords.enumerated() {
            pats.append(kw.map { isAlnum($0) ? String(UnicodeScalar($0)) : String(format: "\\x%02x", $0) }.joined())
            flags.append(1) // HS_FLAG_CASELESS
            ids.append(UInt32(i))
        }
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
    }

    deinit {
        pool.removeAll()
        chs_free_database(db)
    }

    private func acquire() -> Slot? {
        lock.lock()
        if let s = pool.popLast() { lock.unlock(); return s }
        lock.unlock()
        guard let s = chs_alloc_scratch(db) else { return nil }
        return Slot(s)
    }

    private func release(_ s: Slot) {
        if s.events.capacity > 1 << 16 { chs_events_free(&s.events) } // do not pin huge buffers
        lock.lock()
        if pool.count < 64 { pool.append(s) }
        lock.unlock()
    }

    /// Appends events; returns false when the scan failed (the caller then uses the fallback).
    func events(_ p: UnsafeBufferPointer<UInt8>, pii: Bool, into ev: inout [Event]) -> Bool {
        guard p.count > 0 else { return true }
        guard let slot = acquire() else { return false }
        defer { release(slot) }
        slot.events.count = 0
        slot.events.overflow = 0
        let rc = chs_scan(db, slot.scratch, p.baseAddress, p.count, nil, 0, &slot.events)
        guard rc == 0 else { return false }
        let n = slot.events.count
        ev.reserveCapacity(ev.count + n + 16)
        if n > 0, let ids = slot.events.ids, let ends = slot.events.ends {
            for i in 0..<n { ev.append(Event(kind: ids[i], pos: Int(ends[i]))) }
        }
        StructuralScanner.events(p, keywordCount: keywordCount, minBase64: minBase64, pii: pii, into: &ev)
        return true
    }
}
