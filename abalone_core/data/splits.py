"""Split names and the stratified train / validation / test split.

* :data:`SPLITS` and :func:`normalise_splits`: the three split names and the spellings
  a file may use for them ("dev", "val", "testing", ...).
* :func:`stratified_split`: iterative multi-label stratification, used by every loader
  that has to make its own split.
* :func:`grouped_split`: the same with groups of rows kept together (near-duplicates).
"""
from __future__ import annotations

import numpy as np

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation",
    "dev": "validation", "development": "validation",
    "test": "test", "testing": "test",
}


def normalise_splits(values, where=None) -> np.ndarray:
    """Split names of a column, aliases mapped to :data:`SPLITS`.

    Args:
        values: one split name per row.
        where: optional ``where(i)`` describing row ``i`` ("file.csv, data row 3") for errors.
    """
    out = []
    first_bad = None
    for i, v in enumerate(values):
        key = str(v).strip().lower()
        if key not in SPLIT_ALIASES and first_bad is None:
            first_bad = (i, v)
        out.append(SPLIT_ALIASES.get(key, key))
    if first_bad is not None:
        i, v = first_bad
        bad = sorted({str(v) for v in values if str(v).strip().lower() not in SPLIT_ALIASES})
        at = f"{where(i)}: " if where is not None else ""
        raise ValueError(f"{at}unknown split value {str(v)!r} (all unknown values: {bad}); "
                         f"use one of {sorted(SPLIT_ALIASES)}")
    return np.array(out, dtype=str)


def split_counts(sizes, n: int) -> np.ndarray:
    """(train, validation, test) as fractions or counts -> integer counts summing to n."""
    s = np.asarray(sizes, dtype=float)
    if s.shape != (3,) or (s < 0).any() or s.sum() <= 0:
        raise ValueError(f"split_sizes must be three non-negative numbers (train, validation, test), got {sizes}")
    counts = np.floor(s / s.sum() * n).astype(int)
    counts[0] += n - counts.sum()
    return counts


def stratified_split(labels, split_sizes=(0.8, 0.1, 0.1), seed: int = 0) -> np.ndarray:
    """Assign each row to train / validation / test by iterative multi-label stratification.

    Uses ``iterstrat`` (Sechidis et al. 2011) twice: test is cut from all rows, then
    validation from the rest. Sizes are close to, not exactly, the requested ones.

    Args:
        labels: (N, L) 0/1 matrix.
        split_sizes: (train, validation, test) fractions or counts.
        seed: random seed.
    Returns:
        (N,) array of split names.
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    y = np.asarray(labels).astype(bool)
    n = y.shape[0]
    n_train, n_val, n_test = split_counts(split_sizes, n)
    if y.shape[1] < 2:  # iterstrat needs a multilabel-indicator target
        y = np.hstack([y, np.zeros((n, 2 - y.shape[1]), dtype=bool)])
    out = np.full(n, "train", dtype=object)

    def cut(rows, k):
        if k <= 0:
            return rows[:0], rows
        if k >= rows.size:
            return rows, rows[:0]
        sss = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=int(k), random_state=seed)
        rest, taken = next(sss.split(np.zeros(rows.size), y[rows]))
        return rows[taken], rows[rest]

    test, rest = cut(np.arange(n), n_test)
    val, _ = cut(rest, n_val)
    out[test] = "test"
    out[val] = "validation"
    return out.astype(str)


def grouped_split(labels, groups, split_sizes=(0.8, 0.1, 0.1), seed: int = 0) -> np.ndarray:
    """Assign each row to train / validation / test, every row of a group to the same split.

    The groups are split by :func:`stratified_split`, each group carrying the union of
    its rows' labels, and their rows follow them. ``split_sizes`` are therefore shares of
    groups; the shares of rows are close to them when no group is large.

    Args:
        labels: (N, L) 0/1 matrix.
        groups: (N,) group name of each row.
        split_sizes: (train, validation, test) fractions or counts of groups.
        seed: random seed.
    Returns:
        (N,) array of split names.
    """
    y = np.asarray(labels).astype(bool)
    names, row_group = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    if row_group.shape != (y.shape[0],):
        raise ValueError(f"groups must have one name per row ({y.shape[0]}), got {len(row_group)}")
    union = np.zeros((names.size, y.shape[1]), dtype=bool)
    np.logical_or.at(union, row_group, y)
    return stratified_split(union, split_sizes, seed)[row_group]
