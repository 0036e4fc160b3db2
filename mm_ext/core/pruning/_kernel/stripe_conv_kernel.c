/* Fused stripe-wise convolution (PFF, arXiv 2009.14410): the CPU kernel of PrunedConv2d's 'fused' form.
 *
 * out[b, n, y, x] = bias[n] + sum over the live stripes r = (n, i, j) of filter n, sum over c:
 *                   w[r, c] * xpad[b, c, y*s + i, x*s + j]
 *
 * Only live stripes are multiplied (the kept FLOPs), and every product is accumulated in
 * registers: no shifted copies, no partial-sum maps, no scatter. Per image (or group of 8
 * images) the input is copied once into a zero-padded scratch (polyphase planes for a stride
 * s > 1, so that every stripe reads unit-stride vectors), whatever the input's memory layout
 * (strides are passed; channels-last goes through 8x8 transposes), and the output is written
 * in whatever layout the strides describe, optionally through a ReLU.
 *
 * Two vector layouts (chosen by the caller, same results up to float rounding order):
 *  - mode 0, pixels in lanes: 8 consecutive output columns of one image per vector (maps >= 8 wide);
 *  - mode 1, images in lanes: the same pixel of 8 images per vector (small maps; batches >= 8).
 * An output tile is T = 8 vectors of every filter. The live stripes are grouped by kernel
 * position, up to 4 filters a group (the caller builds the groups): a group's microkernel keeps
 * F filters x V tile vectors of accumulators in registers (4x2, 3x2, 2x4, 1x8) and, per input
 * channel, loads V input vectors and F weights for F*V multiply-adds. Input channels are taken
 * in blocks whose slice of the scratch stays in L1 while every group reads it.
 *
 * C (gnu11) with GCC/Clang vector extensions (AVX intrinsics for the transposes where available);
 * no Python or torch headers. float32 only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#define PFF_STRIPE_KERNEL_VERSION 1

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

int64_t pff_stripe_kernel_version(void) { return PFF_STRIPE_KERNEL_VERSION; }

static inline v8f ldu(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline void stu(float *p, v8f v) { memcpy(p, &v, sizeof v); }
static inline v8f bcast(float a) { v8f v = {a, a, a, a, a, a, a, a}; return v; }
static inline v8f relu8(v8f v) { return (v8f)((v8i)v & (v > bcast(0.f))); }  /* lanewise max(v, 0) */

#define T 8 /* vectors (accumulators) per output tile */
#define CBLK_BYTES 16384 /* input slice per channel block (L1) */

/* Keep a loaded input vector in a register: without this GCC folds the load into every
 * multiply-add that uses it (F loads instead of one), which makes the loop load-bound. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define KEEP_IN_REG(v) __asm__("" : "+x"(v))
#else
#define KEEP_IN_REG(v) ((void)0)
#endif

/* Microkernel: F filters sharing a live kernel position x V tile vectors (F*V accumulators), all
 * input channels: each loaded input vector feeds F multiply-adds, each weight broadcast V. */
#define MK(F, V)                                                                                      \
static void mk##F##x##V(const float *q, const int64_t *io, int64_t C, int64_t pstride,              \
                        const float *wg, v8f *so, const int64_t *fil)                               \
{                                                                                                     \
    v8f acc[F][V];                                                                                    \
    for (int f = 0; f < F; ++f) for (int v = 0; v < V; ++v) acc[f][v] = so[fil[f] * T + v];          \
    for (int64_t c = 0; c < C; ++c, q += pstride, wg += F) {                                          \
        v8f xv[V];                                                                                    \
        for (int v = 0; v < V; ++v) { xv[v] = ldu(q + io[v]); KEEP_IN_REG(xv[v]); }                  \
        for (int f = 0; f < F; ++f) {                                                                 \
            v8f wv = bcast(wg[f]);                                                                    \
            for (int v = 0; v < V; ++v) acc[f][v] += xv[v] * wv;                                      \
        }                                                                                             \
    }                                                                                                 \
    for (int f = 0; f < F; ++f) for (int v = 0; v < V; ++v) so[fil[f] * T + v] = acc[f][v];          \
}
MK(1, 8)
MK(2, 4)
MK(3, 2)
MK(4, 2)

/* One output tile of T vectors for every filter: SO (N x T vectors) = bias + sum over the filter
 * groups (position, <= 4 filters live there, their weights C x F) of the group's products. */
static void tile(const float *S, const int64_t *io, int64_t C, int64_t cblk, int64_t pstride, int64_t N,
                 int64_t G, const int64_t *gsize, const int64_t *goff, const int64_t *gfil, const int64_t *gw,
                 const float *wt, const float *bias, v8f *SO)
{
    for (int64_t n = 0; n < N; ++n) {
        v8f b = bcast(bias ? bias[n] : 0.f);
        for (int k = 0; k < T; ++k) SO[n * T + k] = b;
    }
    /* input channels in blocks whose slice of the scratch stays in L1 while every group reads it */
    for (int64_t c0 = 0; c0 < C; c0 += cblk) {
        int64_t cn = C - c0 < cblk ? C - c0 : cblk;
        for (int64_t g = 0; g < G; ++g) {
            const float *q = S + goff[g] + c0 * pstride;
            const float *wg = wt + gw[g] + c0 * gsize[g];
            const int64_t *fil = gfil + 4 * g;
            switch (gsize[g]) {
            case 1: mk1x8(q, io, cn, pstride, wg, SO, fil); break;
            case 2: for (int v = 0; v < T; v += 4) mk2x4(q, io + v, cn, pstride, wg, SO + v, fil); break;
            case 3: for (int v = 0; v < T; v += 2) mk3x2(q, io + v, cn, pstride, wg, SO + v, fil); break;
            default: for (int v = 0; v < T; v += 2) mk4x2(q, io + v, cn, pstride, wg, SO + v, fil); break;
            }
        }
    }
}

/* 8x8 transpose of r[0..7] (row i, lane j) -> (row j, lane i). */
static inline void tr8(v8f r[8])
{
#ifdef __AVX__
    __m256 t0 = _mm256_unpacklo_ps((__m256)r[0], (__m256)r[1]), t1 = _mm256_unpackhi_ps((__m256)r[0], (__m256)r[1]);
    __m256 t2 = _mm256_unpacklo_ps((__m256)r[2], (__m256)r[3]), t3 = _mm256_unpackhi_ps((__m256)r[2], (__m256)r[3]);
    __m256 t4 = _mm256_unpacklo_ps((__m256)r[4], (__m256)r[5]), t5 = _mm256_unpackhi_ps((__m256)r[4], (__m256)r[5]);
    __m256 t6 = _mm256_unpacklo_ps((__m256)r[6], (__m256)r[7]), t7 = _mm256_unpackhi_ps((__m256)r[6], (__m256)r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = (v8f)_mm256_permute2f128_ps(u0, u4, 0x20); r[1] = (v8f)_mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = (v8f)_mm256_permute2f128_ps(u2, u6, 0x20); r[3] = (v8f)_mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = (v8f)_mm256_permute2f128_ps(u0, u4, 0x31); r[5] = (v8f)_mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = (v8f)_mm256_permute2f128_ps(u2, u6, 0x31); r[7] = (v8f)_mm256_permute2f128_ps(u3, u7, 0x31);
#else
    v8f t[8];
    for (int i = 0; i < 8; ++i) for (int j = 0; j < 8; ++j) t[j][i] = r[i][j];
    for (int i = 0; i < 8; ++i) r[i] = t[i];
#endif
}

/* dst[i * ds + l] = src[l * rs + i] for i < n, l < 8: 8 source rows of n floats, transposed in 8x8 blocks. */
static inline void gather_t8(float *dst, int64_t ds, const float *src, int64_t rs, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f r[8];
        for (int l = 0; l < 8; ++l) r[l] = ldu(src + l * rs + i);
        tr8(r);
        for (int l = 0; l < 8; ++l) stu(dst + (i + l) * ds, r[l]);
    }
    for (; i < n; ++i)
        for (int l = 0; l < 8; ++l) dst[i * ds + l] = src[l * rs + i];
}

/* Zero the scratch outside the data region (stride 1, all lanes filled): the padding border and slack. */
static void zero_border(float *S, int64_t C, int64_t H, int64_t W, int64_t p, int64_t hq, int64_t wq,
                        int64_t lanes, int64_t slack)
{
    int64_t plane = hq * wq, rb = (wq - p - W) * lanes;
    for (int64_t c = 0; c < C; ++c) {
        float *pl = S + c * plane * lanes;
        memset(pl, 0, sizeof(float) * p * wq * lanes);
        memset(pl + (p + H) * wq * lanes, 0, sizeof(float) * (hq - p - H) * wq * lanes);
        for (int64_t y = p; y < p + H; ++y) { /* a few floats a row: no library call */
            float *left = pl + y * wq * lanes, *right = pl + (y * wq + p + W) * lanes;
            for (int64_t i = 0; i < p * lanes; ++i) left[i] = 0.f;
            for (int64_t i = 0; i < rb; ++i) right[i] = 0.f;
        }
    }
    memset(S + C * plane * lanes, 0, sizeof(float) * slack);
}

/* Copy images b0 .. b0+nb-1 of x into the scratch: planar (lanes 1, nb 1) or images in lanes (lanes 8);
 * element (c, y, x) of image l goes to plane (row phase, column phase, c), row (y+p)/s, column (x+p)/s. */
static void fill(float *S, const float *x, int64_t b0, int64_t nb, int64_t C, int64_t H, int64_t W,
                 int64_t xsb, int64_t xsc, int64_t xsh, int64_t xsw, int64_t s, int64_t p, int64_t hq, int64_t wq,
                 int64_t lanes, int64_t slack, const int64_t *colq, int *bordered)
{
    int64_t plane = hq * wq, ps = plane * lanes;
    if (s == 1 && nb == lanes) {
        /* the data region is the same for every image and the border is never written: zero it once */
        if (!*bordered) zero_border(S, C, H, W, p, hq, wq, lanes, slack);
        *bordered = 1;
    } else {
        memset(S, 0, sizeof(float) * (s * s * C * plane * lanes + slack));
        *bordered = 1;
    }
    if (s == 1 && lanes == 1) {
        const float *xb = x + b0 * xsb;
        if (xsw == 1) { /* rows are contiguous */
            for (int64_t c = 0; c < C; ++c)
                for (int64_t y = 0; y < H; ++y) { /* short rows: inline vector copy, no library call */
                    float *dst = S + c * plane + (y + p) * wq + p;
                    const float *src = xb + c * xsc + y * xsh;
                    int64_t x0 = 0;
                    for (; x0 + 8 <= W; x0 += 8) stu(dst + x0, ldu(src + x0));
                    for (; x0 < W; ++x0) dst[x0] = src[x0];
                }
            return;
        }
        if (xsc == 1) { /* channels-last: 8 pixels x 8 channels, transposed */
            for (int64_t y = 0; y < H; ++y) {
                int64_t x0 = 0;
                for (; x0 + 8 <= W; x0 += 8)
                    gather_t8(S + (y + p) * wq + x0 + p, plane, xb + y * xsh + x0 * xsw, xsw, C);
                for (; x0 < W; ++x0)
                    for (int64_t c = 0; c < C; ++c) S[c * plane + (y + p) * wq + x0 + p] = xb[y * xsh + x0 * xsw + c];
            }
            return;
        }
    }
    if (s == 1 && lanes == 8 && nb == 8) {
        if (xsc == 1) { /* channels-last: 8 images x 8 channels of one pixel, transposed */
            for (int64_t y = 0; y < H; ++y)
                for (int64_t xx = 0; xx < W; ++xx)
                    gather_t8(S + ((y + p) * wq + xx + p) * 8, ps, x + b0 * xsb + y * xsh + xx * xsw, xsb, C);
            return;
        }
        if (xsw == 1) { /* rows contiguous: 8 images x 8 pixels, transposed */
            for (int64_t c = 0; c < C; ++c)
                for (int64_t y = 0; y < H; ++y)
                    gather_t8(S + (c * plane + (y + p) * wq + p) * 8, 8, x + b0 * xsb + c * xsc + y * xsh, xsb, W);
            return;
        }
    }
    /* general: any strides, polyphase planes for s > 1 (colq[x]: column phase * C * plane + column) */
    if (xsc == 1) { /* channels-last: contiguous reads */
        for (int64_t l = 0; l < nb; ++l) {
            const float *xb = x + (b0 + l) * xsb;
            for (int64_t y = 0; y < H; ++y) {
                int64_t yy = y + p;
                float *row = S + ((((yy % s) * s) * C) * plane + (yy / s) * wq) * lanes + l;
                for (int64_t xx = 0; xx < W; ++xx) {
                    const float *src = xb + y * xsh + xx * xsw;
                    float *dst = row + colq[xx] * lanes;
                    for (int64_t c = 0; c < C; ++c) dst[c * ps] = src[c];
                }
            }
        }
        return;
    }
    for (int64_t l = 0; l < nb; ++l) {
        const float *xb = x + (b0 + l) * xsb;
        for (int64_t c = 0; c < C; ++c)
            for (int64_t y = 0; y < H; ++y) {
                int64_t yy = y + p;
                float *row = S + ((((yy % s) * s) * C + c) * plane + (yy / s) * wq) * lanes + l;
                const float *src = xb + c * xsc + y * xsh;
                for (int64_t xx = 0; xx < W; ++xx) row[colq[xx] * lanes] = src[xx * xsw];
            }
    }
}

/* Write tile vector k of every filter (SO: N x T vectors) to the output, with the optional ReLU.
 * Lanes are m output columns (mode 0, lane stride osw) or m images (mode 1, lane stride osb). */
static void write_tile(const v8f *SO, int64_t k, int64_t N, float *o, int64_t m, int64_t lstride, int64_t osn,
                       int64_t relu)
{
    int64_t n0 = 0;
    if (osn == 1 && m == 8) { /* filters contiguous: 8 filters x 8 lanes, transposed */
        for (; n0 + 8 <= N; n0 += 8) {
            v8f r[8];
            for (int i = 0; i < 8; ++i) r[i] = relu ? relu8(SO[(n0 + i) * T + k]) : SO[(n0 + i) * T + k];
            tr8(r);
            for (int l = 0; l < 8; ++l) stu(o + l * lstride + n0, r[l]);
        }
    }
    if (osn == 1) {
        for (int64_t l = 0; l < m; ++l)
            for (int64_t n = n0; n < N; ++n) {
                float v = SO[n * T + k][l];
                o[l * lstride + n] = relu && v < 0.f ? 0.f : v;
            }
        return;
    }
    for (int64_t n = 0; n < N; ++n) {
        v8f v = relu ? relu8(SO[n * T + k]) : SO[n * T + k];
        if (m == 8 && lstride == 1) stu(o + n * osn, v);
        else for (int64_t l = 0; l < m; ++l) o[n * osn + l * lstride] = v[l];
    }
}

/* Returns 0, or -1 when scratch memory could not be allocated. */
int pff_stripe_conv_f32(const float *x, int64_t B, int64_t C, int64_t H, int64_t W,
                        int64_t xsb, int64_t xsc, int64_t xsh, int64_t xsw,
                        int64_t K, int64_t s, int64_t p,
                        int64_t N, int64_t G, const int64_t *gsize, const int64_t *gpos, const int64_t *gfil,
                        const int64_t *gw, const float *wt, const float *bias,
                        float *out, int64_t ho, int64_t wo, int64_t osb, int64_t osn, int64_t osh, int64_t osw,
                        int64_t mode, int64_t relu, int64_t nthreads)
{
    int64_t lanes = mode == 1 ? 8 : 1;
    int64_t dmax = (K - 1) / s;
    int64_t nvx = (wo + 7) / 8;                          /* mode 0: vectors per output row */
    int64_t wcols = mode == 1 ? wo : nvx * 8;             /* columns computed per row */
    int64_t hq = ho + dmax, wq = wcols + dmax;
    if ((p + H - 1) / s + 1 > hq) hq = (p + H - 1) / s + 1;
    if ((p + W - 1) / s + 1 > wq) wq = (p + W - 1) / s + 1;
    /* mode 0: rows of a whole number of vectors, and the scratch viewed from lm floats past an aligned
     * start, so that the copied data (column p) and the centre column's loads are 32-byte aligned */
    int64_t lm = 0;
    if (mode == 0) {
        wq = (wq + 7) / 8 * 8;
        if (s == 1) lm = (8 - p % 8) % 8;
    }
    int64_t plane = hq * wq, P = s * s * C;
    int64_t pstride = plane * lanes;
    int64_t slack = (2 * wq + 16) * lanes;                /* mode-0 tail vectors read past a row */
    int64_t sin = (P * plane * lanes + slack + 7) / 8 * 8;
    int64_t nslots = mode == 1 ? ho * wo : ho * nvx;
    int64_t ntasks = mode == 1 ? (B + 7) / 8 : B;
    /* scratch rows a tile reads, per channel (tile rows + kernel rows - 1): L1 blocking of the channels */
    int64_t trows = (mode == 1 ? (T + wo - 1) / wo : (T + nvx - 1) / nvx) + dmax + 1;
    int64_t cblk = CBLK_BYTES / (trows * wq * lanes * (int64_t)sizeof(float) + 1);
    if (cblk < 8) cblk = 8;
    int64_t *goff = malloc(sizeof(int64_t) * (G > 0 ? G : 1));
    if (!goff) return -1;
    for (int64_t g = 0; g < G; ++g) {
        int64_t i = gpos[g] / K, j = gpos[g] % K;
        int64_t ph = (i % s) * s + j % s;
        goff[g] = (ph * C * plane + (i / s) * wq + j / s) * lanes;
    }
    int64_t *colq = malloc(sizeof(int64_t) * (W > 0 ? W : 1));
    if (!colq) { free(goff); return -1; }
    for (int64_t xx = 0; xx < W; ++xx) colq[xx] = ((xx + p) % s) * C * plane + (xx + p) / s;
    int failed = 0;
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel num_threads(nthreads)
    {
        float *S0 = aligned_alloc(32, sizeof(float) * (sin + 8)), *S = S0 ? S0 + lm : NULL;
        v8f *SO = aligned_alloc(32, sizeof(v8f) * T * (N > 0 ? N : 1));
        int bordered = 0; /* this thread's scratch has its zero border */
        if (!S || !SO) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t task = 0; task < ntasks; ++task) {
            if (!S || !SO) continue;
            int64_t b0 = mode == 1 ? task * 8 : task;
            int64_t nb = mode == 1 ? (B - b0 < 8 ? B - b0 : 8) : 1;
            fill(S, x, b0, nb, C, H, W, xsb, xsc, xsh, xsw, s, p, hq, wq, lanes, sin - P * plane * lanes, colq,
                 &bordered);
            for (int64_t k0 = 0; k0 < nslots; k0 += T) {
                int64_t ns = nslots - k0 < T ? nslots - k0 : T;
                int64_t io[T], oy[T], ox[T];
                for (int64_t k = 0; k < T; ++k) {
                    int64_t kk = k0 + (k < ns ? k : 0); /* a short last tile repeats slot k0 */
                    if (mode == 1) { oy[k] = kk / wo; ox[k] = kk % wo; }
                    else { oy[k] = kk / nvx; ox[k] = (kk % nvx) * 8; }
                    io[k] = (oy[k] * wq + ox[k]) * lanes;
                }
                tile(S, io, C, cblk, pstride, N, G, gsize, goff, gfil, gw, wt, bias, SO);
                for (int64_t k = 0; k < ns; ++k) {
                    /* lanes of tile vector k: images (mode 1) or output columns (mode 0) */
                    int64_t m = mode == 1 ? nb : (wo - ox[k] < 8 ? wo - ox[k] : 8);
                    write_tile(SO, k, N, out + b0 * osb + oy[k] * osh + ox[k] * osw, m, mode == 1 ? osb : osw,
                               osn, relu);
                }
            }
        }
        free(S0);
        free(SO);
    }
    free(goff);
    free(colq);
    return failed ? -1 : 0;
}
