// Content-coding decoders over the real libraries: zlib (gzip, deflate), libbrotlidec (br), libzstd (zstd).
// Every decoder streams into a growing buffer whose size never exceeds the caller's cap,
// so a decompression bomb costs at most `max_out` bytes of memory, whatever it would inflate to.
#ifndef CCODINGS_H
#define CCODINGS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Codings understood by `cc_decode`.
enum {
    CC_GZIP = 1,     ///< gzip: every member (RFC 1952), nothing else after the last
    CC_DEFLATE = 2,  ///< zlib-wrapped (RFC 1950) when the first two bytes are a zlib header, else raw deflate (RFC 1951)
    CC_BR = 3,       ///< brotli (RFC 7932)
    CC_ZSTD = 4      ///< zstd (RFC 8878): every frame, skippable frames allowed
};

/// Results of `cc_decode`.
enum {
    CC_OK = 0,
    CC_TOO_LARGE = -1,   ///< the output would exceed `max_out`
    CC_CORRUPT = -2,     ///< invalid data, a truncated stream or bytes after the end (`reason` says which)
    CC_NO_MEMORY = -3,   ///< an allocation failed
    CC_UNKNOWN = -4      ///< unknown `coding`
};

/// Statistics of one `cc_decode` call (for tests and diagnostics).
typedef struct {
    size_t peak_capacity;  ///< the largest output buffer allocated, in bytes
    size_t units;          ///< gzip members or zstd frames decoded (1 for deflate and br)
} cc_stats;

/// Decodes one layer of `coding`. On CC_OK, `*out` is a malloc'd buffer of `*out_len` bytes
/// (free it with `cc_free`; NULL when empty). On failure `*out` is NULL and `reason`
/// (when non-NULL, `reason_len` bytes) holds a short sentence fragment that never quotes the input.
/// An empty input decodes to an empty output. Thread-safe (no shared state). `stats` may be NULL.
int cc_decode(int coding, const uint8_t *in, size_t in_len, size_t max_out,
              uint8_t **out, size_t *out_len, char *reason, size_t reason_len, cc_stats *stats);

void cc_free(uint8_t *p);

#ifdef __cplusplus
}
#endif
#endif
