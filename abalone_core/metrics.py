"""Multi-label scores in the paper's units, and head / medium / tail label groups.

Units follow the paper: micro-F1 and macro-F1 in percent, Hamming loss x 10^3.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, hamming_loss

GROUPS = ("head", "medium", "tail")


def _as_binary(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (documents x labels) array, got shape {a.shape}")
    if not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name} must hold 0/1 values only; threshold probabilities first")
    return a.astype(np.int8)


def frequency_groups(label_counts) -> np.ndarray:
    """Head / medium / tail group of each label from its training frequency.

    Rule (used in every chapter): sort labels by training count, descending, ties
    broken by label index; the first third of the labels is ``head``, the next third
    ``medium``, the rest ``tail`` (``np.array_split`` sizes, so head gets the extra
    label when L is not a multiple of 3).

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
        "micro_f1": 100.0 * f1_score(y_true, y_pred, average="micro", zero_division=0),
        "macro_f1": 100.0 * f1_score(y_true, y_pred, average="macro", zero_division=0),
        "hamming": 1000.0 * hamming_loss(y_true, y_pred),
    }


def per_label_f1(y_true, y_pred) -> np.ndarray:
    """(L,) F1 of each label in percent (0 where a label is never true nor predicted)."""
    y_true = _as_binary(y_true, "y_true")
    y_pred = _as_binary(y_pred, "y_pred")
    return 100.0 * f1_score(y_true, y_pred, average=None, zero_division=0)


def grouped_f1(y_true, y_pred, train_label_counts) -> dict:
    """Macro-F1 (percent) inside each head / medium / tail group of the training distribution.

    Returns:
        dict ``{"head": .., "medium": .., "tail": ..}``.
    """
    f1 = per_label_f1(y_true, y_pred)
    groups = frequency_groups(train_label_counts)
    if groups.size != f1.size:
        raise ValueError(f"train_label_counts has {groups.size} labels, predictions have {f1.size}")
    return {g: float(f1[groups == g].mean()) for g in GROUPS}
