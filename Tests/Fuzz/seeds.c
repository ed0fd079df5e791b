// Writes seed inputs for the fuzz targets: valid streams of each coding (one and two members or
// frames), request paths and bodies. Usage: seeds OUT_DIR (creates OUT_DIR/<target>/...).
#include "CodingsEncoders.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void put(const char *dir, const char *target, int n, const uint8_t *p, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/seed-%02d", dir, target, n);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    fwrite(p, 1, len, f);
    fclose(f);
}

static const char *texts[] = {
    "",
    "hello",
    "{\"note\": \"token ghp_0123456789abcdefABCDEF0123456789abcd here\", \"n\": [1,2,3]}",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
};

/* Codings targets: the first byte picks the mode (even: decode the rest as is). */
static void put_stream(const char *dir, const char *target, int n, const uint8_t *p, size_t len) {
    uint8_t *buf = malloc(len + 1);
    buf[0] = 0;
    memcpy(buf + 1, p, len);
    put(dir, target, n, buf, len + 1);
    free(buf);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: seeds DIR\n"); return 2; }
    const char *dir = argv[1];
    const char *names[] = { "", "fuzz-gzip", "fuzz-deflate", "fuzz-br", "fuzz-zstd", "fuzz-deflate" };
    int counts[6] = { 0 };
    for (int c = 1; c <= 5; c++) {
        for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
            uint8_t *a; size_t al;
            if (cce_encode(c, (const uint8_t *)texts[t], strlen(texts[t]), &a, &al)) return 1;
            int k = c == 5 ? 2 : c; /* raw deflate seeds go with deflate */
            put_stream(dir, names[c], counts[k]++, a, al);
            if (c == 1 || c == 4) { /* two members / frames */
                uint8_t *two = malloc(2 * al);
                memcpy(two, a, al); memcpy(two + al, a, al);
                put_stream(dir, names[c], counts[k]++, two, 2 * al);
                free(two);
            }
            cce_free(a);
        }
    }
    /* Round-trip seeds: mode byte (odd), two position bytes, plain text. */
    for (int c = 1; c <= 4; c++) {
        for (size_t t = 1; t < sizeof texts / sizeof *texts; t++) {
            const uint8_t modes[] = { 0x01, 0x03, 0x05, 0x09, 0x0b };
            for (size_t m = 0; m < sizeof modes; m++) {
                size_t len = strlen(texts[t]);
                uint8_t *buf = malloc(len + 3);
                buf[0] = modes[m]; buf[1] = 0; buf[2] = (uint8_t)(7 * m + t);
                memcpy(buf + 3, texts[t], len);
                put(dir, names[c], counts[c]++, buf, len + 3);
                free(buf);
            }
        }
    }
    const char *paths[] = { "/admin/users", "//admin/./x/../users", "/%61dmin/%2e%2e/x", "/a;b/..;c/d",
                            "/%E2%82%AC/caf%C3%A9", "/x?y=1&z=%41", "",
                            /* found by fuzz-canonical-path: hex digits of a %25XX escape, themselves escaped */
                            "/x?y&z=%25%30d.~", "/admin%25%32%46users" };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        put(dir, "fuzz-canonical-path", (int)i, (const uint8_t *)paths[i], strlen(paths[i]));
    const char *json[] = { "\\u0044ROP TABLE t", "x\\\\u0041KIA\\n\\t\\\"", "\\ud83d\\ude00 \\u0067hp_", "plain" };
    for (size_t i = 0; i < sizeof json / sizeof *json; i++)
        put(dir, "fuzz-scan-json", (int)i, (const uint8_t *)json[i], strlen(json[i]));
    const char *pct[] = { "a=1&token=%67hp_%41%42&b=%2", "q=%25%32%35+x&y", "%zz%%41%c3%a9" };
    for (size_t i = 0; i < sizeof pct / sizeof *pct; i++)
        put(dir, "fuzz-scan-percent", (int)i, (const uint8_t *)pct[i], strlen(pct[i]));
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
        uint8_t *a; size_t al;
        if (cce_encode(1, (const uint8_t *)texts[t], strlen(texts[t]), &a, &al)) return 1;
        put(dir, "fuzz-scan-base64", (int)t, a, al);  /* gzip inside base64 */
        cce_free(a);
    }
    put(dir, "fuzz-scan-base64", 10, (const uint8_t *)texts[2], strlen(texts[2]));
    return 0;
}
