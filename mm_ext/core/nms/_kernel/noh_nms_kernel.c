/* Sequential NOH-NMS on the CPU (float32 and float64), called through ctypes by
 * mm_ext.core.nms._ckernel. Plain C11 + libm: no Python or torch headers, so it builds in a
 * fraction of a second on first use. The algorithm is in noh_nms_body.h. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ABI version: bump when a signature changes (the loader checks it) */
int64_t noh_nms_kernel_version(void) { return 3; }

/* --- per-thread work buffers, kept between calls (no allocation or page faults per call);
 * a buffer above RETAIN_MAX bytes is released at the end of the call that needed it. */
enum { WS_KEYS, WS_KEYS2, WS_IDX, WS_IDX2, WS_SWEEP, WS_REAL, WS_BYTES, WS_PAIRS, WS_ADJ, WS_INT, WS_HEAP, WS_N };
#define RETAIN_MAX ((size_t)32 << 20)
static _Thread_local struct {
    void *p;
    size_t cap;
} ws[WS_N];

/* at least `bytes` in buffer k; `keep` preserves the content (growth); NULL when out of memory */
static void *ws_get(int k, size_t bytes, int keep) {
    if (bytes == 0) bytes = 1;
    if (ws[k].cap < bytes) {
        size_t cap = ws[k].cap * 2 > bytes ? ws[k].cap * 2 : bytes;
        void *p = keep ? realloc(ws[k].p, cap) : malloc(cap);
        if (!p) return NULL;
        if (!keep) free(ws[k].p);
        ws[k].p = p;
        ws[k].cap = cap;
    }
    return ws[k].p;
}

static void ws_trim(void) {
    for (int k = 0; k < WS_N; k++) {
        if (ws[k].cap > RETAIN_MAX) {
            free(ws[k].p);
            ws[k].p = NULL;
            ws[k].cap = 0;
        }
    }
}

/* order-preserving unsigned images of floats */
static inline uint64_t ukey64(double x) {
    uint64_t u;
    memcpy(&u, &x, 8);
    return (u >> 63) ? ~u : (u | ((uint64_t)1 << 63));
}
static inline uint64_t ukey32(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint64_t)((u >> 31) ? ~u : (u | (1u << 31))) << 32;
}

/* stable LSD radix sort of (key, val) by key, 11-bit digits, constant digits skipped;
 * returns the buffers holding the result (one of the two pairs). */
#define RADIX_BITS 11
#define RADIX (1 << RADIX_BITS)
static void radix_sort(uint64_t **key, int32_t **val, uint64_t **key2, int32_t **val2, int64_t n) {
    uint32_t hist[6][RADIX]; /* 48 KiB of stack */
    memset(hist, 0, sizeof(hist));
    uint64_t *k = *key, *k2 = *key2;
    int32_t *v = *val, *v2 = *val2;
    for (int64_t i = 0; i < n; i++)
        for (int d = 0; d < 6; d++) hist[d][(k[i] >> (d * RADIX_BITS)) & (RADIX - 1)]++;
    for (int d = 0; d < 6; d++) {
        int shift = d * RADIX_BITS;
        if (n == 0 || hist[d][(k[0] >> shift) & (RADIX - 1)] == (uint32_t)n) continue; /* constant */
        uint32_t sum = 0;
        for (int r = 0; r < RADIX; r++) {
            uint32_t c = hist[d][r];
            hist[d][r] = sum;
            sum += c;
        }
        for (int64_t i = 0; i < n; i++) {
            uint32_t at = hist[d][(k[i] >> shift) & (RADIX - 1)]++;
            k2[at] = k[i];
            v2[at] = v[i];
        }
        uint64_t *tk = k;
        k = k2;
        k2 = tk;
        int32_t *tv = v;
        v = v2;
        v2 = tv;
    }
    *key = k;
    *val = v;
    *key2 = k2;
    *val2 = v2;
}

/* horizontal bands per maximal vertical reach in the pair sweep: 1 below FINE_BANDS_FROM
 * candidates, 2 from there on (as the vectorised sweep of _rounds.py) */
#define FINE_BANDS_FROM 2500

static int64_t lower_bound_i64(const int64_t *a, int64_t lo, int64_t hi, int64_t v) {
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (a[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

#define REAL float
#define SUFFIX f32
#define EXP_ expf
#define LOG_ logf
#define UKEY ukey32
#include "noh_nms_body.h"
#undef REAL
#undef SUFFIX
#undef EXP_
#undef LOG_
#undef UKEY

#define REAL double
#define SUFFIX f64
#define EXP_ exp
#define LOG_ log
#define UKEY ukey64
#include "noh_nms_body.h"
