"""Retrieval metrics of PI-ReID (PISNet, spec ``reid.md`` §2.5): gallery crops hold lists of pids.

Two protocols over per-query rankings of gallery indices:

* ``'pi'`` (the official one): only the first ``topk`` (100) entries of a ranking are looked at
  (the stage-1 pre-selection, re-ordered by PISNet); gallery crops holding the query pid seen by
  the query's camera are removed (PRW camera rule; PI-CUHK-SYSU has query camid 1 and gallery
  camid 2, so nothing is removed); a query whose remaining list is shorter than ``min_len`` (50)
  is skipped, and so is a query with no positive in it; AP is normalised by the positives
  *found* in the list, CMC counted over the list.
* ``'full'``: the whole gallery is ranked; same camera rule; AP normalised by every positive in
  the gallery; queries without any positive are skipped (Market-1501 style).

Framework-free (numpy only).
"""
from typing import Dict, Sequence

import numpy as np

__all__ = ['pi_evaluate', 'average_precision']


def average_precision(matches: np.ndarray, num_pos: int) -> float:
    """AP of a 0/1 ``matches`` vector in rank order, normalised by ``num_pos``."""
    hits = np.flatnonzero(matches)
    if num_pos <= 0:
        raise ValueError('average_precision needs at least one positive')
    return float(np.sum((np.arange(len(hits)) + 1) / (hits + 1)) / num_pos)


def pi_evaluate(rankings: Sequence[Sequence[int]], q_pids: Sequence[int], q_camids: Sequence[int],
                g_pids: Sequence[Sequence[int]], g_camids: Sequence[int], protocol: str = 'pi',
                topk: int = 100, min_len: int = 50, max_rank: int = 50) -> Dict:
    """Evaluate per-query rankings.

    Args:
        rankings: for each query, gallery indices best first (``'pi'``: at least the first
            ``topk`` are used; ``'full'``: every gallery index exactly once).
        q_pids, q_camids: query labels.
        g_pids: for each gallery crop, the list of pids it holds; g_camids: its camera.
        protocol: ``'pi'`` or ``'full'`` (module docstring).
        topk, min_len: the official pre-selection size and minimum list length (``'pi'``).
        max_rank: length of the returned CMC curve (shorter lists count as misses beyond their end).

    Returns:
        dict: ``mAP``, ``rank1``, ``cmc`` (max_rank,), ``num_valid``, ``skipped_no_positive``,
        ``skipped_short`` (all in [0, 1] for the scores).
    """
    if protocol not in ('pi', 'full'):
        raise ValueError(f"protocol must be 'pi' or 'full', got {protocol!r}")
    if not (len(rankings) == len(q_pids) == len(q_camids)):
        raise ValueError('rankings, q_pids and q_camids must have one entry per query')
    if len(g_pids) != len(g_camids):
        raise ValueError('g_pids and g_camids must have one entry per gallery crop')
    g_sets = [set(p) for p in g_pids]
    g_camids = np.asarray(g_camids)
    aps, cmcs = [], []
    no_pos = short = 0
    for r, qp, qc in zip(rankings, q_pids, q_camids):
        r = np.asarray(r, dtype=np.int64)
        if protocol == 'full' and len(r) != len(g_sets):
            raise ValueError(f"protocol 'full' needs a ranking of the whole gallery ({len(g_sets)}), "
                             f'got {len(r)} entries')
        if protocol == 'pi':
            r = r[:topk]
        pos = np.array([qp in g_sets[i] for i in r], dtype=bool)
        keep = ~(pos & (g_camids[r] == qc))  # same pid seen by the same camera
        r, pos = r[keep], pos[keep]
        if protocol == 'pi' and len(r) < min_len:
            short += 1
            continue
        if not pos.any():
            no_pos += 1
            continue
        aps.append(average_precision(pos, int(pos.sum())))
        cmc = np.zeros(max_rank)
        first = int(np.argmax(pos))
        if first < max_rank:
            cmc[first:] = 1
        cmcs.append(cmc)
    if not aps:
        raise ValueError(f'no valid query ({no_pos} without a positive, {short} with a list shorter '
                         f'than {min_len})')
    cmc = np.mean(cmcs, axis=0)
    return dict(mAP=float(np.mean(aps)), rank1=float(cmc[0]), cmc=cmc, num_valid=len(aps),
                skipped_no_positive=no_pos, skipped_short=short)
