"""Tables of finished runs: the paper's layout (:func:`aggregate`), one row per run
(:func:`records_table`), and the committed export (:func:`export`, :func:`write_table`).

A dataset is labelled by the name its loader gives it (:func:`dataset_label`):
``dataset_kwargs.name`` when set; else, for the ``csv`` / ``jsonl`` loaders, the stem of the
file (the first file of ``{split: file}``); for ``hub``, the ``hub_id``; else the ``dataset``
parameter. Tables and claims see this label in place of the ``dataset`` parameter, so two
custom datasets of one grid get two columns.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .. import atomic
from ..report import paper as _paper
from .store import DEPENDS_ON, db_path, records

if TYPE_CHECKING:
    import pandas as pd

RECORD_METRICS = ("micro_f1", "macro_f1", "hamming", "f1_head", "f1_medium", "f1_tail",
                  "micro_f1_tuned", "macro_f1_tuned", "p_at_1", "p_at_3", "p_at_5", "ndcg_at_3", "ndcg_at_5",
                  "psp_at_1", "psp_at_3", "psp_at_5", "map", "silhouette", "davies_bouldin",
                  "micro_f1_label_tuned", "macro_f1_label_tuned", "f1_tail_label_tuned", "steps")
FILE_LOADERS = ("csv", "jsonl")


def dataset_label(params: dict) -> str | None:
    """The name a run's dataset goes by in tables: see the module docstring."""
    dataset = params.get("dataset")
    kwargs = params.get("dataset_kwargs")
    if not isinstance(kwargs, dict):
        return dataset
    if kwargs.get("name"):
        return str(kwargs["name"])
    loader = str(dataset).lower()
    path = kwargs.get("path")
    if loader in FILE_LOADERS and path:
        first = next(iter(path.values())) if isinstance(path, dict) else path
        return Path(str(first)).stem
    if loader == "hub" and kwargs.get("hub_id"):
        return str(kwargs["hub_id"])
    return dataset


def labelled(params: dict) -> dict:
    """A run's parameters with ``dataset`` replaced by its :func:`dataset_label`."""
    return {**params, "dataset": dataset_label(params)} if "dataset" in params else dict(params)


def finished(source) -> "pd.DataFrame":
    """:func:`~abalone_core.sweep.records` of the finished (``done``) runs; for a sweep, only its cells."""
    recs = records(source)
    if not isinstance(source, (str, os.PathLike)):
        recs = recs[recs.index.isin([rid for rid, _ in source.runs()])]
    return recs[recs["status"] == "done"]


def metric_value(result: dict, name: str) -> float:
    """A metric of a result JSON: a dotted path (``validation.micro_f1``), else ``test.<name>``,
    else the top-level ``<name>`` (e.g. ``silhouette``); NaN when absent."""
    if "." in name:
        value = result
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    else:
        test = result.get("test")
        value = test[name] if isinstance(test, dict) and name in test else result.get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


def _varying(params: "pd.DataFrame", keys: list, over: str, col_keys: list = ()) -> list[str]:
    """Parameters outside rows, columns and ``over`` that take several values within one
    column group: every row of a column must share them (a column may use its own settings,
    e.g. a dataset its ``dataset_kwargs`` or its step budget, since its rows are compared
    with each other and never with another column's). A dependent run's ``depends_on`` (the
    run it starts from, the same cell with another value) is not a setting of its own."""
    out = []
    groups = [params[c].map(_canonical) for c in col_keys]
    for k in params.columns:
        if k in keys or k == over or k == DEPENDS_ON:
            continue
        values = params[k].map(_canonical)
        several = (values.groupby(groups).nunique() > 1).any() if groups else values.nunique() > 1
        if several:
            out.append(k)
    return out


def aggregate(source, rows="objective", columns=("dataset",), metrics=("micro_f1", "macro_f1", "hamming"),
              over="seed", where: dict | None = None, stat: str = "text", paper: str = "matching",
              digits: int = 2) -> "pd.DataFrame":
    """Finished runs in the paper's table layout: one row per ``rows`` value, one column per
    ``columns`` value and metric, each cell a statistic over the values of ``over`` (seeds).

    Args:
        source: a :class:`~abalone_core.sweep.Sweep` (only its cells), its ``output_dir``,
            ``results.sqlite``, or an export's ``runs.jsonl``.
        rows: parameter(s) naming the rows (e.g. ``"objective"``).
        columns: parameters whose values head column groups (``("dataset",)``), or ``()``.
            ``dataset`` values are :func:`dataset_label` s.
        metrics: names read by :func:`metric_value` (F1 in percent, Hamming x 10^3 for
            :func:`abalone_core.training.runs.run`; ``silhouette``, ``davies_bouldin`` at the top level).
        over: the parameter averaged over. Any other parameter that varies within a column
            (between the rows of one dataset, say) raises ValueError:
            put it in rows or columns, or keep one value with ``where``.
        where: ``{parameter: value}`` filter applied first (``dataset``: its label).
        stat: ``"text"`` (``"mean ± std"``, sample std over ``over``; the mean alone for one run
            or when every run gave the same value),
            ``"interval"`` (``"mean ± h (n)"``: h is the half-width of the 95 % Student-t interval
            of the mean over the n values of ``over``, :func:`abalone_core.report.claims.t_interval`;
            ``"mean (n)"`` for one run or when every run gave the same value), ``"mean"``, ``"std"``, ``"half_width"`` or ``"count"``
            (numbers).
        paper: ``"matching"``: beside each metric of a dataset the paper reports (aapd, rcv1,
            uk-lex), a ``(paper)`` column from :func:`abalone_core.report.paper.scores`; ``"all"``:
            also the paper's other datasets as extra columns; ``"none"``.
        digits: decimals of the text cells.
    Returns:
        DataFrame indexed by the rows values (first-finished order), columns named
        ``"<column value> <metric>"`` (values of several column keys joined by ``/``).
    """
    import numpy as np
    import pandas as pd

    from ..report.claims import interval_text, t_interval

    if stat not in ("text", "interval", "mean", "std", "half_width", "count"):
        raise ValueError(f"stat must be text, interval, mean, std, half_width or count, got {stat!r}")
    if paper not in ("matching", "all", "none"):
        raise ValueError(f"paper must be 'matching', 'all' or 'none', got {paper!r}")
    row_keys = [rows] if isinstance(rows, str) else list(rows)
    col_keys = [columns] if isinstance(columns, str) else list(columns)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if not row_keys or not metrics:
        raise ValueError("aggregate needs at least one rows key and one metric")
    recs = finished(source)
    named = [labelled(p or {}) for p in recs["parameters"]]
    if where:
        keep = [all(p.get(k) == v for k, v in where.items()) for p in named]
        recs, named = recs[keep], [p for p, k in zip(named, keep) if k]
    if recs.empty:
        raise ValueError("no finished run to aggregate (check the sweep's status and the where filter)")
    params = pd.DataFrame(named, index=recs.index)
    keys = row_keys + col_keys
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"{missing} are not parameters of these runs; they have {sorted(params.columns)}")
    varying = _varying(params, keys, over, col_keys)
    if varying:
        raise ValueError(f"{varying} vary between the runs of one column but are not in rows, columns or over: "
                         "add them to one of these, or keep one value with where={...}")

    def plain(v):  # lists and dicts cannot be group keys
        return v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v)

    long = params[keys].apply(lambda col: col.map(plain))
    for m in metrics:
        long[m] = [metric_value(r or {}, m) for r in recs["metrics"]]
    groups = long.groupby(keys, sort=False, dropna=False)[metrics]
    stats = {"mean": groups.mean(), "std": groups.std(ddof=1), "count": groups.count()}
    stats["half_width"] = groups.agg(lambda v: np.diff(t_interval(v.dropna()))[0] / 2)
    texts = ("text", "interval")

    def label(values) -> str:
        return "/".join(str(v) for v in values)

    row_values = list(dict.fromkeys(tuple(r) for r in long[row_keys].itertuples(index=False)))
    col_values = list(dict.fromkeys(tuple(r) for r in long[col_keys].itertuples(index=False))) if col_keys else [()]

    def cell(r, c, m):
        key = r + c if len(keys) > 1 else (r + c)[0]
        if key not in stats["count"].index or stats["count"].at[key, m] == 0:
            return "" if stat in texts else np.nan
        mean, std, half, n = (stats[s].at[key, m] for s in ("mean", "std", "half_width", "count"))
        # one run, or runs that all gave the same value (TF-IDF, L_MLM's geometry): no "± 0.00"
        alone = n < 2 or std <= 1e-9 * max(1.0, abs(mean))
        if stat == "text":
            return f"{mean:.{digits}f}" if alone else f"{mean:.{digits}f} ± {std:.{digits}f}"
        if stat == "interval":
            return interval_text(mean, half, int(n), std, digits)
        return {"mean": mean, "std": std, "half_width": half, "count": n}[stat]

    with_paper = paper != "none" and row_keys == ["objective"] and col_keys == ["dataset"]
    if paper == "all" and not with_paper:
        raise ValueError("paper='all' needs rows='objective' and columns=('dataset',)")
    reported = _paper.scores()

    def paper_value(dataset, objective, m):
        v = reported.get((str(dataset).lower(), objective), {}).get(m, np.nan)
        if stat in texts:
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return v if stat == "mean" else np.nan

    def add_paper(name, dataset, m):  # only columns the paper has figures for
        values = [paper_value(dataset, r[0], m) for r in row_values]
        if any(v != "" and not (isinstance(v, float) and np.isnan(v)) for v in values):
            table[name] = values

    papers = list(dict.fromkeys(d for d, _ in reported))
    table: dict[str, list] = {}
    for c in col_values:
        for m in metrics:
            table[f"{label(c)} {m}".strip()] = [cell(r, c, m) for r in row_values]
            if with_paper and str(c[0]).lower() in papers:
                add_paper(f"{label(c)} {m} (paper)", c[0], m)
    if paper == "all":
        present = {str(c[0]).lower() for c in col_values}
        for dataset in (d for d in papers if d not in present):
            for m in metrics:
                add_paper(f"{dataset} {m} (paper)", dataset, m)
    index = (pd.MultiIndex.from_tuples(row_values, names=row_keys) if len(row_keys) > 1
             else pd.Index([r[0] for r in row_values], name=row_keys[0]))
    return pd.DataFrame(table, index=index)


def _gain_vs_tolerance(record) -> float:
    if not isinstance(record, dict) or not record.get("tolerance") or record.get("improvement") is None:
        return float("nan")
    return float(record["improvement"]) / float(record["tolerance"])


def records_table(source, metrics=RECORD_METRICS) -> "pd.DataFrame":
    """Finished runs as a flat table: one row per run (index ``run_id``), a column per grid
    parameter of scalar value (``dataset``: its :func:`dataset_label`), one per metric (read by
    :func:`metric_value`; NaN where a run lacks it), ``converged`` (True / False, None when the
    record cannot tell or nothing was trained), ``gain_vs_tolerance`` (the last-quarter
    improvement of the run's selection metric divided by the rule's tolerance,
    :mod:`abalone_core.training.convergence`: below 1 is converged, 3 means still improving at three
    times the tolerance; NaN without a record), ``minutes`` (wall time of the run),
    ``hardware`` (the GPU, else the CPU threads) and ``precision`` (what the run trained in:
    ``bf16``, ``fp16`` or ``no`` for float32; None for a run that records none, e.g. TF-IDF)."""
    import pandas as pd

    recs = finished(source)
    rows = []
    for rid, r in recs.iterrows():
        params = {k: v for k, v in labelled(r["parameters"] or {}).items()
                  if isinstance(v, (str, int, float, bool))}
        hw = r["hardware"] or {}
        result = r["metrics"] or {}
        rows.append({"run_id": rid, **params, **{m: metric_value(result, m) for m in metrics},
                     "converged": result.get("converged"),
                     "gain_vs_tolerance": _gain_vs_tolerance(result.get("convergence")),
                     "minutes": (r["duration_s"] or float("nan")) / 60,
                     "hardware": hw.get("gpu") or f"CPU ({hw.get('cpu_count', '?')} cores)",
                     "precision": result.get("precision")})
    return pd.DataFrame(rows).set_index("run_id") if rows else pd.DataFrame()


def export_lines(recs: "pd.DataFrame", root: str | Path) -> list[str]:
    """One JSON line per row of :func:`~abalone_core.sweep.records` ``recs``, as :func:`export`
    writes them: parameters, metrics, timing, hardware, versions and git revision, without host
    names or process ids, and with paths inside ``root`` (the sweep's folder) written relative
    to it."""
    root = str(Path(root).resolve())
    keep = ["status", "parameters", "metrics", "started", "finished", "duration_s", "device", "hardware",
            "versions", "git_revision", "git_dirty", "attempts"]

    def relative(value):  # paths inside the sweep's folder, written relative to it
        if isinstance(value, dict):
            return {k: relative(v) for k, v in value.items()}
        if isinstance(value, list):
            return [relative(v) for v in value]
        if isinstance(value, str) and value.startswith(root + os.sep):
            return value[len(root) + 1:]
        return value

    lines = []
    for rid, r in recs.iterrows():
        row = {"run_id": rid, **{k: r[k] for k in keep}}
        row["metrics"] = relative(r["metrics"])
        row["hardware"] = {k: v for k, v in (r["hardware"] or {}).items() if k != "host"}
        lines.append(json.dumps(row, sort_keys=True, default=str))
    return lines


def export(source, dest: str | Path, **aggregate_kwargs) -> list[Path]:
    """Publish a sweep's finished runs in a folder meant to be committed: ``runs.jsonl`` (one
    line per run with its parameters, metrics, timing, hardware, versions and git revision,
    readable again by :func:`~abalone_core.sweep.records` / :func:`aggregate`) and
    ``table.csv`` / ``table.md`` (:func:`aggregate` with ``aggregate_kwargs``, or the sweep's
    ``table`` defaults). Host names and process ids are left out, and paths inside the sweep's
    folder (the runs' ``output_dir``, ``init_from``) are written relative to it. Returns the
    paths written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    recs = finished(source)
    if recs.empty:
        raise ValueError("no finished run to export (check the sweep's status)")
    lines = export_lines(recs, db_path(source).parent)
    runs = dest / "runs.jsonl"
    atomic.write_text(runs, "\n".join(lines) + "\n")
    export_scores(recs, dest / "scores")
    table = {} if isinstance(source, (str, os.PathLike)) else source.table
    kwargs = {**table, **aggregate_kwargs}
    if "columns" not in kwargs:  # the default columns, when the runs have such a parameter
        names = set().union(*(p or {} for p in recs["parameters"]))
        kwargs["columns"] = tuple(c for c in ("dataset",) if c in names)
    return [runs, *write_table(aggregate(runs, **kwargs), dest / "table")]


def export_scores(recs: "pd.DataFrame", dest: str | Path) -> list[Path]:
    """Copy each finished run's ``scores.npz`` (its validation and test scores, float16:
    :func:`abalone_core.evaluation.evaluate.save_scores`) to ``dest/<run_id>.npz``, so that an export
    can be scored again under any decision rule without its run folders. Runs without the
    file (older records, or run folders on another machine) are skipped; a copy already
    there with the same bytes is left alone. Returns the paths written."""
    dest = Path(dest)
    written = []
    for rid, r in recs.iterrows():
        folder = ((r["metrics"] or {}).get("config") or {}).get("output_dir")
        src = Path(folder) / "scores.npz" if folder else None
        if src is None or not src.is_file():
            continue
        target = dest / f"{rid}.npz"
        data = src.read_bytes()
        if target.is_file() and target.read_bytes() == data:
            continue
        dest.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(target, data)
        written.append(target)
    return written


def read_export_scores(export_dir: str | Path, run_id: str) -> dict | None:
    """``{"validation": (M, L), "test": (T, L)}`` scores of one exported run, or None when
    the export holds none for it."""
    from ..evaluation.evaluate import read_scores

    path = Path(export_dir) / "scores" / f"{run_id}.npz"
    return read_scores(path) if path.is_file() else None


def write_table(table: "pd.DataFrame", stem: str | Path) -> list[Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` (Markdown via tabulate), each atomically; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    atomic.write_text(csv, table.to_csv())
    atomic.write_text(md, table.to_markdown() + "\n")
    return [csv, md]


__all__ = ["aggregate", "records_table", "export", "export_lines", "export_scores", "read_export_scores",
           "write_table", "metric_value",
           "dataset_label", "labelled", "finished", "RECORD_METRICS"]
