"""Did a run converge? The rule every run record states (``converged`` in ``metrics.json``).

Two rules, one per way of training:

* **early stopping** (``early_stopping: p`` in the configuration; the grids of chapter 8):
  the step budget is a cap shared by every row, the learning rate stays constant after
  warm-up, and a run stops once its selection metric has not improved by more than the
  tolerance below for ``p`` evaluations in a row (:func:`early_stopping`). A run that
  stopped so has converged; one that reached the cap first has not. Because the learning
  rate does not decay, a plateau is the model's, not the schedule's.
* **fixed budget** (no ``early_stopping``): a run has converged when its selection metric
  stopped improving over the last quarter of its budget (:func:`convergence`). Under a
  schedule that decays to zero this is flattered: a run whose learning rate is near zero in
  its last quarter looks converged whatever it has learnt.

The selection metrics and tolerances are the same for both rules:

* contrastive rows select on the validation loss: converged when the best loss of the last
  quarter is less than 1 % below the best loss before it. The loss judged is the one on
  in-batch keys (``val_loss_in_batch``, :meth:`abalone_core.method.model.ContrastiveModel.validation_losses`):
  the training loss also contrasts with the queue, whose keys come from the momentum
  encoder and keep moving for about ``1 / (1 - momentum)`` steps after the encoder stops,
  so it can fall in the last quarter while nothing is learnt. Records written before that
  loss was kept are judged on ``val_loss``;
* rows that train a classifier select on validation micro-F1: converged when the best F1 of
  the last quarter is less than 0.5 points above the best F1 before it.

A comparison with a row that has not converged is "not testable" (:mod:`abalone_core.report.claims`).
Used by :mod:`abalone_core.training.runs` and chapter 8.
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


def improved(value: float, reference: float, metric: str) -> bool:
    """Whether ``value`` beats ``reference`` by more than the metric's tolerance (relative
    for a loss, in points for F1)."""
    if metric in LOSSES:
        return (reference - value) / max(abs(reference), 1e-12) > LOSS_TOLERANCE
    return value - reference > F1_TOLERANCE


def early_stopping(history: list[dict], metric: str, patience: int, cap: int | None = None) -> dict:
    """The early-stopping rule over the evaluation records of one run, in step order.

    The reference is the first evaluation, then each evaluation that beats the reference by
    more than the tolerance (:func:`improved`); the run stops at the ``patience``-th
    evaluation in a row that does not.

    Args:
        history: records of ``history.jsonl`` (``step`` and the metric).
        metric: ``val_loss``/``val_loss_in_batch`` (lower is better) or ``val_micro_f1``.
        patience: evaluations without improvement that stop the run (>= 1).
        cap: the step budget; with it, a run that has not stopped by ``cap`` is reported as
            not converged.
    Returns:
        dict with ``rule`` ("early_stopping"), ``metric``, ``patience``, ``tolerance``,
        ``stop`` (the rule fired), ``stopped_at`` (its step, else None), ``reference_step``
        (the last evaluation that improved), ``evaluations``, ``cap``, and ``converged``:
        True when the rule fired, False when the run reached ``cap`` without it, None when
        neither is known yet.
    """
    if metric not in LOSSES + ("val_micro_f1",):
        raise ValueError(f"metric must be one of {LOSSES + ('val_micro_f1',)}, got {metric!r}")
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    points = [(r["step"], r[metric]) for r in history
              if metric in r and r[metric] is not None and math.isfinite(r[metric])]
    reference = reference_step = stopped_at = None
    since = 0
    for step, value in points:
        if reference is None or improved(value, reference, metric):
            reference, reference_step, since = value, step, 0
            continue
        since += 1
        if since >= patience:
            stopped_at = step
            break
    last = points[-1][0] if points else 0
    converged = True if stopped_at is not None else (False if cap is not None and last >= cap else None)
    return {"rule": "early_stopping", "metric": metric, "patience": patience,
            "tolerance": LOSS_TOLERANCE if metric in LOSSES else F1_TOLERANCE, "stop": stopped_at is not None,
            "stopped_at": stopped_at, "reference_step": reference_step, "evaluations": len(points), "cap": cap,
            "converged": converged}


__all__ = ["convergence", "contrastive_metric", "early_stopping", "improved", "LOSS_TOLERANCE", "F1_TOLERANCE"]
