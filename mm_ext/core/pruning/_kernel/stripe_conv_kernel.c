/* Fused stripe-wise convolution (PFF, arXiv 2009.14410): the CPU kernel of PrunedConv2d's 'fused' form.
 *
 * out[b, n, y, x] = bias[n] + sum over the live stripes r = (n, i, j) of filter n, sum over c:
 *                   w[r, c] * xpad[b, c, y*s + i, x*s + j]
 *
 * Only live stripes are multiplied (the kept FLOPs), and every product is accumulated in
 * registers: no shifted copies, no partial-sum maps, no scatter. Per image (or group of 8
 * images) the input is copied once into a zero-padded scratch (polyphase planes for a stride
 * s > 1, so that every stripe reads unit-stride vectors), whatever the input's memory layout
 * (strides are passed), and the output is written in whatever layout the strides describe.
 *
 * Two vector layouts (chosen by the caller, same results up to float rounding order):
 *  - mode 0, pixels in lanes: 8 consecutive output columns of one image per vector (maps >= 8 wide);
 *  - mode 1, images in lanes: the same pixel of 8 images per vector (small maps; batches >= 8).
 * An output tile is 8 vectors (8 accumulators per filter); input channels are processed in blocks
 * whose slice of the scratch stays in L1 while every filter of the layer reads it.
 *
 * Plain C99 with GCC/Clang vector extensions; no Python or torch headers. float32 only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PFF_STRIPE_KERNEL_VERSION 1

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

int64_t pff_stripe_kernel_version(void) { return PFF_STRIPE_KERNEL_VERSION; }

static inline v8f ldu(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline void stu(float *p, v8f v) { memcpy(p, &v, sizeof v); }
static inline v8f bcast(float a) { v8f v = {a, a, a, a, a, a, a, a}; return v; }
static inline v8f relu8(v8f v) { return (v8f)((v8i)v & (v > bcast(0.f))); }  /* lanewise max(v, 0) */

#define T 8 /* vectors (accumulators) per output tile */

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
        for (int v = 0; v < V; ++v) xv[v] = ldu(q + io[v]);                                           \
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
static void tile(const float *S, const int64_t *io, int64_t C, int64_t pstride, int64_t N,
                 int64_t G, const int64_t *gsize, const int64_t *goff, const int64_t *gfil, const int64_t *gw,
                 const float *wt, const float *bias, v8f *SO)
{
    for (int64_t n = 0; n < N; ++n) {
        v8f b = bcast(bias ? bias[n] : 0.f);
        for (int k = 0; k < T; ++k) SO[n * T + k] = b;
    }
    for (int64_t g = 0; g < G; ++g) {
        const float *q = S + goff[g];
        const float *wg = wt + gw[g];
        const int64_t *fil = gfil + 4 * g;
        switch (gsize[g]) {
        case 1: mk1x8(q, io, C, pstride, wg, SO, fil); break;
        case 2: for (int v = 0; v < T; v += 4) mk2x4(q, io + v, C, pstride, wg, SO + v, fil); break;
        case 3: for (int v = 0; v < T; v += 2) mk3x2(q, io + v, C, pstride, wg, SO + v, fil); break;
        default: for (int v = 0; v < T; v += 2) mk4x2(q, io + v, C, pstride, wg, SO + v, fil); break;
        }
    }
}

/* Copy image b of x into the zero-filled scratch S at lane `lane` (lanes = 1: planar; 8: interleaved). */
static void fill(float *S, const float *xb, int64_t C, int64_t H, int64_t W, int64_t xsc, int64_t xsh,
                 int64_t xsw, int64_t s, int64_t p, int64_t hq, int64_t wq, int64_t lanes, int64_t lane)
{
    int64_t plane = hq * wq;
    if (s == 1 && lanes == 1 && xsw == 1) {
        for (int64_t c = 0; c < C; ++c)
            for (int64_t y = 0; y < H; ++y)
                memcpy(S + c * plane + (y + p) * wq + p, xb + c * xsc + y * xsh, sizeof(float) * W);
        return;
    }
    if (s == 1 && xsc == 1) { /* channels-last: contiguous reads */
        int64_t ps = plane * lanes;
        for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x) {
                const float *src = xb + y * xsh + x * xsw;
                float *dst = S + ((y + p) * wq + x + p) * lanes + lane;
                for (int64_t c = 0; c < C; ++c) dst[c * ps] = src[c];
            }
        return;
    }
    for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < H; ++y) {
            int64_t yy = y + p;
            const float *src = xb + c * xsc + y * xsh;
            for (int64_t x = 0; x < W; ++x) {
                int64_t xx = x + p;
                int64_t pl = ((yy % s) * s + xx % s) * C + c;
                S[(pl * plane + (yy / s) * wq + xx / s) * lanes + lane] = src[x * xsw];
            }
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
    int64_t plane = hq * wq, P = s * s * C;
    int64_t pstride = plane * lanes;
    int64_t sin = (P * plane + 2 * wq + 16) * lanes;     /* slack: mode-0 tail vectors read past a row */
    int64_t nslots = mode == 1 ? ho * wo : ho * nvx;
    int64_t ntasks = mode == 1 ? (B + 7) / 8 : B;
    int64_t *goff = malloc(sizeof(int64_t) * (G > 0 ? G : 1));
    if (!goff) return -1;
    for (int64_t g = 0; g < G; ++g) {
        int64_t i = gpos[g] / K, j = gpos[g] % K;
        int64_t ph = (i % s) * s + j % s;
        goff[g] = (ph * C * plane + (i / s) * wq + j / s) * lanes;
    }
    int failed = 0;
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel num_threads(nthreads)
    {
        float *S = malloc(sizeof(float) * sin);
        v8f *SO = aligned_alloc(32, sizeof(v8f) * T * (N > 0 ? N : 1));
        if (!S || !SO) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t task = 0; task < ntasks; ++task) {
            if (!S || !SO) continue;
            int64_t b0 = mode == 1 ? task * 8 : task;
            int64_t nb = mode == 1 ? (B - b0 < 8 ? B - b0 : 8) : 1;
            memset(S, 0, sizeof(float) * sin);
            for (int64_t l = 0; l < nb; ++l)
                fill(S, x + (b0 + l) * xsb, C, H, W, xsc, xsh, xsw, s, p, hq, wq, lanes, l);
            for (int64_t k0 = 0; k0 < nslots; k0 += T) {
                int64_t ns = nslots - k0 < T ? nslots - k0 : T;
                int64_t io[T], oy[T], ox[T];
                for (int64_t k = 0; k < T; ++k) {
                    int64_t kk = k0 + (k < ns ? k : 0); /* a short last tile repeats slot k0 */
                    if (mode == 1) { oy[k] = kk / wo; ox[k] = kk % wo; }
                    else { oy[k] = kk / nvx; ox[k] = (kk % nvx) * 8; }
                    io[k] = (oy[k] * wq + ox[k]) * lanes;
                }
                tile(S, io, C, pstride, N, G, gsize, goff, gfil, gw, wt, bias, SO);
                for (int64_t k = 0; k < ns; ++k) {
                    /* lanes of tile vector k: images (mode 1) or output columns (mode 0) */
                    int64_t m = mode == 1 ? nb : (wo - ox[k] < 8 ? wo - ox[k] : 8);
                    int64_t lstride = mode == 1 ? osb : osw;
                    float *o = out + b0 * osb + oy[k] * osh + ox[k] * osw;
                    if (osn == 1) { /* filters contiguous (channels-last): filter loop innermost */
                        for (int64_t l = 0; l < m; ++l)
                            for (int64_t n = 0; n < N; ++n) {
                                float v = SO[n * T + k][l];
                                o[l * lstride + n] = relu && v < 0.f ? 0.f : v;
                            }
                    } else {
                        for (int64_t n = 0; n < N; ++n) {
                            v8f v = relu ? relu8(SO[n * T + k]) : SO[n * T + k];
                            if (m == 8 && lstride == 1) stu(o + n * osn, v);
                            else for (int64_t l = 0; l < m; ++l) o[n * osn + l * lstride] = v[l];
                        }
                    }
                }
            }
        }
        free(S);
        free(SO);
    }
    free(goff);
    return failed ? -1 : 0;
}
