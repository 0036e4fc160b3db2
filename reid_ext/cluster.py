"""scikit-learn side of ACT's clustering (kept out of :mod:`reid_ext.core`, which is torch-only).

- :func:`dbscan_labels`: DBSCAN with a precomputed metric on the eps-radius graph of a torch
  distance matrix (sparse input, so no float64 (N, N) copy).
- :func:`kmeans_labels`: the k-means variant (k given, e.g. the true number of target IDs).
- :func:`nmi`: normalised mutual information of pseudo-labels vs hidden identities.
"""
import numpy as np
import torch
from scipy import sparse
from sklearn.cluster import DBSCAN, KMeans
from sklearn.metrics import normalized_mutual_info_score

from reid_ext.core.clustering import radius_graph

__all__ = ['dbscan_labels', 'kmeans_labels', 'nmi']


def dbscan_labels(dist: torch.Tensor, eps: float, min_samples: int = 4) -> np.ndarray:
    """DBSCAN cluster labels (-1 = outlier) of the samples of an (N, N) distance matrix.

    Args:
        dist (Tensor): (N, N) distances (any device).
        eps (float): neighbourhood radius (neighbours have ``dist <= eps``).
        min_samples (int): core-point threshold, the point itself included. Defaults to 4 (ACT).

    Returns:
        np.ndarray: (N,) int64 labels.
    """
    n = dist.shape[0]
    rows, cols, vals = radius_graph(dist, eps)
    # only the stored entries are neighbours for sklearn (explicit zeros included)
    graph = sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))
    return DBSCAN(eps=eps, min_samples=min_samples, metric='precomputed',
                  n_jobs=1).fit_predict(graph).astype(np.int64)


def kmeans_labels(features: torch.Tensor, k: int, seed: int = 0):
    """k-means on L2-normalised features.

    Returns:
        tuple: (N,) int64 labels and (N,) float distance of each sample to its centre.
    """
    f = torch.nn.functional.normalize(features.float(), dim=1).cpu().numpy()
    if not 1 <= k <= f.shape[0]:
        raise ValueError(f'k-means needs 1 <= k <= N={f.shape[0]}, got k={k}')
    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(f)
    d = np.linalg.norm(f - km.cluster_centers_[km.labels_], axis=1)
    return km.labels_.astype(np.int64), d


def nmi(pred, truth) -> float:
    """Normalised mutual information (arithmetic mean normalisation), sklearn's."""
    pred = np.asarray(pred.cpu() if isinstance(pred, torch.Tensor) else pred)
    truth = np.asarray(truth.cpu() if isinstance(truth, torch.Tensor) else truth)
    return float(normalized_mutual_info_score(truth, pred))
