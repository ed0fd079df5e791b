// Structural first-pass triggers (see `StructuralScanner` in Detection/Prefilter/Prefilter.swift
// for the definitions). Bytes are classified 64 at a time into bit masks (SSE2 compares +
// movemask on x86_64, a scalar loop elsewhere); runs are found with bit operations, so clean
// text, hex digests and UUIDs cost about two instructions per byte and no per-byte branches.
#include "CHyperscan.h"
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum { K_BACK = 0, K_PCT = 1, K_B64 = 2, K_NUM = 3, K_IBAN = 4 };
enum { C_B64 = 0, C_NUM = 1, C_DIGIT = 2, C_UPPER = 3 };

static inline int is_digit(uint8_t c) { return (uint8_t)(c - '0') < 10; }
static inline int is_upper(uint8_t c) { return (uint8_t)(c - 'A') < 26; }
static inline int is_hex(uint8_t c) { return is_digit(c) || (uint8_t)((c | 0x20) - 'a') < 6; }
static inline int is_num(uint8_t c) {
    return is_digit(c) || c == ' ' || c == '(' || c == ')' || c == '+' || c == '.' || c == '-';
}
static inline int is_b64(uint8_t c) {
    return is_digit(c) || (uint8_t)((c | 0x20) - 'a') < 26 || c == '+' || c == '/' || c == '_' || c == '-';
}

typedef struct { uint64_t a, d, b, p; } masks_t;

#if defined(__SSE2__)
static inline __m128i in_range(__m128i x, uint8_t lo, uint8_t span) {
    __m128i t = _mm_sub_epi8(x, _mm_set1_epi8((char)lo));
    return _mm_cmpeq_epi8(_mm_subs_epu8(t, _mm_set1_epi8((char)span)), _mm_setzero_si128());
}
static inline __m128i eq(__m128i x, uint8_t c) { return _mm_cmpeq_epi8(x, _mm_set1_epi8((char)c)); }
static inline uint64_t mm(__m128i m, int k) { return (uint64_t)(uint16_t)_mm_movemask_epi8(m) << (16 * k); }

/// Base64-class, digit, backslash and percent masks of the 64 bytes at q.
static inline __attribute__((always_inline)) masks_t masks64(const uint8_t *q) {
    masks_t r = { 0, 0, 0, 0 };
    for (int k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(q + 16 * k));
        __m128i d = in_range(x, '0', 9);
        __m128i al = in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), 'a', 25);
        __m128i sym = _mm_or_si128(_mm_or_si128(eq(x, '+'), eq(x, '/')), _mm_or_si128(eq(x, '_'), eq(x, '-')));
        r.a |= mm(_mm_or_si128(_mm_or_si128(d, al), sym), k);
        r.d |= mm(d, k);
        r.b |= mm(eq(x, '\\'), k);
        r.p |= mm(eq(x, '%'), k);
    }
    return r;
}

/// Mask of one class over the 64 bytes at q.
static inline uint64_t class64(const uint8_t *q, int cls) {
    uint64_t r = 0;
    for (int k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(q + 16 * k));
        __m128i m;
        switch (cls) {
        case C_B64:
            m = _mm_or_si128(_mm_or_si128(in_range(x, '0', 9), in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), 'a', 25)),
                             _mm_or_si128(_mm_or_si128(eq(x, '+'), eq(x, '/')), _mm_or_si128(eq(x, '_'), eq(x, '-'))));
            break;
        case C_NUM:
            m = _mm_or_si128(_mm_or_si128(in_range(x, '0', 9), eq(x, ' ')),
                             _mm_or_si128(_mm_or_si128(in_range(x, '(', 1), eq(x, '+')), in_range(x, '-', 1)));
            break;
        case C_DIGIT: m = in_range(x, '0', 9); break;
        default: m = in_range(x, 'A', 25); break;
        }
        r |= mm(m, k);
    }
    return r;
}
#else
static inline masks_t masks64(const uint8_t *q) {
    masks_t r = { 0, 0, 0, 0 };
    for (int i = 0; i < 64; i++) {
        uint8_t c = q[i];
        uint64_t bit = (uint64_t)1 << i;
        if (is_b64(c)) r.a |= bit;
        if (is_digit(c)) r.d |= bit;
        if (c == '\\') r.b |= bit;
        if (c == '%') r.p |= bit;
    }
    return r;
}
static inline uint64_t class64(const uint8_t *q, int cls) {
    uint64_t r = 0;
    for (int i = 0; i < 64; i++) {
        uint8_t c = q[i];
        int in = cls == C_B64 ? is_b64(c) : cls == C_NUM ? is_num(c) : cls == C_DIGIT ? is_digit(c) : is_upper(c);
        if (in) r |= (uint64_t)1 << i;
    }
    return r;
}
#endif

/// Class mask of p[pos ..< pos+64]; bytes at or past n count as outside every class.
static inline __attribute__((always_inline)) uint64_t class_at(const uint8_t *p, size_t n, size_t pos, int cls) {
    if (n - pos >= 64) return class64(p + pos, cls);
    uint8_t tmp[64];
    memset(tmp, 0, sizeof tmp);
    memcpy(tmp, p + pos, n - pos);
    return class64(tmp, cls);
}

static inline __attribute__((always_inline)) masks_t masks_at(const uint8_t *p, size_t n, size_t pos) {
    if (pos >= n) { masks_t z = { 0, 0, 0, 0 }; return z; }
    if (n - pos >= 64) return masks64(p + pos);
    uint8_t tmp[64];
    memset(tmp, 0, sizeof tmp);
    memcpy(tmp, p + pos, n - pos);
    return masks64(tmp);
}

/// Bit j set when bits j ..< j+w of (hi:lo) are all set (1 <= w <= 64).
static inline uint64_t runs_of(uint64_t lo, uint64_t hi, unsigned w) {
    unsigned __int128 x = ((unsigned __int128)hi << 64) | lo;
    unsigned k = 1;
    while (k * 2 <= w) { x &= x >> k; k *= 2; }
    if (k < w) x &= x >> (w - k);
    return (uint64_t)x;
}

/// End of the run of class bytes starting at pos.
static inline size_t run_end(const uint8_t *p, size_t n, size_t pos, int cls) {
    while (pos < n) {
        uint64_t m = ~class_at(p, n, pos, cls);
        if (m) return pos + (size_t)__builtin_ctzll(m);
        pos += 64;
    }
    return n;
}

static inline uint64_t above(size_t done, size_t o) {
    if (done <= o) return ~(uint64_t)0;
    if (done - o >= 64) return 0;
    return ~(uint64_t)0 << (done - o);
}

static int grow(chs_event_buf *b) {
    size_t nc = b->cap ? b->cap * 2 : 256;
    chs_event *ne;
    if (b->owned) {
        ne = realloc(b->ev, nc * sizeof(chs_event));
    } else {
        ne = malloc(nc * sizeof(chs_event));
        if (ne && b->count) memcpy(ne, b->ev, b->count * sizeof(chs_event));
    }
    if (!ne) { b->overflow = 1; return 0; }
    b->ev = ne; b->cap = nc; b->owned = 1;
    return 1;
}

#define PUSH(k, e) do { \
    if (buf->count == buf->cap && !grow(buf)) return -12; \
    buf->ev[buf->count].kind = kind_base + (k); buf->ev[buf->count].pos = (uint64_t)(e); buf->count++; \
} while (0)

void chs_event_buf_free(chs_event_buf *b) {
    if (b && b->owned) free(b->ev);
    if (b) { b->ev = NULL; b->cap = b->count = 0; b->owned = 0; }
}

int chs_structural(const uint8_t *p, size_t n, uint32_t kind_base, size_t min_b64, int pii, chs_event_buf *buf) {
    if (!p || n == 0) return 0;
    size_t w = min_b64 < 1 ? 1 : min_b64;
    unsigned wf = w > 64 ? 64 : (unsigned)w;
    size_t done = 0, done_num = 0;
    size_t num_for = (size_t)-1;
    uint64_t num_next = 0;
    masks_t cur = masks_at(p, n, 0);
    for (size_t o = 0; o < n; o += 64) {
        masks_t nxt = masks_at(p, n, o + 64);
        // base64 runs of at least w bytes: candidates are run starts (runs are disjoint).
        uint64_t x = runs_of(cur.a, nxt.a, wf) & above(done, o);
        while (x) {
            size_t s = o + (size_t)__builtin_ctzll(x);
            size_t e = run_end(p, n, s, C_B64);
            if (e - s >= w) PUSH(K_B64, e);
            done = e;
            x &= above(done, o);
        }
        for (uint64_t b = cur.b; b; b &= b - 1) PUSH(K_BACK, o + (size_t)__builtin_ctzll(b) + 1);
        for (uint64_t q = cur.p; q; q &= q - 1) {
            size_t i = o + (size_t)__builtin_ctzll(q);
            if (i + 2 < n && is_hex(p[i + 1]) && is_hex(p[i + 2])) PUSH(K_PCT, i + 3);
        }
        if (pii && (cur.d | nxt.d)) {
            // Numeric regions: maximal runs of [0-9 ()+.-] with >= 7 digits hold >= 7 region
            // bytes; every such run has a 7-byte stretch starting in a chunk that holds a
            // digit or precedes one, so other chunks are skipped (the start is walked back to).
            uint64_t ncur = num_for == o ? num_next : class_at(p, n, o, C_NUM);
            uint64_t nnxt = o + 64 < n ? class_at(p, n, o + 64, C_NUM) : 0;
            num_next = nnxt; num_for = o + 64;
            uint64_t y = runs_of(ncur, nnxt, 7) & above(done_num, o);
            while (y) {
                size_t s = o + (size_t)__builtin_ctzll(y);
                while (s > done_num && is_num(p[s - 1])) s--;
                size_t e = s, digits = 0, last = 0;
                for (;;) {
                    uint64_t nm = e < n ? class_at(p, n, e, C_NUM) : 0;
                    uint64_t dm = e < n ? class_at(p, n, e, C_DIGIT) : 0;
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
                uint64_t u = class_at(p, n, o, C_UPPER);
                uint64_t u1 = o >= 1 && is_upper(p[o - 1]), u2 = o >= 2 && is_upper(p[o - 2]);
                uint64_t z = ((u << 2) | (u1 << 1) | u2) & ((u << 1) | u1) & cur.d & ((cur.d >> 1) | (nxt.d << 63));
                for (; z; z &= z - 1) PUSH(K_IBAN, o + (size_t)__builtin_ctzll(z) + 2);
            }
        }
        cur = nxt;
    }
    return 0;
}
