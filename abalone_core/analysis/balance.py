"""Who pushes and who pulls on a real batch: attraction, repulsion and gradient shared
between head, medium and tail labels, for a grid of beta and tau.

Chapter 0 shows it in its interactive figure (:func:`balance_grid`, drawn by
:func:`abalone_core.analysis.plots.balance_slider`) after the hand-computed example of
:mod:`abalone_core.analysis.worked_example`. :func:`repulsion_by_label` is each label's share of the
denominators' softmax mass; the attraction and gradient shares come from
:func:`abalone_core.analysis.term_counts` and :func:`abalone_core.analysis.gradient_mass`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation.metrics import group_order


def repulsion_by_label(z, labels, loss: str = "msc", temperature: float = 0.1, beta: float = 0.1,
                       prototypes=None, queue_z=None, queue_y=None) -> np.ndarray:
    """Who pushes: each label's part of the softmax mass of the denominators (used by chapter 0).

    For every anchor i the loss keeps (N(i) > 0 under L_Base, a label under L_MSC),
    key k takes the share ``q_ik = g(k) exp s(i, k) / D_i`` of the anchor's denominator
    (the weight of z_k in the repulsion part of the gradient on z_i). An instance key
    splits q_ik evenly over its labels; prototype c gives it to c. Keys are the other
    batch documents under ``loss="base"`` (g = 1); the batch, the queue (g = beta) and
    the prototypes (g = 1) under ``loss="msc"``.

    Args:
        z: (B, D) anchors; labels: (B, L) 0/1; prototypes: (L, D) (msc only);
        queue_z: (K, D), queue_y: (K, L) (msc only; optional).
    Returns:
        (L,) float64: summed over anchors; each anchor in the loss contributes 1 in
        total, minus what its unlabelled keys take.
    """
    if loss not in ("base", "msc"):
        raise ValueError(f"loss must be 'base' or 'msc', got {loss!r}")
    y = np.asarray(labels, dtype=np.float64)
    x = np.asarray(z, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n_batch, n_labels = y.shape
    keys, key_y = x, y
    if loss == "msc" and queue_z is not None and len(queue_z):
        q = np.asarray(queue_z, dtype=np.float64)
        keys = np.concatenate([x, q / np.linalg.norm(q, axis=1, keepdims=True)])
        key_y = np.concatenate([y, np.asarray(queue_y, dtype=np.float64)])
    logits = x @ keys.T / temperature                                   # (B, M)
    weight = np.full(keys.shape[0], 1.0 if loss == "base" else float(beta))
    exp = np.exp(logits - logits.max()) * weight[None, :]               # a common shift cancels
    exp[np.arange(n_batch), np.arange(n_batch)] = 0.0                   # an anchor is not its own key
    if loss == "msc":
        if prototypes is None:
            raise ValueError("loss='msc' needs prototypes of shape (L, D)")
        c = np.asarray(prototypes, dtype=np.float64)
        c = c / np.linalg.norm(c, axis=1, keepdims=True)
        proto_exp = np.exp(x @ c.T / temperature - logits.max())       # (B, L)
        used = y.sum(axis=1) > 0
    else:
        proto_exp = np.zeros((n_batch, n_labels))
        shared = y @ key_y.T
        np.fill_diagonal(shared, 0.0)
        used = shared.sum(axis=1) > 0
    denom = exp.sum(axis=1) + proto_exp.sum(axis=1)                     # (B,)
    q = exp / denom[:, None]
    q_proto = proto_exp / denom[:, None]
    sizes = key_y.sum(axis=1)
    split = key_y / np.where(sizes > 0, sizes, 1.0)[:, None]            # (M, L)
    per_label = (q[used] @ split).sum(axis=0) + q_proto[used].sum(axis=0)
    return per_label


def balance_grid(z, labels, groups, prototypes, queue_z=None, queue_y=None, betas=(0.01, 0.1, 0.3, 1.0),
                 temperatures=(0.05, 0.1, 0.5)) -> pd.DataFrame:
    """Attraction, repulsion and gradient shares per label group, for a grid of beta and tau
    (used by chapter 0, for :func:`abalone_core.analysis.plots.balance_slider`).

    For each (beta, tau) and each loss (``L_Base`` in-batch, ``L_MSC`` with the queue
    and the prototypes):

    * ``attraction_share``: the group's share of the attraction weights,
      :func:`abalone_core.analysis.term_counts` (labels only: no dependence on tau,
      nor on beta);
    * ``repulsion_share``: the group's share of the softmax mass of the denominators,
      :func:`repulsion_by_label` (who pushes; depends on beta, tau and the vectors);
    * ``gradient_share``: the group's share of the gradient norm on the anchors,
      :func:`abalone_core.analysis.gradient_mass` (``grad_share`` summed over the group).

    Args:
        z: (B, D) anchor vectors; labels: (B, L) 0/1; groups: (L,) head / medium / tail;
        prototypes: (L, D); queue_z, queue_y: (K, D), (K, L) or None.
    Returns:
        Tidy frame: ``beta``, ``temperature``, ``loss``, ``group``, ``attraction_share``,
        ``repulsion_share``, ``gradient_share`` (fractions in [0, 1] that sum to 1 over the
        groups of one (beta, tau, loss)).
    """
    import torch

    from ..method.losses import base_loss, msc_loss
    from .positives import gradient_mass, term_counts

    y = np.asarray(labels).astype(np.int64)
    g = np.asarray(groups).astype(str)
    names = group_order(g)
    protos_t = torch.tensor(np.asarray(prototypes), dtype=torch.float32)
    q_kw = {}
    if queue_z is not None:
        q_kw = {"queue_z": torch.tensor(np.asarray(queue_z), dtype=torch.float32),
                "queue_y": torch.tensor(np.asarray(queue_y), dtype=torch.float32)}
    att = {"L_Base": term_counts(y, "base", groups=g),
           "L_MSC": term_counts(y, "msc", queue_labels=queue_y, groups=g)}
    rows = []
    for beta in betas:
        for tau in temperatures:
            for loss in ("L_Base", "L_MSC"):
                if loss == "L_Base":
                    rep = repulsion_by_label(z, y, "base", tau)
                    grad = gradient_mass(z, y, base_loss, groups=g, temperature=tau)
                else:
                    rep = repulsion_by_label(z, y, "msc", tau, beta, prototypes, queue_z, queue_y)
                    grad = gradient_mass(z, y, msc_loss, groups=g, prototypes=protos_t, temperature=tau,
                                         beta=beta, **q_kw)
                for name in names:
                    sel = g == name
                    rows.append({"beta": float(beta), "temperature": float(tau), "loss": loss, "group": name,
                                 "attraction_share": float(att[loss]["attraction_share"][sel].sum()),
                                 "repulsion_share": float(rep[sel].sum() / rep.sum()),
                                 "gradient_share": float(grad["grad_share"][sel].sum())})
    return pd.DataFrame(rows)
