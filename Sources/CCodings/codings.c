// Streaming decoders for HTTP content codings, capped while decoding. See CCodings.h.
#include "CCodings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <brotli/decode.h>
#include <zstd.h>
#include <zstd_errors.h>

/* ---------- a growing output buffer that never grows past the cap ---------- */

typedef struct {
    uint8_t *buf;
    size_t len;      /* bytes written */
    size_t cap;      /* bytes allocated */
    size_t max_out;  /* hard limit on len */
    size_t peak;     /* largest cap */
    uint8_t probe[64]; /* where output goes once len == max_out: anything written there is over the cap */
} outbuf;

static void set_reason(char *reason, size_t reason_len, const char *msg) {
    if (reason && reason_len) snprintf(reason, reason_len, "%s", msg);
}

static void ob_init(outbuf *o, size_t in_len, size_t max_out) {
    memset(o, 0, sizeof *o);
    o->max_out = max_out;
    /* The first allocation (made lazily by ob_space): a guess from the input size, never over the cap. */
    size_t guess = in_len > (SIZE_MAX / 4) ? SIZE_MAX : in_len * 4;
    if (guess < 16384) guess = 16384;
    if (guess > max_out) guess = max_out;
    o->cap = guess;
}

/* Returns where the next output goes and how much room there is there. When the cap is reached
 * the room is the probe buffer: the caller must treat any byte written into it as "too large".
 * Returns NULL on allocation failure. */
static uint8_t *ob_space(outbuf *o, size_t *room, int *probing) {
    *probing = 0;
    if (o->buf == NULL && o->cap > 0) {
        o->buf = malloc(o->cap);
        if (!o->buf) return NULL;
        if (o->cap > o->peak) o->peak = o->cap;
    }
    if (o->len == o->cap && o->cap < o->max_out) {
        size_t nc = o->cap > o->max_out / 2 ? o->max_out : o->cap * 2;
        if (nc < 16384 && o->max_out >= 16384) nc = 16384;
        if (nc > o->max_out) nc = o->max_out;
        uint8_t *nb = realloc(o->buf, nc);
        if (!nb) return NULL;
        o->buf = nb; o->cap = nc;
        if (nc > o->peak) o->peak = nc;
    }
    if (o->len < o->cap) { *room = o->cap - o->len; return o->buf + o->len; }
    *probing = 1;
    *room = sizeof o->probe;
    return o->probe;
}

static void ob_free(outbuf *o) { free(o->buf); o->buf = NULL; o->len = o->cap = 0; }

/* ---------- gzip and deflate (zlib) ---------- */

static int zlib_header(const uint8_t *in, size_t n) {
    if (n < 2) return 0;
    unsigned cmf = in[0], flg = in[1];
    return (cmf & 0x0f) == 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 == 0;
}

/* window_bits: 16+15 gzip, 15 zlib, -15 raw. multi: keep going after a stream end (gzip members). */
static int zlib_decode(const uint8_t *in, size_t in_len, int window_bits, int multi, outbuf *o,
                       size_t *units, char *reason, size_t reason_len) {
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, window_bits) != Z_OK) { set_reason(reason, reason_len, "zlib could not start"); return CC_NO_MEMORY; }
    size_t consumed = 0;
    int rc = CC_OK;
    for (;;) {
        size_t room; int probing;
        uint8_t *dst = ob_space(o, &room, &probing);
        if (!dst) { rc = CC_NO_MEMORY; set_reason(reason, reason_len, "out of memory"); break; }
        size_t in_chunk = in_len - consumed; if (in_chunk > (1u << 30)) in_chunk = 1u << 30;
        if (room > (1u << 30)) room = 1u << 30;
        s.next_in = (Bytef *)(in + consumed); s.avail_in = (uInt)in_chunk;
        s.next_out = dst; s.avail_out = (uInt)room;
        int r = inflate(&s, Z_NO_FLUSH);
        size_t used = in_chunk - s.avail_in, wrote = room - s.avail_out;
        consumed += used;
        if (probing) {
            if (wrote > 0) { rc = CC_TOO_LARGE; set_reason(reason, reason_len, "output over the limit"); break; }
        } else {
            o->len += wrote;
        }
        if (r == Z_STREAM_END) {
            (*units)++;
            if (consumed == in_len) break;
            if (!multi) { rc = CC_CORRUPT; set_reason(reason, reason_len, "bytes after the end of the stream"); break; }
            /* Another gzip member must follow; anything else is trailing garbage. */
            if (in_len - consumed < 2 || in[consumed] != 0x1f || in[consumed + 1] != 0x8b) {
                rc = CC_CORRUPT; set_reason(reason, reason_len, "bytes after the last gzip member"); break;
            }
            if (inflateReset(&s) != Z_OK) { rc = CC_CORRUPT; set_reason(reason, reason_len, "zlib reset failed"); break; }
            continue;
        }
        if (r == Z_NEED_DICT) { rc = CC_CORRUPT; set_reason(reason, reason_len, "stream needs a preset dictionary"); break; }
        if (r == Z_DATA_ERROR) { rc = CC_CORRUPT; set_reason(reason, reason_len, "invalid compressed data"); break; }
        if (r == Z_MEM_ERROR) { rc = CC_NO_MEMORY; set_reason(reason, reason_len, "out of memory"); break; }
        if (r == Z_STREAM_ERROR) { rc = CC_CORRUPT; set_reason(reason, reason_len, "zlib stream error"); break; }
        /* Z_OK or Z_BUF_ERROR: progress is possible only with more input or more output room. */
        if (used == 0 && wrote == 0) {
            if (consumed == in_len) { rc = CC_CORRUPT; set_reason(reason, reason_len, "truncated stream"); break; }
            rc = CC_CORRUPT; set_reason(reason, reason_len, "decoder made no progress"); break;
        }
    }
    inflateEnd(&s);
    return rc;
}

/* ---------- brotli ---------- */

static int br_decode(const uint8_t *in, size_t in_len, outbuf *o, char *reason, size_t reason_len) {
    BrotliDecoderState *st = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (!st) { set_reason(reason, reason_len, "out of memory"); return CC_NO_MEMORY; }
    const uint8_t *next_in = in;
    size_t avail_in = in_len;
    int rc = CC_OK;
    for (;;) {
        size_t room; int probing;
        uint8_t *dst = ob_space(o, &room, &probing);
        if (!dst) { rc = CC_NO_MEMORY; set_reason(reason, reason_len, "out of memory"); break; }
        uint8_t *next_out = dst;
        size_t avail_out = room;
        size_t in_before = avail_in;
        BrotliDecoderResult r = BrotliDecoderDecompressStream(st, &avail_in, &next_in, &avail_out, &next_out, NULL);
        size_t wrote = room - avail_out;
        if (probing) {
            if (wrote > 0) { rc = CC_TOO_LARGE; set_reason(reason, reason_len, "output over the limit"); break; }
        } else {
            o->len += wrote;
        }
        if (r == BROTLI_DECODER_RESULT_SUCCESS) {
            if (avail_in > 0) { rc = CC_CORRUPT; set_reason(reason, reason_len, "bytes after the end of the stream"); }
            break;
        }
        if (r == BROTLI_DECODER_RESULT_ERROR) { rc = CC_CORRUPT; set_reason(reason, reason_len, "invalid brotli data"); break; }
        if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) { rc = CC_CORRUPT; set_reason(reason, reason_len, "truncated stream"); break; }
        /* NEEDS_MORE_OUTPUT: loop for more room (or the probe); never spin without progress. */
        if (wrote == 0 && avail_in == in_before && probing) {
            rc = CC_CORRUPT; set_reason(reason, reason_len, "decoder made no progress"); break;
        }
    }
    BrotliDecoderDestroyInstance(st);
    return rc;
}

/* ---------- zstd ---------- */

static int zstd_decode(const uint8_t *in, size_t in_len, outbuf *o, size_t *units, char *reason, size_t reason_len) {
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) { set_reason(reason, reason_len, "out of memory"); return CC_NO_MEMORY; }
    /* The window is memory the decoder allocates from a frame's header alone: bound it.
     * 2^23 (8 MiB) covers every standard compression level; more only when the cap is larger. */
    int wlog = 23;
    while (wlog < 27 && ((size_t)1 << wlog) < o->max_out) wlog++;
    ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, wlog);
    ZSTD_inBuffer ib = { in, in_len, 0 };
    int rc = CC_OK;
    size_t last = 0; /* 0 at a frame boundary */
    for (;;) {
        size_t room; int probing;
        uint8_t *dst = ob_space(o, &room, &probing);
        if (!dst) { rc = CC_NO_MEMORY; set_reason(reason, reason_len, "out of memory"); break; }
        ZSTD_outBuffer ob = { dst, room, 0 };
        size_t before = ib.pos;
        size_t r = ZSTD_decompressStream(dctx, &ob, &ib);
        if (ZSTD_isError(r)) {
            if (ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge) {
                rc = CC_TOO_LARGE; set_reason(reason, reason_len, "frame window over the limit");
            } else if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation) {
                rc = CC_NO_MEMORY; set_reason(reason, reason_len, "out of memory");
            } else if (ZSTD_getErrorCode(r) == ZSTD_error_prefix_unknown && last == 0 && before > 0) {
                rc = CC_CORRUPT; set_reason(reason, reason_len, "bytes after the last zstd frame");
            } else {
                rc = CC_CORRUPT; set_reason(reason, reason_len, "invalid zstd data");
            }
            break;
        }
        if (probing) {
            if (ob.pos > 0) { rc = CC_TOO_LARGE; set_reason(reason, reason_len, "output over the limit"); break; }
        } else {
            o->len += ob.pos;
        }
        if (r == 0) (*units)++;
        last = r;
        if (ib.pos == ib.size) {
            /* All input consumed. Done only at a frame boundary with everything flushed. */
            if (r == 0) break;
            if (ob.pos == ob.size) continue; /* output was full: there may be more to flush */
            rc = CC_CORRUPT; set_reason(reason, reason_len, "truncated stream"); break;
        }
        if (ib.pos == before && ob.pos == 0) {
            rc = CC_CORRUPT; set_reason(reason, reason_len, "decoder made no progress"); break;
        }
    }
    ZSTD_freeDCtx(dctx);
    return rc;
}

/* ---------- entry point ---------- */

int cc_decode(int coding, const uint8_t *in, size_t in_len, size_t max_out,
              uint8_t **out, size_t *out_len, char *reason, size_t reason_len, cc_stats *stats) {
    *out = NULL; *out_len = 0;
    if (reason && reason_len) reason[0] = 0;
    if (stats) { stats->peak_capacity = 0; stats->units = 0; }
    if (coding < CC_GZIP || coding > CC_ZSTD) { set_reason(reason, reason_len, "unknown coding"); return CC_UNKNOWN; }
    if (in_len == 0) return CC_OK;
    outbuf o;
    ob_init(&o, in_len, max_out);
    size_t units = 0;
    int rc;
    switch (coding) {
    case CC_GZIP: rc = zlib_decode(in, in_len, 16 + 15, 1, &o, &units, reason, reason_len); break;
    case CC_DEFLATE:
        /* "deflate" means zlib-wrapped (RFC 9110) but servers send raw deflate too. Raw data whose
         * first two bytes happen to look like a zlib header gets a second try as raw. */
        if (zlib_header(in, in_len)) {
            rc = zlib_decode(in, in_len, 15, 0, &o, &units, reason, reason_len);
            if (rc != CC_CORRUPT) break;
            ob_free(&o); ob_init(&o, in_len, max_out); units = 0;
            char first[96]; set_reason(first, sizeof first, reason ? reason : "");
            rc = zlib_decode(in, in_len, -15, 0, &o, &units, reason, reason_len);
            if (rc == CC_CORRUPT && reason && reason_len) set_reason(reason, reason_len, first);
        } else {
            rc = zlib_decode(in, in_len, -15, 0, &o, &units, reason, reason_len);
        }
        break;
    case CC_BR: rc = br_decode(in, in_len, &o, reason, reason_len); units = rc == CC_OK; break;
    default: rc = zstd_decode(in, in_len, &o, &units, reason, reason_len); break;
    }
    if (stats) { stats->peak_capacity = o.peak; stats->units = units; }
    if (rc != CC_OK) { ob_free(&o); return rc; }
    if (o.len == 0) { ob_free(&o); return CC_OK; }
    *out = o.buf; *out_len = o.len;
    return CC_OK;
}

void cc_free(uint8_t *p) { free(p); }
