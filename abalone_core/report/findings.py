"""Chapter 8's answer, in tables and words built from the committed run records.

Nothing here is typed by hand: every number, order and verdict a sentence states comes from
the records it is given, through :func:`abalone_core.report.claims.check_claims`.

* :data:`DEPTH_CLAIMS`: the claims judged at each encoder depth (the paper's, and the same
  comparisons under the per-label decision rule that every row shares); :data:`LADDER_CLAIMS`,
  the paper's ladder, where a grid trains its rungs;
* :func:`depth_table`: one dataset's rows x trained layers, mean ± 95 % half-width (seeds),
  steps used and converged runs;
* :func:`tfidf_decomposition`: how much of TF-IDF's macro-F1 lead over a neural row is the
  decision rule, how much the text length, and how much remains;
* :func:`finding_paragraph` / :func:`what_we_found`: the verdicts as a paragraph per dataset
  and depth, with differences, intervals, the smallest resolvable difference and the correction;
* :func:`claim_summary`: the same verdicts claim by claim, across datasets and depths.

Used by chapter 8 and the README's results section.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from ..sweep.precision import PRECISION_NAMES
from .claims import Claim, check_claims

F1_RULES = {
    "micro_f1": "micro-F1 at 0.5", "macro_f1": "macro-F1 at 0.5",
    "micro_f1_tuned": "micro-F1, one threshold tuned on validation",
    "macro_f1_tuned": "macro-F1, one threshold tuned on validation",
    "micro_f1_label_tuned": "micro-F1, a threshold per label tuned on validation",
    "macro_f1_label_tuned": "macro-F1, a threshold per label tuned on validation",
    "f1_tail_label_tuned": "tail macro-F1, a threshold per label tuned on validation",
    "map": "mAP (no threshold)",
}

# The same rules in a table's column header, where the chapter's text spells them out.
HEADERS = {**F1_RULES, "macro_f1_label_tuned": "macro-F1, per-label thresholds",
           "micro_f1_label_tuned": "micro-F1, per-label thresholds",
           "f1_tail_label_tuned": "tail macro-F1, per-label thresholds",
           "macro_f1_tuned": "macro-F1, one tuned threshold", "micro_f1_tuned": "micro-F1, one tuned threshold",
           "map": "mAP", "davies_bouldin": "Davies-Bouldin"}

DEPTH_CLAIMS = (
    Claim("L_MSC above L_Base in macro-F1", "msc", "base", "macro_f1"),
    Claim("L_MSC above L_Base in macro-F1 (per-label thresholds)", "msc", "base", "macro_f1_label_tuned"),
    Claim("L_MSC on par with BCE in micro-F1 (at most 1 point below)", "msc", "bce", "micro_f1", tolerance=1.0),
    Claim("L_MSC above BCE in macro-F1 (per-label thresholds)", "msc", "bce", "macro_f1_label_tuned"),
    Claim("L_MSC clusters better than L_Base (silhouette)", "msc", "base", "silhouette"),
    Claim("L_MSC clusters better than L_Base (Davies-Bouldin)", "msc", "base", "davies_bouldin", direction=-1),
)

# The paper's ladder (Table 2), judged where a grid trains its rungs (debtags).
LADDER_CLAIMS = (
    Claim("queue adds macro-F1 (L_BQueue above L_Base)", "bqueue", "base", "macro_f1"),
    Claim("prototypes add macro-F1 (L_BQProto above L_BQueue)", "bqproto", "bqueue", "macro_f1"),
    Claim("reweighting adds macro-F1 (L_MSC above L_BQProto)", "msc", "bqproto", "macro_f1"),
)

UNITS = {"silhouette": "", "davies_bouldin": ""}  # every other metric is in points


def layers_label(value) -> str:
    """``train_layers`` of a record as a reader says it: ``all`` -> "whole encoder", 1 -> "1 layer"."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) in ("all", "None"):
        return "whole encoder"
    k = int(float(value))
    return f"{k} layer{'s' if k != 1 else ''}"


def depths(values, deepest_first: bool = True) -> list:
    """The distinct ``train_layers`` of ``values`` (as text, as :func:`grid_records` writes them:
    ``all``, ``1``, ``3``), ordered by how much of the encoder trains: the whole encoder, then the
    layers by number, descending (``deepest_first``, for sentences) or the reverse (for tables,
    whose column groups grow left to right). Every ordering of depths in this module uses it."""
    def size(k):
        return math.inf if k in ("all", "None", "nan") else float(k)

    return sorted({str(v) for v in values}, key=size, reverse=deepest_first)


def _depth_rank(values) -> dict:
    """``{train_layers as text: position}`` in :func:`depths` order (whole encoder first), to sort by."""
    return {k: i for i, k in enumerate(depths(values))}


def deepest_with(runs: pd.DataFrame, dataset: str, objective: str = "bce"):
    """The deepest ``train_layers`` at which ``dataset`` has a run of ``objective``, or None."""
    part = runs[(runs["dataset"] == dataset) & (runs["objective"] == objective)]
    found = depths(part["train_layers"])
    return found[0] if found else None


def _number(value: float, metric: str, signed: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if metric in UNITS:
        return f"{value:+.3f}" if signed else f"{value:.3f}"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def cell(values, digits: int = 2) -> str:
    """Mean ± 95 % half-width (n) of one row's seeds, ``digits`` decimals; the mean alone when
    the values do not vary (one seed, or a deterministic row); empty when all are missing
    (:func:`abalone_core.report.claims.interval_text`)."""
    from .claims import interval_text, t_interval

    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], float)
    if v.size == 0:
        return ""
    low, high = t_interval(v)
    return interval_text(float(v.mean()), (high - low) / 2, int(v.size), float(v.std(ddof=1)) if v.size > 1 else 0.0,
                         digits)


def depth_table(runs: pd.DataFrame, dataset: str, metrics=("macro_f1", "macro_f1_label_tuned", "micro_f1", "map"),
                rows=("frozen", "tfidf-linear", "tfidf-cut", "base", "bqueue", "bqproto", "msc", "bce")) -> pd.DataFrame:
    """One dataset's comparison: a row per objective, a column group per number of trained
    layers (``train_layers``), each cell mean ± 95 % half-width over seeds (n), then the
    optimiser steps used (mean, whole steps) and how many runs converged.

    Args:
        runs: :func:`abalone_core.sweep.records_table` of the grid (columns ``objective``,
            ``dataset``, ``train_layers``, ``seed``, the metrics, ``steps``, ``converged``).
    Returns:
        A frame with a two-level column index (trained layers, quantity); rows the objectives
        that ran, named by :func:`abalone_core.notebook.row_name`.
    """
    from ..notebook import row_name

    part = runs[runs["dataset"] == dataset]
    if part.empty:
        raise ValueError(f"no run of dataset {dataset!r}; the records hold {sorted(runs['dataset'].unique())}")
    layers = depths(part["train_layers"], deepest_first=False)
    table = {}
    for k in layers:
        at = part[part["train_layers"].astype(str) == k]
        for o in rows:
            r = at[at["objective"] == o]
            if r.empty:
                continue
            name = row_name(o)
            for m in metrics:
                table.setdefault((layers_label(k), HEADERS.get(m, m)), {})[name] = cell(
                    r[m], 3 if m in UNITS else 2)
            steps = r["steps"].dropna() if "steps" in r else pd.Series(dtype=float)
            table.setdefault((layers_label(k), "steps"), {})[name] = (
                f"{int(round(steps.mean()))}" if len(steps) and steps.mean() > 0 else "")
            conv = r["converged"]
            known = conv.dropna()
            table.setdefault((layers_label(k), "converged"), {})[name] = (
                f"{int(known.astype(bool).sum())}/{len(conv)}" if len(known) else "n/a")
    out = pd.DataFrame(table)
    order = [row_name(o) for o in rows if row_name(o) in out.index]
    return out.loc[order].fillna("")


def depth_claims(runs: pd.DataFrame, claims=DEPTH_CLAIMS, ladder=LADDER_CLAIMS) -> pd.DataFrame:
    """:func:`check_claims` per dataset and number of trained layers, only converged runs as
    evidence, Holm's correction over the claims of each (dataset, layers). The ``ladder``
    claims are added for a dataset whose records hold a rung of the ladder (L_BQueue or
    L_BQProto) at any depth, and counted in its correction."""
    runs = runs.assign(train_layers=runs["train_layers"].astype(str))
    parts = []
    for dataset in runs["dataset"].unique():
        part = runs[runs["dataset"] == dataset]
        rungs = {c.better for c in ladder} | {c.worse for c in ladder}
        has_ladder = bool(set(part["objective"]) & (rungs - {c.better for c in claims} - {c.worse for c in claims}))
        judged = tuple(claims) + (tuple(ladder) if has_ladder else ())
        parts.append(check_claims(part, claims=judged, group=["train_layers"], require_converged=True))
    return pd.concat(parts, ignore_index=True) if parts else check_claims(
        runs, claims=claims, group=["train_layers"], require_converged=True)


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims of one dataset as chapter 8 shows them: one row per depth and claim, with the
    difference, its 95 % interval in one cell, the smallest difference the seeds resolve, the
    seeds, the Holm-adjusted p-value (two significant digits, as the paragraphs write it) and
    the verdict, every number as text in the claim's units (F1 in points, two decimals; scores
    without units, three). Rows whose claim was not run are left out; depths come whole encoder
    first (:func:`depths`), each depth's claims in their order.

    Args:
        claims: rows of :func:`depth_claims` or :func:`abalone_core.report.claims.check_claims`
            (any number of datasets and depths).
    Returns:
        Frame of strings with columns ``trained`` (when ``claims`` has ``train_layers``), ``claim``, ``difference``, ``95 % interval``,
        ``resolvable``, ``seeds``, ``Holm p``, ``verdict``.
    """
    shown = claims[claims["verdict"] != "not run"]
    if "train_layers" in shown and not shown.empty:  # whole encoder first, as the paragraphs
        rank = _depth_rank(shown["train_layers"])
        shown = shown.iloc[shown["train_layers"].astype(str).map(rank).argsort(kind="stable")]
    rows = []
    for _, r in shown.iterrows():
        m = r["metric"]
        rows.append({
            **({"trained": layers_label(r["train_layers"])} if "train_layers" in claims else {}),
            "claim": r["claim"],
            "difference": _number(r["difference"], m) if _given(r, "difference") else "",
            "95 % interval": (f"[{_number(r['ci_low'], m)}, {_number(r['ci_high'], m)}]"
                              if _given(r, "ci_low") and _given(r, "ci_high") else ""),
            "resolvable": _number(r["resolvable"], m, signed=False) if _given(r, "resolvable") else "",
            "seeds": str(int(r["seeds"])) if _given(r, "seeds") else "0",
            "Holm p": f"{r['p_holm']:.2g}" if _given(r, "p_holm") else "",
            "verdict": r["verdict"],
        })
    columns = ["claim", "difference", "95 % interval", "resolvable", "seeds", "Holm p", "verdict"]
    return pd.DataFrame(rows, columns=(["trained"] if "train_layers" in claims else []) + columns)


def tfidf_decomposition(runs: pd.DataFrame, dataset: str, neural: str = "bce", layers="all",
                        metric: str = "macro_f1") -> dict:
    """Split TF-IDF's lead over a neural row in ``metric`` into its parts, from seed means.

    With T the TF-IDF row on whole documents scored by the linear library's own thresholds
    (as shipped), T' the same row under a threshold per label tuned on validation, C that
    rule on the cut text (``tfidf-cut``: the neural rows' first ``max_length`` tokens), and
    N, N' the neural row at 0.5 and under the per-label rule:

    * lead = T - N (as the two rows are usually reported);
    * decision rule = (T - N) - (T' - N'): what scoring both under the same rule removes;
    * text length = T' - C: what reading the whole documents adds to TF-IDF;
    * remainder = C - N': TF-IDF's lead on the same text under the same rule.

    The three parts add up to the lead. Returns them with the five means, in points.
    """
    part = runs[(runs["dataset"] == dataset)]
    tuned = metric + "_label_tuned"

    def mean(objective, m, at=None):
        r = part[part["objective"] == objective]
        if at is not None:
            r = r[r["train_layers"].astype(str) == str(at)]
        if r.empty or m not in r:
            raise ValueError(f"{dataset}: no {objective} run with {m}"
                             + (f" at train_layers={at}" if at is not None else ""))
        return float(r[m].mean())

    t, t_rule = mean("tfidf-linear", metric), mean("tfidf-linear", tuned)
    c = mean("tfidf-cut", tuned)
    n, n_rule = mean(neural, metric, layers), mean(neural, tuned, layers)
    lead = t - n
    return {"dataset": dataset, "neural": neural, "layers": str(layers), "metric": metric,
            "tfidf_shipped": t, "tfidf_label_tuned": t_rule, "tfidf_cut_label_tuned": c,
            "neural_at_half": n, "neural_label_tuned": n_rule,
            "lead": lead, "decision_rule": lead - (t_rule - n_rule), "text_length": t_rule - c,
            "remainder": c - n_rule}


def decomposition_sentence(d: dict) -> str:
    """One sentence of :func:`tfidf_decomposition`'s parts."""
    from ..notebook import row_name

    who = f"{row_name(d['neural'])} ({layers_label(d['layers'])})"
    sign = "leads" if d["lead"] >= 0 else "trails"
    return (f"On {d['dataset']}, TF-IDF as shipped {sign} {who} by {abs(d['lead']):.2f} macro-F1 points: "
            f"{d['decision_rule']:+.2f} come from the decision rule (its per-label thresholds against 0.5), "
            f"{d['text_length']:+.2f} from reading whole documents instead of the first tokens, and "
            f"{d['remainder']:+.2f} remain on the same text under the same rule.")


def seeds_needed(runs: pd.DataFrame, dataset: str, layers="all", better: str = "msc", worse: str = "base",
                 metric: str = "macro_f1", half_width: float = 1.0, minimum: int = 5) -> dict:
    """The power computation of the grid's seed count: from the paired per-seed differences
    ``better - worse`` measured so far, how many seeds make the 95 % interval's half-width at
    most ``half_width`` (:func:`abalone_core.report.claims.seeds_for_half_width`, never fewer than
    ``minimum``). Returns the seeds measured, their paired standard deviation, the
    half-width they give, and the seeds needed."""
    from .claims import seeds_for_half_width, t_interval

    part = runs[(runs["dataset"] == dataset) & (runs["train_layers"].astype(str) == str(layers))]
    wide = part.pivot_table(index="seed", columns="objective", values=metric)
    if better not in wide or worse not in wide:
        raise ValueError(f"{dataset}, train_layers={layers}: no paired {better} and {worse} runs with {metric}")
    d = (wide[better] - wide[worse]).dropna().to_numpy(float)
    if d.size < 2:
        raise ValueError(f"{dataset}, train_layers={layers}: {d.size} paired seed(s); a spread needs at least 2")
    sd = float(d.std(ddof=1))
    low, high = t_interval(d)
    return {"dataset": dataset, "layers": str(layers), "metric": metric, "measured": int(d.size), "std": sd,
            "half_width_now": (high - low) / 2, "target": half_width,
            "needed": seeds_for_half_width(sd, half_width, minimum=minimum)}


def deepest_power(runs: pd.DataFrame, dataset: str, **kwargs) -> dict:
    """:func:`seeds_needed` at the deepest depth of ``dataset`` with at least two paired seeds:
    the whole encoder where it has them, else the most trained layers (debtags trains one
    layer on the CPU). Raises ValueError naming what is missing when no depth has them."""
    part = runs[runs["dataset"] == dataset]
    reasons = []
    for k in depths(part["train_layers"]):
        try:
            return seeds_needed(runs, dataset, k, **kwargs)
        except ValueError as err:
            reasons.append(str(err))
    raise ValueError("; ".join(reasons) or f"no run of dataset {dataset!r}")


def power_sentence(p: dict) -> str:
    """The power computation in words."""
    return (f"On {p['dataset']} ({layers_label(p['layers'])}), the {p['measured']} paired seeds measured so far give "
            f"L_MSC − L_Base in {F1_RULES.get(p['metric'], p['metric'])} a standard deviation of {p['std']:.2f} "
            f"points and a 95 % half-width of {p['half_width_now']:.2f}; a half-width of at most {p['target']:g} "
            f"point{'s' if p['target'] != 1 else ''} needs {p['needed']} seeds (the smallest n with "
            f"t(n − 1) · {p['std']:.2f} / √n ≤ {p['target']:g}, and never fewer than 5).")


def _given(r: pd.Series, key: str) -> bool:
    """Whether claim row ``r`` holds a number under ``key`` (not missing, not NaN)."""
    value = r.get(key)
    return isinstance(value, numbers.Real) and not math.isnan(value)


def _claim_phrase(r: pd.Series) -> str:
    metric = r["metric"]
    unit = "" if metric in UNITS else " points"
    n = int(r["seeds"])
    if n < 2:
        return (f"*{r['claim']}* ({_number(r['difference'], metric)}{unit} on {n} paired seed; an interval needs "
                f"two, a verdict three)")
    text = (f"*{r['claim']}* ({_number(r['difference'], metric)}{unit}, 95 % interval "
            f"[{_number(r['ci_low'], metric)}, {_number(r['ci_high'], metric)}], {n} seeds")
    if _given(r, "p_holm") and r["verdict"] in ("holds", "fails"):
        text += f", Holm-adjusted p = {r['p_holm']:.2g}"
    if r["verdict"] == "inconclusive" and _given(r, "resolvable"):
        # the value the interval is judged against: 0, or minus the tolerance of an "on par" claim
        bound = float(r["bound"]) if _given(r, "bound") else 0.0
        named = "zero" if bound == 0 else f"{_number(bound, metric)}{unit} (the claim's tolerance)"
        excludes = r["ci_low"] > bound or r["ci_high"] < bound
        if excludes and _given(r, "p_holm"):  # the interval alone decides: the correction keeps it open
            text += (f"; its interval excludes {named}, but not after Holm's correction for the claims judged "
                     f"with it (adjusted p = {r['p_holm']:.2g})")
        elif bound == 0:
            text += (f"; these seeds resolve only differences larger than "
                     f"{_number(r['resolvable'], metric, signed=False)}{unit}")
        else:
            text += (f"; its interval includes {named}, and these seeds resolve only differences more than "
                     f"{_number(r['resolvable'], metric, signed=False)}{unit} away from it")
    if r["verdict"] == "not testable" and r.get("caveat"):
        text += f"; {r['caveat']}"
    return text + ")"


VERDICT_WORDS = {"holds": "Holds", "fails": "Fails", "inconclusive": "Open", "not testable": "Not testable",
                 "not run": "Not run yet"}


def finding_paragraph(claims: pd.DataFrame, dataset: str, layers, metrics=None) -> str:
    """The verdicts of one dataset and depth as a Markdown paragraph: which claims hold, fail
    or stay open, each with its difference, 95 % interval and seeds; beside an open verdict
    the smallest difference those seeds could resolve; the correction used.

    Args:
        claims: rows of :func:`depth_claims` (or :func:`check_claims` with ``group=["train_layers"]``).
        metrics: only the claims on these metrics (chapter 7: silhouette and Davies-Bouldin);
            the correction sentence still counts every claim judged with them.
    """
    rows = claims[(claims["dataset"] == dataset) & (claims["train_layers"].astype(str) == str(layers))]
    if rows.empty:
        raise ValueError(f"no claim was judged for {dataset} at train_layers={layers}")
    shown = rows if metrics is None else rows[rows["metric"].isin(list(metrics))]
    if shown.empty:
        raise ValueError(f"no claim on {list(metrics)} was judged for {dataset} at train_layers={layers}")
    parts = []
    for verdict, word in VERDICT_WORDS.items():
        chosen = shown[shown["verdict"] == verdict]
        if chosen.empty:
            continue
        phrases = [f"*{r['claim']}*" if verdict == "not run" else _claim_phrase(r) for _, r in chosen.iterrows()]
        parts.append(f"{word}: " + "; ".join(phrases) + ".")
    m = int(rows["p_value"].notna().sum()) if "p_value" in rows else 0
    if m > 1 and metrics is not None:
        correction = (f"Verdicts are corrected for the {m} comparisons judged on these runs (Holm), the "
                      "classification claims of chapter 8 included.")
    elif m > 1:
        correction = f"Verdicts are corrected for {m} comparisons (Holm)."
    elif m == 1:
        correction = "One claim had the seeds to be judged: no correction needed."
    else:
        correction = "No claim has yet the three paired seeds, with a spread, that a verdict needs."
    return " ".join([f"**{dataset}, {layers_label(layers)}.**", *parts, correction])


def what_we_found(claims: pd.DataFrame) -> str:
    """:func:`finding_paragraph` for every dataset and depth of ``claims``, whole encoder first."""
    out = []
    for dataset in claims["dataset"].unique():
        out += [finding_paragraph(claims, dataset, k)
                for k in depths(claims.loc[claims["dataset"] == dataset, "train_layers"])]
    return "\n\n".join(out)


def claim_summary(claims: pd.DataFrame) -> str:
    """The verdicts across datasets and depths, claim by claim, as a Markdown list: for each
    claim, where it holds, where it fails, where it stays open, where it is not testable and
    where it has not run, each place named as "dataset (depth)". Chapter 8's "What we saw".

    Args:
        claims: rows of :func:`depth_claims` (columns ``claim``, ``dataset``, ``train_layers``,
            ``verdict``), in the order the claims should be listed.
    """
    if claims.empty:
        return "No claim has been judged yet."
    words = {"holds": "holds on", "fails": "fails on", "inconclusive": "stays open on",
             "not testable": "is not testable on", "not run": "has not run yet on"}
    order = {d: i for i, d in enumerate(claims["dataset"].unique())}
    rank = _depth_rank(claims["train_layers"])
    lines = []
    for name in claims["claim"].unique():
        rows = claims[claims["claim"] == name]
        places = sorted(rows.itertuples(), key=lambda r: (order[r.dataset], rank[str(r.train_layers)]))
        parts = []
        for verdict, word in words.items():
            where = [f"{r.dataset} ({layers_label(r.train_layers)})" for r in places if r.verdict == verdict]
            if where:
                parts.append(f"{word} {_join(where)}")
        lines.append(f"- *{name}* " + "; ".join(parts) + ".")
    return "\n".join(lines)


def _join(items: list) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


GRIDS = ("encoder_depth", "debtags")  # results/<grid>/runs.jsonl read by chapter 8 and the README


def grid_records(results="results", grids=GRIDS) -> pd.DataFrame:
    """The committed records of the comparison grids as one flat table
    (:func:`abalone_core.sweep.records_table`), with ``train_layers`` as text (``all``, ``1``,
    ``3``) and a ``grid`` column; grids not committed yet are left out."""
    from pathlib import Path

    from ..sweep import records_table

    parts = []
    for g in grids:
        path = Path(results) / g / "runs.jsonl"
        if path.is_file():
            t = records_table(path)
            if not t.empty:
                parts.append(t.assign(grid=g))
    if not parts:
        return pd.DataFrame()
    runs = pd.concat(parts)
    runs["train_layers"] = runs["train_layers"].map(lambda v: "all" if v is None or str(v) in ("all", "None", "nan")
                                                    else str(int(float(v))))
    check_one_precision(runs)
    return runs


def check_one_precision(runs: pd.DataFrame) -> None:
    """Refuse records that would average runs of two precisions: within one grid, dataset and
    depth, every run that records a ``precision`` must record the same one. Raises ValueError
    naming the grid, dataset, depth and the runs of each precision (``abalone sweep`` refuses to
    add such runs unless told ``--any-precision``)."""
    if "precision" not in runs:
        return
    keys = [k for k in ("grid", "dataset", "train_layers") if k in runs]
    for key, part in runs.dropna(subset=["precision"]).groupby(keys):
        counts = part["precision"].value_counts()
        if len(counts) > 1:
            where = ", ".join(f"{k}={v}" for k, v in zip(keys, key if isinstance(key, tuple) else (key,)))
            kinds = ", ".join(f"{n} in {PRECISION_NAMES.get(p, p)}" for p, n in counts.items())
            raise ValueError(f"{where}: the runs trained in two precisions ({kinds}) and would be averaged; "
                             "keep one precision per grid (move the others to a grid folder of their own)")


def cost_sentence(runs: pd.DataFrame, grid: str) -> str:
    """What one comparison grid cost so far: its runs, the sum of their wall times in hours,
    and the hardware the records name (columns ``grid``, ``minutes``, ``hardware`` of
    :func:`grid_records`)."""
    part = runs[runs["grid"] == grid]
    if part.empty:
        return f"results/{grid}: no run committed yet."
    hours = float(part["minutes"].fillna(0).sum()) / 60
    where = ", ".join(sorted(set(part["hardware"].dropna().astype(str)))) or "unrecorded hardware"
    kinds = sorted(set(part["precision"].dropna())) if "precision" in part else []
    trained = f", trained in {', '.join(PRECISION_NAMES.get(p, p) for p in kinds)}" if kinds else ""
    return (f"results/{grid}: {len(part)} runs, {hours:.1f} hours of run time (the sum of the runs' wall times) "
            f"on {where}{trained}.")


def decomposition_sentences(runs: pd.DataFrame, datasets=None) -> list:
    """:func:`decomposition_sentence` for each dataset (all of ``runs`` by default) that has both
    TF-IDF rows and a BCE row, at the deepest depth BCE trained (:func:`deepest_with`).
    Chapter 8's "Why TF-IDF leads" and :func:`report`."""
    out = []
    for dataset in (runs["dataset"].unique() if datasets is None else datasets):
        part = runs[runs["dataset"] == dataset]
        layers = deepest_with(runs, dataset, "bce")
        if layers is not None and {"tfidf-linear", "tfidf-cut"} <= set(part["objective"]):
            out.append(decomposition_sentence(tfidf_decomposition(runs, dataset, "bce", layers)))
    return out


def report(runs: pd.DataFrame) -> str:
    """The whole answer in Markdown: :func:`what_we_found` over every dataset and depth of
    ``runs``, then, per dataset, TF-IDF's lead taken apart (:func:`tfidf_decomposition`, at the
    deepest trained BCE row committed) and the power computation of the seed count
    (:func:`deepest_power`: the whole encoder where it has paired seeds). Parts whose runs are
    not committed yet are left out.
    The same text opens chapter 8 and the README's results."""
    if runs.empty:
        return "No run of the comparison grids is committed yet."
    out = [what_we_found(depth_claims(runs))]
    extra = []
    for dataset in runs["dataset"].unique():
        extra += decomposition_sentences(runs, [dataset])
        try:
            extra.append(power_sentence(deepest_power(runs, dataset)))
        except ValueError:
            pass
    if extra:
        out.append("\n".join(f"- {e}" for e in extra))
    return "\n\n".join(out)


def paragraph_verdicts(paragraph: str) -> dict:
    """``{claim name: verdict}`` as a paragraph of :func:`finding_paragraph` states them: each
    claim's name stands in italics after the word of its verdict (the test of chapter 8's
    paragraphs reads the verdicts back from the words)."""
    import re

    words = {w: v for v, w in VERDICT_WORDS.items()}
    heading = re.compile(r"(Holds|Fails|Open|Not testable|Not run yet): ")
    pieces = heading.split(paragraph)
    found = {}
    for word, body in zip(pieces[1::2], pieces[2::2]):
        for name in re.findall(r"\*([^*]+)\*", body):
            found[name] = words[word]
    return found


__all__ = ["DEPTH_CLAIMS", "LADDER_CLAIMS", "F1_RULES", "HEADERS", "cell", "depth_table", "depth_claims", "tfidf_decomposition",
           "decomposition_sentence", "seeds_needed", "power_sentence", "grid_records", "report", "GRIDS", "finding_paragraph", "what_we_found", "paragraph_verdicts", "layers_label",
           "claim_summary", "cost_sentence", "deepest_power", "depths", "deepest_with", "decomposition_sentences",
           "check_one_precision"]
