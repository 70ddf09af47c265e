"""Per-label tables: how many documents carry each label in each split, beside each run's F1.

A tail label may have a handful of training documents and none at all in the test split;
its test F1 is then 0 by convention (scikit-learn's ``zero_division=0``) and says nothing
about the loss. Chapters 5 to 8 show these tables so that such labels are visible.

:func:`label_frame` is the one-row-per-label frame of the diagnostics (:mod:`abalone_core.analysis`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.splits import SPLITS
from .metrics import frequency_groups



def support(dataset) -> pd.DataFrame:
    """Documents carrying each label, per split.

    Args:
        dataset: a :class:`~abalone_core.data.MultiLabelDataset` (for a run's own data, as
            subsampled and filtered: ``runs.load_run_dataset(config)``).
    Returns:
        DataFrame indexed by label name, with integer columns ``train``, ``validation``,
        ``test`` and the label's frequency ``group`` (head / medium / tail thirds of the
        training counts, :func:`abalone_core.evaluation.metrics.frequency_groups`).
    """
    counts = {s: np.asarray(dataset.label_counts(s), dtype=np.int64) for s in SPLITS}
    frame = pd.DataFrame(counts, index=pd.Index(list(dataset.label_names), name="label"))
    frame["group"] = frequency_groups(counts["train"])
    return frame


def per_label_frame(runs: dict, counts: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Each label's support and its F1 in each run, most frequent training label first.

    Args:
        runs: run name -> metrics record (``metrics.json`` or a line of a sweep's
            ``runs.jsonl``), holding ``label_names`` and ``<split>.per_label_f1``.
        counts: :func:`support` of the same data.
        split: the split whose F1 is shown (``test`` or ``validation``).
    Returns:
        DataFrame indexed by label: ``group``, ``train docs``, ``<split> docs`` (integers),
        then one F1 column (percent) per run. A run whose label names differ from
        ``counts`` raises ``ValueError`` naming the run.
    """
    out = counts[["group", "train", split]].rename(columns={"train": "train docs", split: f"{split} docs"})
    for name, metrics in runs.items():
        labels = list(metrics["label_names"])
        if sorted(labels) != sorted(counts.index):
            missing = sorted(set(counts.index) ^ set(labels))[:5]
            raise ValueError(f"run {name!r} was scored on other labels than the support table "
                             f"(differing: {missing}); build the support from the run's own dataset")
        out[name] = pd.Series(metrics[split]["per_label_f1"], index=labels)
    return out.sort_values("train docs", ascending=False, kind="stable")


def label_frame(values: dict, groups=None, names=None) -> pd.DataFrame:
    """One row per label: its index (``label``), ``name`` and ``group`` when given, and one
    column per entry of ``values`` (``{column: (L,) values}``)."""
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


def grid_records(path, dataset: str | None = None, objectives=None) -> list[dict]:
    """The finished runs of a committed grid's ``runs.jsonl``, as metrics records.

    Args:
        path: the grid's ``runs.jsonl`` (a missing file gives no run: the grid may not have
            started).
        dataset: keep the runs of this dataset only (its label in the sweep tables; None: all).
        objectives: keep the runs of these rows only (the grid's ``objective`` parameter, so
            ``msc-ft`` is its own row; None: all).
    Returns:
        list of the ``metrics`` records of the finished runs (read with
        :func:`abalone_core.sweep.tables.finished`), in file order.
    """
    from ..sweep.tables import finished, labelled

    path = Path(path)
    if not path.is_file():
        return []
    recs = finished(path)
    out = []
    for params, metrics in zip(recs["parameters"], recs["metrics"]):
        params = labelled(params or {})
        if not metrics or "test" not in metrics:
            continue
        if dataset is not None and params.get("dataset") != dataset:
            continue
        if objectives is not None and params.get("objective") not in objectives:
            continue
        out.append(metrics)
    return out


def mean_over_seeds(records: list[dict], split: str = "test") -> dict | None:
    """One record whose per-label F1 is the mean over ``records`` (runs of one row: its seeds).

    Returns:
        ``{"label_names", split: {"per_label_f1"}, "seeds"}`` ready for :func:`per_label_frame`,
        or None when ``records`` is empty. Runs scored on other labels than the first raise
        ``ValueError``: they are not seeds of one experiment.
    """
    if not records:
        return None
    names = list(records[0]["label_names"])
    values = []
    for m in records:
        if list(m["label_names"]) != names:
            raise ValueError("these runs were scored on different labels: they are not seeds of one experiment")
        values.append(np.asarray(m[split]["per_label_f1"], dtype=float))
    return {"label_names": names, split: {"per_label_f1": np.mean(values, axis=0).tolist()}, "seeds": len(values)}


__all__ = ["support", "per_label_frame", "label_frame", "grid_records", "mean_over_seeds"]
