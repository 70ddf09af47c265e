"""Per-label tables: how many documents carry each label in each split, beside each run's F1.

A tail label may have a handful of training documents and none at all in the test split;
its test F1 is then 0 by convention (scikit-learn's ``zero_division=0``) and says nothing
about the loss. Chapters 5 to 8 show these tables so that such labels are visible.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import frequency_groups

SPLITS = ("train", "validation", "test")


def support(dataset) -> pd.DataFrame:
    """Documents carrying each label, per split.

    Args:
        dataset: a :class:`~abalone_core.data.MultiLabelDataset` (for a run's own data, as
            subsampled and filtered: ``runs.load_run_dataset(config)``).
    Returns:
        DataFrame indexed by label name, with integer columns ``train``, ``validation``,
        ``test`` and the label's frequency ``group`` (head / medium / tail thirds of the
        training counts, :func:`abalone_core.metrics.frequency_groups`).
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


__all__ = ["support", "per_label_frame"]
