// Test-only encoders for the content codings (zlib, libbrotlienc, libzstd), so tests build
// real streams and decompression bombs at run time without command-line tools.
#ifndef CODINGS_ENCODERS_H
#define CODINGS_ENCODERS_H
#include <stddef.h>
#include <stdint.h>

/// Codings: 1 gzip, 2 deflate (zlib-wrapped), 3 br, 4 zstd, 5 raw deflate.
/// Encodes `in` as one stream (one gzip member, one zstd frame). Returns 0 on success with a malloc'd
/// `*out` (free with cce_free), nonzero on failure.
int cce_encode(int coding, const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len);

/// Encodes `decoded_size` bytes of `fill` as one stream, streaming from a small buffer so the
/// decoded bytes never exist in memory (a decompression bomb). Same return convention.
int cce_bomb(int coding, size_t decoded_size, uint8_t fill, uint8_t **out, size_t *out_len);

void cce_free(uint8_t *p);
#endif
