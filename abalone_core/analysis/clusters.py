"""Representation quality (chapter 7 and the grids): label combinations as classes, their
silhouette and Davies-Bouldin scores, and 2-D UMAP projections of embeddings.

Inputs are label matrices ``(N, L)`` of 0/1 (checked by :mod:`abalone_core.data.labels`) and
embeddings ``(N, D)`` of floats (checked by :mod:`abalone_core.analysis.embeddings`; numpy arrays,
torch tensors are accepted and detached). Nothing here loads data or draws figures.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import davies_bouldin_score, silhouette_score

from ..data.labels import label_matrix
from .embeddings import embedding_matrix, unit_rows


def combination_classes(labels, share: float, drop_empty: bool = True):
    """One class per distinct label combination, keeping the most frequent ones.

    Distinct rows of ``labels`` are ranked by the number of documents carrying
    them (ties: the combination seen first in ``labels`` ranks first). The top
    ``max(2, ceil(share * n_combinations))`` are kept (all of them if fewer),
    with the documents that carry them. The empty combination (documents with
    no label) is not a class unless ``drop_empty=False``.

    Args:
        labels: (N, L) 0/1 labels.
        share: fraction in (0, 1] of the distinct combinations to keep.
        drop_empty: leave documents without labels out.
    Returns:
        ``doc_mask`` (N,) bool: documents kept; ``class_ids`` (n_kept,) int:
        class of each kept document, in document order, 0 = most frequent
        combination.
    Raises:
        ValueError: if share is outside (0, 1] or fewer than 2 classes exist.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    y = label_matrix(labels, "labels", dtype=np.int64)
    candidates = np.ones(y.shape[0], bool)
    if drop_empty:
        candidates = y.any(axis=1)
    combos, first, inverse, counts = np.unique(y[candidates], axis=0, return_index=True,
                                               return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n_combos = combos.shape[0]
    if n_combos < 2:
        raise ValueError(f"only {n_combos} distinct label combination(s) among the documents; "
                         "clustering scores need at least 2 classes")
    keep = min(n_combos, max(2, math.ceil(share * n_combos)))
    rank = np.empty(n_combos, np.int64)
    rank[np.lexsort((first, -counts))] = np.arange(n_combos)
    doc_rank = np.full(y.shape[0], -1, np.int64)
    doc_rank[candidates] = rank[inverse]
    doc_mask = (doc_rank >= 0) & (doc_rank < keep)
    return doc_mask, doc_rank[doc_mask]


def clustering_scores(embeddings, labels, shares=(0.5,), metric: str = "cosine",
                      sample_size: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Silhouette and Davies-Bouldin scores with label combinations as classes.

    For each share, classes and documents come from :func:`combination_classes`.
    Silhouette uses scikit-learn's ``silhouette_score`` with ``metric``
    ("cosine" or "euclidean"; higher is better, in [-1, 1]); with
    ``sample_size`` it is computed on that many documents drawn with ``seed``.
    Davies-Bouldin (lower is better) is always Euclidean in scikit-learn; when
    ``metric="cosine"`` it is computed on L2-normalised embeddings so both
    scores see the same geometry, else on the raw embeddings.

    Args:
        embeddings: (N, D) document embeddings (projection head discarded).
        labels: (N, L) 0/1 labels of the same documents.
        shares: fractions in (0, 1] of distinct combinations to keep.
        metric: "cosine" or "euclidean".
        sample_size: optional silhouette sample size for large N.
        seed: random state of the silhouette sample.
    Returns:
        One row per share: ``share``, ``n_docs``, ``n_classes``, ``silhouette``,
        ``davies_bouldin``, ``silhouette_metric``, ``davies_bouldin_space``.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    y = label_matrix(labels, "labels", dtype=np.int64)
    x = embedding_matrix(embeddings, y.shape[0])
    x_db = unit_rows(x) if metric == "cosine" else x
    rows = []
    for share in np.atleast_1d(shares):
        mask, ids = combination_classes(y, float(share))
        n_docs, n_classes = int(mask.sum()), int(ids.max()) + 1
        if n_classes >= n_docs:
            raise ValueError(f"share {share}: {n_classes} classes for {n_docs} documents; silhouette "
                             "needs fewer classes than documents (use more documents or a smaller share)")
        size = None if sample_size is None or sample_size >= n_docs else int(sample_size)
        rows.append({
            "share": float(share),
            "n_docs": n_docs,
            "n_classes": n_classes,
            "silhouette": float(silhouette_score(x[mask], ids, metric=metric, sample_size=size,
                                                 random_state=seed)),
            "davies_bouldin": float(davies_bouldin_score(x_db[mask], ids)),
            "silhouette_metric": metric,
            "davies_bouldin_space": "euclidean on L2-normalised" if metric == "cosine" else "euclidean",
        })
    return pd.DataFrame(rows)


def project_umap(embeddings, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "cosine",
                 seed: int = 0) -> np.ndarray:
    """2-D UMAP projection of embeddings (umap-learn), for scatter plots.

    Args:
        embeddings: (N, D) embeddings, N > n_neighbors.
        n_neighbors, min_dist, metric: UMAP parameters.
        seed: random state (makes the result reproducible, single-threaded).
    Returns:
        (N, 2) float32 coordinates.
    """
    x = embedding_matrix(embeddings)
    if x.shape[0] <= n_neighbors:
        raise ValueError(f"UMAP with n_neighbors={n_neighbors} needs more than {n_neighbors} documents, "
                         f"got {x.shape[0]}; lower n_neighbors")
    try:
        import umap
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError("project_umap needs umap-learn: pip install 'abalone-core[book]'") from err
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value .* overridden.*")
        reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
                            random_state=seed)
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)
