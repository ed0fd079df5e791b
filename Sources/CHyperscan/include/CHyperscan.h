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

/// One structural trigger: `kind` (kind_base + trigger), `pos` (end offset).
typedef struct chs_event {
    uint32_t kind;
    uint64_t pos;
} chs_event;

/// A growable event buffer. It may start on caller memory (`owned` 0, e.g. a stack buffer of
/// `cap` entries); it is moved to malloc'd memory (`owned` 1) when it grows.
typedef struct chs_event_buf {
    chs_event *ev;
    size_t count;
    size_t cap;
    int owned;
    int overflow;
} chs_event_buf;

/// Appends the structural triggers of `p[0..<n]` (backslashes, `%XX`, base64 runs of at least
/// `min_b64` bytes and, when `pii` is nonzero, numeric regions and IBAN starts; definitions in
/// Detection's `StructuralScanner`) to `buf`, in no particular order.
/// Returns 0, or -12 when growing the buffer failed. Works on any CPU (SSE2 when available).
int chs_structural(const uint8_t *p, size_t n, uint32_t kind_base, size_t min_b64, int pii, chs_event_buf *buf);
/// chs_structural plus one-byte keywords: every byte equal to `single_bytes[j]` (nonzero; returns
/// -22 otherwise) appends event `single_kinds[j]` (absolute, not offset by kind_base) at its end
/// offset. Uses AVX2 when the CPU has it (SLUICE_DISABLE_AVX2 set: SSE2), else SSE2 or scalar code.
int chs_structural_ex(const uint8_t *p, size_t n, uint32_t kind_base, size_t min_b64, int pii,
                      const uint8_t *single_bytes, const uint32_t *single_kinds, size_t n_single,
                      chs_event_buf *buf);
/// Frees the buffer's memory when it is malloc'd (`owned`), and empties it.
void chs_event_buf_free(chs_event_buf *buf);

/// Start of the run of base64/base64url bytes (`[A-Za-z0-9+/_-]`, the structural pass's base64
/// class) that ends at `end`: the smallest s <= end with every byte of p[s ..< end] in the class.
/// Reads only p[0 ..< end], 16 bytes per compare.
size_t chs_b64_run_start(const uint8_t *p, size_t end);


#ifdef __cplusplus
}
#endif
#endif
