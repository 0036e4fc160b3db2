/* One precision of the sequential NOH-NMS kernel; included by noh_nms_kernel.c with
 * REAL (float / double), SUFFIX (f32 / f64), EXP_, LOG_ and UKEY defined.
 *
 * The algorithm is the one-pick-at-a-time loop of spec noh-nms.md 4.2 (the same as
 * mm_ext.core.nms.testing.crowd_nms_reference), with
 *   - the overlapping pairs (IoU > t, same label, non-empty boxes) found once by a sweep
 *     over the boxes sorted by (label, horizontal band, x1) (see find_pairs), the exact IoU
 *     only for the candidates;
 *   - the next pick = the better of the head of the initial score order (boxes whose score
 *     never changed) and the top of a max-heap of rescored boxes (lazy deletion: a score only
 *     decreases, and every decrease pushes a new entry); order: score desc, index asc.
 * Arithmetic in REAL mirrors the vectorised numpy path of mm_ext.core.nms._rounds (same
 * formulas, same order of operations), so the kept boxes are the same.
 */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)

typedef struct {
    REAL s;
    int32_t i;
} FN(entry);

/* a before b: higher score, ties by lower index */
static inline int FN(before)(REAL sa, int32_t ia, REAL sb, int32_t ib) {
    return sa > sb || (sa == sb && ia < ib);
}

static void FN(heap_pop)(FN(entry) *h, int64_t size) { /* h[0] <- h[size], sift down */
    FN(entry) x = h[size];
    int64_t k = 0;
    for (;;) {
        int64_t l = 2 * k + 1;
        if (l >= size) break;
        if (l + 1 < size && FN(before)(h[l + 1].s, h[l + 1].i, h[l].s, h[l].i)) l++;
        if (!FN(before)(h[l].s, h[l].i, x.s, x.i)) break;
        h[k] = h[l];
        k = l;
    }
    h[k] = x;
}

static void FN(heap_push)(FN(entry) *h, int64_t size, REAL s, int32_t i) { /* into h[size] */
    int64_t k = size;
    while (k > 0) {
        int64_t p = (k - 1) / 2;
        if (!FN(before)(s, i, h[p].s, h[p].i)) break;
        h[k] = h[p];
        k = p;
    }
    h[k].s = s;
    h[k].i = i;
}

/* Overlapping pairs: IoU > iou_thr, same label, both boxes non-empty and alive (alive NULL:
 * all). Returns the number of pairs P, written as int32 (u, v) to *pairs_out (a per-thread
 * buffer, valid until the next call), or -1 when memory runs out.
 *
 * No N x N matrix: the boxes are sorted by (label, horizontal band, x1) with bands of height
 * c h_max / B (c = 1 / (1 + t), B = 1 or 2); IoU > t needs, with i the box of smaller x1,
 *   0 <= x1_j - x1_i < (1 - t) w_i   and   -c (min(h_i / t, h_max) - t h_i) < y1_j - y1_i < (1 - t) h_i,
 * so an anchor's candidates are a run of boxes in each of the <= 2B + 1 bands its vertical
 * window touches (found with one pointer per band offset that only moves forward), and the
 * exact IoU is computed on those candidates only. A pair is found once: from its box of
 * smaller x1; at equal x1 from the upper band (or, in one band, from the earlier box). */
static int64_t FN(find_pairs)(int64_t n, const REAL *b, const uint8_t *alive, const int64_t *labels,
                              double iou_thr, int legacy_offset, int32_t **pairs_out) {
    const double td = iou_thr > 0 ? iou_thr : 0;
    const double c_ = 1.0 / (1.0 + td), shrink = 1.0 - td * td;
    const REAL t = (REAL)td, off = legacy_offset ? (REAL)1 : (REAL)0;
    const int tz = !(t > 0);
    uint64_t *key = ws_get(WS_KEYS, sizeof(uint64_t) * n, 0), *key2 = ws_get(WS_KEYS2, sizeof(uint64_t) * n, 0);
    int32_t *idx = ws_get(WS_IDX, sizeof(int32_t) * n, 0), *idx2 = ws_get(WS_IDX2, sizeof(int32_t) * n, 0);
    double *sxd = ws_get(WS_SWEEP, (3 * sizeof(double) + sizeof(int64_t) + 5 * sizeof(REAL)) * n, 0);
    int32_t *pairs = ws_get(WS_PAIRS, 0, 1);
    if (!key || !key2 || !idx || !idx2 || !sxd || !pairs) return -1;
    double *syrel = sxd + n, *sh = syrel + n;
    int64_t *sgrp = (int64_t *)(sh + n);
    REAL *sx1 = (REAL *)(sgrp + n), *sy1 = sx1 + n, *sx2 = sy1 + n, *sy2 = sx2 + n, *sarea = sy2 + n;
    int64_t m = 0, npairs = 0;
    int64_t cap = (int64_t)(ws[WS_PAIRS].cap / (2 * sizeof(int32_t)));
    *pairs_out = pairs;
    if (!(td < 1)) return 0; /* IoU > 1 is impossible */

    double ymin = INFINITY, ymax = -INFINITY, hmax = 0;
    int64_t lmin = 0, lmax = 0;
    for (int64_t i = 0; i < n; i++) {
        const REAL *bi = b + 4 * i;
        double w = (double)bi[2] - (double)bi[0], h = (double)bi[3] - (double)bi[1];
        if ((alive ? alive[i] : 1) && w > 0 && h > 0) { /* an empty box overlaps nothing */
            key[m] = UKEY(bi[0]);
            idx[m] = (int32_t)i;
            m++;
            double y = (double)bi[1];
            ymin = y < ymin ? y : ymin;
            ymax = y > ymax ? y : ymax;
            hmax = h > hmax ? h : hmax;
            if (labels) {
                if (m == 1 || labels[i] < lmin) lmin = labels[i];
                if (m == 1 || labels[i] > lmax) lmax = labels[i];
            }
        }
    }
    if (m < 2) return 0;
    const int64_t nb = m < FINE_BANDS_FROM ? 1 : 2;
    const double band_h = c_ * hmax / (double)nb;
    const double maxb = floor((ymax - ymin) / band_h);
    const int64_t stride = (int64_t)maxb + 2 * nb + 1;
    /* classes in separate groups, unless the label range would overflow (then the label test alone) */
    const int by_label = labels && maxb < 1e15 && (double)(lmax - lmin) * (double)stride < 1e18;
    radix_sort(&key, &idx, &key2, &idx2, m); /* by x1 */
    for (int64_t a = 0; a < m; a++) {
        int64_t i = idx[a];
        double yrel = ((double)b[4 * i + 1] - ymin) / band_h;
        key[a] = (uint64_t)((int64_t)floor(yrel) + nb + (by_label ? (labels[i] - lmin) * stride : 0));
    }
    radix_sort(&key, &idx, &key2, &idx2, m); /* stable: by (group, x1) */
    int64_t *slab = (int64_t *)key2; /* the spare key buffer after the sorts: labels in sorted order */
    for (int64_t a = 0; a < m; a++) { /* sorted copies: the sweep reads memory in order */
        const REAL *bi = b + 4 * idx[a];
        sx1[a] = bi[0];
        sy1[a] = bi[1];
        sx2[a] = bi[2];
        sy2[a] = bi[3];
        sarea[a] = (bi[2] - bi[0] + off) * (bi[3] - bi[1] + off);
        sxd[a] = (double)bi[0];
        syrel[a] = ((double)bi[1] - ymin) / band_h;
        sh[a] = (double)bi[3] - (double)bi[1];
        sgrp[a] = (int64_t)key[a];
        slab[a] = labels ? labels[idx[a]] : 0;
    }

    for (int64_t gs = 0, ge; gs < m; gs = ge) {
        const int64_t gv = sgrp[gs];
        int64_t he[5], pk[5]; /* per band offset k = -nb..nb: end of its run, forward pointer */
        ge = lower_bound_i64(sgrp, gs, m, gv + 1);
        for (int64_t k = -nb; k <= nb; k++) {
            pk[k + nb] = k ? lower_bound_i64(sgrp, 0, m, gv + k) : gs;
            he[k + nb] = k ? lower_bound_i64(sgrp, pk[k + nb], m, gv + k + 1) : ge;
        }
        for (int64_t a = gs; a < ge; a++) {
            if (npairs + m > cap) { /* room for every candidate of this anchor */
                pairs = ws_get(WS_PAIRS, sizeof(int32_t) * 2 * (2 * (npairs + m) + 1024), 1);
                if (!pairs) return -1;
                *pairs_out = pairs;
                cap = (int64_t)(ws[WS_PAIRS].cap / (2 * sizeof(int32_t)));
            }
            const double xa = sxd[a], wa = (double)sx2[a] - xa, ya = syrel[a], ha = sh[a];
            const double limit = xa + ((1.0 - td) * wa * (1.0 + 1e-9) + 1e-9 * fabs(xa) + 1e-12); /* a superset */
            const double up = (td > 0 ? (ha / td < hmax ? ha / td : hmax) : hmax) - td * ha;
            const double fa = floor(ya);
            int64_t k_lo = (int64_t)(floor(ya - (c_ / band_h) * up - 1e-9 * (1.0 + fabs(ya))) - fa);
            int64_t k_hi = (int64_t)(floor(ya + (c_ * shrink / band_h) * ha + 1e-9 * (1.0 + fabs(ya))) - fa);
            k_lo = k_lo < -nb ? -nb : k_lo;
            k_hi = k_hi > nb ? nb : k_hi;
            const REAL x1a = sx1[a], y1a = sy1[a], x2a = sx2[a], y2a = sy2[a], area_a = sarea[a];
            const int64_t la = slab[a];
            const int32_t u = idx[a];
            for (int64_t k = k_lo; k <= k_hi; k++) {
                int64_t c = a + 1;
                const int64_t end = he[k + nb];
                if (k) { /* other bands: above, x1_j > x1_i; below, x1_j >= x1_i */
                    c = pk[k + nb];
                    if (k < 0) {
                        while (c < end && sxd[c] <= xa) c++;
                    } else {
                        while (c < end && sxd[c] < xa) c++;
                    }
                    pk[k + nb] = c;
                }
                /* no branches in the test: most candidates fail, unpredictably; passing ones are appended */
                for (; c < end && sxd[c] < limit; c++) {
                    REAL iw = (x2a < sx2[c] ? x2a : sx2[c]) - (x1a > sx1[c] ? x1a : sx1[c]);
                    REAL ih = (y2a < sy2[c] ? y2a : sy2[c]) - (y1a > sy1[c] ? y1a : sy1[c]);
                    iw = iw > 0 ? iw : 0;
                    ih = ih > 0 ? ih : 0;
                    REAL inter = iw * ih;
                    REAL uni = area_a + sarea[c];
                    uni -= inter;
                    int ok = (inter > uni * t) & (tz | (inter / uni > t)); /* uni > 0: no empty boxes */
                    ok &= slab[c] == la;
                    pairs[2 * npairs] = u;
                    pairs[2 * npairs + 1] = idx[c];
                    npairs += ok;
                }
            }
        }
    }
    return npairs;
}

/* find_pairs for the tests: copies min(P, cap) pairs (int64 u, v with u < v) to out, returns P
 * (or -1: out of memory) */
int64_t FN(overlap_pairs)(int64_t n, const REAL *b, const int64_t *labels, double iou_thr, int legacy_offset,
                          int64_t *out, int64_t cap) {
    int32_t *pairs;
    int64_t np = FN(find_pairs)(n, b, NULL, labels, iou_thr, legacy_offset, &pairs);
    for (int64_t p = 0; p < np && p < cap; p++) {
        int32_t u = pairs[2 * p], v = pairs[2 * p + 1];
        out[2 * p] = u < v ? u : v;
        out[2 * p + 1] = u < v ? v : u;
    }
    ws_trim();
    return np;
}

/* q[0..3] = (x1, y1, ln w, ln h) of box x, w and h floored at EPS; returns w, h in wh */
static inline void FN(enc_terms)(const REAL *x, REAL *q, REAL *wh) {
    const REAL eps = (REAL)1e-6;
    REAL w = x[2] - x[0], h = x[3] - x[1];
    w = w > eps ? w : eps;
    h = h > eps ? h : eps;
    q[0] = x[0];
    q[1] = x[1];
    q[2] = LOG_(w);
    q[3] = LOG_(h);
    wh[0] = w;
    wh[1] = h;
}

/* Returns the number of kept boxes (written to keep[] in pick order; cur[] then holds the
 * final scores), -1 when memory runs out.
 *
 * n          number of boxes (< 2^31)
 * b          (n, 4) boxes x1, y1, x2, y2
 * cur        (n,) scores, updated in place (current scores)
 * alive0     (n,) initial candidates (1/0), or NULL for all
 * labels     (n,) class ids, or NULL (one class)
 * gate       (n,) NOH active (p > thr and a finite hallucinated box), or NULL (no NOH:
 *            greedy suppression removes the box, whatever min_score)
 * ob         (n, 4) hallucinated boxes (read where gate is set)
 */
int64_t FN(noh_nms)(int64_t n, const REAL *b, REAL *cur, const uint8_t *alive0, const int64_t *labels,
                    const uint8_t *gate, const REAL *ob, double iou_thr, double inv_two_var, double flag_thr,
                    double min_score, int legacy_offset, int64_t *keep) {
    const REAL minsc = (REAL)min_score, flag_t = (REAL)flag_thr, neg_inv = (REAL)(-inv_two_var);
    int64_t na = 0, hsize = 0, nkeep = -1;
    int32_t *pairs;
    int64_t npairs = FN(find_pairs)(n, b, alive0, labels, iou_thr, legacy_offset, &pairs);
    REAL *orig = ws_get(WS_REAL, sizeof(REAL) * 11 * n, 0);
    uint8_t *alive = ws_get(WS_BYTES, 2 * n, 0);
    int32_t *deg = ws_get(WS_INT, sizeof(int32_t) * (2 * n + 1), 0);
    uint64_t *key = ws_get(WS_KEYS, sizeof(uint64_t) * n, 0), *key2 = ws_get(WS_KEYS2, sizeof(uint64_t) * n, 0);
    int32_t *idx = ws_get(WS_IDX, sizeof(int32_t) * n, 0), *idx2 = ws_get(WS_IDX2, sizeof(int32_t) * n, 0);
    if (npairs < 0 || !orig || !alive || !deg || !key || !key2 || !idx || !idx2) goto done;
    REAL *terms = orig + n; /* per box: cand (4), hall (4), scale (2) */
    uint8_t *flag = alive + n;
    int32_t *pos = deg + n + 1;
    for (int64_t i = 0; i < n; i++) {
        alive[i] = alive0 ? alive0[i] : 1;
        flag[i] = 0;
        orig[i] = cur[i];
    }
    for (int64_t i = 0; i <= n; i++) deg[i] = 0;
    for (int64_t p = 0; p < npairs; p++) {
        deg[pairs[2 * p] + 1]++;
        deg[pairs[2 * p + 1] + 1]++;
    }
    /* adjacency (both directions), CSR */
    for (int64_t i = 0; i < n; i++) deg[i + 1] += deg[i];
    int32_t *adj = ws_get(WS_ADJ, sizeof(int32_t) * 2 * npairs, 0);
    FN(entry) *heap = ws_get(WS_HEAP, sizeof(FN(entry)) * (npairs + 1), 0);
    if (!adj || !heap) goto done;
    memcpy(pos, deg, sizeof(int32_t) * n);
    for (int64_t p = 0; p < npairs; p++) {
        int32_t u = pairs[2 * p], v = pairs[2 * p + 1];
        adj[pos[u]++] = v;
        adj[pos[v]++] = u;
    }

    /* per-box NOH terms: candidate (x1, y1, ln w, ln h), hallucinated box (same terms) and the
     * picked box's scale (1 / w, 1 / h); widths and heights floored at EPS */
    if (gate) {
        for (int64_t i = 0; i < n; i++) {
            if (!alive[i]) continue;
            REAL *q = terms + 10 * i, wh[2], owh[2];
            FN(enc_terms)(b + 4 * i, q, wh);
            if (gate[i]) {
                FN(enc_terms)(ob + 4 * i, q + 4, owh);
                q[8] = (REAL)1 / wh[0];
                q[9] = (REAL)1 / wh[1];
            }
        }
    }

    /* the initial pick order: score desc, index asc (stable sort of indices in order) */
    for (int64_t i = 0; i < n; i++) {
        if (alive[i]) {
            key[na] = ~UKEY(cur[i]);
            idx[na] = (int32_t)i;
            na++;
        }
    }
    radix_sort(&key, &idx, &key2, &idx2, na);

    /* the pick loop */
    nkeep = 0;
    for (int64_t h = 0;;) {
        while (h < na && (!alive[idx[h]] || cur[idx[h]] != orig[idx[h]])) h++; /* picked, dropped, rescored */
        while (hsize && (!alive[heap[0].i] || heap[0].s != cur[heap[0].i])) FN(heap_pop)(heap, --hsize);
        int32_t i;
        if (h < na && (!hsize || FN(before)(cur[idx[h]], idx[h], heap[0].s, heap[0].i))) {
            i = idx[h++];
        } else if (hsize) {
            i = heap[0].i;
            FN(heap_pop)(heap, --hsize);
        } else {
            break;
        }
        alive[i] = 0;
        keep[nkeep++] = i;
        const int noh_on = gate && gate[i] && !flag[i];
        const REAL *qi = terms + 10 * i;
        for (int32_t e = deg[i]; e < deg[i + 1]; e++) {
            int32_t j = adj[e];
            if (!alive[j]) continue;
            if (!gate) { /* plain greedy NMS: removed */
                alive[j] = 0;
                continue;
            }
            REAL f = 0;
            if (noh_on) {
                const REAL *qj = terms + 10 * j;
                REAL d0 = (qj[0] - qi[4]) * qi[8], d1 = (qj[1] - qi[5]) * qi[9];
                REAL d2 = qj[2] - qi[6], d3 = qj[3] - qi[7];
                REAL dist2 = d0 * d0 + d1 * d1;
                dist2 += d2 * d2;
                dist2 += d3 * d3;
                f = EXP_(dist2 * neg_inv);
                if (f >= flag_t) flag[j] = 1; /* its NOH is off: greedy when picked */
                if (!(f >= 0)) f = 0;         /* NaN */
            }
            REAL s = cur[j] * f;
            if (!(s >= minsc)) {
                alive[j] = 0;
            } else if (s != cur[j]) { /* unchanged: its current entry stays valid */
                cur[j] = s;
                FN(heap_push)(heap, hsize++, s, j);
            }
        }
    }

done:
    ws_trim();
    return nkeep;
}

#undef FN
#undef CAT
#undef CAT_
