"""Representation metrics of a shared latent: retrieval, clustering, linear probes.

* **Cross-modal retrieval** (as in CLIP's zero-shot retrieval, Radford et al. 2021): for each
  state's latent in modality A, rank the latents of all B states in modality B by cosine
  similarity; top-k accuracy is the fraction whose own state is among the k nearest. A
  retrieved row that shows the same state (a duplicate of a small world) counts as correct.
  :func:`retrieval_chance` gives the exact accuracy of a uniformly random ranking, which is
  printed beside every number.
* **Clustering**: k-means of the latents (scikit-learn) with k = the number of true state
  classes, scored against those classes by normalised and adjusted mutual information
  (NMI, AMI; Vinh et al. 2010). AMI is 0 for a chance clustering and 1 for a perfect one.
* **Linear probe**: ridge regression from the latent to the true state features, fitted on one
  set of states and scored by R^2 on held-out states (Alain & Bengio 2016, "Understanding
  intermediate layers using linear classifier probes").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy()


def retrieval_accuracy(
    queries: Tensor,
    keys: Tensor,
    ks: Sequence[int] = (1, 5),
    state_ids: Tensor | None = None,
) -> dict[int, float]:
    """Top-k accuracy of retrieving row ``i`` of ``keys`` from row ``i`` of ``queries``.

    Args:
        queries: (N, d) latents of the query modality.
        keys: (N, d) latents of the same N states in the key modality.
        ks: the k's to report.
        state_ids: (N,) ids of identical states; a retrieved row with the query's id counts
            as correct (default: only row ``i`` itself).

    Returns:
        ``{k: accuracy in [0, 1]}``.
    """
    if queries.shape[0] != keys.shape[0]:
        raise ValueError(f"paired latents need equal rows, got {queries.shape} and {keys.shape}")
    n = queries.shape[0]
    ids = torch.arange(n, device=queries.device) if state_ids is None else state_ids
    sims = F.normalize(queries.float(), dim=-1) @ F.normalize(keys.float(), dim=-1).T  # (N, N)
    k_max = min(max(ks), n)
    top = sims.topk(k_max, dim=1).indices  # (N, k_max)
    hit = ids[top] == ids[:, None]  # (N, k_max)
    return {k: float(hit[:, : min(k, n)].any(1).float().mean()) for k in ks}


def retrieval_chance(n: int, k: int, state_ids: Tensor | None = None) -> float:
    """The expected top-k accuracy of a uniformly random ranking of ``n`` keys.

    A query whose state occurs ``m`` times among the keys is hit with probability
    ``1 - C(n - m, k) / C(n, k)``; ``k / n`` when every state is distinct.
    """
    if state_ids is None:
        counts = [1] * n
    else:
        _, inverse, per_id = torch.unique(state_ids, return_inverse=True, return_counts=True)
        counts = per_id[inverse].tolist()
    k = min(k, n)
    total = math.comb(n, k)
    return float(np.mean([1.0 - math.comb(n - m, k) / total for m in counts]))


def cross_modal_retrieval(
    za: Tensor,
    zb: Tensor,
    ks: Sequence[int] = (1, 5),
    state_ids: Tensor | None = None,
) -> dict[str, float]:
    """Retrieval in both directions and the chance levels.

    Returns:
        ``a2b_top{k}``, ``b2a_top{k}`` and ``chance_top{k}`` for every k.
    """
    out: dict[str, float] = {}
    for name, (q, key) in {"a2b": (za, zb), "b2a": (zb, za)}.items():
        for k, acc in retrieval_accuracy(q, key, ks, state_ids).items():
            out[f"{name}_top{k}"] = acc
    for k in ks:
        out[f"chance_top{k}"] = retrieval_chance(za.shape[0], k, state_ids)
    return out


def cluster_scores(
    z: Tensor, labels: Tensor, n_clusters: int | None = None, seed: int = 0, n_init: int = 3
) -> dict[str, float]:
    """NMI and AMI of a k-means clustering of ``z`` against the true ``labels``.

    Args:
        z: (N, d) latents.
        labels: (N,) true classes.
        n_clusters: k; by default the number of distinct labels.
        seed: k-means' random state.
        n_init: k-means restarts (the best inertia is kept).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

    y = labels.cpu().numpy()
    k = int(len(np.unique(y))) if n_clusters is None else n_clusters
    pred = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(_numpy(z))
    return {
        "nmi": float(normalized_mutual_info_score(y, pred)),
        "ami": float(adjusted_mutual_info_score(y, pred)),
    }


def linear_probe_r2(
    z_train: Tensor, y_train: Tensor, z_test: Tensor, y_test: Tensor, alpha: float = 1e-3
) -> float:
    """R^2 (averaged over the target's columns) of a ridge probe on held-out latents.

    Args:
        z_train: (N, d) latents the probe is fitted on.
        y_train: (N, D) their true state features.
        z_test: (M, d) latents of held-out states.
        y_test: (M, D) their true state features.
        alpha: the ridge penalty.
    """
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    probe = Ridge(alpha=alpha).fit(_numpy(z_train), _numpy(y_train))
    return float(r2_score(_numpy(y_test), probe.predict(_numpy(z_test))))
