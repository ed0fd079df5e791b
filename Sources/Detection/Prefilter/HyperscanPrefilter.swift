import CHyperscan
import Foundation

/// The Hyperscan first pass: one block-mode database holding every keyword as a
/// caseless literal, reported by end offset only (no start-of-match tracking). Structural
/// triggers (escapes, `%XX`, base64 runs, digit regions, IBAN starts) come from
/// `StructuralScanner`, shared with the fallback: bounded-repeat regexes such as
/// `[A-Za-z0-9+/_-]{16}` report at every byte of a long run and made Hyperscan ~10x
/// slower than the literal set alone on JSON full of UUIDs and hex digests.
///
/// Thread-safe: the database is immutable and each scan uses its own scratch (`makeSlot`; the
/// engine keeps slots in its `ScratchPool`, so one is taken per scan, not per decoded string).
///
/// `@unchecked Sendable`: the database pointers are never mutated after init and
/// Hyperscan documents concurrent `hs_scan` on one database as safe with distinct
/// scratch spaces.
final class HyperscanPrefilter: @unchecked Sendable {
    /// A scratch space (sized for both databases) plus its event buffer (grown by the C
    /// callback; `trim` frees it when large).
    final class Slot {
        let scratch: OpaquePointer
        var events = chs_events(ids: nil, ends: nil, count: 0, capacity: 0, overflow: 0)
        init(_ s: OpaquePointer) { scratch = s }
        deinit { chs_events_free(&events); chs_free_scratch(scratch) }

        /// Frees the event buffer when it grew past 64 Ki events (a pooled slot does not pin it).
        func trim() {
            if events.capacity > 1 << 16 { chs_events_free(&events) }
        }
    }

    /// All keywords (PII scans) but the one-byte ones moved to the structural pass.
    private let dbAll: OpaquePointer
    /// Keywords of at least one credential rule (credential-only scans); nil when there are none.
    private let dbCred: OpaquePointer?
    /// One-byte keywords found by `StructuralScanner` instead (PII scans / credential-only scans).
    private let singlesAll: SingleBytes
    private let singlesCred: SingleBytes
    private let keywordCount: UInt32
    private let minBase64: Int

    static var available: Bool { chs_available() != 0 }

    private static func compile(_ keywords: [[UInt8]], ids wanted: [Int]) -> OpaquePointer? {
        guard !wanted.isEmpty else { return nil }
        var pats: [String] = []
        var flags: [UInt32] = []
        var ids: [UInt32] = []
        for i in wanted {
            pats.append(keywords[i].map { isAlnum($0) ? String(UnicodeScalar($0)) : String(format: "\\x%02x", $0) }.joined())
            flags.append(1) // HS_FLAG_CASELESS
            ids.append(UInt32(i))
        }
        var errBuf = [CChar](repeating: 0, count: 512)
        var errIndex: Int32 = -1
        let cStrings = pats.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        let ptrs: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        return ptrs.withUnsafeBufferPointer { pp in
            chs_compile(pp.baseAddress, flags, ids, UInt32(pats.count), &errBuf, errBuf.count, &errIndex)
        }
    }

    /// Returns nil when Hyperscan is unavailable or a database does not compile.
    /// `credential[k]`: keyword k triggers at least one credential rule (else only PII rules),
    /// so credential-only scans (`pii: false`) need not look for it.
    init?(keywords: [[UInt8]], credential: [Bool], minBase64: Int) {
        guard Self.available, !keywords.isEmpty, credential.count == keywords.count else { return nil }
        keywordCount = UInt32(keywords.count)
        self.minBase64 = minBase64
        // One-byte keywords (`@`) are the slowest kind of Hyperscan literal; the structural pass
        // finds them with one more compare per 16/32 bytes. Letters need both cases.
        var singles: [(UInt8, UInt32, Bool)] = []
        for (i, kw) in keywords.enumerated() where kw.count == 1 && kw[0] != 0 {
            let c = kw[0], lo = lowerASCII(c)
            singles.append((lo, UInt32(i), credential[i]))
            if lo >= 97 && lo <= 122 { singles.append((lo - 32, UInt32(i), credential[i])) }
        }
        var moved = Set<Int>()
        if let all = SingleBytes(singles.map { ($0.0, $0.1) }),
           let cred = SingleBytes(singles.filter { $0.2 }.map { ($0.0, $0.1) }) {
            singlesAll = all
            singlesCred = cred
            moved = Set(singles.map { Int($0.1) })
        } else {
            singlesAll = SingleBytes()
            singlesCred = SingleBytes()
        }
        let rest = keywords.indices.filter { !moved.contains($0) }
        guard let a = Self.compile(keywords, ids: rest) else { return nil }
        dbAll = a
        let credIds = rest.filter { credential[$0] }
        if credIds.isEmpty {
            dbCred = nil
        } else if let c = Self.compile(keywords, ids: credIds) {
            dbCred = c
        } else {
            chs_free_database(a)
            return nil
        }
    }

    deinit {
        chs_free_database(dbAll)
        if let dbCred { chs_free_database(dbCred) }
    }

    /// A new scratch space for both databases (nil when Hyperscan cannot allocate one: the
    /// caller then uses the fallback). Never use one slot from two tasks at once.
    func makeSlot() -> Slot? {
        guard var s = chs_alloc_scratch(dbAll) else { return nil }
        if let dbCred {
            guard let g = chs_grow_scratch(dbCred, s) else { chs_free_scratch(s); return nil }  // s is still valid on failure
            s = g
        }
        return Slot(s)
    }

    /// Appends events, using `slot` (from `makeSlot`) for Hyperscan's scratch and event buffer;
    /// returns false when the scan failed (the caller then uses the fallback).
    /// Credential-only scans (`pii: false`) may omit events of keywords that only PII rules use.
    func events(_ p: UnsafeBufferPointer<UInt8>, pii: Bool, slot: Slot, into ev: inout [Event], strings: inout [JSONString]) -> Bool {
        guard p.count > 0 else { return true }
        if let db = pii ? dbAll : dbCred {
            slot.events.count = 0
            slot.events.overflow = 0
            let rc = chs_scan(db, slot.scratch, p.baseAddress, p.count, nil, 0, &slot.events)
            guard rc == 0 else { return false }
            let n = slot.events.count
            ev.reserveCapacity(ev.count + n + 16)
            if n > 0, let ids = slot.events.ids, let ends = slot.events.ends {
                for i in 0..<n { ev.append(Event(kind: ids[i], pos: Int(ends[i]))) }
            }
        }
        StructuralScanner.events(p, keywordCount: keywordCount, minBase64: minBase64, pii: pii,
                                 singles: pii ? singlesAll : singlesCred, into: &ev, strings: &strings)
        return true
    }
}
