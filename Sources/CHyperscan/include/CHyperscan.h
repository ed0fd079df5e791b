// CHyperscan: a tiny runtime-optional bridge to Hyperscan (libhs.so.5), plus the
// structural scanner. Hyperscan is loaded with dlopen() on first use, so this target
// compiles without hs.h and links without -lhs. When it is missing, `chs_available()`
// returns 0 and Detection falls back to its pure-Swift paths. (Content codings are
// decoded by the Codings module, which links zlib, brotli and zstd.)
#ifndef CHYPERSCAN_H
#define CHYPERSCAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Returns 1 when libhs.so.5 was loaded and the CPU is supported, else 0. Thread-safe.
int chs_available(void);

/// 1 when the CPU has AVX2 (x86_64 only; 0 elsewhere), whatever SLUICE_DISABLE_AVX2 says.
int chs_cpu_has_avx2(void);
/// 1 when the structural scanner uses its AVX2 variant (the CPU has AVX2 and
/// SLUICE_DISABLE_AVX2 is not set), else 0.
int chs_structural_uses_avx2(void);

/// The commit this binary was built from (`make` writes it to build_commit.h beside
/// build_info.c, the Dockerfile from its SLUICE_BUILD_COMMIT argument), or "unknown".
/// Lives here because this is the C target every sluice binary links.
const char *sluice_build_commit(void);

/// Opaque compiled pattern database (an hs_database_t*).
typedef struct chs_database chs_database;
/// Opaque scratch space (an hs_scratch_t*); one per concurrent scan.
typedef struct chs_scratch chs_scratch;

/// Compiles `count` patterns in block mode. `flags` are Hyperscan HS_FLAG_* values.
/// On failure returns NULL and writes a message (truncated) into `err` and the
/// failing expression index into `*err_index` (-1 when not expression specific).
chs_database *chs_compile(const char *const *patterns, const unsigned *flags,
                          const unsigned *ids, unsigned count,
                          char *err, size_t err_len, int *err_index);
void chs_free_database(chs_database *db);

chs_scratch *chs_alloc_scratch(const chs_database *db);
/// Grows `scratch` (from chs_alloc_scratch) so it also serves `db`; returns the scratch to use
/// from now on (possibly a new pointer), or NULL on failure.
chs_scratch *chs_grow_scratch(const chs_database *db, chs_scratch *scratch);
void chs_free_scratch(chs_scratch *scratch);

/// Match events collected by chs_scan: parallel arrays of pattern id and end offset.
/// Consecutive end offsets of the same id are collapsed into one event (the
/// last end offset wins) when that id's bit is set in `collapse` (see chs_scan).
typedef struct chs_events {
    uint32_t *ids;
    uint64_t *ends;
    size_t count;
    size_t capacity;
    int overflow; /* set when an allocation failed; events are then incomplete */
} chs_events;

/// Scans `data` and appends every match event to `events` (grown with realloc).
/// `collapse` is a bitmap indexed by pattern id (may be NULL, `collapse_bits` long).
/// Returns 0 on success, a negative Hyperscan error otherwise.
int chs_scan(const chs_database *db, chs_scratch *scratch, const uint8_t *data, size_t len,
             const uint8_t *collapse, size_t collapse_bits, chs_events *events);
void chs_events_free(chs_events *events);

/// One structural trigger: `kind` (kind_base + trigger), `pos` (end offset), `aux` (for a
/// backslash event from chs_json_strings: 1 + the index of its string in `str`; else 0).
typedef struct chs_event {
    uint32_t kind;
    uint32_t aux;
    uint64_t pos;
} chs_event;

/// A JSON string holding a backslash (see chs_json_strings): `start ..< end`, and `flags`
/// bit 0: it has an escape other than `\n \r \t` before its last byte (worth decoding),
/// bit 1: every escape is one of `\" \n \r \t \b \f` and escapes a byte of the string (inert).
typedef struct chs_json_string {
    uint64_t start;
    uint64_t end;
    uint32_t flags;
} chs_json_string;

/// A growable event buffer. It may start on caller memory (`owned` 0, e.g. a stack buffer of
/// `cap` entries); it is moved to malloc'd memory (`owned` 1) when it grows.
typedef struct chs_event_buf {
    chs_event *ev;
    size_t count;
    size_t cap;
    int owned;
    int overflow;
    /// JSON strings (chs_json_strings); always malloc'd, freed by chs_event_buf_free.
    chs_json_string *str;
    size_t str_count;
    size_t str_cap;
} chs_event_buf;

/// Appends the structural triggers of `p[0..<n]` (backslashes, `%XX`, base64 runs of at least
/// `min_b64` bytes and, when `pii` is nonzero, numeric regions and IBAN starts; definitions in
/// Detection's `StructuralScanner`) to `buf`, in no particular order.
/// Returns 0, or -12 when growing the buffer failed. Works on any CPU (SSE2 when available).
int chs_structural(const uint8_t *p, size_t n, uint32_t kind_base, size_t min_b64, int pii, chs_event_buf *buf);
/// chs_structural plus one-byte keywords: every byte equal to `single_bytes[j]` (nonzero; returns
/// -22 otherwise) appends event `single_kinds[j]` (absolute, not offset by kind_base) at its end
/// offset. Uses AVX2 when the CPU has it (SLUICE_DISABLE_AVX2 set: SSE2), else SSE2 or scalar code.
/// `json_max_len` 0: one backslash event per backslash, as chs_structural; else the backslash
/// events are chs_json_strings(p, n, kind_base, json_max_len, buf)'s.
int chs_structural_ex(const uint8_t *p, size_t n, uint32_t kind_base, size_t min_b64, int pii,
                      const uint8_t *single_bytes, const uint32_t *single_kinds, size_t n_single,
                      size_t json_max_len, chs_event_buf *buf);

/// Where the structural pass stands between the block loop and the JSON-string pass; all zero
/// at the start of a buffer.
typedef struct chs_structural_state {
    size_t done;      /* end of the last base64 run seen */
    size_t done_num;  /* end of the last numeric region seen */
    size_t json_lo;   /* the next JSON string starts at or after this */
    size_t json_next; /* where to look for the next backslash */
} chs_structural_state;

/// JSON strings holding a backslash, once per string instead of one event per backslash.
/// A string is a maximal span between delimiters: unescaped quotes (preceded by an even number
/// of backslashes), LF, CR and the buffer ends (Detection's `JSONEscapeDecoder.delimit`). For
/// each string `s ..< e` holding a backslash, its first backslash at `a`:
/// - when `e - s < max_len`: appends `{s, e, flags}` to `buf->str` and one event
///   `{kind, aux: 1 + its index, pos: a + 1}` (`delimit(around:)` of any of its backslashes is
///   then exactly `s ..< e`);
/// - else one event `{kind, aux: 0, pos}` per backslash of the string, as without this pass.
/// Events are appended in position order. Returns 0, or -12 when an allocation failed.
int chs_json_strings(const uint8_t *p, size_t n, uint32_t kind, size_t max_len, chs_event_buf *buf);
/// chs_json_strings for the strings whose first backslash is at or after `st->json_next`, up to
/// at least those starting before `to` (consecutive calls with one `st` cover the buffer once).
int chs_json_strings_range(const uint8_t *p, size_t n, size_t to, uint32_t kind, size_t max_len,
                           chs_structural_state *st, chs_event_buf *buf);
/// Doubles the event capacity (moving caller memory to malloc'd memory); 0 (and `overflow`) when
/// the allocation failed.
int chs_event_buf_grow(chs_event_buf *buf);
/// Frees the buffer's memory when it is malloc'd (`owned`), and empties it.
void chs_event_buf_free(chs_event_buf *buf);

/// Start of the run of base64/base64url bytes (`[A-Za-z0-9+/_-]`, the structural pass's base64
/// class) that ends at `end`: the smallest s <= end with every byte of p[s ..< end] in the class.
/// Reads only p[0 ..< end], 16 bytes per compare.
size_t chs_b64_run_start(const uint8_t *p, size_t end);

/// Decodes the first min(n, 64) bytes of p as Detection's `Base64.decode` does (both alphabets,
/// not mixed; `=` only at the end; no lone trailing symbol) into at most 48 bytes on the stack.
/// Returns -1 when they are not valid base64, else bit 0: the decoded bytes start with the gzip
/// magic (1f 8b), bit 1: they look like text (`Base64.looksLikeText`: no NUL, >= 90 % printable,
/// whitespace or UTF-8 lead/continuation bytes >= 0xC2). Pure; no allocation.
int chs_b64_probe(const uint8_t *p, size_t n);
/// What the base64 decoder of Detection needs of chs_b64_probe: 1 when it is valid with the gzip
/// magic, 2 when valid, text and no gzip magic, else 0. Stops as soon as neither can hold (for
/// the ids and hashes that are most base64-class runs, after a few decoded bytes).
int chs_b64_probe_worth(const uint8_t *p, size_t n);


#ifdef __cplusplus
}
#endif
#endif
