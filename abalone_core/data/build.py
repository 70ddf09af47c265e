"""Helpers the loaders share.

* :func:`assemble`: raw texts, labels and (optional) splits -> a validated dataset
  (drops empty texts, splits when needed, applies the rare-label rule).
* :func:`label_lists` and :func:`binarize`: label names per row -> 0/1 matrix, with
  errors that name the row.
* :func:`need_columns`, :func:`as_list`: small checks for tabular sources.
* :func:`sha256_of` and :func:`_write_atomically`: for downloads.
"""
from __future__ import annotations

import ast
import hashlib
import logging
import pathlib

import numpy as np

from ..atomic import atomic_open
from .dataset import MultiLabelDataset, drop_rare_columns
from .splits import stratified_split

logger = logging.getLogger(__name__)

# Separators that, inside one label string, mean the column holds several labels.
LABEL_SEPARATORS = (",", ";", "|")


def assemble(name, texts, labels, label_names, splits, *, min_train_count=0,
             split_sizes=(0.8, 0.1, 0.1), seed=0) -> MultiLabelDataset:
    """Drop empty texts, split when ``splits`` is None, drop rare labels, build the dataset."""
    texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
    labels = np.asarray(labels, dtype=np.uint8)
    keep = np.array([bool(t.strip()) for t in texts], dtype=bool)
    if not keep.all():
        logger.warning("%s: dropped %d document(s) with empty text", name, int((~keep).sum()))
        texts = [t for t, k in zip(texts, keep) if k]
        labels = labels[keep]
        if splits is not None:
            splits = np.asarray(splits)[keep]
    if splits is None:
        splits = stratified_split(labels, split_sizes, seed)
    splits = np.asarray(splits).astype(str)
    if min_train_count > 0:
        labels, label_names = drop_rare_columns(labels, label_names, splits, min_train_count, name=name)
    return MultiLabelDataset(name, texts, labels, list(label_names), splits)


def label_lists(values, label_sep: str | None, where=None) -> list:
    """Per-row lists of label names from lists, delimited strings or list-like strings.

    A cell written as a Python or JSON list (``"['food', 'water']"``, as pandas writes a column
    of lists to CSV) is read as that list, with or without ``label_sep`` (a warning names the
    first such row when ``label_sep`` is given: the separator is not used for those cells).

    Args:
        values: one cell per row.
        label_sep: delimiter of label strings ("|"); "" keeps each string whole as one name;
            None when cells are lists or single names without "," ";" "|".
        where: ``where(i)`` describes row ``i`` for errors ("file.csv, data row 3").
    Raises:
        ValueError: a string that looks like several labels ("a,b") while ``label_sep`` is None,
            or a cell that looks like a list ("[...]") but is not a list of names.
    """
    where = where or (lambda i: f"row {i + 1}")
    out = []
    warned = False
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append([])
        elif isinstance(v, str):
            s = v.strip()
            if label_sep == "":
                out.append([s] if s else [])
            elif s.startswith("[") and (label_sep is None or s.endswith("]")):
                out.append(_label_list(s, label_sep, where(i)))
                if label_sep is not None and not warned:
                    warned = True
                    logger.warning("%s: the label cell %r is a list; such cells are read as lists (label_sep "
                                   "%r is not used for them)", where(i), s[:60], label_sep)
            elif label_sep is not None:
                out.append([p.strip() for p in s.split(label_sep) if p.strip()])
            else:
                sep = next((c for c in LABEL_SEPARATORS if c in s), None)
                if sep is not None:
                    raise ValueError(f"{where(i)}: the label {s[:60]!r} looks like several labels joined by "
                                     f"{sep!r}; pass label_sep={sep!r} (or label_sep='' if it is one name)")
                out.append([s] if s else [])
        elif isinstance(v, (list, tuple, np.ndarray)):
            out.append([str(p) for p in v])
        else:
            out.append([str(v)])
    return out


def _label_list(s: str, label_sep, where: str) -> list:
    """The names of a label cell written as a Python or JSON list."""
    import json

    parsed = None
    for parse in (ast.literal_eval, json.loads):
        try:
            parsed = parse(s)
            break
        except (ValueError, SyntaxError):
            continue
    if not isinstance(parsed, list) or not all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in parsed):
        joined = f" or as names joined by {label_sep!r}" if label_sep else " or pass label_sep= for delimited names"
        raise ValueError(f"{where}: cannot parse the label list {s[:60]!r}; write it as a list of quoted names "
                         f"['a', 'b']{joined}") from None
    return [str(p).strip() for p in parsed if str(p).strip()]


def binarize(lists, classes=None):
    """(N, L) uint8 matrix and label names from per-row lists (names sorted unless ``classes``)."""
    from sklearn.preprocessing import MultiLabelBinarizer

    if classes is None:
        classes = sorted({x for row in lists for x in row})
    unknown = {x for row in lists for x in row} - set(classes)
    if unknown:
        raise ValueError(f"labels not in the label set: {sorted(unknown)[:10]}")
    mlb = MultiLabelBinarizer(classes=list(classes))
    y = mlb.fit_transform(lists) if lists else np.zeros((0, len(classes)))
    return np.asarray(y, dtype=np.uint8), list(classes)


def need_columns(available, wanted, where: str):
    """Raise naming ``where`` and the available columns when a wanted column is missing."""
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ValueError(f"column(s) {missing} not found in {where}; available columns: {list(available)}")


def as_list(x) -> list:
    return [x] if isinstance(x, str) else list(x)


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_atomically(target, write) -> pathlib.Path:
    """Create ``target`` (and its folder) from ``write(binary_file)`` so that readers never see
    a partial file (:func:`abalone_core.atomic.atomic_open`: a private temporary name, so
    concurrent downloads do not collide, then a rename). An error of ``write`` (a download
    cut off) is raised as it is, a full disk as :class:`~abalone_core.atomic.WriteFailed`."""
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target, "wb") as f:
        write(f)
    return target
