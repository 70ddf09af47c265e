"""The paper's claims about its losses, checked against a table of finished runs.

Each claim compares two objectives on one metric, seed by seed::

    L_MSC above L_Base in macro-F1             (Tables 2 and 3)
    each component adds macro-F1               (Table 2: queue, then prototypes, then reweighting)
    L_MSC on par with BCE in micro-F1          (Table 3)
    L_MSC clusters better than L_Base          (Table 4: higher silhouette, lower Davies-Bouldin)

>>> runs = sweep.records_table("results/sweep_cpu/runs.jsonl")
>>> check_claims(runs)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Claim:
    """``better`` compared with ``worse`` on ``metric``.

    ``direction`` is +1 when higher is better (F1, silhouette) and -1 when lower is better
    (Hamming loss, Davies-Bouldin). ``tolerance`` > 0 turns "above" into "on par": the claim
    holds on a seed when ``better`` is at most ``tolerance`` points below ``worse``.
    """

    name: str
    better: str
    worse: str
    metric: str
    direction: int = 1
    tolerance: float = 0.0


CLAIMS = (
    Claim("L_MSC above L_Base in macro-F1", "msc", "base", "macro_f1"),
    Claim("queue adds macro-F1 (L_BQueue above L_Base)", "bqueue", "base", "macro_f1"),
    Claim("prototypes add macro-F1 (L_BQProto above L_BQueue)", "bqproto", "bqueue", "macro_f1"),
    Claim("reweighting adds macro-F1 (L_MSC above L_BQProto)", "msc", "bqproto", "macro_f1"),
    Claim("L_MSC on par with BCE in micro-F1 (at most 1 point below)", "msc", "bce", "micro_f1", tolerance=1.0),
    Claim("L_MSC clusters better than L_Base (silhouette)", "msc", "base", "silhouette"),
    Claim("L_MSC clusters better than L_Base (Davies-Bouldin)", "msc", "base", "davies_bouldin", direction=-1),
)


def check_claims(runs: pd.DataFrame, claims=CLAIMS, by: str = "dataset", pair: str = "seed",
                 reference: str | None = "frozen") -> pd.DataFrame:
    """Check each claim on each ``by`` value (dataset), pairing runs by ``pair`` (seed).

    Args:
        runs: one row per finished run with columns ``objective``, ``by``, ``pair`` and the
            claims' metrics (e.g. :func:`abalone_core.sweep.records_table`).
        claims: :class:`Claim` objects.
    Returns:
        One row per (dataset, claim): ``better`` / ``worse`` means, ``difference`` (mean of
        the per-seed differences better - worse, in the metric's units), ``std`` of those
        differences, ``seeds`` (pairs where both ran), ``holds_on`` (how many of them satisfy
        the claim) and ``verdict``: ``holds`` (every seed), ``fails`` (no seed), ``mixed``,
        or ``not run`` when an objective or metric is missing; ``caveat``: the objectives of
        the claim whose mean is worse than ``reference``'s (the untrained encoder's linear
        probe), i.e. that have not learned anything useful within the budget, which makes a
        comparison with them say little.
    """
    missing = [c for c in ("objective", by, pair) if c not in runs.columns]
    if missing:
        raise ValueError(f"runs lacks the columns {missing}; it has {sorted(runs.columns)}")
    out = []
    for value in pd.unique(runs[by]):
        part = runs[runs[by] == value]
        for claim in claims:
            row = {by: value, "claim": claim.name, "metric": claim.metric}
            wide = (part.pivot_table(index=pair, columns="objective", values=claim.metric, aggfunc="mean")
                    if claim.metric in part.columns else pd.DataFrame())
            if claim.better not in wide or claim.worse not in wide:
                out.append({**row, "seeds": 0, "holds_on": 0, "verdict": "not run"})
                continue
            both = wide[[claim.better, claim.worse]].dropna()
            diff = (both[claim.better] - both[claim.worse]).to_numpy(float)
            n = len(diff)
            holds = int((claim.direction * diff > -claim.tolerance).sum())
            verdict = ("not run" if n == 0 else "holds" if holds == n else "fails" if holds == 0 else "mixed")
            caveat = ""
            if reference in wide and n:
                floor = wide[reference].mean()
                weak = [o for o in (claim.better, claim.worse) if claim.direction * (both[o].mean() - floor) < 0]
                if weak and reference not in (claim.better, claim.worse):
                    caveat = f"{' and '.join(weak)} below {reference}: undertrained"
            out.append({**row, "caveat": caveat, "better": float(both[claim.better].mean()) if n else np.nan,
                        "worse": float(both[claim.worse].mean()) if n else np.nan,
                        "difference": float(diff.mean()) if n else np.nan,
                        "std": float(diff.std(ddof=1)) if n > 1 else np.nan,
                        "seeds": n, "holds_on": holds, "verdict": verdict})
    columns = [by, "claim", "metric", "better", "worse", "difference", "std", "seeds", "holds_on", "verdict",
               "caveat"]
    return pd.DataFrame(out).reindex(columns=columns)


__all__ = ["Claim", "CLAIMS", "check_claims"]
