"""CACE-Net (Siamese-GCN) building blocks, torch only (spec reid.md §1).

- :class:`CorrespondenceGCN`: correspondence attention over the 2HW nodes of an image pair
  (learned adjacency ``A_nm = ReLU(e_n . e_m)``, ``A_nn = 0``, ``e = L2norm(W_y x)``) followed by
  the discrepancy GCN ``X' = X + W_o(L W_g X)`` with ``L = D~^-1/2 (D - A) D~^-1/2`` (stop-gradient
  normaliser) and a zero-initialised ``W_o``. The per-image projections ``W_y x`` / ``W_g x`` are
  computed once per image and gathered per pair; the graph works in the projected dimension
  (``A`` without a diagonal mask pass, ``L W_g X`` without building ``L``).
- :func:`pair_avgmax_pool`: the training fast path: [mean ‖ max] of the conditional maps
  without materialising them (mean in the projected dimension, chunked max with a sparse
  backward; same values and gradients, ties included, as pooling the dense maps).
- :func:`discrepancy_laplacian`: the dense operator, for tests and the attention picture.
- :func:`mixed_up_id_loss`, :func:`pairwise_batch_hard_triplet`, :func:`pair_distance_matrix`:
  the conditional-feature losses.
- :class:`NonLocalBlock` (embedded Gaussian, zero-initialised output BN) and :class:`GeM`.
- :class:`WarmupCosineLR`: linear warm-up then cosine decay, stepped per epoch.
- :func:`rescore_topk` / :func:`rescore_combine`: query-conditioned re-scoring of each query's
  top-k (opt-in extension).
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import LRScheduler

__all__ = ['CorrespondenceGCN', 'discrepancy_laplacian', 'all_ordered_pairs', 'sample_pairs',
           'pair_avgmax_pool', 'mixed_up_id_loss', 'pair_distance_matrix',
           'pairwise_batch_hard_triplet', 'NonLocalBlock', 'GeM', 'WarmupCosineLR', 'rescore_topk',
           'rescore_combine']


def all_ordered_pairs(batch: int, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(i, j)`` of all B² ordered pairs (self-pairs included), row-major."""
    idx = torch.arange(batch, device=device)
    return idx.repeat_interleave(batch), idx.repeat(batch)


def sample_pairs(batch: int, max_pairs: int, device=None,
                 generator: Optional[torch.Generator] = None):
    """All ordered pairs, or ``max_pairs`` of them drawn without replacement (memory option).

    The self-pairs are always kept (they anchor the D_ii = 0 diagonal of the pairwise triplet).
    """
    pi, pj = all_ordered_pairs(batch, device)
    if max_pairs <= 0 or max_pairs >= batch * batch:
        return pi, pj
    if max_pairs < batch:
        raise ValueError(f'cace.max_pairs={max_pairs} must be 0 (all pairs) or >= the batch size '
                         f'{batch} (self-pairs are always kept)')
    off = (pi != pj).nonzero().flatten()
    pick = off[torch.randperm(off.numel(), generator=generator)[:max_pairs - batch].to(off.device)]
    keep = torch.cat([(pi == pj).nonzero().flatten(), pick.sort().values])
    return pi[keep], pj[keep]


def discrepancy_laplacian(adjacency: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Dense ``L = D~^-1/2 (D - A) D~^-1/2`` of (..., N, N) adjacencies.

    ``D = diag(sum_m A_nm)``; ``D~_nn = D_nn`` if ``D_nn > eps`` else 1, detached.
    """
    deg = adjacency.sum(-1)
    s = torch.where(deg > eps, deg, torch.ones_like(deg)).detach().rsqrt()
    lap = torch.diag_embed(deg) - adjacency
    return s.unsqueeze(-1) * lap * s.unsqueeze(-2)


def _pair_max_dense(nodes, lg, weight, pi, pj):
    """Reference of :class:`_PairMaxPool`: (P, 2, C) max over the nodes of each half of
    ``X' = [nodes[pi] ‖ nodes[pj]] + lg W^T`` (``amax``: ties share the gradient), computed in
    ``lg``'s dtype like the chunked forward."""
    hw = nodes.shape[1]
    v = F.linear(lg, weight.to(lg.dtype)) + torch.cat([nodes[pi], nodes[pj]], 1).to(lg.dtype)
    return v.unflatten(1, (2, hw)).amax(2)


def _pair_max_chunked(nodes, lg, weight, pi, pj, chunk, locate):
    """(P, 2, C) max of :func:`_pair_max_dense`, ``chunk`` pairs at a time, in ``lg``'s dtype
    (autocast off). ``locate``: also the maximising node of each (pair, half, channel) and
    whether a pair has a tied maximum (for the backward)."""
    b, hw, c = nodes.shape
    p = lg.shape[0]
    mx = torch.empty(p, 2, c, dtype=lg.dtype, device=lg.device)
    arg = torch.empty(p, 2, c, dtype=torch.long, device=lg.device) if locate else None
    tied = torch.zeros(p, dtype=torch.bool, device=lg.device) if locate else None
    node_ids = torch.arange(1, hw + 1, dtype=torch.int32, device=lg.device)[:, None]
    weight = weight.to(lg.dtype)
    with torch.autocast(lg.device.type, enabled=False):
        for s in range(0, p, chunk):
            t = slice(s, min(p, s + chunk))
            v = F.linear(lg[t], weight)  # (ch, N, C)
            v[:, :hw] += nodes[pi[t]].to(v.dtype)
            v[:, hw:] += nodes[pj[t]].to(v.dtype)
            v = v.unflatten(1, (2, hw))
            m = v.amax(2, keepdim=True)  # amax + mask: much faster than max(dim) on CPU
            mx[t] = m.squeeze(2)
            if not locate:
                continue
            key = torch.where(v == m, node_ids, 0)  # 1 + node index where maximal, else 0
            last = key.amax(2)
            arg[t] = last - 1  # the maximising node (of untied pairs)
            # tied: some (half, channel) has >= 2 maximising nodes <=> sum of their keys > max
            tied[t] = (key.sum(2, dtype=torch.int32) != last).flatten(1).any(1)
    return mx, arg, tied


class _PairMaxPool(torch.autograd.Function):
    """Max over the nodes of both halves of every pair's conditional map, computed ``chunk``
    pairs at a time: the (P, N, C) map is never stored. Backward scatters each (pair, half,
    channel) gradient to its single maximising node (O(P C k) instead of two O(P N C k) matmuls);
    a chunk in which some maximum is tied is differentiated densely through ``amax`` (recomputed),
    so the gradients equal autograd's on :func:`_pair_max_dense` exactly in both cases."""

    @staticmethod
    def forward(ctx, nodes, lg, weight, pi, pj, chunk):
        ctx.w_dtype = weight.dtype
        weight = weight.to(lg.dtype)
        mx, arg, tied = _pair_max_chunked(nodes, lg, weight, pi, pj, chunk, True)
        ctx.save_for_backward(nodes, lg, weight, pi, pj, arg, tied)
        ctx.chunk = chunk
        return mx

    @staticmethod
    def backward(ctx, grad):
        nodes, lg, weight, pi, pj, arg, tied = ctx.saved_tensors
        b, hw, c = nodes.shape
        p, n, k = lg.shape
        acc = torch.float32 if grad.dtype in (torch.float16, torch.bfloat16) else grad.dtype
        grad = grad.to(acc)
        w32, lg_flat = weight.to(acc), lg.reshape(p * n, k)
        d_nodes = torch.zeros(b * hw * c, dtype=acc, device=grad.device)
        d_lg = torch.zeros(p * n, k, dtype=acc, device=grad.device)
        d_w = torch.zeros(c, k, dtype=acc, device=grad.device)
        chans = torch.arange(c, device=grad.device)
        half = torch.tensor([0, hw], device=grad.device)
        for s in range(0, p, ctx.chunk):
            t = torch.arange(s, min(p, s + ctx.chunk), device=grad.device)
            dense = tied[t]
            if dense.any():  # recompute and differentiate amax (tie-splitting) for these pairs
                td = t[dense]
                with torch.enable_grad(), torch.autocast(grad.device.type, enabled=False):
                    ins = [x.detach().requires_grad_() for x in (nodes, lg[td], weight)]
                    m = _pair_max_dense(ins[0], ins[1], ins[2], pi[td], pj[td])
                    gn, gl, gw = torch.autograd.grad(m, ins, grad[td].to(m.dtype))
                d_nodes += gn.to(acc).flatten()
                d_lg.view(p, n, k)[td] += gl.to(acc)
                d_w += gw.to(acc)
                t = t[~dense]
                if not len(t):
                    continue
            g = grad[t]  # (ch, 2, C): each goes to one node per (pair, half, channel)
            rows = (t[:, None, None] * n + half[None, :, None] + arg[t])  # rows of lg_flat
            d_lg.index_add_(0, rows.flatten(), (g.unsqueeze(-1) * w32).flatten(0, 2))
            d_w += torch.einsum('phc,phck->ck', g, lg_flat[rows].to(acc))
            img = torch.stack([pi[t], pj[t]], 1)  # (ch, 2)
            flat = ((img[..., None] * hw + arg[t]) * c + chans).flatten()
            d_nodes.index_add_(0, flat, g.flatten())
        return (d_nodes.view(b, hw, c).to(nodes.dtype) if ctx.needs_input_grad[0] else None,
                d_lg.view(p, n, k).to(lg.dtype) if ctx.needs_input_grad[1] else None,
                d_w.to(ctx.w_dtype) if ctx.needs_input_grad[2] else None, None, None, None)


def pair_avgmax_pool(nodes: torch.Tensor, lg: torch.Tensor, weight: torch.Tensor,
                     pi: torch.Tensor, pj: torch.Tensor, chunk: int = 4) -> torch.Tensor:
    """[mean ‖ max] pooling of the conditional maps ``X' = [nodes[pi] ‖ nodes[pj]] + lg W^T``
    without materialising them (the fast path of the pair branch).

    The mean is linear: ``mean(nodes) + mean(lg) W^T``, computed in the projected dimension.
    The max is :class:`_PairMaxPool`. Values and gradients equal those of pooling the dense
    ``X'`` with ``mean`` / ``amax`` (tests/reid/test_cace_core.py).

    Args:
        nodes (Tensor): (B, HW, C) individual nodes. lg (Tensor): (P, 2HW, k) messages.
        weight (Tensor): (C, k) the output projection W_o. pi, pj (Tensor): (P,) pair indices.
        chunk (int): pairs per step of the max (working set ``chunk * 2HW * C``).

    Returns:
        Tensor: (P, 2, 2C): half 0 = ``X_{i|j}``, half 1 = ``X_{j|i}``; ``[mean ‖ max]``.
    """
    hw = nodes.shape[1]
    mean_nodes = nodes.mean(1)  # once per image
    mean = torch.stack([mean_nodes[pi], mean_nodes[pj]], 1) + F.linear(
        lg.unflatten(1, (2, hw)).mean(2), weight)
    chunk = max(1, int(chunk))
    if torch.is_grad_enabled() and any(t.requires_grad for t in (nodes, lg, weight)):
        mx = _PairMaxPool.apply(nodes, lg, weight, pi, pj, chunk)
    else:  # inference (re-scoring): the max alone
        mx = _pair_max_chunked(nodes, lg, weight, pi, pj, chunk, False)[0]
    return torch.cat([mean, mx.to(mean.dtype)], dim=-1)


class CorrespondenceGCN(nn.Module):
    """Correspondence attention + discrepancy GCN over image pairs.

    Args:
        channels (int): C of the feature maps.
        reduction (int): graph compression, ``C // reduction`` channels for W_y and W_g.
            Defaults to 16.
        eps (float): degree threshold of the normaliser. Defaults to 1e-3.
    """

    def __init__(self, channels: int, reduction: int = 16, eps: float = 1e-3):
        super().__init__()
        inner = max(1, channels // reduction)
        self.eps = eps
        self.attend = nn.Conv2d(channels, inner, 1, bias=False)   # W_y
        self.message = nn.Conv2d(channels, inner, 1, bias=False)  # W_g
        self.out = nn.Conv2d(inner, channels, 1, bias=False)      # W_o, zero-initialised
        nn.init.zeros_(self.out.weight)

    def project(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-image node embeddings ``e`` (B, HW, c) (L2-normalised) and messages ``g``."""
        e = F.normalize(self.attend(x).flatten(2).transpose(1, 2), dim=-1)
        g = self.message(x).flatten(2).transpose(1, 2)
        return e, g

    def attention(self, e: torch.Tensor, pi: torch.Tensor, pj: torch.Tensor) -> torch.Tensor:
        """(P, 2HW, 2HW) adjacency of the pairs; nodes = image i's HW nodes, then image j's."""
        r, diag = self._relu_gram(e, pi, pj)
        return r - torch.diag_embed(diag)

    @staticmethod
    def _relu_gram(e: torch.Tensor, pi: torch.Tensor, pj: torch.Tensor):
        """``ReLU(e_n . e_m)`` of every pair graph *with* its diagonal (P, N, N), and that diagonal
        (P, N): ``A = R - diag(r)``, so the n != m mask is never applied to a P x N x N tensor."""
        ep = torch.cat([e[pi], e[pj]], dim=1)
        r = torch.bmm(ep, ep.transpose(1, 2)).relu_()  # bmm saves ep, not its output: in-place ok
        return r, r.diagonal(dim1=1, dim2=2)  # R - diag(R_nn) has an exactly zero diagonal

    def messages(self, x: torch.Tensor, pi: torch.Tensor, pj: torch.Tensor,
                 return_attention: bool = False):
        """The discrepancy messages ``L W_g X`` of all pairs in the projected dimension.

        Returns:
            tuple: ``lg`` (P, N, C // reduction) and the individual nodes (B, HW, C) (+ the
            (P, N, N) adjacency when ``return_attention``). ``X' = nodes[pair] + lg W_o^T``.
        """
        e, g = self.project(x)  # once per image
        r, diag = self._relu_gram(e, pi, pj)
        gp = torch.cat([g[pi], g[pj]], dim=1)  # (P, N, c)
        deg = (r.sum(-1) - diag).unsqueeze(-1)  # D_nn = sum_{m != n} A_nm
        s = torch.where(deg > self.eps, deg, torch.ones_like(deg)).detach().rsqrt()
        sg = s * gp
        # L g = s * (D s g - A s g) with A = R - diag(r): (D + diag(r)) s g - R s g
        lg = s * ((deg + diag.unsqueeze(-1)) * sg - torch.bmm(r, sg))
        nodes = x.flatten(2).transpose(1, 2)  # (B, HW, C), once per image
        if return_attention:
            return lg, nodes, r - torch.diag_embed(diag)
        return lg, nodes

    def forward_nodes(self, x: torch.Tensor, pi: torch.Tensor, pj: torch.Tensor,
                      return_attention: bool = False):
        """As :meth:`forward`, in node layout: ``X_{i|j}``, ``X_{j|i}`` each (P, HW, C) (row-major
        nodes), without the copies back to (P, C, H, W)."""
        hw = x.shape[2] * x.shape[3]
        out = self.messages(x, pi, pj, return_attention)
        lg, nodes = out[:2]
        upd = F.linear(lg, self.out.weight.flatten(1))  # (P, N, C)
        xi = nodes[pi] + upd[:, :hw]
        xj = nodes[pj] + upd[:, hw:]
        return (xi, xj, out[2]) if return_attention else (xi, xj)

    def pooled_avgmax(self, x: torch.Tensor, pi: torch.Tensor, pj: torch.Tensor,
                      chunk: int = 4) -> Tuple[torch.Tensor, torch.Tensor]:
        """[mean ‖ max] over the nodes of ``X_{i|j}`` and ``X_{j|i}``, each (P, 2C), equal (values
        and gradients, ties included) to pooling :meth:`forward_nodes`'s output, without building
        the (P, N, C) conditional maps: see :func:`pair_avgmax_pool`."""
        lg, nodes = self.messages(x, pi, pj)
        pooled = pair_avgmax_pool(nodes, lg, self.out.weight.flatten(1), pi, pj, chunk)
        return pooled[:, 0], pooled[:, 1]

    def forward(self, x: torch.Tensor, pi: torch.Tensor, pj: torch.Tensor,
                return_attention: bool = False):
        """Conditional maps of the pairs ``(pi[p], pj[p])``.

        Args:
            x (Tensor): (B, C, H, W) individual feature maps.
            pi, pj (Tensor): (P,) int64 image indices of each pair.

        Returns:
            tuple: ``X_{i|j}`` and ``X_{j|i}``, each (P, C, H, W) (+ the (P, N, N) adjacency when
            ``return_attention``; N = 2HW, image i's nodes first).
        """
        b, c, h, w = x.shape
        out = self.forward_nodes(x, pi, pj, return_attention)
        maps = tuple(t.transpose(1, 2).reshape(-1, c, h, w) for t in out[:2])
        return maps + tuple(out[2:])


def mixed_up_id_loss(logits_ij: torch.Tensor, logits_ji: torch.Tensor, yi: torch.Tensor,
                     yj: torch.Tensor, alpha: float = 0.9) -> torch.Tensor:
    """Mixed-up ID loss of the conditional features, averaged over the 2P conditional embeddings.

    ``f_{i|j}``: ``alpha * CE(., y_i) + (1 - alpha) * CE(., y_j)``; ``f_{j|i}`` symmetrically.
    """
    li = F.log_softmax(logits_ij.float(), dim=1)
    lj = F.log_softmax(logits_ji.float(), dim=1)
    t_ij = -(alpha * li.gather(1, yi[:, None]) + (1 - alpha) * li.gather(1, yj[:, None]))
    t_ji = -(alpha * lj.gather(1, yj[:, None]) + (1 - alpha) * lj.gather(1, yi[:, None]))
    return 0.5 * (t_ij.mean() + t_ji.mean())


def pair_distance_matrix(f_ij: torch.Tensor, f_ji: torch.Tensor, pi: torch.Tensor,
                         pj: torch.Tensor, batch: int):
    """``D_ij = ||n(f_{i|j}) - n(f_{j|i})||_2`` scattered into (B, B) plus a validity mask."""
    d = (F.normalize(f_ij.float(), dim=1) - F.normalize(f_ji.float(), dim=1)).pow(2).sum(1)
    d = d.clamp(min=1e-12).sqrt()
    flat = pi * batch + pj
    dist = d.new_zeros(batch * batch).index_put((flat,), d).view(batch, batch)
    valid = torch.zeros(batch * batch, dtype=torch.bool, device=d.device)
    valid[flat] = True
    return dist, valid.view(batch, batch)


def pairwise_batch_hard_triplet(dist: torch.Tensor, labels: torch.Tensor, margin: float = 0.5,
                                valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Batch-hard triplet on a (B, B) distance matrix: per anchor row, hardest positive (max
    over same-label columns) vs hardest negative (min over other labels); mean of
    ``relu(d_ap - d_an + margin)`` over anchors that have both. ``valid`` masks unsampled pairs."""
    same = labels[:, None] == labels[None, :]
    if valid is None:
        valid = torch.ones_like(same)
    pos, neg = same & valid, ~same & valid
    ap = dist.masked_fill(~pos, float('-inf')).max(1).values
    an = dist.masked_fill(~neg, float('inf')).min(1).values
    ok = pos.any(1) & neg.any(1)
    if not ok.any():
        return dist.sum() * 0
    return F.relu(ap[ok] - an[ok] + margin).mean()


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al. 2018); the output BN starts at zero, so the
    block is an identity at initialisation."""

    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        inner = max(1, channels // reduction)
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.w = nn.Sequential(nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.w[1].weight)
        nn.init.zeros_(self.w[1].bias)

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.theta(x).flatten(2).transpose(1, 2)
        p = self.phi(x).flatten(2)
        g = self.g(x).flatten(2).transpose(1, 2)
        y = torch.softmax(t @ p, dim=-1) @ g
        return x + self.w(y.transpose(1, 2).reshape(b, -1, h, w))


class GeM(nn.Module):
    """Generalised-mean pooling ``(mean x^p)^(1/p)`` with a fixed ``p`` (3 in YouReID)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p, self.eps = p, eps

    def forward(self, x):
        return x.clamp(min=self.eps).pow(self.p).mean((2, 3)).pow(1.0 / self.p)


class WarmupCosineLR(LRScheduler):
    """Per-epoch ``lr(e) = base_lr * w(e) * 0.5 * (1 + cos(pi * e / max_epoch))``,
    ``w(e) = warmup_factor + (1 - warmup_factor) * e / warmup_epochs`` during the warm-up."""

    def __init__(self, optimizer, max_epoch: int, warmup_epochs: int = 5,
                 warmup_factor: float = 0.01, last_epoch: int = -1):
        if max_epoch < 1 or warmup_epochs < 0 or not 0 < warmup_factor <= 1:
            raise ValueError(f'need max_epoch >= 1, warmup_epochs >= 0, 0 < warmup_factor <= 1; '
                             f'got {max_epoch}, {warmup_epochs}, {warmup_factor}')
        self.max_epoch, self.warmup_epochs, self.warmup_factor = max_epoch, warmup_epochs, \
            warmup_factor
        super().__init__(optimizer, last_epoch)

    def _factor(self, e: int) -> float:
        w = 1.0
        if e < self.warmup_epochs:
            w = self.warmup_factor + (1 - self.warmup_factor) * e / self.warmup_epochs
        return w * 0.5 * (1 + math.cos(math.pi * min(e, self.max_epoch) / self.max_epoch))

    def get_lr(self):
        return [base * self._factor(self.last_epoch) for base in self.base_lrs]


def rescore_combine(distmat: torch.Tensor, top: torch.Tensor, new: torch.Tensor,
                    weight: float = 1.0) -> torch.Tensor:
    """Put re-scored entries into a distance matrix.

    Args:
        distmat (Tensor): (Q, G) individual-feature distances.
        top (Tensor): (Q, k) each query's re-scored gallery columns (its top-k).
        new (Tensor): (Q, k) their conditional distances ``D_qg``.
        weight (float): new score ``weight * D_qg + (1 - weight) * distmat``.

    Returns:
        Tensor: (Q, G): the top-k of each row carry the new scores and stay ahead of the rest,
        whose order is unchanged (shifted behind the largest new score).
    """
    old = distmat.gather(1, top)
    new = weight * new.to(distmat.dtype) + (1 - weight) * old
    shift = new.max(1, keepdim=True).values - old.max(1, keepdim=True).values + 1e-4
    return (distmat + shift).scatter_(1, top, new)


def rescore_topk(distmat: torch.Tensor, pair_distance, k: int = 100, weight: float = 1.0,
                 chunk: int = 32) -> torch.Tensor:
    """Query-conditioned re-scoring of each query's top-``k`` gallery entries.

    Args:
        distmat (Tensor): (Q, G) individual-feature distances.
        pair_distance (callable): ``(q_idx (P,), g_idx (P,)) -> (P,)`` conditional distances
            ``D_qg`` (CACE-Net: ``||n(f_{q|g}) - n(f_{g|q})||``).
        k (int): entries re-scored per query.
        weight (float): new score ``weight * D_qg + (1 - weight) * distmat``. Defaults to 1.
        chunk (int): queries per ``pair_distance`` call (``chunk * k`` pairs).

    Returns:
        Tensor: (Q, G) distances, see :func:`rescore_combine`.
    """
    q, g = distmat.shape
    k = min(int(k), g)
    if k <= 0:
        return distmat.clone()
    top = distmat.topk(k, dim=1, largest=False).indices  # (Q, k)
    new = torch.empty(q, k, dtype=distmat.dtype)
    for s in range(0, q, chunk):
        rows = torch.arange(s, min(q, s + chunk))
        cols = top[rows]
        qi = rows[:, None].expand_as(cols).reshape(-1)
        new[rows] = pair_distance(qi, cols.reshape(-1)).reshape(cols.shape).to(new.dtype)
    return rescore_combine(distmat, top, new, weight)
