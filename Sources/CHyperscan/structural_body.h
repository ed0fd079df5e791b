// The chs_structural scan loop, included by structural.c once per instruction-set variant
// (SFX names the variant's helpers, SATTR its target attribute). Not a public header.

/// Class mask of p[pos ..< pos+64]; bytes at or past n count as outside every class.
static inline SATTR __attribute__((always_inline)) uint64_t SFX(class_at)(const uint8_t *p, size_t n, size_t pos, int cls) {
    if (n - pos >= 64) return SFX(class64)(p + pos, cls);
    uint8_t tmp[64];
    memset(tmp, 0, sizeof tmp);
    memcpy(tmp, p + pos, n - pos);
    return SFX(class64)(tmp, cls);
}

static inline SATTR __attribute__((always_inline)) masks_t SFX(masks_at)(const uint8_t *p, size_t n, size_t pos, uint8_t s0, int pii) {
    if (pos >= n) { masks_t z = { 0, 0, 0, 0, 0, 0, 0 }; return z; }
    if (n - pos >= 64) return SFX(masks64)(p + pos, s0, pii);
    uint8_t tmp[64];
    memset(tmp, 0, sizeof tmp);
    memcpy(tmp, p + pos, n - pos);
    return SFX(masks64)(tmp, s0, pii);
}

/// Mask of bytes equal to c in p[pos ..< min(pos+64, n)] (c != 0).
static inline SATTR __attribute__((always_inline)) uint64_t SFX(eq_at)(const uint8_t *p, size_t n, size_t pos, uint8_t c) {
    if (n - pos >= 64) return SFX(masks64)(p + pos, c, 0).s;
    uint8_t tmp[64];
    memset(tmp, 0, sizeof tmp);
    memcpy(tmp, p + pos, n - pos);
    return SFX(masks64)(tmp, c, 0).s;
}

/// True when every byte of p[s ..< e] is a hex digit or `-` (e <= n).
static inline SATTR int SFX(hex_only)(const uint8_t *p, size_t n, size_t s, size_t e) {
    for (size_t pos = s; pos < e; pos += 64) {
        uint64_t m = ~SFX(class_at)(p, n, pos, C_HEX);
        if (e - pos < 64) m &= ((uint64_t)1 << (e - pos)) - 1;
        if (m) return 0;
    }
    return 1;
}

/// End of the run of class bytes starting at pos.
static inline SATTR size_t SFX(run_end)(const uint8_t *p, size_t n, size_t pos, int cls) {
    while (pos < n) {
        uint64_t m = ~SFX(class_at)(p, n, pos, cls);
        if (m) return pos + (size_t)__builtin_ctzll(m);
        pos += 64;
    }
    return n;
}

/// The blocks at from, from + 64, ... below `to` (from a multiple of 64); `st` carries the run
/// ends (`done`, `done_num`) from the blocks before `from`.
static SATTR int SFX(structural)(const uint8_t *p, size_t n, size_t from, size_t to, uint32_t kind_base, size_t min_b64, int pii,
                                 int backslashes, const uint8_t *single_bytes, const uint32_t *single_kinds, size_t n_single,
                                 chs_structural_state *st, chs_event_buf *buf) {
    size_t w = min_b64 < 1 ? 1 : min_b64;
    unsigned wf = w > 64 ? 64 : (unsigned)w;
    size_t done = st->done, done_num = st->done_num;
    uint8_t s0 = n_single ? single_bytes[0] : 0;
    masks_t cur = SFX(masks_at)(p, n, from, s0, pii);
    if (to > n) to = n;
    uint64_t any_backslash = 0;
    for (size_t o = from; o < to; o += 64) {
        any_backslash |= cur.b;
        masks_t nxt = SFX(masks_at)(p, n, o + 64, s0, pii);
        // base64 runs of at least w bytes: candidates are run starts (runs are disjoint).
        uint64_t x = (wf == 16 ? runs_of(cur.a, nxt.a, 16) : runs_of(cur.a, nxt.a, wf)) & above(done, o); // 16: default, constant shifts
        while (x) {
            size_t s = o + (size_t)__builtin_ctzll(x);
            // The run end is usually inside this block or the next: read it off the masks.
            size_t e, rel = s - o;
            uint64_t z0 = ~(cur.a >> rel) & (rel ? ~(uint64_t)0 >> rel : ~(uint64_t)0);
            uint64_t z1 = ~nxt.a;
            if (z0) e = s + (size_t)__builtin_ctzll(z0);
            else if (z1) e = o + 64 + (size_t)__builtin_ctzll(z1);
            else e = SFX(run_end)(p, n, o + 128, C_B64);
            // Runs of only hex digits and `-` (digests, UUIDs, numbers) are never decoded: no event.
            if (e - s >= w && !SFX(hex_only)(p, n, s, e)) PUSH(K_B64, e);
            done = e;
            x &= above(done, o);
        }
        if (backslashes) for (uint64_t b = cur.b; b; b &= b - 1) PUSH(K_BACK, o + (size_t)__builtin_ctzll(b) + 1);
        for (uint64_t q = cur.p; q; q &= q - 1) {
            size_t i = o + (size_t)__builtin_ctzll(q);
            if (i + 2 < n && is_hex(p[i + 1]) && is_hex(p[i + 2])) PUSH(K_PCT, i + 3);
        }
        if (n_single) {
            // One-byte keywords (e.g. `@`): keyword events at end offset i + 1.
            for (uint64_t m = cur.s; m; m &= m - 1) PUSHK(single_kinds[0], o + (size_t)__builtin_ctzll(m) + 1);
            for (size_t j = 1; j < n_single; j++)
                for (uint64_t m = SFX(eq_at)(p, n, o, single_bytes[j]); m; m &= m - 1)
                    PUSHK(single_kinds[j], o + (size_t)__builtin_ctzll(m) + 1);
        }
        if (pii && (cur.d | nxt.d)) {
            // Numeric regions: maximal runs of [0-9 ()+.-] with >= 7 digits hold >= 7 region
            // bytes; every such run has a 7-byte stretch starting in a chunk that holds a
            // digit or precedes one, so other chunks are skipped (the start is walked back to).
            uint64_t y = runs_of(cur.n, nxt.n, 7) & above(done_num, o);
            while (y) {
                size_t s = o + (size_t)__builtin_ctzll(y);
                while (s > done_num && is_num(p[s - 1])) s--;
                size_t e = s, digits = 0, last = 0;
                for (;;) {
                    uint64_t nm = e < n ? SFX(class_at)(p, n, e, C_NUM) : 0;
                    uint64_t dm = e < n ? SFX(class_at)(p, n, e, C_DIGIT) : 0;
                    uint64_t stop = ~nm;
                    unsigned len = stop ? (unsigned)__builtin_ctzll(stop) : 64;
                    uint64_t in = len == 64 ? ~(uint64_t)0 : (((uint64_t)1 << len) - 1);
                    uint64_t dd = dm & in;
                    if (dd) { digits += (size_t)__builtin_popcountll(dd); last = e + 64 - (size_t)__builtin_clzll(dd); }
                    e += len;
                    if (len < 64 || e >= n) break;
                }
                if (e > n) e = n;
                if (digits >= 7) {
                    if (e - s > 256) {
                        for (size_t a = s + 128; a + 1 < last; a += 128) PUSH(K_NUM, a + 1);
                    }
                    PUSH(K_NUM, last);
                }
                done_num = e;
                y &= above(done_num, o);
            }
            if (cur.d) {
                // IBAN start: two upper-case letters, then two digits (event after the second digit).
                uint64_t u = cur.u;
                uint64_t u1 = o >= 1 && is_upper(p[o - 1]), u2 = o >= 2 && is_upper(p[o - 2]);
                uint64_t z = ((u << 2) | (u1 << 1) | u2) & ((u << 1) | u1) & cur.d & ((cur.d >> 1) | (nxt.d << 63));
                for (; z; z &= z - 1) PUSH(K_IBAN, o + (size_t)__builtin_ctzll(z) + 2);
            }
        }
        cur = nxt;
    }
    st->done = done;
    st->done_num = done_num;
    // No backslash in [from, to): the JSON-string pass has nothing to look for there.
    if (!any_backslash && st->json_next < to) st->json_next = to;
    return 0;
}
