"""Whether the runs a sweep still has to do would train in the precision of its finished runs.

``mixed_precision: auto`` means bfloat16 autocast on a GPU or on a CPU with AMX or AVX512-BF16,
and float32 on other CPUs (:func:`abalone_core.training.devices.resolve_precision`). A grid
continued on another machine could then add float32 runs to a row of bfloat16 runs, and its
tables would average the two. Each run records the precision it trained in
(``metrics["precision"]``); :func:`precision_mismatch` compares it with what this machine would
use, so that ``abalone sweep`` refuses before any training (chapter 8's grids).
"""
from __future__ import annotations

import json
from collections import Counter

# what a reader calls each value of resolve_precision
PRECISION_NAMES = {"bf16": "bfloat16 autocast", "fp16": "float16 autocast", "no": "float32"}


def pinned_precision(params: dict) -> str:
    """The ``mixed_precision`` a run's parameters set, at the top level or inside a dict-valued
    parameter such as ``overrides``; ``auto`` when none does (the training default)."""
    if "mixed_precision" in params:
        return str(params["mixed_precision"])
    for value in params.values():
        if isinstance(value, dict) and "mixed_precision" in value:
            return str(value["mixed_precision"])
    return "auto"


def precision_here(mode: str = "auto", device: str | None = None) -> str:
    """What ``mixed_precision=mode`` resolves to on ``device`` of this machine (None: the
    training default, a GPU if there is one): ``bf16``, ``fp16`` or ``no``."""
    from ..training.devices import resolve_device, resolve_precision

    return resolve_precision(mode, resolve_device(device or "auto"))


def finished_precisions(rows: dict) -> Counter:
    """How many finished runs of a store's ``rows`` (:meth:`Store.rows`) trained in each precision;
    runs that do not record one (TF-IDF, older records) are not counted."""
    count = Counter()
    for row in rows.values():
        if row.get("status") != "done":
            continue
        metrics = row.get("metrics")
        if isinstance(metrics, str):
            metrics = json.loads(metrics)
        if isinstance(metrics, dict) and metrics.get("precision"):
            count[metrics["precision"]] += 1
    return count


def precision_mismatch(sweep, rows: dict, waiting: list, devices=(None,)) -> str | None:
    """One line saying why the ``waiting`` runs of ``sweep`` would not pool with its finished
    runs, or None when they would (or when the finished runs record no single precision).

    Args:
        rows: the sweep store's rows, with the runs taken from its export.
        waiting: ids of the runs about to run.
        devices: the workers' devices (None: the notebook's default).
    """
    then = finished_precisions(rows)
    if len(then) != 1 or not waiting:
        return None
    (old,) = then
    params = dict(sweep.runs())
    modes = sorted({pinned_precision(params[rid]) for rid in waiting})
    here = sorted({precision_here(m, d) for m in modes for d in devices} - {old})
    if not here:
        return None
    where = sweep.export / "runs.jsonl" if sweep.export is not None else sweep.db
    now = " or ".join(PRECISION_NAMES.get(p, p) for p in here)
    return (f"{where}: its {then[old]} finished runs trained in {PRECISION_NAMES.get(old, old)}, and this machine "
            f"would train the {len(waiting)} runs left in {now} (mixed_precision {', '.join(modes)}): the tables "
            f"would average the two. Run them on a machine that uses {PRECISION_NAMES.get(old, old)} (for bfloat16 "
            "on a CPU: AMX or AVX512-BF16), or give the grid its own mixed_precision and export folder; "
            "--any-precision runs them here anyway")


__all__ = ["PRECISION_NAMES", "pinned_precision", "precision_here", "finished_precisions", "precision_mismatch"]
