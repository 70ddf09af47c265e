"""Did a run converge? The rule every run record states (``converged`` in ``metrics.json``).

A run has converged when its selection metric stopped improving over the last quarter of
its budget:

* contrastive rows select on the validation loss: converged when the best loss of the last
  quarter is less than 1 % below the best loss before it. The loss judged is the one on
  in-batch keys (``val_loss_in_batch``, :meth:`abalone_core.model.ContrastiveModel.validation_losses`):
  the training loss also contrasts with the queue, whose keys come from the momentum
  encoder and keep moving for about ``1 / (1 - momentum)`` steps after the encoder stops,
  so it can fall in the last quarter while nothing is learnt. Records written before that
  loss was kept are judged on ``val_loss``;
* rows that train a classifier select on validation micro-F1: converged when the best F1 of
  the last quarter is less than 0.5 points above the best F1 before it.

A comparison with a row that has not converged is "not testable" (:mod:`abalone_core.claims`).
Used by :mod:`abalone_core.runs` and chapter 8.
"""
from __future__ import annotations

import math

LOSS_TOLERANCE = 0.01  # relative improvement of the validation loss
F1_TOLERANCE = 0.5  # points of validation micro-F1
LOSSES = ("val_loss", "val_loss_in_batch")


def contrastive_metric(history: list[dict]) -> str:
    """The loss a contrastive run is judged on: ``val_loss_in_batch`` when its history has it
    (every run since that loss was recorded), else ``val_loss``."""
    return "val_loss_in_batch" if any("val_loss_in_batch" in r for r in history) else "val_loss"


def convergence(history: list[dict], total_steps: int, metric: str) -> dict:
    """Judge convergence from the evaluation records of one run.

    Args:
        history: records of ``history.jsonl`` (``step`` and the metric), in step order.
        total_steps: the run's optimiser-step budget.
        metric: ``val_loss`` or ``val_loss_in_batch`` (lower is better) or ``val_micro_f1``
            (higher is better).
    Returns:
        dict with ``converged`` (True, False, or None when the history cannot tell: fewer than
        one evaluation in each of the first three quarters and the last), ``metric``,
        ``improvement`` in the last quarter (relative for the loss, points for F1),
        ``tolerance`` and ``evaluations``.
    """
    if metric not in LOSSES + ("val_micro_f1",):
        raise ValueError(f"metric must be one of {LOSSES + ('val_micro_f1',)}, got {metric!r}")
    lower = metric in LOSSES
    cut = 0.75 * total_steps
    points = [(r["step"], r[metric]) for r in history
              if metric in r and r[metric] is not None and math.isfinite(r[metric])]
    before = [v for s, v in points if s <= cut]
    last = [v for s, v in points if s > cut]
    out = {"metric": metric, "tolerance": LOSS_TOLERANCE if lower else F1_TOLERANCE, "evaluations": len(points)}
    if not before or not last:
        return {**out, "converged": None, "improvement": None}
    if lower:
        best_before, best_last = min(before), min(last)
        improvement = (best_before - best_last) / max(abs(best_before), 1e-12)
    else:
        improvement = max(last) - max(before)
    return {**out, "converged": bool(improvement < out["tolerance"]), "improvement": float(improvement)}


__all__ = ["convergence", "contrastive_metric", "LOSS_TOLERANCE", "F1_TOLERANCE"]
