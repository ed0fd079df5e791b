// See CHyperscan.h. Declares the few Hyperscan symbols it needs itself,
// resolves them with dlopen/dlsym once (pthread_once), and never links them.
#define _GNU_SOURCE
#include "CHyperscan.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- Hyperscan (declared here, ABI of libhs 5.x) ---------------- */
typedef int hs_error_t;
typedef struct hs_database hs_database_t;
typedef struct hs_scratch hs_scratch_t;
typedef struct hs_compile_error { char *message; int expression; } hs_compile_error_t;
typedef struct hs_platform_info hs_platform_info_t;
typedef int (*match_event_handler)(unsigned int id, unsigned long long from,
                                   unsigned long long to, unsigned int flags, void *context);
#define HS_MODE_BLOCK 1

static struct {
    hs_error_t (*compile_multi)(const char *const *, const unsigned *, const unsigned *, unsigned,
                                unsigned, const hs_platform_info_t *, hs_database_t **,
                                hs_compile_error_t **);
    hs_error_t (*free_compile_error)(hs_compile_error_t *);
    hs_error_t (*free_database)(hs_database_t *);
    hs_error_t (*alloc_scratch)(const hs_database_t *, hs_scratch_t **);
    hs_error_t (*free_scratch)(hs_scratch_t *);
    hs_error_t (*scan)(const hs_database_t *, const char *, unsigned, unsigned, hs_scratch_t *,
                       match_event_handler, void *);
    hs_error_t (*valid_platform)(void);
    int ok;
} hs;

static pthread_once_t hs_once = PTHREAD_ONCE_INIT;

static void hs_load(void) {
    void *h = dlopen("libhs.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libhs.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    *(void **)&hs.compile_multi = dlsym(h, "hs_compile_multi");
    *(void **)&hs.free_compile_error = dlsym(h, "hs_free_compile_error");
    *(void **)&hs.free_database = dlsym(h, "hs_free_database");
    *(void **)&hs.alloc_scratch = dlsym(h, "hs_alloc_scratch");
    *(void **)&hs.free_scratch = dlsym(h, "hs_free_scratch");
    *(void **)&hs.scan = dlsym(h, "hs_scan");
    *(void **)&hs.valid_platform = dlsym(h, "hs_valid_platform");
    if (!hs.compile_multi || !hs.free_compile_error || !hs.free_database || !hs.alloc_scratch ||
        !hs.free_scratch || !hs.scan) return;
    if (hs.valid_platform && hs.valid_platform() != 0) return;
    hs.ok = 1;
}

int chs_available(void) {
    if (getenv("SLUICE_DISABLE_HYPERSCAN")) return 0;
    pthread_once(&hs_once, hs_load);
    return hs.ok;
}

chs_database *chs_compile(const char *const *patterns, const unsigned *flags, const unsigned *ids,
                          unsigned count, char *err, size_t err_len, int *err_index) {
    if (err && err_len) err[0] = 0;
    if (err_index) *err_index = -1;
    if (!chs_available()) {
        if (err && err_len) strncpy(err, "hyperscan unavailable", err_len - 1);
        return NULL;
    }
    hs_database_t *db = NULL;
    hs_compile_error_t *ce = NULL;
    if (hs.compile_multi(patterns, flags, ids, count, HS_MODE_BLOCK, NULL, &db, &ce) != 0) {
        if (ce) {
            if (err && err_len && ce->message) { strncpy(err, ce->message, err_len - 1); err[err_len - 1] = 0; }
            if (err_index) *err_index = ce->expression;
            hs.free_compile_error(ce);
        }
        return NULL;
    }
    return (chs_database *)db;
}

void chs_free_database(chs_database *db) { if (db && hs.ok) hs.free_database((hs_database_t *)db); }

chs_scratch *chs_alloc_scratch(const chs_database *db) {
    if (!db || !hs.ok) return NULL;
    hs_scratch_t *s = NULL;
    if (hs.alloc_scratch((const hs_database_t *)db, &s) != 0) return NULL;
    return (chs_scratch *)s;
}

chs_scratch *chs_grow_scratch(const chs_database *db, chs_scratch *scratch) {
    if (!db || !scratch || !hs.ok) return NULL;
    hs_scratch_t *s = (hs_scratch_t *)scratch;
    if (hs.alloc_scratch((const hs_database_t *)db, &s) != 0) return NULL;
    return (chs_scratch *)s;
}

void chs_free_scratch(chs_scratch *scratch) { if (scratch && hs.ok) hs.free_scratch((hs_scratch_t *)scratch); }

struct scan_ctx {
    chs_events *ev;
    const uint8_t *collapse;
    size_t collapse_bits;
};

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *context) {
    (void)from; (void)flags;
    struct scan_ctx *c = (struct scan_ctx *)context;
    chs_events *ev = c->ev;
    if (c->collapse && id < c->collapse_bits && (c->collapse[id >> 3] & (1u << (id & 7)))) {
        /* Look back a few events for the same id ending one byte earlier. */
        size_t lim = ev->count > 8 ? ev->count - 8 : 0;
        for (size_t i = ev->count; i > lim; i--) {
            if (ev->ids[i - 1] == id && ev->ends[i - 1] + 1 == to) { ev->ends[i - 1] = to; return 0; }
        }
    }
    if (ev->count == ev->capacity) {
        size_t nc = ev->capacity ? ev->capacity * 2 : 256;
        uint32_t *ni = realloc(ev->ids, nc * sizeof(uint32_t));
        if (!ni) { ev->overflow = 1; return 1; }
        ev->ids = ni;
        uint64_t *ne = realloc(ev->ends, nc * sizeof(uint64_t));
        if (!ne) { ev->overflow = 1; return 1; }
        ev->ends = ne;
        ev->capacity = nc;
    }
    ev->ids[ev->count] = id;
    ev->ends[ev->count] = to;
    ev->count++;
    return 0;
}

int chs_scan(const chs_database *db, chs_scratch *scratch, const uint8_t *data, size_t len,
             const uint8_t *collapse, size_t collapse_bits, chs_events *events) {
    if (!db || !scratch || !hs.ok) return -1;
    if (len > 0xFFFFFFFFu) return -2;
    struct scan_ctx c = { events, collapse, collapse_bits };
    hs_error_t r = hs.scan((const hs_database_t *)db, (const char *)data, (unsigned)len, 0,
                           (hs_scratch_t *)scratch, on_match, &c);
    if (events->overflow) return -12;
    return r;
}

void chs_events_free(chs_events *events) {
    if (!events) return;
    free(events->ids); free(events->ends);
    events->ids = NULL; events->ends = NULL; events->count = events->capacity = 0;
}
