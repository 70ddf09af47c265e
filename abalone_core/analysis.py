"""Diagnostics for the teaching chapters: lack of positives, attraction / repulsion,
representation quality and 2-D projections.

Inputs are label matrices ``(N, L)`` of 0/1 and embeddings ``(N, D)`` of floats
(numpy arrays; torch tensors are accepted and detached). Label groups (head /
medium / tail) always come from :func:`abalone_core.metrics.frequency_groups`
applied to training label counts. Nothing here loads data or draws figures.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import davies_bouldin_score, silhouette_score

from .metrics import GROUPS, frequency_groups


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------

def _numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _labels(labels, name: str = "labels") -> np.ndarray:
    y = _numpy(labels)
    if y.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (documents x labels) array, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold 0/1 values only (a multi-hot label matrix)")
    return y.astype(np.int64)


def _embeddings(z, n_docs: int | None = None, name: str = "embeddings") -> np.ndarray:
    x = _numpy(z).astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (documents x dims) array, got shape {x.shape}")
    if n_docs is not None and x.shape[0] != n_docs:
        raise ValueError(f"{name} has {x.shape[0]} rows but the label matrix has {n_docs} documents")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return x


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _groups(groups, labels: np.ndarray) -> np.ndarray:
    """(L,) group names; by default from the label counts of ``labels`` itself."""
    if groups is None:
        return frequency_groups(labels.sum(axis=0))
    g = np.asarray(groups).astype(str)
    if g.shape != (labels.shape[1],):
        raise ValueError(f"groups must have one entry per label ({labels.shape[1]}), got shape {g.shape}")
    return g


def _group_order(groups: np.ndarray) -> list[str]:
    present = set(groups.tolist())
    return [g for g in GROUPS if g in present] + sorted(present - set(GROUPS))


def _per_label_frame(values: dict, groups, names) -> pd.DataFrame:
    n_labels = len(next(iter(values.values())))
    frame = pd.DataFrame({"label": np.arange(n_labels)})
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != n_labels:
            raise ValueError(f"names must have one entry per label ({n_labels}), got {len(names)}")
        frame["name"] = names
    if groups is not None:
        frame["group"] = groups
    for key, col in values.items():
        frame[key] = col
    return frame


# ---------------------------------------------------------------------------
# lack of positives
# ---------------------------------------------------------------------------

def lack_of_positives(labels, batch_sizes, queue_sizes=(0,), n_draws: int = 200, seed: int = 0,
                      groups=None) -> pd.DataFrame:
    """How often an anchor, or one of its labels, has no positive among the keys.

    Each draw takes ``B + K`` distinct training documents at random: the first B
    form the batch (the anchors), the next K stand for the memory queue (earlier
    batches). Keys are the batch plus the queue. The same random permutation is
    reused across batch and queue sizes within a draw (common random numbers),
    so curves over B are smooth.

    * An anchor lacks positives under L_Base when no other key shares any label
      with it. Anchors without labels are left out of that share and counted in
      ``anchors_without_label`` (share of all batch documents).
    * An (anchor, label c) pair lacks a positive when no other key carries c.
    * ``*_proto`` columns count the L label prototypes as extra keys (prototype c
      carries label c only), as in L_BQProto and L_MSC; they are 0 by
      construction and computed, not assumed.

    Per draw the work is a column sum of the key labels: pair (i, c) lacks a
    positive iff label c occurs exactly once among the keys, and an anchor lacks
    one iff all its pairs do.

    Args:
        labels: (N, L) 0/1 training label matrix.
        batch_sizes: iterable of batch sizes B >= 1.
        queue_sizes: iterable of queue sizes K >= 0.
        n_draws: random draws per (B, K).
        seed: seed of the numpy generator.
        groups: (L,) group name per label; default ``frequency_groups(labels.sum(0))``.
    Returns:
        Tidy frame, one row per (batch_size, queue_size, group) with group in
        ``all`` then head / medium / tail. Columns: ``batch_size``, ``queue_size``,
        ``group``, ``n_draws``, ``anchors`` (labelled anchors per draw; for a group,
        anchors carrying at least one label of the group), ``pairs`` ((anchor,
        label) pairs per draw whose label is in the group), ``anchors_without_label``,
        ``anchors_without_positive``, ``pairs_without_positive``,
        ``anchors_without_positive_proto``, ``pairs_without_positive_proto``.
        Shares are pooled over draws (total lacking / total counted), in [0, 1];
        NaN where nothing was counted.
    """
    y = _labels(labels)
    n_docs, n_labels = y.shape
    g = _groups(groups, y)
    order = _group_order(g)
    batch_sizes = [int(b) for b in np.atleast_1d(batch_sizes)]
    queue_sizes = [int(k) for k in np.atleast_1d(queue_sizes)]
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch_sizes must be a non-empty list of sizes >= 1, got {batch_sizes}")
    if not queue_sizes or min(queue_sizes) < 0:
        raise ValueError(f"queue_sizes must be a non-empty list of sizes >= 0, got {queue_sizes}")
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    need = max(batch_sizes) + max(queue_sizes)
    if need > n_docs:
        raise ValueError(f"largest batch + queue needs {need} distinct documents but labels has only "
                         f"{n_docs}; use smaller batch_sizes / queue_sizes")

    # one-hot group membership of labels: (L, G), first column "all"
    member = np.stack([np.ones(n_labels, bool)] + [g == name for name in order], axis=1).astype(np.int64)
    names = ["all"] + order
    n_cells = len(batch_sizes) * len(queue_sizes)
    # accumulators per (B, K) cell and group
    acc = {key: np.zeros((n_cells, len(names))) for key in
           ("anchors", "pairs", "lack_anchor", "lack_pair", "lack_anchor_p", "lack_pair_p")}
    unlabelled = np.zeros(n_cells)

    rng = np.random.default_rng(seed)
    for _ in range(n_draws):
        idx = rng.permutation(n_docs)[:need]
        drawn = y[idx]
        cell = 0
        for b in batch_sizes:
            anchors = drawn[:b]
            sizes = anchors.sum(axis=1)
            labelled = sizes > 0
            in_group = anchors @ member                                         # (B, G) labels per group
            for k in queue_sizes:
                counts = anchors.sum(axis=0) + drawn[b:b + k].sum(axis=0)      # (L,) over keys
                unlabelled[cell] += (~labelled).sum()
                acc["pairs"][cell] += in_group.sum(axis=0)
                acc["anchors"][cell] += (in_group > 0).sum(axis=0)
                for suffix, extra in (("", 0), ("_p", 1)):                      # _p: prototypes as keys
                    alone = (counts + extra == 1).astype(np.int64)              # only the anchor carries it
                    lack = anchors * alone                                      # (B, L) pairs lacking
                    lack_all = labelled & (lack.sum(axis=1) == sizes)           # (B,) anchors lacking
                    acc["lack_pair" + suffix][cell] += (lack @ member).sum(axis=0)
                    acc["lack_anchor" + suffix][cell] += (lack_all[:, None] & (in_group > 0)).sum(axis=0)
                cell += 1

    def share(num, den) -> float:
        return float(num / den) if den > 0 else float("nan")

    rows = []
    cell = 0
    for b in batch_sizes:
        for k in queue_sizes:
            for j, name in enumerate(names):
                rows.append({
                    "batch_size": b, "queue_size": k, "group": name, "n_draws": n_draws,
                    "anchors": acc["anchors"][cell, j] / n_draws,
                    "pairs": acc["pairs"][cell, j] / n_draws,
                    "anchors_without_label": unlabelled[cell] / (n_draws * b),
                    "anchors_without_positive": share(acc["lack_anchor"][cell, j], acc["anchors"][cell, j]),
                    "pairs_without_positive": share(acc["lack_pair"][cell, j], acc["pairs"][cell, j]),
                    "anchors_without_positive_proto": share(acc["lack_anchor_p"][cell, j], acc["anchors"][cell, j]),
                    "pairs_without_positive_proto": share(acc["lack_pair_p"][cell, j], acc["pairs"][cell, j]),
                })
            cell += 1
    return pd.DataFrame(rows)
