"""The dataset container and the rare-label rule.

* :class:`MultiLabelDataset`: texts, an (N, L) 0/1 label matrix, label names and one
  split per document, validated on construction; views by split, index, first or
  random documents; label counts and summary tables.
* :func:`drop_rare_columns`: the one rule for dropping rare labels (fewer than
  ``min_train_count`` training documents), used by the method
  :meth:`MultiLabelDataset.drop_rare_labels` and by every loader.
* :class:`LabelCoverageError`: raised for a label that occurs in validation or test
  but never in training.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .splits import SPLITS

logger = logging.getLogger(__name__)

DEFAULT_COVERAGE_ADVICE = (
    "Drop those label columns before building the dataset (what a loader's min_train_count=1 does) "
    "or re-split the rows with stratified_split().")


class LabelCoverageError(ValueError):
    """Labels occur in validation or test but never in training.

    Attributes:
        missing: the names of those labels.
        advice: what to do, or None for the general advice.
    """

    def __init__(self, missing, advice: str | None = None):
        self.missing = list(missing)
        self.advice = advice  # None: the general advice; load_dataset replaces it with the loader's arguments
        super().__init__(f"{len(self.missing)} label(s) occur in validation/test but never in training: "
                         f"{self.missing}. {advice or DEFAULT_COVERAGE_ADVICE}")


def labels_missing_from_train(labels, splits, label_names) -> list:
    """Names of labels carried in validation/test but by no training document."""
    labels = np.asarray(labels)
    splits = np.asarray(splits)
    if not (splits == "train").any():
        return []
    train = labels[splits == "train"].sum(axis=0)
    other = labels[splits != "train"].sum(axis=0)
    return [n for n, a, b in zip(label_names, train, other) if a == 0 and b > 0]


def drop_rare_columns(labels, label_names, splits, min_train_count: int, *, name: str) -> tuple:
    """The rare-label rule: keep the label columns carried by >= ``min_train_count`` training documents.

    Documents are kept (a document may lose all its labels). Logs the dropped labels.

    Args:
        labels: (N, L) 0/1 matrix.
        label_names: (L,) names.
        splits: (N,) split names; only rows named "train" are counted.
        min_train_count: the threshold (0 keeps everything).
        name: dataset name for the log message.
    Returns:
        (labels with the kept columns, kept names).
    """
    labels = np.asarray(labels)
    keep = labels[np.asarray(splits) == "train"].sum(axis=0) >= min_train_count
    if not keep.all():
        logger.warning("%s: dropped %d label(s) with < %d training documents: %s", name,
                       int((~keep).sum()), min_train_count,
                       [n for n, k in zip(label_names, keep) if not k])
    return labels[:, keep], [n for n, k in zip(label_names, keep) if k]


@dataclass
class MultiLabelDataset:
    """Texts with multi-hot labels and a split per document.

    Attributes:
        name: dataset name.
        texts: (N,) non-empty strings.
        labels: (N, L) uint8 multi-hot matrix.
        label_names: (L,) unique label names.
        splits: (N,) strings in {"train", "validation", "test"}.
        provenance: where the data came from (release, date, checksums of the source
            files), for the loaders that record it; empty otherwise. Views keep it, and a
            run saves it in ``metrics.json`` as ``dataset_provenance``.

    Construction validates everything and refuses a label that occurs in validation
    or test but never in training (:class:`LabelCoverageError`). Views made by
    :meth:`split`, :meth:`subset`, :meth:`head` and :meth:`sample` skip that one
    check: a small sample may miss a label by chance.
    """

    name: str
    texts: list
    labels: np.ndarray
    label_names: list
    splits: np.ndarray
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        self._validate(check_coverage=True)

    @classmethod
    def _view(cls, name, texts, labels, label_names, splits, provenance=None) -> "MultiLabelDataset":
        obj = cls.__new__(cls)
        obj.name, obj.texts, obj.labels, obj.label_names, obj.splits = name, texts, labels, label_names, splits
        obj.provenance = dict(provenance or {})
        obj._validate(check_coverage=False)
        return obj

    def _validate(self, check_coverage: bool) -> None:
        texts = list(self.texts)
        n = len(texts)
        bad_type = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad_type:
            raise ValueError(f"{len(bad_type)} of {n} texts are not strings (first rows: {bad_type[:5]})")
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise ValueError(
                f"{len(empty)} of {n} texts are empty (first rows: {empty[:5]}); "
                "drop those rows before building the dataset")
        labels = np.asarray(self.labels)
        if labels.ndim != 2 or labels.shape[0] != n:
            raise ValueError(f"labels must have shape (N={n}, L), got {labels.shape}")
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise ValueError("labels must hold 0/1 values only")
        names = [str(x) for x in self.label_names]
        if len(names) != labels.shape[1]:
            raise ValueError(f"{len(names)} label names for {labels.shape[1]} label columns")
        if len(set(names)) != len(names):
            dup = sorted({x for x in names if names.count(x) > 1})
            raise ValueError(f"duplicate label names: {dup}")
        splits = np.asarray(self.splits).astype(str)
        if splits.shape != (n,):
            raise ValueError(f"splits must have shape ({n},), got {splits.shape}")
        unknown = sorted(str(x) for x in set(splits) - set(SPLITS))
        if unknown:
            raise ValueError(f"unknown split names {unknown}; use {list(SPLITS)}")
        self.texts, self.labels, self.label_names, self.splits = texts, labels.astype(np.uint8), names, splits
        if check_coverage:
            missing = labels_missing_from_train(self.labels, self.splits, self.label_names)
            if missing:
                raise LabelCoverageError(missing)

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={int((self.splits == s).sum())}" for s in SPLITS)
        return f"MultiLabelDataset(name={self.name!r}, N={len(self)}, L={len(self.label_names)}, {sizes})"

    # ----------------------------------------------------------------------- views

    def subset(self, index) -> "MultiLabelDataset":
        """Rows selected by an integer index array or a boolean mask of length N."""
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise ValueError(f"boolean mask must have shape ({len(self)},), got {index.shape}")
            index = np.flatnonzero(index)
        elif index.size and not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"index must be integers or a boolean mask, got dtype {index.dtype}")
        index = index.astype(int).reshape(-1)
        return MultiLabelDataset._view(
            self.name, [self.texts[i] for i in index], self.labels[index],
            list(self.label_names), self.splits[index], self.provenance)

    def split(self, name: str) -> "MultiLabelDataset":
        """Rows of one split ("train", "validation" or "test")."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {list(SPLITS)}")
        return self.subset(self.splits == name)

    def head(self, n_per_split: dict | int, seed: int | None = None) -> "MultiLabelDataset":
        """The first n documents of each split, in their original order.

        Args:
            n_per_split: one int for every split, or {split: n} (splits not named are dropped).
            seed: deprecated. ``head(n, seed=s)`` returns ``sample(n, seed=s)``, the random
                sample ``head`` used to draw, so that runs configured with a ``subset`` keep
                exactly the same documents; call :meth:`sample` for that instead.
        """
        if seed is not None:
            warnings.warn("MultiLabelDataset.head(..., seed=) draws a random sample: call "
                          "sample(..., seed=) for it (same documents), or head(...) without seed "
                          "for the first documents", DeprecationWarning, stacklevel=2)
            return self.sample(n_per_split, seed=seed)
        wanted = _per_split(n_per_split)
        keep = [np.flatnonzero(self.splits == s)[:int(wanted.get(s, 0))] for s in SPLITS]
        return self.subset(np.sort(np.concatenate(keep)))

    def sample(self, n_per_split: dict | int, seed: int = 0) -> "MultiLabelDataset":
        """A reproducible random sample of at most n documents per split (original order kept).

        The draw is part of the results: experiments with a ``subset`` setting train on
        these documents. One ``numpy.random.default_rng(seed)`` picks, for train, then
        validation, then test, ``min(n, rows)`` of the split's rows without replacement.

        Args:
            n_per_split: one int for every split, or {split: n} (splits not named are dropped).
            seed: sampling seed.
        """
        wanted = _per_split(n_per_split)
        rng = np.random.default_rng(seed)
        keep = []
        for s in SPLITS:
            rows = np.flatnonzero(self.splits == s)
            k = min(int(wanted.get(s, 0)), rows.size)
            keep.append(rng.choice(rows, size=k, replace=False))
        return self.subset(np.sort(np.concatenate(keep)))

    def drop_unlabelled(self) -> "MultiLabelDataset":
        """Drop documents without any label (logs how many were dropped)."""
        has = self.labels.sum(axis=1) > 0
        dropped = int((~has).sum())
        if dropped:
            logger.warning("%s: dropped %d of %d documents without a label", self.name, dropped, len(self))
        return self.subset(has)

    def drop_rare_labels(self, min_train_count: int) -> "MultiLabelDataset":
        """Drop label columns carried by fewer than ``min_train_count`` training documents."""
        labels, names = drop_rare_columns(self.labels, self.label_names, self.splits, min_train_count,
                                          name=self.name)
        return MultiLabelDataset._view(self.name, list(self.texts), labels, names, self.splits.copy(), self.provenance)

    # ----------------------------------------------------------------------- statistics

    def label_counts(self, split: str = "train") -> np.ndarray:
        """(L,) number of documents of ``split`` carrying each label."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
        return self.labels[self.splits == split].sum(axis=0).astype(np.int64)

    def stats(self) -> dict:
        """Summary tables.

        Returns:
            dict with ``"splits"``: DataFrame indexed by split (docs, labels present,
            mean labels per document, mean labels per labelled document, share of
            unlabelled documents, mean words per document), and ``"labels"``:
            DataFrame indexed by label name with the document count per split and the
            head / medium / tail group from the training counts
            (:func:`abalone_core.evaluation.metrics.frequency_groups`), sorted by training count.
        """
        # imported here: the metrics import this package (their label checks are data.labels)
        from abalone_core.evaluation.metrics import frequency_groups

        rows = {}
        words = np.array([len(t.split()) for t in self.texts])
        for s in SPLITS:
            m = self.splits == s
            y = self.labels[m]
            per_doc = y.sum(axis=1)
            rows[s] = {
                "docs": int(m.sum()),
                "labels_present": int((y.sum(axis=0) > 0).sum()),
                "labels_per_doc": float(per_doc.mean()) if m.any() else float("nan"),
                "labels_per_labelled_doc": float(per_doc[per_doc > 0].mean()) if (per_doc > 0).any() else float("nan"),
                "share_unlabelled": float((per_doc == 0).mean()) if m.any() else float("nan"),
                "words_per_doc": float(words[m].mean()) if m.any() else float("nan"),
            }
        table = pd.DataFrame({s: self.label_counts(s) for s in SPLITS}, index=pd.Index(self.label_names, name="label"))
        if len(self.label_names):
            table["group"] = frequency_groups(table["train"].to_numpy())
        table = table.sort_values("train", ascending=False, kind="stable")
        return {"splits": pd.DataFrame(rows).T, "labels": table}


def _per_split(n_per_split) -> dict:
    """{split: n} from one int for every split or a dict naming some splits."""
    if isinstance(n_per_split, dict):
        unknown = sorted(set(n_per_split) - set(SPLITS))
        if unknown:
            raise ValueError(f"unknown split names {unknown}; use {list(SPLITS)}")
        wanted = dict(n_per_split)
    else:
        wanted = {s: n_per_split for s in SPLITS}
    if any(int(v) < 0 for v in wanted.values()):
        raise ValueError("sample sizes must be >= 0")
    return wanted
