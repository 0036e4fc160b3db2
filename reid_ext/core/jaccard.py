"""k-reciprocal Jaccard distance over one image set, with ACT's source-aware term (torch only).

For N samples with squared distances d²(i, j), each row divided by its maximum (as torchreid's
``re_ranking`` does; write d(i, j) for the result):

- ``N(i, k)``: the k + 1 nearest samples of i (i itself first);
- ``R(i, k) = {j in N(i, k) : i in N(j, k)}``, the k-reciprocal neighbours;
- ``R*(i) = R(i, k1)`` joined with ``R(c, h)`` (h = round(k1 / 2)) for every c in ``R(i, k1)``
  with ``|R(c, h) ∩ R(i, k1)| > 2/3 |R(c, h)|``;
- ``V(i, j) = exp(-d(i, j)) / sum_{j' in R*(i)} exp(-d(i, j'))`` for j in ``R*(i)``, else 0;
- local query expansion (k2 > 1): ``V(i) <- mean of V(j)`` over the k2 nearest j of i;
- ``d_J(i, j) = 1 - m / (2 - m)`` with ``m = sum_k min(V(i, k), V(j, k))``.

This is the matrix torchreid's ``re_ranking(..., lambda_value=0)`` computes between its queries
and gallery when both are parts of the same N images (it needs two calls with swapped halves to
produce the off-diagonal blocks and cannot produce the rest).

Implementation: everything stays on the input's device. The neighbour table (N, k1 + 1) is built
from row chunks of the distance matrix; ``V`` is kept sparse (at most (k1+1)(h+2) entries per row
before, k2 times that after the expansion); ``m`` is accumulated from the row-wise and the
column-wise (inverted index) lists of ``V`` for chunks of rows. Besides the (N, N) result, the
working memory is O(N k1 h k2) plus one chunk (``chunk_bytes``).

ACT (arXiv 1912.01349) blends in a source-aware term: ``d = (1 - lam) d_J + lam (s_i + s_j)``,
``s_i = min_src (1 - exp(-||x_i - x_src||²))``, divided by its maximum over i
(:func:`source_distance`, :func:`act_distance`).
"""
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ['k_reciprocal_jaccard', 'source_distance', 'act_distance']

_CHUNK_BYTES = 1 << 26  # 64 MiB per chunk


def _rows_per_chunk(n_cols: int, bytes_per: int = 4, chunk_bytes: int = _CHUNK_BYTES) -> int:
    return max(1, chunk_bytes // max(1, n_cols * bytes_per))


def _dist_rows(x: torch.Tensor, sq: Optional[torch.Tensor], start: int, end: int,
               precomputed: bool, normalise: bool = True) -> torch.Tensor:
    """Rows ``start:end`` of the squared distance (divided by the row maximum), float32."""
    if precomputed:
        d = x[start:end].float().pow(2)
    else:
        d = torch.addmm(sq[None, :], x[start:end], x.t(), beta=1.0, alpha=-2.0)
        d.add_(sq[start:end, None]).clamp_(min=0)
        rows = torch.arange(end - start, device=x.device)
        d[rows, rows + start] = 0.0
    if not normalise:
        return d
    return d.div_(d.amax(dim=1, keepdim=True).clamp_(min=torch.finfo(d.dtype).tiny))


def _reciprocal_mask(nn: torch.Tensor, k: int, rows: torch.Tensor) -> torch.Tensor:
    """(B, k + 1) bool: ``nn[rows, q]`` is a k-reciprocal neighbour of the row."""
    fwd = nn[rows, :k + 1]
    back = nn[fwd, :k + 1]  # (B, k+1, k+1)
    return (back == rows[:, None, None]).any(dim=2)


def _neighbour_table(x, sq, precomputed, kmax, chunk_bytes):
    """(N, kmax) nearest samples of each row (itself first) and (N,) row maxima of d²."""
    n = x.shape[0]
    step = _rows_per_chunk(n, chunk_bytes=chunk_bytes)
    parts, maxima = [], []
    for s in range(0, n, step):
        d = _dist_rows(x, sq, s, min(n, s + step), precomputed, normalise=False)
        top = d.amax(dim=1).clamp_(min=torch.finfo(d.dtype).tiny)
        maxima.append(top)
        parts.append(torch.topk(d.div_(top[:, None]), kmax, dim=1, largest=False,
                                sorted=True).indices)
    return torch.cat(parts), torch.cat(maxima)


def _member_dist(x, sq, s, e, members, precomputed, row_max):
    """Normalised d²(i, members[i - s, l]) for rows i in [s, e); members all < N."""
    if precomputed:
        d = x[torch.arange(s, e, device=x.device)[:, None], members].float().pow(2)
    else:
        d = _dist_rows(x, sq, s, e, precomputed, normalise=False).gather(1, members)
    return d / row_max[s:e, None]


def _encoding(x, sq, precomputed, nn, row_max, k1, chunk_bytes):
    """Padded sparse ``V``: (N, L) column indices (N = padding, at the end) and (N, L) weights."""
    n, dev = x.shape[0], x.device
    h = int(round(k1 / 2.0))
    all_rows = torch.arange(n, device=dev)
    # R(c, h) of every sample, as a mask over nn[c, :h+1]
    step_m = _rows_per_chunk((k1 + 1) ** 2, bytes_per=8, chunk_bytes=chunk_bytes)
    rh = torch.cat([_reciprocal_mask(nn, h, all_rows[s:s + step_m]) for s in range(0, n, step_m)])
    rh_size = rh.sum(dim=1).double()
    width = (k1 + 1) * (h + 2)
    step = min(_rows_per_chunk(n, bytes_per=4, chunk_bytes=chunk_bytes),
               _rows_per_chunk(width * (k1 + 1), bytes_per=16, chunk_bytes=chunk_bytes))
    idx_out = torch.empty(n, width, dtype=torch.long, device=dev)
    val_out = torch.empty(n, width, dtype=torch.float32, device=dev)
    for s in range(0, n, step):
        e = min(n, s + step)
        rows = all_rows[s:e]
        b = torch.arange(e - s, device=dev)[:, None]
        fwd = nn[rows, :k1 + 1]                                   # (B, k1+1)
        r1 = _reciprocal_mask(nn, k1, rows)                        # (B, k1+1)
        in_r1_map = torch.zeros(e - s, n + 1, dtype=torch.bool, device=dev)
        in_r1_map[b, torch.where(r1, fwd, n)] = True
        in_r1_map[:, n] = False
        cand = nn[fwd, :h + 1]                                    # (B, k1+1, h+1)
        cand_in = rh[fwd]                                         # member of R(c, h)
        in_r1 = in_r1_map[b[..., None], cand]
        common = (in_r1 & cand_in).sum(dim=2).double()
        take = r1 & (common > 2.0 / 3.0 * rh_size[fwd])           # (B, k1+1)
        members = torch.cat([torch.where(r1, fwd, n),
                             torch.where(take[..., None] & cand_in, cand, n).flatten(1)], dim=1)
        members, _ = members.sort(dim=1)
        dup = torch.zeros_like(members, dtype=torch.bool)
        dup[:, 1:] = members[:, 1:] == members[:, :-1]
        members[dup] = n
        members, _ = members.sort(dim=1)                          # padding last
        valid = members < n
        d = _member_dist(x, sq, s, e, members.clamp(max=n - 1), precomputed, row_max)
        w = torch.exp(-d) * valid
        idx_out[s:e] = members
        val_out[s:e] = w / w.sum(dim=1, keepdim=True)
    used = int((idx_out < n).sum(dim=1).max())
    return idx_out[:, :used], val_out[:, :used]


def _to_csr(keys_row, cols, vals, n):
    """Drop padding/zeros; return row pointer, columns and values sorted by (row, col)."""
    keep = (cols < n) & (vals != 0)
    keys_row, cols, vals = keys_row[keep], cols[keep], vals[keep]
    order = torch.argsort(keys_row * (n + 1) + cols)
    keys_row, cols, vals = keys_row[order], cols[order], vals[order]
    ptr = torch.zeros(n + 1, dtype=torch.long, device=cols.device)
    ptr[1:] = torch.cumsum(torch.bincount(keys_row, minlength=n), 0)
    return ptr, cols, vals


def _expand(idx, val, nn, k2, chunk_bytes):
    """Local query expansion: CSR of mean_{j in N(i, k2 - 1)} V(j)."""
    n, width = idx.shape
    dev = idx.device
    if k2 <= 1:
        rows = torch.arange(n, device=dev)[:, None].expand(n, width).reshape(-1)
        return _to_csr(rows, idx.reshape(-1), val.reshape(-1), n)
    step = _rows_per_chunk(k2 * width, bytes_per=24, chunk_bytes=chunk_bytes)
    out_r, out_c, out_v = [], [], []
    for s in range(0, n, step):
        e = min(n, s + step)
        nb = nn[s:e, :k2]
        cols = idx[nb].flatten(1)                                 # (B, k2 * L)
        vals = val[nb].flatten(1)
        keys = torch.arange(s, e, device=dev)[:, None] * (n + 1) + cols
        keys, order = keys.flatten().sort()
        uniq, inv = torch.unique_consecutive(keys, return_inverse=True)
        sums = torch.zeros(uniq.shape[0], dtype=vals.dtype, device=dev)
        sums.index_add_(0, inv, vals.flatten()[order])
        out_r.append(uniq // (n + 1))
        out_c.append(uniq % (n + 1))
        out_v.append(sums / k2)
    return _to_csr(torch.cat(out_r), torch.cat(out_c), torch.cat(out_v), n)


def _jaccard_from_csr(ptr, cols, vals, n, out, chunk_bytes):
    dev = cols.device
    row_of = torch.repeat_interleave(torch.arange(n, device=dev), ptr[1:] - ptr[:-1])
    # column-wise lists (inverted index)
    order = torch.argsort(cols, stable=True)
    col_rows, col_vals = row_of[order], vals[order]
    col_cnt = torch.bincount(cols, minlength=n)
    col_ptr = torch.zeros(n + 1, dtype=torch.long, device=dev)
    col_ptr[1:] = torch.cumsum(col_cnt, 0)
    entry_pairs = col_cnt[cols]                                   # pairs made by each entry
    row_pairs = torch.zeros(n, dtype=torch.long, device=dev).index_add_(0, row_of, entry_pairs)
    cum_pairs = torch.cumsum(row_pairs, 0).cpu()
    max_pairs = max(1, chunk_bytes // 40)
    max_rows = _rows_per_chunk(n, chunk_bytes=chunk_bytes)
    s = 0
    while s < n:
        base = int(cum_pairs[s - 1]) if s else 0
        e = int(torch.searchsorted(cum_pairs, base + max_pairs, right=True))
        e = min(n, max(e, s + 1), s + max_rows)
        a, b = int(ptr[s]), int(ptr[e])
        cnt = entry_pairs[a:b]
        total = int(cnt.sum())
        m = out[s:e]
        m.zero_()
        if total:
            start = torch.cumsum(cnt, 0) - cnt
            rep = torch.repeat_interleave(torch.arange(a, b, device=dev), cnt, output_size=total)
            pos = col_ptr[cols[rep]] + torch.arange(total, device=dev) - start[rep - a]
            contrib = torch.minimum(vals[rep], col_vals[pos])
            m.view(-1).index_add_(0, (row_of[rep] - s) * n + col_rows[pos], contrib)
        m.div_(m.neg().add_(2)).neg_().add_(1).clamp_(min=0)  # 1 - m / (2 - m) >= 0
        s = e
    return out


def k_reciprocal_jaccard(x: torch.Tensor, k1: int = 20, k2: int = 6, precomputed: bool = False,
                         chunk_bytes: int = _CHUNK_BYTES) -> torch.Tensor:
    """k-reciprocal Jaccard distance between all pairs of one set (see the module docstring).

    Args:
        x (Tensor): (N, D) features, or with ``precomputed=True`` an (N, N) distance matrix
            (not squared, like torchreid's ``re_ranking`` inputs; row i is used for sample i).
        k1 (int): k of the k-reciprocal sets. Defaults to 20.
        k2 (int): size of the local query expansion (1 disables it). Defaults to 6.
        precomputed (bool): ``x`` is a distance matrix. Defaults to False.
        chunk_bytes (int): size of the per-chunk work buffers. Defaults to 64 MiB.

    Returns:
        Tensor: (N, N) float32 on ``x.device``, 0 on the diagonal (up to rounding; clamped at
        0), 1 for pairs that share no expanded neighbour.
    """
    if x.dim() != 2:
        raise ValueError(f'x must be (N, D) features or an (N, N) distance matrix, got '
                         f'{tuple(x.shape)}')
    n = x.shape[0]
    if precomputed and x.shape[1] != n:
        raise ValueError(f'precomputed=True needs a square distance matrix, got {tuple(x.shape)}')
    if k1 < 1 or k2 < 1:
        raise ValueError(f'k1 and k2 must be >= 1, got k1={k1}, k2={k2}')
    kmax = max(k1 + 1, k2)
    if n < kmax:
        raise ValueError(f'need at least max(k1 + 1, k2) = {kmax} samples, got N={n}')
    sq = None
    if not precomputed:
        x = x.float()
        sq = x.pow(2).sum(dim=1)
    with torch.no_grad():
        nn, row_max = _neighbour_table(x, sq, precomputed, kmax, chunk_bytes)
        idx, val = _encoding(x, sq, precomputed, nn, row_max, k1, chunk_bytes)
        ptr, cols, vals = _expand(idx, val, nn, k2, chunk_bytes)
        del idx, val, nn
        out = torch.empty(n, n, dtype=torch.float32, device=x.device)
        return _jaccard_from_csr(ptr, cols, vals, n, out, chunk_bytes)


def source_distance(target: torch.Tensor, source: torch.Tensor,
                    chunk_bytes: int = _CHUNK_BYTES) -> torch.Tensor:
    """ACT's per-sample source term ``s_i = min_src (1 - exp(-||t_i - x_src||²))`` / max_i.

    Args:
        target (Tensor): (N, D) target features (ACT passes L2-normalised ones).
        source (Tensor): (S, D) source features, same space.

    Returns:
        Tensor: (N,) float32 in [0, 1] (all zeros if every s_i is 0).
    """
    if target.dim() != 2 or source.dim() != 2 or target.shape[1] != source.shape[1]:
        raise ValueError(f'target (N, D) and source (S, D) must share D, got {tuple(target.shape)} '
                         f'and {tuple(source.shape)}')
    if source.shape[0] == 0:
        raise ValueError('source_distance needs at least one source sample')
    t, src = target.float(), source.to(target.device).float()
    src_sq = src.pow(2).sum(1)
    step = _rows_per_chunk(src.shape[0], chunk_bytes=chunk_bytes)
    mins = []
    with torch.no_grad():
        for s in range(0, t.shape[0], step):
            c = t[s:s + step]
            d = torch.addmm(src_sq[None, :], c, src.t(), beta=1.0, alpha=-2.0)
            d.add_(c.pow(2).sum(1, keepdim=True)).clamp_(min=0)
            mins.append(d.amin(dim=1))
        s_val = -torch.expm1(-torch.cat(mins))  # 1 - exp(-min d²): monotone, so min commutes
        top = s_val.max()
        return s_val / top if top > 0 else s_val


def act_distance(target: torch.Tensor, source: Optional[torch.Tensor] = None, k1: int = 20,
                 k2: int = 6, lam: float = 0.1, normalize: bool = True,
                 chunk_bytes: int = _CHUNK_BYTES) -> torch.Tensor:
    """ACT's clustering distance ``(1 - lam) d_J + lam (s_i + s_j)``.

    Args:
        target (Tensor): (N, D) target-domain features.
        source (Tensor, optional): (S, D) source-domain features; None or ``lam=0`` gives the
            plain Jaccard distance.
        k1 (int): Defaults to 20. k2 (int): Defaults to 6.
        lam (float): weight of the source term. Defaults to 0.1.
        normalize (bool): L2-normalise both feature sets first (ACT does). Defaults to True.

    Returns:
        Tensor: (N, N) float32 on ``target.device``.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f'lam must be in [0, 1], got {lam}')
    if normalize:
        target = F.normalize(target.float(), dim=1)
        source = F.normalize(source.float(), dim=1) if source is not None else None
    d = k_reciprocal_jaccard(target, k1, k2, chunk_bytes=chunk_bytes)
    if source is None or lam == 0:
        return d
    s = source_distance(target, source, chunk_bytes=chunk_bytes) * lam
    return d.mul_(1.0 - lam).add_(s[:, None]).add_(s[None, :])
