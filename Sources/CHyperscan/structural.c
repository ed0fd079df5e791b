// Structural first-pass triggers (see `StructuralScanner` in Detection/Prefilter/Prefilter.swift
// for the definitions). Bytes are classified 64 at a time into bit masks (AVX2 or SSE2 compares
// + movemask on x86_64, chosen at run time; a scalar loop elsewhere); runs are found with bit
// operations, so clean text, hex digests and UUIDs cost about one instruction per byte and no
// per-byte branches. The scan loop itself is structural_body.h, compiled once per variant.
#include "CHyperscan.h"
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define CHS_HAVE_AVX2 1
#endif

enum { K_BACK = 0, K_PCT = 1, K_B64 = 2, K_NUM = 3, K_IBAN = 4 };
enum { C_B64 = 0, C_NUM = 1, C_DIGIT = 2, C_UPPER = 3, C_HEX = 4 };

static inline int is_digit(uint8_t c) { return (uint8_t)(c - '0') < 10; }
static inline int is_upper(uint8_t c) { return (uint8_t)(c - 'A') < 26; }
static inline int is_hex(uint8_t c) { return is_digit(c) || (uint8_t)((c | 0x20) - 'a') < 6; }
static inline int is_num(uint8_t c) {
    return is_digit(c) || c == ' ' || c == '(' || c == ')' || c == '+' || c == '.' || c == '-';
}
static inline int is_b64(uint8_t c) {
    return is_digit(c) || (uint8_t)((c | 0x20) - 'a') < 26 || c == '+' || c == '/' || c == '_' || c == '-';
}

/// Per 64-byte block: base64 class, digits, backslashes, percents, and bytes equal to one
/// caller-chosen byte (`s`, for one-byte keywords; never 0).
typedef struct { uint64_t a, d, b, p, s, n, u; } masks_t;

/// Hides a finished mask from the optimizer: without it clang tracks single bits of the
/// movemask results through the scan loop and splits them into hundreds of scalar shifts.
#define OPAQUE_MASKS(r) __asm__("" : "+r"((r).a), "+r"((r).d), "+r"((r).b), "+r"((r).p), "+r"((r).s), "+r"((r).n), "+r"((r).u))
#define OPAQUE(x) __asm__("" : "+r"(x))

#if defined(__SSE2__)
static inline __m128i in_range(__m128i x, uint8_t lo, uint8_t span) {
    __m128i t = _mm_sub_epi8(x, _mm_set1_epi8((char)lo));
    return _mm_cmpeq_epi8(_mm_subs_epu8(t, _mm_set1_epi8((char)span)), _mm_setzero_si128());
}
static inline __m128i eq(__m128i x, uint8_t c) { return _mm_cmpeq_epi8(x, _mm_set1_epi8((char)c)); }
static inline uint64_t mm(__m128i m, int k) { return (uint64_t)(uint16_t)_mm_movemask_epi8(m) << (16 * k); }

static inline __attribute__((always_inline)) masks_t masks64_sse2(const uint8_t *q, uint8_t s0, int pii) {
    masks_t r = { 0, 0, 0, 0, 0, 0, 0 };
    for (int k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(q + 16 * k));
        __m128i d = in_range(x, '0', 9);
        __m128i al = in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), 'a', 25);
        __m128i sym = _mm_or_si128(_mm_or_si128(eq(x, '+'), eq(x, '/')), _mm_or_si128(eq(x, '_'), eq(x, '-')));
        r.a |= mm(_mm_or_si128(_mm_or_si128(d, al), sym), k);
        r.d |= mm(d, k);
        r.b |= mm(eq(x, '\\'), k);
        r.p |= mm(eq(x, '%'), k);
        r.s |= mm(eq(x, s0), k);
        if (pii) {
            r.n |= mm(_mm_or_si128(_mm_or_si128(d, eq(x, ' ')),
                                   _mm_or_si128(_mm_or_si128(in_range(x, '(', 1), eq(x, '+')), in_range(x, '-', 1))), k);
            r.u |= mm(in_range(x, 'A', 25), k);
        }
    }
    OPAQUE_MASKS(r);
    return r;
}

static inline uint64_t class64_sse2(const uint8_t *q, int cls) {
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
        case C_HEX:
            m = _mm_or_si128(_mm_or_si128(in_range(x, '0', 9), in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), 'a', 5)), eq(x, '-'));
            break;
        default: m = in_range(x, 'A', 25); break;
        }
        r |= mm(m, k);
    }
    OPAQUE(r);
    return r;
}
#else
static inline masks_t masks64_sse2(const uint8_t *q, uint8_t s0, int pii) {
    masks_t r = { 0, 0, 0, 0, 0, 0, 0 };
    for (int i = 0; i < 64; i++) {
        uint8_t c = q[i];
        uint64_t bit = (uint64_t)1 << i;
        if (is_b64(c)) r.a |= bit;
        if (is_digit(c)) r.d |= bit;
        if (c == '\\') r.b |= bit;
        if (c == '%') r.p |= bit;
        if (c == s0) r.s |= bit;
        if (pii && is_num(c)) r.n |= bit;
        if (pii && is_upper(c)) r.u |= bit;
    }
    return r;
}
static inline uint64_t class64_sse2(const uint8_t *q, int cls) {
    uint64_t r = 0;
    for (int i = 0; i < 64; i++) {
        uint8_t c = q[i];
        int in = cls == C_B64 ? is_b64(c) : cls == C_NUM ? is_num(c) : cls == C_DIGIT ? is_digit(c)
               : cls == C_HEX ? (is_hex(c) || c == '-') : is_upper(c);
        if (in) r |= (uint64_t)1 << i;
    }
    return r;
}
#endif

#if CHS_HAVE_AVX2
#define AVX2 __attribute__((target("avx2")))
static inline AVX2 __m256i in_range_avx2(__m256i x, uint8_t lo, uint8_t span) {
    __m256i t = _mm256_sub_epi8(x, _mm256_set1_epi8((char)lo));
    return _mm256_cmpeq_epi8(_mm256_subs_epu8(t, _mm256_set1_epi8((char)span)), _mm256_setzero_si256());
}
static inline AVX2 __m256i eq_avx2(__m256i x, uint8_t c) { return _mm256_cmpeq_epi8(x, _mm256_set1_epi8((char)c)); }
static inline AVX2 uint64_t mm_avx2(__m256i m, int k) { return (uint64_t)(uint32_t)_mm256_movemask_epi8(m) << (32 * k); }

static inline AVX2 __attribute__((always_inline)) masks_t masks64_avx2(const uint8_t *q, uint8_t s0, int pii) {
    masks_t r = { 0, 0, 0, 0, 0, 0, 0 };
    for (int k = 0; k < 2; k++) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(q + 32 * k));
        __m256i d = in_range_avx2(x, '0', 9);
        __m256i al = in_range_avx2(_mm256_or_si256(x, _mm256_set1_epi8(0x20)), 'a', 25);
        __m256i sym = _mm256_or_si256(_mm256_or_si256(eq_avx2(x, '+'), eq_avx2(x, '/')),
                                      _mm256_or_si256(eq_avx2(x, '_'), eq_avx2(x, '-')));
        r.a |= mm_avx2(_mm256_or_si256(_mm256_or_si256(d, al), sym), k);
        r.d |= mm_avx2(d, k);
        r.b |= mm_avx2(eq_avx2(x, '\\'), k);
        r.p |= mm_avx2(eq_avx2(x, '%'), k);
        r.s |= mm_avx2(eq_avx2(x, s0), k);
        if (pii) {
            r.n |= mm_avx2(_mm256_or_si256(_mm256_or_si256(d, eq_avx2(x, ' ')),
                                           _mm256_or_si256(_mm256_or_si256(in_range_avx2(x, '(', 1), eq_avx2(x, '+')), in_range_avx2(x, '-', 1))), k);
            r.u |= mm_avx2(in_range_avx2(x, 'A', 25), k);
        }
    }
    OPAQUE_MASKS(r);
    return r;
}

static inline AVX2 uint64_t class64_avx2(const uint8_t *q, int cls) {
    uint64_t r = 0;
    for (int k = 0; k < 2; k++) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(q + 32 * k));
        __m256i m;
        switch (cls) {
        case C_B64:
            m = _mm256_or_si256(_mm256_or_si256(in_range_avx2(x, '0', 9), in_range_avx2(_mm256_or_si256(x, _mm256_set1_epi8(0x20)), 'a', 25)),
                                _mm256_or_si256(_mm256_or_si256(eq_avx2(x, '+'), eq_avx2(x, '/')), _mm256_or_si256(eq_avx2(x, '_'), eq_avx2(x, '-'))));
            break;
        case C_NUM:
            m = _mm256_or_si256(_mm256_or_si256(in_range_avx2(x, '0', 9), eq_avx2(x, ' ')),
                                _mm256_or_si256(_mm256_or_si256(in_range_avx2(x, '(', 1), eq_avx2(x, '+')), in_range_avx2(x, '-', 1)));
            break;
        case C_DIGIT: m = in_range_avx2(x, '0', 9); break;
        case C_HEX:
            m = _mm256_or_si256(_mm256_or_si256(in_range_avx2(x, '0', 9), in_range_avx2(_mm256_or_si256(x, _mm256_set1_epi8(0x20)), 'a', 5)), eq_avx2(x, '-'));
            break;
        default: m = in_range_avx2(x, 'A', 25); break;
        }
        r |= mm_avx2(m, k);
    }
    OPAQUE(r);
    return r;
}
#endif

/// Bit j set when bits j ..< j+w of (hi:lo) are all set (1 <= w <= 64).
static inline __attribute__((always_inline)) uint64_t runs_of(uint64_t lo, uint64_t hi, unsigned w) {
    unsigned __int128 x = ((unsigned __int128)hi << 64) | lo;
    unsigned k = 1;
    while (k * 2 <= w) { x &= x >> k; k *= 2; }
    if (k < w) x &= x >> (w - k);
    return (uint64_t)x;
}

static inline __attribute__((always_inline)) uint64_t above(size_t done, size_t o) {
    if (done <= o) return ~(uint64_t)0;
    if (done - o >= 64) return 0;
    return ~(uint64_t)0 << (done - o);
}

int chs_event_buf_grow(chs_event_buf *b) {
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

#define PUSHK(k, e) do { \
    if (buf->count == buf->cap && !chs_event_buf_grow(buf)) return -12; \
    buf->ev[buf->count].kind = (k); buf->ev[buf->count].aux = 0; buf->ev[buf->count].pos = (uint64_t)(e); buf->count++; \
} while (0)
#define PUSH(k, e) PUSHK(kind_base + (k), e)

void chs_event_buf_free(chs_event_buf *b) {
    if (b && b->owned) free(b->ev);
    if (b) free(b->str);
    if (b) { b->ev = NULL; b->cap = b->count = 0; b->owned = 0; b->str = NULL; b->str_count = b->str_cap = 0; }
}

#define SFX(x) x##_sse2
#define SATTR
#include "structural_body.h"
#undef SFX
#undef SATTR

#if CHS_HAVE_AVX2
#define SFX(x) x##_avx2
#define SATTR AVX2
#include "structural_body.h"
#undef SFX
#undef SATTR

static int use_avx2(void) {
    static int cached = -1; /* benign race: every thread computes the same value */
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") && !getenv("SLUICE_DISABLE_AVX2") ? 1 : 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}
#endif

int chs_cpu_has_avx2(void) {
#if CHS_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

int chs_structural_uses_avx2(void) {
#if CHS_HAVE_AVX2
    return use_avx2();
#else
    return 0;
#endif
}

int chs_structural(const uint8_t *p, size_t n, uint32_t kind_base, size_t min_b64, int pii, chs_event_buf *buf) {
    return chs_structural_ex(p, n, kind_base, min_b64, pii, NULL, NULL, 0, 0, buf);
}

/* The structural pass over the blocks in [from, to) (from a multiple of 64), then the JSON
   strings whose first backslash lies there. Calls over consecutive ranges with one `st` append
   the events of one call over [0, n) (in another order; callers sort). */
static int structural_range(const uint8_t *p, size_t n, size_t from, size_t to, uint32_t kind_base, size_t min_b64, int pii,
                            const uint8_t *single_bytes, const uint32_t *single_kinds, size_t n_single,
                            size_t json_max_len, chs_structural_state *st, chs_event_buf *buf);

int chs_structural_ex(const uint8_t *p, size_t n, uint32_t kind_base, size_t min_b64, int pii,
                      const uint8_t *single_bytes, const uint32_t *single_kinds, size_t n_single,
                      size_t json_max_len, chs_event_buf *buf) {
    chs_structural_state st;
    memset(&st, 0, sizeof st);
    return structural_range(p, n, 0, n, kind_base, min_b64, pii, single_bytes, single_kinds, n_single, json_max_len, &st, buf);
}

static int structural_range(const uint8_t *p, size_t n, size_t from, size_t to, uint32_t kind_base, size_t min_b64, int pii,
                            const uint8_t *single_bytes, const uint32_t *single_kinds, size_t n_single,
                            size_t json_max_len, chs_structural_state *st, chs_event_buf *buf) {
    if (!p || n == 0 || !st) return 0;
    if (from % 64 != 0) return -22;
    if (to > n) to = n;
    if (from >= to) return 0;
    if (!single_bytes || !single_kinds) n_single = 0;
    for (size_t j = 0; j < n_single; j++) if (single_bytes[j] == 0) return -22;
    int backslashes = json_max_len == 0, rc;
#if CHS_HAVE_AVX2
    if (use_avx2()) rc = structural_avx2(p, n, from, to, kind_base, min_b64, pii, backslashes, single_bytes, single_kinds, n_single, st, buf);
    else
#endif
    rc = structural_sse2(p, n, from, to, kind_base, min_b64, pii, backslashes, single_bytes, single_kinds, n_single, st, buf);
    if (rc != 0 || backslashes) return rc;
    return chs_json_strings_range(p, n, to, kind_base + K_BACK, json_max_len, st, buf);
}

size_t chs_b64_run_start(const uint8_t *p, size_t end) {
    if (!p) return end;
    while (end >= 64) {
        /* Bit i of m: p[end - 64 + i] is outside the class; the run starts after the highest. */
        uint64_t m = ~class64_sse2(p + end - 64, C_B64);
        if (m) return end - 64 + (size_t)(64 - __builtin_clzll(m));
        end -= 64;
    }
    while (end > 0 && is_b64(p[end - 1])) end--;
    return end;
}

/* Base64 symbol value + 1 (both alphabets: `-` = `+`, `_` = `/`); 0 outside them. */
static const uint8_t b64_value1[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8, ['I'] = 9,
    ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27,
    ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45,
    ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63,
    ['/'] = 64, ['-'] = 63, ['_'] = 64,
};

int chs_b64_probe(const uint8_t *p, size_t n) {
    if (!p) n = 0;
    if (n > 64) n = 64;
    uint8_t out[48];
    uint32_t acc = 0;
    int bits = 0, saw_std = 0, saw_url = 0, saw_pad = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '=') { saw_pad = 1; continue; }
        int v = (int)b64_value1[c] - 1;
        if (saw_pad || v < 0) return -1;
        if (c == '+' || c == '/') saw_std = 1; else if (c == '-' || c == '_') saw_url = 1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) { bits -= 8; out[k++] = (uint8_t)(acc >> bits); }
    }
    if ((saw_std && saw_url) || bits >= 6) return -1;
    int gzip = k >= 2 && out[0] == 0x1f && out[1] == 0x8b;
    size_t good = 0;
    for (size_t i = 0; i < k; i++) {
        uint8_t b = out[i];
        if (b == 0) return gzip; /* a NUL: not text */
        if ((b >= 32 && b < 127) || b == 9 || b == 10 || b == 13 || b >= 0xC2) good++;
    }
    int text = k > 0 && good * 10 >= k * 9;
    return gzip | (text << 1);
}

/* 1 for `+` and `/` (standard alphabet), 2 for `-` and `_` (URL alphabet), else 0. */
static const uint8_t b64_alphabet[256] = { ['+'] = 1, ['/'] = 1, ['-'] = 2, ['_'] = 2 };

int chs_b64_probe_worth(const uint8_t *p, size_t n) {
    if (!p) n = 0;
    if (n > 64) n = 64;
    /* When the input is valid, its symbols are the bytes before the trailing `=`s. */
    size_t m = n;
    while (m > 0 && p[m - 1] == '=') m--;
    size_t k_total = m * 6 / 8;
    uint32_t acc = 0;
    int bits = 0, alphabets = 0, nul = 0;
    int gz = -1; /* gzip magic: -1 not known yet, 0 no, 1 yes */
    size_t k = 0, bad = 0;
    for (size_t i = 0; i < m; i++) {
        uint8_t c = p[i];
        uint8_t v1 = b64_value1[c];
        if (v1 == 0) return 0; /* an invalid byte, or `=` before a symbol */
        alphabets |= b64_alphabet[c];
        acc = (acc << 6) | (uint32_t)(v1 - 1);
        bits += 6;
        if (bits < 8) continue;
        bits -= 8;
        uint8_t b = (uint8_t)(acc >> bits);
        k++;
        if (k == 1 && b != 0x1f) gz = 0;
        else if (k == 2 && gz < 0) gz = b == 0x8b;
        if (b == 0) nul = 1;
        else if (!((b >= 32 && b < 127) || b == 9 || b == 10 || b == 13 || b >= 0xC2)) bad++;
        /* Not text whatever follows (bad only grows; k_total is the final count when valid)
           and no gzip magic: chs_b64_probe gives -1 or neither flag. */
        if (gz == 0 && (nul || bad * 10 > k_total)) return 0;
    }
    if (alphabets == 3 || bits >= 6) return 0;
    if (gz == 1) return 1;
    return !nul && k > 0 && bad * 10 <= k ? 2 : 0;
}
