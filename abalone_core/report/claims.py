"""The paper's claims about its losses, checked against a table of finished runs.

Each claim compares two objectives on one metric, seed by seed::

    L_MSC above L_Base in macro-F1             (Tables 2 and 3)
    each component adds macro-F1               (Table 2: queue, then prototypes, then reweighting)
    L_MSC on par with BCE in micro-F1          (Table 3)
    L_MSC clusters better than L_Base          (Table 4: higher silhouette, lower Davies-Bouldin)

A claim is judged from the paired per-seed differences ``better - worse``: their mean and a
95 % Student-t interval over the seeds (n - 1 degrees of freedom). It ``holds`` when the whole
interval lies on the claimed side of 0 (of ``-tolerance`` for an "on par" claim, which still
holds when the difference is exactly the tolerance), ``fails`` when the whole interval lies on
the other side, and is ``inconclusive`` otherwise. A verdict other than ``inconclusive`` needs
at least 3 paired seeds and differences that vary (two or more equal differences give an
interval of width 0 that says nothing about the next seed).

Several claims are tested on the same runs, so a verdict is only given when the claim's
paired t-test still rejects its bound after Holm's correction over the claims of one dataset
and group (``correction="holm"``, the default; ``None`` judges each interval alone). Beside
every verdict stands ``resolvable``: the half-width of the interval, the smallest mean
difference those seeds could have told from the bound. It is
``not run`` when an objective or the metric is missing, and ``not testable`` when one of the
compared objectives did not converge or scores below the untrained encoder's linear probe
(``frozen``): such a row has learned nothing within its budget, and a comparison with it says
nothing about the losses. Runs are never averaged across budgets or subsets: columns named in
``group`` split the table into separate comparisons, and two runs of one objective and seed in
the same comparison are an error.

>>> runs = sweep.records_table("results/sweep_cpu/runs.jsonl")
>>> check_claims(runs, group=["max_steps"])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

VERDICTS = ("holds", "fails", "inconclusive", "not run", "not testable")

# float slack (in the metric's units) so that a difference of exactly the tolerance, computed
# from rounded scores, still counts as within it
_SLACK = 1e-9
_SPREAD = 1e-9  # relative: differences that vary less than this are equal
MIN_SEEDS = 3  # paired seeds a verdict other than "inconclusive" needs


@dataclass(frozen=True)
class Claim:
    """``better`` compared with ``worse`` on ``metric``.

    ``direction`` is +1 when higher is better (F1, silhouette) and -1 when lower is better
    (Hamming loss, Davies-Bouldin). ``tolerance`` > 0 turns "above" into "on par": the claim
    is that ``better`` is at most ``tolerance`` points worse than ``worse`` (equality
    included); with ``tolerance`` = 0 it must be strictly better.
    """

    name: str
    better: str
    worse: str
    metric: str
    direction: int = 1
    tolerance: float = 0.0

    def satisfied(self, difference):
        """Whether a difference ``better - worse`` (scalar or array) lies on the claimed side."""
        effect = self.direction * np.asarray(difference, dtype=float)
        if self.tolerance > 0:
            return effect >= -self.tolerance - _SLACK
        return effect > 0

    def contradicted(self, difference):
        """Whether a difference lies strictly on the other side of the claim's bound."""
        effect = self.direction * np.asarray(difference, dtype=float)
        if self.tolerance > 0:
            return effect < -self.tolerance - _SLACK
        return effect < 0


CLAIMS = (
    Claim("L_MSC above L_Base in macro-F1", "msc", "base", "macro_f1"),
    Claim("queue adds macro-F1 (L_BQueue above L_Base)", "bqueue", "base", "macro_f1"),
    Claim("prototypes add macro-F1 (L_BQProto above L_BQueue)", "bqproto", "bqueue", "macro_f1"),
    Claim("reweighting adds macro-F1 (L_MSC above L_BQProto)", "msc", "bqproto", "macro_f1"),
    Claim("L_MSC on par with BCE in micro-F1 (at most 1 point below)", "msc", "bce", "micro_f1", tolerance=1.0),
    Claim("L_MSC clusters better than L_Base (silhouette)", "msc", "base", "silhouette"),
    Claim("L_MSC clusters better than L_Base (Davies-Bouldin)", "msc", "base", "davies_bouldin", direction=-1),
)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values (NaN stays NaN and is not counted).

    The smallest of ``m`` p-values is multiplied by ``m``, the next by ``m - 1``, ..., each
    adjusted value at least the one before (capped at 1); rejecting where the adjusted value
    is below alpha keeps the chance of any false verdict among the ``m`` at most alpha."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def seeds_for_half_width(std: float, half_width: float, confidence: float = 0.95, minimum: int = 5,
                         limit: int = 1000) -> int:
    """Paired seeds needed for the ``confidence`` t-interval of a mean difference to have at
    most ``half_width``, when the differences have standard deviation ``std``: the smallest
    ``n >= minimum`` with ``t(n - 1) * std / sqrt(n) <= half_width``.

    >>> seeds_for_half_width(1.37, 1.0)   # a paired spread of 1.37 points
    10
    """
    if std < 0 or half_width <= 0:
        raise ValueError(f"std must be >= 0 and half_width > 0, got {std}, {half_width}")
    for n in range(max(minimum, 2), limit + 1):
        if stats.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n) <= half_width:
            return n
    raise ValueError(f"more than {limit} seeds would be needed for a half-width of {half_width} at std {std}")


def t_interval(differences, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t interval of the mean of ``differences`` (n - 1 degrees of freedom).

    ``(nan, nan)`` with fewer than 2 values.
    """
    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    return float(d.mean() - half), float(d.mean() + half)


def interval_text(mean: float, half_width: float, n: int, std: float = 0.0, digits: int = 2) -> str:
    """``"mean ± half-width (n)"``, or ``"mean (n)"`` for one value or values that do not vary
    (``std`` about zero: TF-IDF, L_MLM), never ``"± 0.00"``. The one cell format of the
    book's tables (:func:`abalone_core.report.findings.cell`, :func:`abalone_core.sweep.aggregate`)."""
    alone = n < 2 or not np.isfinite(half_width) or abs(std) <= 1e-9 * max(1.0, abs(mean))
    if alone:
        return f"{mean:.{digits}f} ({n})"
    return f"{mean:.{digits}f} ± {half_width:.{digits}f} ({n})"


def _reject_duplicates(runs: pd.DataFrame, keys: list[str], pair: str, metrics: set) -> None:
    dup = runs.duplicated(keys + ["objective", pair], keep=False)
    if not dup.any():
        return
    first = runs[dup].iloc[0]
    same = np.logical_and.reduce([(runs[c] == first[c]) | (runs[c].isna() & pd.isna(first[c]))
                                  for c in keys + ["objective", pair]])
    rows = runs[same]
    differ = [c for c in runs.columns if c not in metrics and rows[c].astype(str).nunique() > 1]
    where = ", ".join(f"{c}={first[c]}" for c in keys + ["objective", pair])
    raise ValueError(f"runs holds {len(rows)} runs for {where} (they differ in {differ or 'no column'}); "
                     "runs are never averaged: pass the columns that tell them apart (budget, subset) "
                     "as group=[...] to judge each value separately, or drop the repeats")


def check_claims(runs: pd.DataFrame, claims=CLAIMS, by: str = "dataset", pair: str = "seed",
                 reference: str | None = "frozen", group=None, confidence: float = 0.95,
                 converged: str | None = "converged", require_converged: bool = False,
                 correction: str | None = "holm") -> pd.DataFrame:
    """Judge each claim on each ``by`` value (dataset), from runs paired by ``pair`` (seed).

    Args:
        runs: one row per finished run with columns ``objective``, ``by``, ``pair`` and the
            claims' metrics (e.g. :func:`abalone_core.sweep.records_table`); optionally a
            boolean ``converged`` column.
        claims: :class:`Claim` objects.
        reference: the objective whose mean a compared objective must not fall below
            (direction-aware); ``None`` to skip that check. Not checked when it has no run.
        group: columns (budget, subset, ...) that must be constant within a comparison. The
            claims are judged separately for each combination of their values, one output row
            per (``by``, ``group`` values, claim). Two runs with the same ``by``, ``group``
            values, objective and ``pair`` raise a ``ValueError`` naming the columns in which
            they differ, since averaging them would mix budgets or subsets.
        confidence: level of the t-interval.
        converged: name of a boolean column; a comparison is ``not testable`` when any run of
            its two objectives on the paired seeds has ``False`` there. A missing column or a
            missing value means unknown and blocks nothing, unless ``require_converged``.
            ``None`` to skip.
        require_converged: when True, a compared run whose ``converged`` value is missing
            (a grid that predates the record, or a table without the column) also makes the
            comparison ``not testable``: only runs known to have converged are evidence.
        correction: ``"holm"`` (Holm's correction over the claims judged in one dataset and
            group) or None.
    Returns:
        One row per (dataset, group values, claim) with ``better`` / ``worse`` (means over the
        paired seeds), ``difference`` (mean of the per-seed differences better - worse, in the
        metric's units), ``std`` of those differences, ``ci_low`` / ``ci_high`` (the t-interval
        of ``difference``), ``seeds`` (pairs where both ran), ``holds_on`` (how many of those
        pairs satisfy the claim on their own, for information), ``verdict`` (``holds``,
        ``fails``, ``inconclusive``, ``not run`` or ``not testable``, see the module's
        docstring; the checks apply in the order not run, not testable, fewer than 3 seeds,
        no spread, interval, Holm), ``resolvable`` (the interval's half-width: the smallest
        difference these seeds could resolve), ``p_value`` (paired t-test of the difference
        against the claim's bound) and ``p_holm`` (Holm-adjusted), and ``caveat``: why the
        verdict is not ``holds`` or ``fails`` (empty when it is one of them).
    """
    group = [group] if isinstance(group, str) else list(group or ())
    missing = [c for c in ("objective", by, pair, *group) if c not in runs.columns]
    if missing:
        raise ValueError(f"runs lacks the columns {missing}; it has {sorted(runs.columns)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    keys = [by, *group]
    objectives = {o for c in claims for o in (c.better, c.worse)} | ({reference} if reference else set())
    metrics = {c.metric for c in claims}
    runs = runs[runs["objective"].isin(objectives)]
    _reject_duplicates(runs, keys, pair, metrics)
    check_convergence = converged is not None and (converged in runs.columns or require_converged)
    if check_convergence and converged not in runs.columns:
        runs = runs.assign(**{converged: None})
    if correction not in ("holm", None):
        raise ValueError(f"correction must be 'holm' or None, got {correction!r}")
    out = []
    for key, part in runs.groupby(keys, sort=False, dropna=False):
        key = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        first = len(out)
        for claim in claims:
            row = {**key, "claim": claim.name, "metric": claim.metric}
            wide = (part.pivot(index=pair, columns="objective", values=claim.metric).dropna(axis=1, how="all")
                    if claim.metric in part.columns else pd.DataFrame())
            absent = [o for o in (claim.better, claim.worse) if o not in wide]
            if absent:
                why = (f"no {claim.metric} column" if claim.metric not in part.columns
                       else f"no {' or '.join(absent)} run with {claim.metric}")
                out.append({**row, "seeds": 0, "holds_on": 0, "verdict": "not run", "caveat": why})
                continue
            both = wide[[claim.better, claim.worse]].dropna()
            diff = (both[claim.better] - both[claim.worse]).to_numpy(float)
            n = len(diff)
            low, high = t_interval(diff, confidence)
            caveats = []
            if check_convergence and n:
                paired = part[part["objective"].isin([claim.better, claim.worse]) & part[pair].isin(both.index)]
                failed = paired[paired[converged].eq(False)]
                unknown = paired[paired[converged].isna()] if require_converged else paired.iloc[:0]
                for o in (claim.better, claim.worse):
                    seeds = sorted(failed.loc[failed["objective"] == o, pair].tolist())
                    if seeds:
                        caveats.append(f"{o} did not converge ({pair} {', '.join(map(str, seeds))})")
                    seeds = sorted(unknown.loc[unknown["objective"] == o, pair].tolist())
                    if seeds:
                        caveats.append(f"{o}: convergence not recorded ({pair} {', '.join(map(str, seeds))})")
            if reference and reference in wide and reference not in (claim.better, claim.worse) and n:
                floor = wide[reference].mean()
                weak = [o for o in (claim.better, claim.worse) if claim.direction * (both[o].mean() - floor) < 0]
                if weak:
                    caveats.append(f"{' and '.join(weak)} below {reference}: undertrained")
            half = (high - low) / 2 if n > 1 else np.nan
            spread = float(diff.std(ddof=1)) if n > 1 else np.nan
            bound = -claim.direction * claim.tolerance + 0.0  # + 0.0: no "-0"
            p_value = np.nan
            if caveats:
                verdict = "not testable"
            elif n < MIN_SEEDS:
                verdict = "inconclusive"
                caveats.append("no seed where both ran" if n == 0
                               else f"{n} paired seed{'s' if n > 1 else ''}: a verdict needs at least {MIN_SEEDS}")
            elif not spread > _SPREAD * max(1.0, abs(float(diff.mean()))):
                verdict = "inconclusive"
                caveats.append(f"the {n} differences are equal: no spread to judge the next seed by")
            else:
                p_value = float(stats.ttest_1samp(diff, bound).pvalue)
                if claim.satisfied(low) and claim.satisfied(high):
                    verdict = "holds"
                elif claim.contradicted(low) and claim.contradicted(high):
                    verdict = "fails"
                else:
                    verdict = "inconclusive"
                    caveats.append(f"{confidence:.0%} interval [{low:.3g}, {high:.3g}] includes {bound:g}")
            out.append({**row, "better": float(both[claim.better].mean()) if n else np.nan,
                        "worse": float(both[claim.worse].mean()) if n else np.nan,
                        "difference": float(diff.mean()) if n else np.nan,
                        "std": spread,
                        "ci_low": low, "ci_high": high, "resolvable": half, "seeds": n,
                        "bound": bound, "holds_on": int(claim.satisfied(diff).sum()), "verdict": verdict,
                        "p_value": p_value, "caveat": "; ".join(caveats)})
        if correction == "holm":
            _holm_verdicts(out[first:], 1 - confidence)
    columns = [*keys, "claim", "metric", "better", "worse", "difference", "std", "ci_low", "ci_high", "resolvable",
               "seeds", "bound", "holds_on", "verdict", "p_value", "p_holm", "caveat"]
    return pd.DataFrame(out).reindex(columns=columns)


def _holm_verdicts(rows: list[dict], alpha: float) -> None:
    """Holm's correction over the claims of one comparison: a holds/fails verdict whose
    adjusted p-value is not below ``alpha`` becomes inconclusive, with the reason."""
    adjusted = holm([r.get("p_value", np.nan) for r in rows])
    for r, p in zip(rows, adjusted):
        r["p_holm"] = p
        if r["verdict"] in ("holds", "fails") and not p < alpha:
            r["verdict"] = "inconclusive"
            r["caveat"] = (f"the interval excludes the bound (p = {r['p_value']:.2g}) but not after Holm's "
                           f"correction over {int(np.sum(~np.isnan(adjusted)))} claims (adjusted p = {p:.2g})")


__all__ = ["Claim", "CLAIMS", "VERDICTS", "MIN_SEEDS", "check_claims", "holm", "seeds_for_half_width", "t_interval",
           "interval_text"]
