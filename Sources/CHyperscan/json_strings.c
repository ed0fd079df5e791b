// JSON strings holding a backslash, found once per buffer (see chs_json_strings in CHyperscan.h).
// A simdjson-style pass: 64-byte blocks become bit masks (backslashes; quotes, LF and CR), the
// escaped positions of a block come from its backslash mask with one add (odd-length backslash
// runs), and only the bytes right after an escaping backslash are looked at one by one.
#include "CHyperscan.h"
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct { uint64_t bs, delim, quote; } jmasks_t;

/// Masks of p[pos ..< pos+64]: backslashes, quotes or LF/CR (`delim`, before escapes are
/// known), and quotes alone. Bytes at or past n count as none of them.
static inline jmasks_t jmasks(const uint8_t *p, size_t n, size_t pos) {
    uint8_t tmp[64];
    const uint8_t *q = p + pos;
    if (n - pos < 64) {
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, p + pos, n - pos);
        q = tmp;
    }
    jmasks_t r = { 0, 0, 0 };
#if defined(__SSE2__)
    for (int k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(q + 16 * k));
        __m128i qu = _mm_cmpeq_epi8(x, _mm_set1_epi8('"'));
        __m128i nl = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\n')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\r')));
        r.bs |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))) << (16 * k);
        r.quote |= (uint64_t)(uint16_t)_mm_movemask_epi8(qu) << (16 * k);
        r.delim |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_or_si128(qu, nl)) << (16 * k);
    }
#else
    for (int i = 0; i < 64; i++) {
        uint64_t bit = (uint64_t)1 << i;
        if (q[i] == '\\') r.bs |= bit;
        if (q[i] == '"') { r.quote |= bit; r.delim |= bit; }
        if (q[i] == '\n' || q[i] == '\r') r.delim |= bit;
    }
#endif
    return r;
}

/// The positions of a block escaped by a backslash (the byte after each backslash that is not
/// itself escaped), given whether position 0 is escaped (`*carry`, updated for the next block).
/// simdjson's branchless form: runs of backslashes of odd length escape the byte after them.
static inline uint64_t escaped_of(uint64_t bs, uint64_t *carry) {
    const uint64_t even = 0x5555555555555555ULL;
    bs &= ~*carry;
    uint64_t follows = (bs << 1) | *carry;
    uint64_t odd_starts = bs & ~even & ~follows;
    uint64_t even_starts;
    *carry = __builtin_add_overflow(odd_starts, bs, &even_starts);
    uint64_t invert = even_starts << 1;
    return (even ^ invert) & follows;
}

static int push_ev(chs_event_buf *b, uint32_t kind, uint32_t aux, uint64_t pos) {
    if (b->count == b->cap && !chs_event_buf_grow(b)) return 0;
    b->ev[b->count].kind = kind; b->ev[b->count].aux = aux; b->ev[b->count].pos = pos;
    b->count++;
    return 1;
}

static int push_str(chs_event_buf *b, uint64_t s, uint64_t e, uint32_t flags) {
    if (b->str_count == b->str_cap) {
        size_t nc = b->str_cap ? b->str_cap * 2 : 64;
        chs_json_string *ns = realloc(b->str, nc * sizeof(chs_json_string));
        if (!ns) { b->overflow = 1; return 0; }
        b->str = ns; b->str_cap = nc;
    }
    b->str[b->str_count].start = s; b->str[b->str_count].end = e; b->str[b->str_count].flags = flags;
    b->str_count++;
    return 1;
}

/// Start of the string whose first backslash is at a: one past the last quote, LF or CR in
/// [lo, a), else lo. No byte of [lo, a) is a backslash and p[lo - 1] is none (a delimiter or
/// nothing), so every quote there is unescaped.
static size_t string_start(const uint8_t *p, size_t n, size_t lo, size_t a) {
    size_t end = a;
    while (end > lo) {
        size_t pos = end >= 64 ? end - 64 : 0;
        uint64_t m = jmasks(p, n, pos).delim;
        if (end - pos < 64) m &= ((uint64_t)1 << (end - pos)) - 1;
        if (pos < lo) m &= ~(uint64_t)0 << (lo - pos);
        if (m) return pos + (size_t)(63 - __builtin_clzll(m)) + 1;
        end = pos;
    }
    return lo;
}

int chs_json_strings(const uint8_t *p, size_t n, uint32_t kind, size_t max_len, chs_event_buf *buf) {
    chs_structural_state st;
    memset(&st, 0, sizeof st);
    return chs_json_strings_range(p, n, n, kind, max_len, &st, buf);
}

int chs_json_strings_range(const uint8_t *p, size_t n, size_t to, uint32_t kind, size_t max_len,
                           chs_structural_state *st, chs_event_buf *buf) {
    if (!p || n == 0 || !buf || !st) return 0;
    if (to > n) to = n;
    size_t lo = st->json_lo; /* the next string starts at or after lo: p[lo - 1] is a delimiter (or lo = 0) */
    size_t i = st->json_next; /* next position to look for a backslash at */
    int rc = 0;
    while (i < to) {
        uint64_t b = jmasks(p, n, i).bs;
        if (!b) { i += 64; continue; }
        size_t a = i + (size_t)__builtin_ctzll(b);
        size_t s = string_start(p, n, lo, a);
        /* Walk from a to the first delimiter that is not an escaped quote, noting every escape. */
        uint64_t carry = 0;
        int worth = 0, inert = 1;
        size_t e = n, base = a;
        for (;;) {
            jmasks_t m = jmasks(p, n, base);
            uint64_t x = escaped_of(m.bs, &carry);
            uint64_t d = m.delim & ~(x & m.quote);
            size_t lim = n - base < 64 ? n - base : 64; /* valid bits of this block */
            uint64_t in = d ? (((uint64_t)1 << __builtin_ctzll(d)) - 1) : (lim == 64 ? ~(uint64_t)0 : (((uint64_t)1 << lim) - 1));
            for (uint64_t y = x & in; y; y &= y - 1) {
                uint8_t c = p[base + (size_t)__builtin_ctzll(y)];
                if (c != 'n' && c != 'r' && c != 't') worth = 1;
                if (c != '"' && c != 'n' && c != 'r' && c != 't' && c != 'b' && c != 'f') inert = 0;
            }
            if (d) {
                e = base + (size_t)__builtin_ctzll(d);
                /* An escape whose escaped byte is the delimiter (a backslash before LF/CR). */
                if (x & (d & -d)) inert = 0;
                break;
            }
            if (lim < 64) {
                /* The buffer ends inside the string: a last backslash that escapes nothing. */
                if (x & ((uint64_t)1 << lim)) inert = 0;
                break;
            }
            base += 64;
            if (base >= n) { if (carry) inert = 0; break; }
        }
        if (e - s < max_len) {
            if (!push_str(buf, s, e, (uint32_t)(worth | (inert << 1))) || !push_ev(buf, kind, (uint32_t)buf->str_count, a + 1)) {
                rc = -12;
                break;
            }
        } else {
            /* Longer than the decoder's window: every backslash keeps its own event (aux 0). */
            for (size_t pos = a; pos < e && rc == 0; pos += 64) {
                uint64_t bb = jmasks(p, n, pos).bs;
                if (e - pos < 64) bb &= ((uint64_t)1 << (e - pos)) - 1;
                for (; bb; bb &= bb - 1)
                    if (!push_ev(buf, kind, 0, pos + (size_t)__builtin_ctzll(bb) + 1)) { rc = -12; break; }
            }
            if (rc) break;
        }
        if (e >= n) { i = n; break; }
        lo = e + 1;
        i = e + 1;
    }
    st->json_lo = lo;
    st->json_next = i;
    return rc;
}
