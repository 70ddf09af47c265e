"""Multi-label scores in the paper's units, and head / medium / tail label groups.

Units follow the paper: micro-F1 and macro-F1 in percent, Hamming loss x 10^3. Ranking metrics
(P@k, nDCG@k, PSP@k, MAP; :func:`ranking_scores`) are in percent too.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, hamming_loss, ndcg_score

from ..data.labels import label_matrix

GROUPS = ("head", "medium", "tail")


def _as_binary(a, name: str) -> np.ndarray:
    return label_matrix(a, name)


def frequency_groups(label_counts) -> np.ndarray:
    """Head / medium / tail group of each label from its training frequency.

    Rule (used in every chapter): sort labels by training count, descending, ties
    broken by label index; the first third of the labels is ``head``, the next third
    ``medium``, the rest ``tail`` (``np.array_split`` sizes, so head gets the extra
    label when L is not a multiple of 3). With fewer than three labels the last groups
    are empty: one label is ``head``; two are ``head`` and ``medium``.

    Args:
        label_counts: (L,) number of training documents carrying each label.
    Returns:
        (L,) array of strings in {"head", "medium", "tail"}.
    """
    counts = np.asarray(label_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"label_counts must be a non-empty 1-D array, got shape {counts.shape}")
    order = np.lexsort((np.arange(counts.size), -counts))
    groups = np.empty(counts.size, dtype=object)
    for name, idx in zip(GROUPS, np.array_split(order, 3)):
        groups[idx] = name
    return groups.astype(str)



def label_groups(groups, labels: np.ndarray) -> np.ndarray:
    """(L,) group name per label of the label matrix ``labels``: ``groups`` checked, or by
    default :func:`frequency_groups` of the label counts of ``labels`` itself."""
    if groups is None:
        return frequency_groups(labels.sum(axis=0))
    g = np.asarray(groups).astype(str)
    if g.shape != (labels.shape[1],):
        raise ValueError(f"groups must have one entry per label ({labels.shape[1]}), got shape {g.shape}")
    return g


def group_order(groups: np.ndarray) -> list[str]:
    """The group names present in ``groups``: head, medium, tail first, then any others sorted."""
    present = set(groups.tolist())
    return [g for g in GROUPS if g in present] + sorted(present - set(GROUPS))


def label_group_of_docs(labels, train_counts) -> np.ndarray:
    """(N,) group of each document's rarest label (``head``/``medium``/``tail``, ``none`` if unlabelled)."""
    y = np.asarray(labels)
    counts = np.asarray(train_counts)
    groups = frequency_groups(counts)
    out = np.full(y.shape[0], "none", dtype=object)
    masked = np.where(y > 0, counts[None, :], np.inf)
    has = y.any(axis=1)
    out[has] = groups[masked[has].argmin(axis=1)]
    return out.astype(str)


def example_labels(train_counts, eval_counts, groups=None) -> dict:
    """One example label per frequency group, chosen by a fixed rule (for figures).

    Rule: among the labels of the group that have at least one document in the evaluated
    split (``eval_counts > 0``), take the one whose training count is closest to the median
    training count of those labels; ties go to the more frequent label, then the lower index.
    A group with no evaluated document is left out, so an empty tail is visible as a missing key.

    Args:
        train_counts: (L,) training documents per label.
        eval_counts: (L,) documents per label in the split shown (e.g. test).
        groups: (L,) group per label; default ``frequency_groups(train_counts)``.
    Returns:
        ``{group: label index}`` in head, medium, tail order (groups without a candidate absent).
    """
    train = np.asarray(train_counts)
    shown = np.asarray(eval_counts)
    if train.ndim != 1 or train.shape != shown.shape or train.size == 0:
        raise ValueError(f"train_counts and eval_counts must be non-empty 1-D arrays of one shape, "
                         f"got {train.shape} and {shown.shape}")
    groups = frequency_groups(train) if groups is None else np.asarray(groups).astype(str)
    if groups.shape != train.shape:
        raise ValueError(f"groups must have one entry per label ({train.size}), got {groups.shape}")
    out = {}
    for g in GROUPS:
        idx = np.flatnonzero((groups == g) & (shown > 0))
        if idx.size == 0:
            continue
        median = np.median(train[idx])
        out[g] = int(min(idx, key=lambda i: (abs(train[i] - median), -train[i], i)))
    return out


def multilabel_scores(y_true, y_pred) -> dict:
    """Micro-F1 and macro-F1 (percent) and Hamming loss (x 10^3).

    Args:
        y_true, y_pred: (N, L) 0/1 arrays.
    Returns:
        dict with ``micro_f1``, ``macro_f1``, ``hamming`` (floats).
    """
    y_true = _as_binary(y_true, "y_true")
    y_pred = _as_binary(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape")
    return {
        "micro_f1": 100.0 * f1_score(*_columns(y_true, y_pred), average="micro", zero_division=0,
                                     labels=_positive(y_true)),
        "macro_f1": 100.0 * f1_score(*_columns(y_true, y_pred), average="macro", zero_division=0,
                                     labels=_positive(y_true)),
        "hamming": 1000.0 * hamming_loss(y_true, y_pred),
    }


def _positive(y_true: np.ndarray):
    """``labels=[1]`` for one label column (only the positive class is a label), else None."""
    return [1] if y_true.shape[1] == 1 else None


def _columns(y_true: np.ndarray, y_pred: np.ndarray):
    """Arguments of scikit-learn's ``f1_score`` that keep the multi-label meaning for one label too:
    scikit-learn reads an (N, 1) matrix as a binary target and would also score the negatives."""
    if y_true.shape[1] == 1:
        return y_true.ravel(), y_pred.ravel()
    return y_true, y_pred


def per_label_f1(y_true, y_pred) -> np.ndarray:
    """(L,) F1 of each label in percent (0 where a label is never true nor predicted)."""
    y_true = _as_binary(y_true, "y_true")
    y_pred = _as_binary(y_pred, "y_pred")
    return 100.0 * f1_score(*_columns(y_true, y_pred), average=None, zero_division=0, labels=_positive(y_true))


def grouped_f1(y_true, y_pred, train_label_counts) -> dict:
    """Macro-F1 (percent) inside each head / medium / tail group of the training distribution
    (:func:`frequency_groups`).

    Returns:
        dict ``{"head": .., "medium": .., "tail": ..}``; a group without labels (fewer than
        three labels) is NaN, without a warning.
    """
    f1 = per_label_f1(y_true, y_pred)
    groups = frequency_groups(train_label_counts)
    if groups.size != f1.size:
        raise ValueError(f"train_label_counts has {groups.size} labels, predictions have {f1.size}")
    return {g: float(f1[groups == g].mean()) if (groups == g).any() else float("nan") for g in GROUPS}


# --------------------------------------------------------------------------- ranking metrics

def _as_scores(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (documents x labels) array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    a = a.astype(float)
    if np.isnan(a).any():
        raise ValueError(f"{name} contains NaN ({int(np.isnan(a).sum())} entries)")
    if np.isinf(a).any():
        raise ValueError(f"{name} contains infinite values ({int(np.isinf(a).sum())} entries)")
    return a


def _pair(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_binary(y_true, "y_true")
    y_score = _as_scores(y_score, "y_score")
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true {y_true.shape} and y_score {y_score.shape} must have the same shape")
    if y_true.shape[0] == 0:
        raise ValueError("y_true must hold at least one document")
    return y_true, y_score


def propensities(train_label_counts, n_train: int, a: float = 0.55, b: float = 1.5) -> np.ndarray:
    """Label propensities of Jain, Prabhu & Varma (KDD 2016).

    ``p_l = 1 / (1 + C * exp(-a * log(N_l + b)))`` with ``C = (log N - 1) * (b + 1)^a``,
    ``N = n_train`` the number of training documents and ``N_l`` the training count of label l
    (natural logarithms). A label never seen in training gets the smallest propensity, hence
    the largest weight ``1 / p_l`` in :func:`ranking_scores`.

    Args:
        train_label_counts: (L,) number of training documents carrying each label.
        n_train: number of training documents; at least 3 (``log N > 1``, so that ``C > 0``
            and every propensity lies in (0, 1)) and at least the largest label count.
        a, b: the formula's A and B (0.55 and 1.5 outside Wikipedia and Amazon data).
    Returns:
        (L,) propensities in (0, 1).
    """
    counts = np.asarray(train_label_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"train_label_counts must be a non-empty 1-D array, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.number):
        raise ValueError(f"train_label_counts must hold numbers, got dtype {counts.dtype}")
    counts = counts.astype(float)
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("train_label_counts must hold finite, non-negative counts")
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)):
        raise ValueError(f"n_train must be an integer number of training documents, got {n_train!r}")
    if n_train < 3:
        raise ValueError(f"n_train must be at least 3 (log N > 1 in the propensity model), got {n_train}")
    if counts.max() > n_train:
        raise ValueError(f"n_train ({n_train}) is smaller than the largest of train_label_counts "
                         f"({counts.max():g})")
    if not (np.isfinite(a) and a > 0) or not (np.isfinite(b) and b > 0):
        raise ValueError(f"propensity_a and propensity_b must be positive, got {a!r} and {b!r}")
    c = (np.log(n_train) - 1.0) * (b + 1.0) ** a
    return 1.0 / (1.0 + c * np.exp(-a * np.log(counts + b)))


def _ks(ks) -> tuple[int, ...]:
    ks = tuple(np.atleast_1d(ks).tolist())
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
    return tuple(sorted(set(int(k) for k in ks)))


def ranking_scores(y_true, y_score, train_label_counts=None, n_train: int | None = None, *,
                   ks=(1, 3, 5), propensity_a: float = 0.55, propensity_b: float = 1.5) -> dict:
    """Ranking metrics of the extreme-classification literature, in percent.

    Every document's labels are ranked by ``y_score`` (probabilities or logits, any real
    values), highest first; equal scores are ranked by label index, lower first (a stable
    sort), so the result does not depend on the platform.

    Keys, for every k in ``ks``:

    * ``p_at_k`` -- precision@k: the share of the k top-ranked labels that are true,
      ``hits / k``; when k > L the denominator stays k (the top "k" holds all L labels).
    * ``ndcg_at_k`` for every k > 1 -- nDCG@k with binary relevance: DCG of the top k,
      ``sum 1 / log2(rank + 1)`` over the true labels among them, over the DCG of an ideal
      ranking of the document's labels cut at k (:func:`sklearn.metrics.ndcg_score` on the
      tie-broken ranking). nDCG@1 is left out because with 0/1 relevance it equals P@1.
    * ``psp_at_k``, only when ``train_label_counts`` (and ``n_train``) are given --
      propensity-scored precision@k (Jain, Prabhu & Varma, KDD 2016), each true label among
      the top k weighted by ``1 / p_l`` (:func:`propensities`). The *normalised* form of the
      standard tooling (``psprecision`` of the Extreme Classification Repository's pyxclib)
      is used: the weighted hits of the top-k predictions summed over all documents,
      divided by the best achievable sum, i.e. for each document the k largest weights
      among its true labels (all of them when it has fewer than k). So 100 means a perfect
      propensity-weighted ranking whatever the weights' scale; the unnormalised
      ``sum / k`` of the original paper depends on N and the label distribution through
      ``C`` and cannot be compared across datasets.

    And ``map``: macro average precision (:func:`sklearn.metrics.average_precision_score`,
    ranking each label's column of documents; tied scores form one threshold there), over
    the labels with at least one positive document in ``y_true`` -- AP is undefined for the
    others; ``nan`` when no label has a positive.

    Documents without any true label follow the extreme-classification convention (as in
    pyxclib): they stay in the averages of P@k and nDCG@k with a score of 0, and add
    nothing to either side of the PSP@k ratio. Filter them out beforehand to exclude them.

    Args:
        y_true: (N, L) 0/1 array of true labels.
        y_score: (N, L) real scores; no NaN or infinite values.
        train_label_counts: optional (L,) training count of each label, for PSP@k.
        n_train: number of training documents (required with ``train_label_counts``).
        ks: the cut-offs k.
        propensity_a, propensity_b: A and B of the propensity model.
    Returns:
        dict of floats, keys as above.
    """
    y_true, y_score = _pair(y_true, y_score)
    ks = _ks(ks)
    n_docs, n_labels = y_true.shape
    if n_labels < 2:
        raise ValueError(f"ranking metrics need at least 2 labels, y_true has {n_labels}")
    weights = None
    if train_label_counts is not None:
        if n_train is None:
            raise ValueError("n_train (number of training documents) is required with train_label_counts")
        counts = np.asarray(train_label_counts)
        if counts.ndim != 1 or counts.size != n_labels:
            raise ValueError(f"train_label_counts must have shape ({n_labels},) to match y_true, "
                             f"got {counts.shape}")
        weights = 1.0 / propensities(counts, n_train, propensity_a, propensity_b)
    elif n_train is not None:
        raise ValueError("n_train is given without train_label_counts")

    order = np.argsort(-y_score, axis=1, kind="stable")  # rank -> label, ties to the lower index
    ranked = np.take_along_axis(y_true, order, axis=1).astype(float)  # 0/1 by rank
    # strictly decreasing stand-in scores that encode the tie-broken ranking
    tie_free = np.empty_like(y_score)
    np.put_along_axis(tie_free, order, np.broadcast_to(np.arange(n_labels, 0, -1, dtype=float),
                                                       y_score.shape), axis=1)
    out = {}
    for k in ks:
        out[f"p_at_{k}"] = 100.0 * float(ranked[:, :k].sum(axis=1).mean() / k)
    for k in ks:
        if k > 1:
            out[f"ndcg_at_{k}"] = 100.0 * float(ndcg_score(y_true, tie_free, k=k, ignore_ties=True))
    if weights is not None:
        gained = np.take_along_axis(np.broadcast_to(weights, y_score.shape), order, axis=1) * ranked
        best = -np.sort(-(y_true * weights), axis=1)  # each document's true-label weights, largest first
        for k in ks:
            den = best[:, :k].sum()
            out[f"psp_at_{k}"] = 100.0 * float(gained[:, :k].sum() / den) if den > 0 else float("nan")
    has_pos = y_true.any(axis=0)
    out["map"] = (100.0 * float(average_precision_score(y_true[:, has_pos], y_score[:, has_pos], average="macro"))
                  if has_pos.any() else float("nan"))
    return out


def best_global_threshold(y_true, y_score, grid=None, metric: str = "micro_f1") -> float:
    """One decision threshold for every label, maximising micro-F1 (or macro-F1).

    Tune it on validation data, never on test data: the threshold is a hyper-parameter,
    and choosing it on the test set inflates the test score.

    A label is predicted when its score is at least the threshold (``y_score >= t``), so the
    scores should be probabilities when the default grid is used. Among thresholds that tie
    on the metric (within 1e-12 points), the one closest to 0.5 wins, then the smaller one.

    Args:
        y_true: (N, L) 0/1 array of true labels (validation set).
        y_score: (N, L) scores (validation set); no NaN.
        grid: candidate thresholds (1-D); default 0.05, 0.10, ..., 0.95.
        metric: ``"micro_f1"`` or ``"macro_f1"`` (as in :func:`multilabel_scores`).
    Returns:
        The chosen threshold.
    """
    if metric not in ("micro_f1", "macro_f1"):
        raise ValueError(f"metric must be 'micro_f1' or 'macro_f1', got {metric!r}")
    y_true, y_score = _pair(y_true, y_score)
    if grid is None:
        grid = np.round(np.arange(1, 20) * 0.05, 10)
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError(f"grid must be a non-empty 1-D array of finite thresholds, got shape {grid.shape}")
    values = np.array([multilabel_scores(y_true, (y_score >= t).astype(np.int8))[metric] for t in grid])
    top = np.flatnonzero(values >= values.max() - 1e-12)
    best = min(top, key=lambda i: (abs(grid[i] - 0.5), grid[i]))
    return float(grid[best])


def label_thresholds(y_true, y_score, fallback: float) -> np.ndarray:
    """One decision threshold per label, each maximising that label's F1 on the data given.

    Tune on the validation split, never on test. The rule is the same for every kind of
    score: a linear probe's or a classifier's probabilities, or a linear model's raw decision
    values, since only the order of one label's scores matters. For each label, every cut
    between two distinct validation scores is tried; the threshold is the midpoint of the
    best cut (ties: the cut closest to ``fallback``), and a label is predicted when its score
    is at least its threshold (``y_score >= t``).

    A label with no positive validation document has no F1 to maximise: it keeps
    ``fallback`` (the global threshold tuned on the same split, or the default one).

    Args:
        y_true: (N, L) 0/1 array of true labels (validation set).
        y_score: (N, L) scores of the same documents; no NaN.
        fallback: the threshold of labels that cannot be tuned.
    Returns:
        (L,) float64 thresholds, in the scores' units.

    Used by :func:`abalone_core.evaluation.evaluate.split_scores` (every row's ``*_label_tuned`` scores).
    """
    y_true, y_score = _pair(y_true, y_score)
    out = np.full(y_true.shape[1], float(fallback))
    for j in np.flatnonzero(y_true.any(axis=0)):
        s, y = y_score[:, j], y_true[:, j]
        order = np.argsort(-s, kind="stable")
        s, y = s[order], y[order]
        last = np.r_[s[1:] != s[:-1], True]  # the last document of each run of equal scores
        tp = np.cumsum(y)[last]  # predicting every score >= s[i] positive
        predicted = np.flatnonzero(last) + 1
        f1 = 2 * tp / (predicted + y.sum())
        cuts = s[last]
        below = np.r_[cuts[1:], cuts[-1]]  # next lower distinct score (the lowest keeps itself)
        mids = (cuts + below) / 2
        top = np.flatnonzero(f1 >= f1.max() - 1e-12)
        out[j] = mids[min(top, key=lambda i: (abs(mids[i] - fallback), mids[i]))]
    return out
