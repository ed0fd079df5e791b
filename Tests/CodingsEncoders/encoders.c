#include "CodingsEncoders.h"
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <brotli/encode.h>
#include <zstd.h>

typedef struct { uint8_t *buf; size_t len, cap; } grow;

static int g_reserve(grow *g, size_t more) {
    if (g->len + more <= g->cap) return 0;
    size_t nc = g->cap ? g->cap : 4096;
    while (nc < g->len + more) nc *= 2;
    uint8_t *nb = realloc(g->buf, nc);
    if (!nb) return -1;
    g->buf = nb; g->cap = nc;
    return 0;
}

/* Feeds `total` bytes (from `in`, or `fill` repeated when in == NULL) through each encoder. */
static int enc_zlib(int window_bits, const uint8_t *in, size_t total, uint8_t fill, grow *g) {
    z_stream s; memset(&s, 0, sizeof s);
    if (deflateInit2(&s, 9, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    uint8_t chunk[65536]; memset(chunk, fill, sizeof chunk);
    size_t fed = 0;
    int rc = 0;
    for (;;) {
        size_t n = total - fed; if (n > sizeof chunk) n = sizeof chunk;
        s.next_in = (Bytef *)(in ? in + fed : chunk); s.avail_in = (uInt)n;
        int flush = fed + n == total ? Z_FINISH : Z_NO_FLUSH;
        do {
            if (g_reserve(g, 65536)) { rc = -1; goto done; }
            s.next_out = g->buf + g->len; s.avail_out = 65536;
            int r = deflate(&s, flush);
            if (r == Z_STREAM_ERROR) { rc = -1; goto done; }
            g->len += 65536 - s.avail_out;
            if (r == Z_STREAM_END) goto done;
        } while (s.avail_out == 0 || s.avail_in > 0);
        fed += n;
    }
done:
    deflateEnd(&s);
    return rc;
}

static int enc_br(const uint8_t *in, size_t total, uint8_t fill, grow *g) {
    BrotliEncoderState *st = BrotliEncoderCreateInstance(NULL, NULL, NULL);
    if (!st) return -1;
    BrotliEncoderSetParameter(st, BROTLI_PARAM_QUALITY, 5);
    uint8_t chunk[65536]; memset(chunk, fill, sizeof chunk);
    size_t fed = 0;
    int rc = 0;
    for (;;) {
        size_t n = total - fed; if (n > sizeof chunk) n = sizeof chunk;
        const uint8_t *next_in = in ? in + fed : chunk;
        size_t avail_in = n;
        BrotliEncoderOperation op = fed + n == total ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS;
        for (;;) {
            if (g_reserve(g, 65536)) { rc = -1; goto done; }
            uint8_t *next_out = g->buf + g->len; size_t avail_out = 65536;
            if (!BrotliEncoderCompressStream(st, op, &avail_in, &next_in, &avail_out, &next_out, NULL)) { rc = -1; goto done; }
            g->len += 65536 - avail_out;
            if (op == BROTLI_OPERATION_FINISH) { if (BrotliEncoderIsFinished(st)) goto done; }
            else if (avail_in == 0 && !BrotliEncoderHasMoreOutput(st)) break;
        }
        fed += n;
    }
done:
    BrotliEncoderDestroyInstance(st);
    return rc;
}

static int enc_zstd(const uint8_t *in, size_t total, uint8_t fill, grow *g) {
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (!c) return -1;
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
    uint8_t chunk[65536]; memset(chunk, fill, sizeof chunk);
    size_t fed = 0;
    int rc = 0;
    for (;;) {
        size_t n = total - fed; if (n > sizeof chunk) n = sizeof chunk;
        ZSTD_inBuffer ib = { in ? in + fed : chunk, n, 0 };
        ZSTD_EndDirective mode = fed + n == total ? ZSTD_e_end : ZSTD_e_continue;
        for (;;) {
            if (g_reserve(g, 65536)) { rc = -1; goto done; }
            ZSTD_outBuffer ob = { g->buf + g->len, 65536, 0 };
            size_t r = ZSTD_compressStream2(c, &ob, &ib, mode);
            if (ZSTD_isError(r)) { rc = -1; goto done; }
            g->len += ob.pos;
            if (mode == ZSTD_e_end) { if (r == 0) goto done; }
            else if (ib.pos == ib.size) break;
        }
        fed += n;
    }
done:
    ZSTD_freeCCtx(c);
    return rc;
}

static int run(int coding, const uint8_t *in, size_t total, uint8_t fill, uint8_t **out, size_t *out_len) {
    grow g = { 0 };
    int rc;
    switch (coding) {
    case 1: rc = enc_zlib(16 + 15, in, total, fill, &g); break;
    case 2: rc = enc_zlib(15, in, total, fill, &g); break;
    case 3: rc = enc_br(in, total, fill, &g); break;
    case 4: rc = enc_zstd(in, total, fill, &g); break;
    case 5: rc = enc_zlib(-15, in, total, fill, &g); break;
    default: rc = -1;
    }
    if (rc) { free(g.buf); *out = NULL; *out_len = 0; return rc; }
    *out = g.buf; *out_len = g.len;
    return 0;
}

int cce_encode(int coding, const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len) {
    static const uint8_t empty[1] = { 0 };
    return run(coding, in ? in : empty, in_len, 0, out, out_len);
}

int cce_bomb(int coding, size_t decoded_size, uint8_t fill, uint8_t **out, size_t *out_len) {
    return run(coding, NULL, decoded_size, fill, out, out_len);
}

void cce_free(uint8_t *p) { free(p); }
