"""Embedding, prediction and scoring: linear evaluation of an encoder, test scores of a classifier."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.batching import make_loader
from .metrics import (best_global_threshold, grouped_f1, label_thresholds, multilabel_scores, per_label_f1,
                      ranking_scores)
from .probe import ProbeConfig, linear_probe
from ..training.run_folder import read_metrics  # noqa: F401  (also importable from here)


def _batches(ids, labels, batch_size, pad_token_id, desc, progress):
    labels = np.zeros((len(ids), 1), dtype=np.float32) if labels is None else labels
    loader = make_loader(ids, labels, batch_size, pad_token_id, shuffle=False, seed=0, sort_by_length=True)
    return tqdm(loader, desc=desc, leave=False, disable=not progress)


@torch.no_grad()
def embed(encoder, ids, pad_token_id: int, batch_size: int = 64, device="cpu", progress: bool = True) -> np.ndarray:
    """Document representations with the projection head discarded.

    Args:
        encoder: a :class:`~abalone_core.method.model.TextEncoder`.
        ids: N token-id lists (from :func:`abalone_core.data.batching.tokenize`).
    Returns:
        (N, hidden) float32 array, in the order of ``ids`` (batches are sorted by length
        for speed and put back in order).
    """
    encoder.eval()
    out = None
    for batch in _batches(ids, None, batch_size, pad_token_id, "embed", progress):
        h = encoder.represent(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        if out is None:
            out = np.zeros((len(ids), h.shape[1]), dtype=np.float32)
        out[batch["index"].numpy()] = h.float().cpu().numpy()
    return out


@torch.no_grad()
def predict_proba(model, ids, pad_token_id: int, batch_size: int = 64, device="cpu", progress: bool = True) -> np.ndarray:
    """(N, L) sigmoid probabilities of a :class:`~abalone_core.method.model.TextClassifier`, in input order."""
    model.eval()
    out = None
    for batch in _batches(ids, None, batch_size, pad_token_id, "predict", progress):
        p = torch.sigmoid(model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).float())
        if out is None:
            out = np.zeros((len(ids), p.shape[1]), dtype=np.float32)
        out[batch["index"].numpy()] = p.cpu().numpy()
    return out


def score(y_true, y_pred, train_label_counts) -> dict:
    """Paper metrics plus per-label F1 and head / medium / tail macro-F1.

    Returns:
        dict with ``micro_f1``, ``macro_f1`` (percent), ``hamming`` (x 10^3),
        ``f1_head``/``f1_medium``/``f1_tail`` (percent) and ``per_label_f1`` (list).
    """
    out = multilabel_scores(y_true, y_pred)
    out.update({f"f1_{g}": v for g, v in grouped_f1(y_true, y_pred, train_label_counts).items()})
    out["per_label_f1"] = per_label_f1(y_true, y_pred).tolist()
    return out


DECISION_RULES = {
    "": "0.5 (the released code's rule; the paper states none)",
    "_tuned": "one threshold for every label, tuned on validation micro-F1",
    "_label_tuned": "one threshold per label, each tuned on validation F1",
}


def split_scores(labels: dict, probs: dict, train_label_counts, n_train: int, threshold: float = 0.5,
                 decision_values: bool = False) -> dict:
    """Validation and test scores of one row's scores, under three decision rules.

    The same function scores every row (linear probe, classifiers, TF-IDF), so that a
    comparison of F1 never mixes decision rules (:data:`DECISION_RULES`):

    * at ``threshold`` (0.5 for probabilities): ``micro_f1``, ``macro_f1``, ``hamming``,
      ``f1_head``/``f1_medium``/``f1_tail``, ``per_label_f1`` (see :func:`score`);
    * at one global threshold tuned on the validation split (never on test):
      ``micro_f1_tuned``, ``macro_f1_tuned``, ``hamming_tuned``;
    * at one threshold per label tuned on the validation split
      (:func:`abalone_core.evaluation.metrics.label_thresholds`; a label without a validation positive
      keeps the global tuned threshold): ``micro_f1_label_tuned``, ``macro_f1_label_tuned``,
      ``hamming_label_tuned``, ``f1_head_label_tuned``/``f1_medium_label_tuned``/``f1_tail_label_tuned``;
    * ranking scores, which need no threshold: P@k, nDCG@k, propensity-scored P@k and
      mAP (:func:`abalone_core.evaluation.metrics.ranking_scores`).

    Args:
        labels, probs: ``{"validation": (M, L), "test": (T, L)}`` 0/1 labels and scores.
        train_label_counts: (L,) training label counts; n_train: training documents.
        threshold: the fixed threshold, in the scores' units.
        decision_values: the scores are a linear model's decision values (any real number)
            rather than probabilities; the global threshold is then tuned on their sigmoid.
    Returns:
        ``{"validation": {...}, "test": {...}, "threshold": threshold, "tuned_threshold": t,
        "label_thresholds": [...]}`` (thresholds in the scores' units).
    """
    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(v, dtype=np.float64), -50, 50)))

    as_prob = sigmoid if decision_values else (lambda v: v)
    tuned_p = best_global_threshold(labels["validation"], as_prob(probs["validation"]))
    tuned = float(np.log(tuned_p / (1 - tuned_p))) if decision_values else tuned_p
    per_label = label_thresholds(labels["validation"], probs["validation"], fallback=tuned)
    out = {}
    for s in ("validation", "test"):
        y, p = labels[s], probs[s]
        d = score(y, (p >= threshold).astype(np.int8), train_label_counts)
        d.update({f"{k}_tuned": v for k, v in multilabel_scores(y, (as_prob(p) >= tuned_p).astype(np.int8)).items()})
        by_label = (p >= per_label).astype(np.int8)
        d.update({f"{k}_label_tuned": v for k, v in multilabel_scores(y, by_label).items()})
        d.update({f"f1_{g}_label_tuned": v for g, v in grouped_f1(y, by_label, train_label_counts).items()})
        d.update(ranking_scores(y, p, train_label_counts, n_train=n_train))
        out[s] = d
    out["threshold"], out["tuned_threshold"] = float(threshold), float(tuned)
    out["label_thresholds"] = per_label.tolist()
    return out


def save_scores(path, probs: dict) -> Path:
    """Write a run's validation and test scores (float16, compressed ``.npz``) beside its
    record, so that any decision rule or metric can be recomputed without training.

    Args:
        probs: ``{"validation": (M, L), "test": (T, L)}`` probabilities or decision values.
    """
    from .. import atomic

    path = Path(path)
    with atomic.atomic_open(path, "wb") as f:
        np.savez_compressed(f, **{s: np.asarray(v, dtype=np.float16) for s, v in probs.items()})
    return path


def read_scores(path) -> dict:
    """``{"validation": (M, L), "test": (T, L)}`` float32 scores written by :func:`save_scores`."""
    with np.load(Path(path)) as z:
        return {k: z[k].astype(np.float32) for k in z.files}


def linear_evaluation(features: dict, labels: dict, train_label_counts, probe: ProbeConfig | None = None,
                      progress: bool = True, keep_scores: bool = False) -> dict:
    """The paper's linear evaluation on cached features.

    Args:
        features: ``{"train": (N, D), "validation": (M, D), "test": (T, D)}`` arrays.
        labels: the same splits' (., L) 0/1 label arrays.
        train_label_counts: (L,) training label counts (for the head / medium / tail groups).
        probe: grid settings; paper defaults when None.
    Returns:
        dict with ``validation`` and ``test`` scores (see :func:`split_scores`; F1 at the
        probe's threshold and at a global threshold tuned on validation) and the per-label
        ``best_lr`` / ``best_weight_decay`` chosen on validation; with ``keep_scores``, also
        ``scores``: the probe's validation and test probabilities (arrays, for :func:`save_scores`).
    """
    probe = probe or ProbeConfig()
    result = linear_probe(features["train"], labels["train"], features["validation"], labels["validation"],
                          probe, progress=progress)
    probs = {s: result.predict_proba(features[s]) for s in ("validation", "test")}
    out = split_scores(labels, probs, train_label_counts, n_train=len(labels["train"]), threshold=probe.threshold)
    out.update(best_lr=result.best_lr.tolist(), best_weight_decay=result.best_weight_decay.tolist())
    if keep_scores:
        out["scores"] = probs
    return out
