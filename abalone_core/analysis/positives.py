"""Lack of positives, attraction and repulsion: which anchors and labels of a batch have no
positive among the keys (chapter 2), and how much each label weighs in what a loss pulls
together and pushes apart (chapters 0 and 3).

Inputs are label matrices ``(N, L)`` of 0/1 (checked by :mod:`abalone_core.data.labels`) and
embeddings ``(N, D)`` of floats (checked by :mod:`abalone_core.analysis.embeddings`; numpy arrays,
torch tensors are accepted and detached). Label groups (head / medium / tail) always come
from :func:`abalone_core.evaluation.metrics.frequency_groups` applied to training label counts; the
per-label frames are :func:`abalone_core.evaluation.per_label.label_frame`'s. Nothing here loads data
or draws figures.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.labels import label_matrix
from ..evaluation.metrics import group_order, label_groups
from ..evaluation.per_label import label_frame
from ..method.losses import label_overlap, msc_counts
from .embeddings import embedding_matrix, unit_rows


# ---------------------------------------------------------------------------
# lack of positives
# ---------------------------------------------------------------------------

def _missing(anchors: np.ndarray, key_counts: np.ndarray, prototypes: bool):
    """Pairs / anchors without positives given the label counts over all keys (anchors included)."""
    alone = (key_counts + int(prototypes) == 1).astype(np.int64)   # only the anchor itself carries c
    lack = anchors * alone                                          # (B, L)
    sizes = anchors.sum(axis=1)
    return lack, (sizes > 0) & (lack.sum(axis=1) == sizes)


def missing_positives(batch_labels, queue_labels=None, prototypes: bool = False):
    """Which anchors, and which (anchor, label) pairs, of one batch have no positive.

    Keys are the batch plus the queue (plus one prototype per label when
    ``prototypes``). Pair (i, c) has no positive when no key other than i
    carries c; anchor i has none when no other key shares any label with it
    (the L_Base rule), i.e. when all its pairs have none. Anchors without
    labels are never flagged.

    Args:
        batch_labels: (B, L) 0/1 labels of the anchors.
        queue_labels: optional (K, L) 0/1 labels of the queue keys.
        prototypes: count the L label prototypes as keys.
    Returns:
        ``pairs`` (B, L) bool and ``anchors`` (B,) bool.
    """
    a = label_matrix(batch_labels, "batch_labels", dtype=np.int64)
    counts = a.sum(axis=0)
    if queue_labels is not None:
        q = label_matrix(queue_labels, "queue_labels", dtype=np.int64)
        if q.shape[1] != a.shape[1]:
            raise ValueError(f"queue_labels has {q.shape[1]} labels, batch_labels has {a.shape[1]}")
        counts = counts + q.sum(axis=0)
    lack, lack_all = _missing(a, counts, prototypes)
    return lack.astype(bool), lack_all


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
    * An (anchor, label c) pair lacks a positive when no other key carries c. It is
      *silent* when its anchor still has a positive through another label: L_Base
      keeps the anchor, and label c receives no attraction.
    * ``*_proto`` columns count the L label prototypes as extra keys (prototype c
      carries label c only), as in L_BQProto and L_MSC; they are 0 by
      construction and computed, not assumed.

    Per draw the work is a column sum of the key labels: pair (i, c) lacks a
    positive iff label c occurs exactly once among the keys, and an anchor lacks
    one iff all its pairs do (see :func:`missing_positives` for one batch).

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
        ``anchors_without_positive``, ``pairs_without_positive``, ``silent_pairs``
        (share of the pairs that lack a positive while their anchor has one),
        ``anchors_without_positive_proto``, ``pairs_without_positive_proto``.
        Shares are pooled over draws (total lacking / total counted), in [0, 1];
        NaN where nothing was counted.
    """
    y = label_matrix(labels, "labels", dtype=np.int64)
    n_docs, n_labels = y.shape
    g = label_groups(groups, y)
    order = group_order(g)
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
           ("anchors", "pairs", "lack_anchor", "lack_pair", "silent", "lack_anchor_p", "lack_pair_p")}
    unlabelled = np.zeros(n_cells)

    rng = np.random.default_rng(seed)
    for _ in range(n_draws):
        idx = rng.permutation(n_docs)[:need]
        drawn = y[idx]
        cell = 0
        for b in batch_sizes:
            anchors = drawn[:b]
            labelled = anchors.any(axis=1)
            in_group = anchors @ member                                         # (B, G) labels per group
            for k in queue_sizes:
                counts = anchors.sum(axis=0) + drawn[b:b + k].sum(axis=0)      # (L,) over keys
                unlabelled[cell] += (~labelled).sum()
                acc["pairs"][cell] += in_group.sum(axis=0)
                acc["anchors"][cell] += (in_group > 0).sum(axis=0)
                for suffix, protos in (("", False), ("_p", True)):
                    lack, lack_all = _missing(anchors, counts, protos)
                    acc["lack_pair" + suffix][cell] += (lack @ member).sum(axis=0)
                    acc["lack_anchor" + suffix][cell] += (lack_all[:, None] & (in_group > 0)).sum(axis=0)
                    if not protos:
                        acc["silent"][cell] += (lack[~lack_all] @ member).sum(axis=0)
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
                    "silent_pairs": share(acc["silent"][cell, j], acc["pairs"][cell, j]),
                    "anchors_without_positive_proto": share(acc["lack_anchor_p"][cell, j], acc["anchors"][cell, j]),
                    "pairs_without_positive_proto": share(acc["lack_pair_p"][cell, j], acc["pairs"][cell, j]),
                })
            cell += 1
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# attraction and repulsion
# ---------------------------------------------------------------------------

def attraction_repulsion(z, labels, groups=None, names=None) -> pd.DataFrame:
    """Attraction and repulsion terms per label (paper appendix E, after Graf et al. 2021).

    With z L2-normalised, for label y, ``B_y`` the documents carrying y and
    ``B_y^C`` the others, each anchor i in ``B_y`` has::

        S_att^i = -mean_{j in B_y, j != i} <z_i, z_j>     (needs |B_y| >= 2)
        S_rep^i =  mean_{j in B_y^C}       <z_i, z_j>     (needs |B_y^C| >= 1)

    Low S_att (similar positives) and low S_rep (dissimilar negatives) are good.
    Computed through ``z (z^T Y)`` so no N x N matrix is formed.

    Args:
        z: (N, D) embeddings (the batch, or any set of documents).
        labels: (N, L) 0/1 labels of those documents.
        groups: optional (L,) group per label, added as a ``group`` column.
        names: optional (L,) label names, added as a ``name`` column.
    Returns:
        Frame with one row per label: ``label``, [``name``], [``group``],
        ``n_anchors`` (= |B_y|), ``s_att``, ``s_rep`` (means over the anchors of
        the label; NaN where undefined).
    """
    y = label_matrix(labels, "labels", dtype=np.int64)
    x = unit_rows(embedding_matrix(z, y.shape[0], "z"))
    n_docs = y.shape[0]
    yf = y.astype(np.float64)
    with_label = x @ (x.T @ yf)                     # (N, L): sum_{j carries c} <z_i, z_j>
    total = x @ x.sum(axis=0)                       # (N,): sum_j <z_i, z_j>
    self_sim = (x * x).sum(axis=1)                  # (N,): <z_i, z_i>, 1 or 0
    n_pos = y.sum(axis=0)                           # (L,)
    with np.errstate(invalid="ignore", divide="ignore"):
        att = -(with_label - self_sim[:, None]) / (n_pos - 1)
        rep = (total[:, None] - with_label) / (n_docs - n_pos)
        s_att = (att * yf).sum(axis=0) / n_pos
        s_rep = (rep * yf).sum(axis=0) / n_pos
    s_att = np.where(n_pos >= 2, s_att, np.nan)
    s_rep = np.where((n_pos >= 1) & (n_pos < n_docs), s_rep, np.nan)
    g = None if groups is None else label_groups(groups, y)
    return label_frame({"n_anchors": n_pos, "s_att": s_att, "s_rep": s_rep}, g, names)


def term_counts(labels, loss: str = "base", beta: float = 0.1, queue_labels=None, groups=None,
                names=None) -> pd.DataFrame:
    """How much each label weighs in the attraction and repulsion sums of a loss.

    The batch documents are the anchors; keys H are the batch plus the queue
    (``queue_labels``, K x L). Weights are those the loss puts in front of each
    log-probability (attraction) and of each exponential in the denominator
    (repulsion); similarities are left out, so only labels matter.

    Attraction, attributed to labels:

    * ``loss="base"`` (L_Base; with a queue, L_BQueue): pair (i, j) has weight
      w_ij / N(i) with w_ij the Jaccard overlap; it is split evenly over the
      n(i, j) labels i and j share, so label c gets 1 / (u(i, j) N(i)). Each
      anchor with N(i) > 0 spreads a total of 1, and a label shared with many
      keys (a head label) takes most of it.
    * ``loss="msc"`` (L_MSC, prototypes included): anchor i iterates over its
      labels, and label c gets 1 / |y_i| whatever its frequency (the f / N(i, c)
      weights inside sum to 1 over the positives of c). ``attraction_prototype``
      is the part carried by prototype c: 1 / (|y_i| N(i, c)).

    Repulsion (denominator), with key weight g(k) = 1 for every key under
    L_Base, beta for every instance key and 1 for every prototype under L_MSC:

    * ``repulsion``: anchor side. Anchor i's total sum_{k != i} g(k) is split
      evenly over its labels (1 / |y_i| each): who is pushed.
    * ``repulsion_from``: key side. Instance key k gives g(k) / |y_k| to each
      of its labels and prototype c gives 1 to c: who pushes. Unlabelled keys
      push but are attributed to no label.

    Anchors that the loss skips (no positive under L_Base, no label under L_MSC)
    contribute nothing.

    Args:
        labels: (B, L) 0/1 labels of the batch.
        loss: ``"base"`` or ``"msc"``.
        beta: weight of instance keys in the L_MSC denominator, in (0, 1].
        queue_labels: optional (K, L) 0/1 labels of the queue keys.
        groups, names: optional (L,) label groups / names added as columns.
    Returns:
        One row per label: ``label``, [``name``], [``group``], ``n_anchors``
        (anchors in the loss carrying the label), ``attraction``,
        ``attraction_prototype``, ``repulsion``, ``repulsion_from``, the
        ``*_share`` of each total (sums to 1 over labels) and
        ``attraction_per_anchor`` = attraction / n_anchors: the mean share of an
        anchor's attraction given to the label (flat under L_MSC, rising with
        frequency under L_Base).
    """
    if loss not in ("base", "msc"):
        raise ValueError(f"loss must be 'base' or 'msc', got {loss!r}")
    if not 0 < beta <= 1:
        raise ValueError(f"beta must be in (0, 1], got {beta}")
    a = label_matrix(labels, "labels", dtype=np.int64).astype(np.float64)
    n_batch, n_labels = a.shape
    keys = a
    if queue_labels is not None:
        q = label_matrix(queue_labels, "queue_labels", dtype=np.int64).astype(np.float64)
        if q.shape[1] != n_labels:
            raise ValueError(f"queue_labels has {q.shape[1]} labels, labels has {n_labels}")
        keys = np.concatenate([a, q])
    n_keys = keys.shape[0]
    off = np.ones((n_batch, n_keys), dtype=bool)
    off[np.arange(n_batch), np.arange(n_batch)] = False         # the anchor is not its own key
    size_a, shared, inv_union = label_overlap(a, keys, off)     # |y_i|, (B, M) n(i, k) and O / U
    size_k = keys.sum(axis=1)                                   # |y_k|

    if loss == "base":
        pos_mass = inv_union @ keys                             # (B, L): sum_{k carries c} 1/u(i, k)
        n_i = (inv_union * shared).sum(axis=1)                  # N(i) = sum_j w_ij
        used = n_i > 0
        att = a * pos_mass / np.where(used, n_i, 1.0)[:, None]
        att_proto = np.zeros_like(att)
        key_weight = np.ones(n_keys)
        proto_weight = 0.0
    else:
        used = size_a > 0
        n_ic = msc_counts(inv_union, keys)                      # N(i, c), prototype adds 1
        split = a / np.where(used, size_a, 1.0)[:, None]        # 1 / |y_i| on each label of i
        att = split
        att_proto = split / n_ic
        key_weight = np.full(n_keys, float(beta))
        proto_weight = 1.0
    att = att * used[:, None]
    att_proto = att_proto * used[:, None]

    # anchor side: sum_{k != i} g(k) split over the anchor's labels
    denom = key_weight.sum() - key_weight[:n_batch] + proto_weight * n_labels       # (B,)
    split = a / np.where(size_a > 0, size_a, 1.0)[:, None]
    rep = (split * (denom * used)[:, None]).sum(axis=0)
    # key side: key k gives g(k)/|y_k| to its labels, summed over used anchors (minus self)
    give = keys * (key_weight / np.where(size_k > 0, size_k, 1.0))[:, None]        # (M, L)
    n_used = used.sum()
    rep_from = n_used * give.sum(axis=0) - (give[:n_batch] * used[:, None]).sum(axis=0) \
        + proto_weight * n_used

    n_anchors = (a * used[:, None]).sum(axis=0).astype(np.int64)
    attraction = att.sum(axis=0)

    def share(v):
        total = v.sum()
        return v / total if total > 0 else np.full_like(v, np.nan)

    with np.errstate(invalid="ignore", divide="ignore"):
        per_anchor = np.where(n_anchors > 0, attraction / np.maximum(n_anchors, 1), np.nan)
    g = None if groups is None else label_groups(groups, a)
    return label_frame({
        "n_anchors": n_anchors,
        "attraction": attraction,
        "attraction_prototype": att_proto.sum(axis=0),
        "repulsion": rep,
        "repulsion_from": rep_from,
        "attraction_share": share(attraction),
        "repulsion_share": share(rep),
        "repulsion_from_share": share(rep_from),
        "attraction_per_anchor": per_anchor,
    }, g, names)


def gradient_mass(z, labels, loss_fn, groups=None, names=None, **kw) -> pd.DataFrame:
    """Per label, the mean norm of the loss gradient on the embeddings carrying it.

    Calls ``loss_fn(z, y, **kw)`` once, with z a float32 leaf tensor that
    requires grad and y the float32 label matrix, back-propagates the scalar
    loss and, for each label c, averages ``||d loss / d z_i||_2`` over the
    documents i carrying c. Extra tensors in ``kw`` (prototypes, queue) are
    passed as given.

    Args:
        z: (N, D) embeddings (numpy or torch; a copy is used).
        labels: (N, L) 0/1 labels.
        loss_fn: callable returning a scalar tensor, e.g.
            ``abalone_core.method.losses.base_loss`` or ``msc_loss``.
        groups, names: optional (L,) label groups / names added as columns.
        **kw: keyword arguments for ``loss_fn`` (temperature, beta, ...).
    Returns:
        One row per label: ``label``, [``name``], [``group``], ``n_docs``,
        ``grad_norm`` (mean gradient norm, NaN for labels nobody carries) and
        ``grad_share`` = ``n_docs * grad_norm`` divided by its sum over labels.
    """
    import torch

    y = label_matrix(labels, "labels", dtype=np.int64)
    x = embedding_matrix(z, y.shape[0], "z")
    zt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    yt = torch.tensor(y, dtype=torch.float32)
    out = loss_fn(zt, yt, **kw)
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise ValueError("loss_fn must return a scalar tensor")
    if not out.requires_grad:
        raise ValueError("loss_fn output does not depend on z; nothing to differentiate")
    (grad,) = torch.autograd.grad(out.reshape(()), zt)
    norms = grad.norm(dim=1).double().numpy()                  # (N,)
    n_docs = y.sum(axis=0)
    mass = norms @ y                                           # (L,) summed norms
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_docs > 0, mass / np.maximum(n_docs, 1), np.nan)
    total = mass.sum()
    share = mass / total if total > 0 else np.full(mass.shape, np.nan)
    g = None if groups is None else label_groups(groups, y)
    return label_frame({"n_docs": n_docs, "grad_norm": mean, "grad_share": share}, g, names)
