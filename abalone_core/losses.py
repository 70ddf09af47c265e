"""Losses for long-tailed multi-label classification.

Supervised (on logits): :func:`bce_loss`, :func:`focal_loss`, :func:`asymmetric_loss`.

Contrastive (on projections), the ablation ladder of the paper's Table 2:

=============  =====  ==========  ===========================================
variant        queue  prototypes  attraction / repulsion
=============  =====  ==========  ===========================================
``base``       no     no          Jaccard-weighted SupCon over instances
``bqueue``     yes    no          same, queue keys join the keys H
``bqproto``    yes    yes         same, prototype c is a key with labels {c}
``msc``        yes    yes         per-label iteration (f, N), beta on negatives
=============  =====  ==========  ===========================================

:func:`base_loss` and :func:`msc_loss` are the two named entry points;
:func:`contrastive_loss` covers every variant. All contrastive losses

* L2-normalise ``z``, ``queue_z`` and ``prototypes`` themselves,
* use matrix products only: memory O(B * (B + K + L)), never B x |H| x L,
* run in float32 (float64 if given float64) even under autocast,
* leave out anchors that cannot contribute, and return a zero that still
  back-propagates when no anchor can, so they never give NaN or inf.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

VARIANTS = {
    # name: (uses queue, uses prototypes, balanced per-label form with beta)
    "base": (False, False, False),
    "bqueue": (True, False, False),
    "bqproto": (True, True, False),
    "msc": (True, True, True),
}


# --------------------------------------------------------------------------- #
# Supervised losses (mean over examples and labels, as written in the paper)
# --------------------------------------------------------------------------- #
def _check_logits(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.shape != y.shape or logits.ndim != 2:
        raise ValueError(f"logits {tuple(logits.shape)} and y {tuple(y.shape)} must both be (N, L)")
    _check_binary(y, "y")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return logits.to(dtype), y.to(dtype)


def bce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy. logits, y: (N, L); returns a scalar."""
    logits, y = _check_logits(logits, y)
    with _no_autocast(logits):
        return F.binary_cross_entropy_with_logits(logits, y)


def focal_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): -[y (1-p)^g log p + (1-y) p^g log(1-p)], mean over N x L."""
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    logits, y = _check_logits(logits, y)
    with _no_autocast(logits):
        p = torch.sigmoid(logits)
        pos = y * (1 - p).pow(gamma) * F.logsigmoid(logits)
        neg = (1 - y) * p.pow(gamma) * F.logsigmoid(-logits)
        return -(pos + neg).mean()


def asymmetric_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    gamma_pos: float = 0.0,
    gamma_neg: float = 3.0,
    margin: float = 0.3,
) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al. 2021), mean over N x L.

    Positives: ``y (1-p)^gamma_pos log p``. Negatives use the shifted probability
    ``p_m = max(p - margin, 0)``: ``(1-y) p_m^gamma_neg log(1 - p_m)``. The shift only
    applies to negatives, as in Ridnik et al.; applied to positives it would take the
    log of 0 for every positive predicted below the margin.
    """
    if gamma_pos < 0 or gamma_neg < 0:
        raise ValueError(f"gamma_pos and gamma_neg must be >= 0, got {gamma_pos}, {gamma_neg}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    logits, y = _check_logits(logits, y)
    with _no_autocast(logits):
        p = torch.sigmoid(logits)
        pos = y * (1 - p).pow(gamma_pos) * F.logsigmoid(logits)
        if margin > 0:
            p_m = (p - margin).clamp_min(0)
            # 1 - p_m = min(sigmoid(-x) + margin, 1) >= margin > 0: no log(0) possible.
            log_1m = torch.log((torch.sigmoid(-logits) + margin).clamp_max(1))
        else:
            p_m, log_1m = p, F.logsigmoid(-logits)
        neg = (1 - y) * p_m.pow(gamma_neg) * log_1m
        return -(pos + neg).mean()


# --------------------------------------------------------------------------- #
# Contrastive losses
# --------------------------------------------------------------------------- #
def base_loss(z: torch.Tensor, y: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """L_Base: Jaccard-weighted supervised contrastive loss over the batch.

    Args:
        z: (B, D) projections (normalised inside).
        y: (B, L) multi-hot labels.
        temperature: tau > 0.
    Returns:
        Scalar: mean of l_i over anchors with at least one positive (N(i) > 0).
    """
    return contrastive_loss(z, y, variant="base", temperature=temperature)


def msc_loss(
    z: torch.Tensor,
    y: torch.Tensor,
    prototypes: torch.Tensor,
    temperature: float = 0.1,
    beta: float = 0.1,
    queue_z: torch.Tensor | None = None,
    queue_y: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_MSC (ABALONE): balanced multi-label supervised contrastive loss.

    Args:
        z: (B, D) anchor projections (normalised inside).
        y: (B, L) multi-hot anchor labels.
        prototypes: (L, D) one trainable vector per label (normalised inside).
        temperature: tau > 0.
        beta: weight in (0, 1] of every instance key in the denominator
            (prototypes weigh 1); the numerator is not reweighted.
        queue_z: (K, D) momentum-encoder projections of earlier documents, or None.
        queue_y: (K, L) their labels; required with ``queue_z``.
    Returns:
        Scalar: mean of l_i over anchors with at least one label.
    """
    if prototypes is None:
        raise ValueError("msc_loss needs prototypes of shape (L, D); use contrastive_loss(variant='bqueue') for none")
    return contrastive_loss(
        z, y, variant="msc", temperature=temperature, beta=beta,
        prototypes=prototypes, queue_z=queue_z, queue_y=queue_y,
    )


def contrastive_loss(
    z: torch.Tensor,
    y: torch.Tensor,
    variant: str = "msc",
    temperature: float = 0.1,
    beta: float = 0.1,
    prototypes: torch.Tensor | None = None,
    queue_z: torch.Tensor | None = None,
    queue_y: torch.Tensor | None = None,
) -> torch.Tensor:
    """Any contrastive variant of Table 2 (see the module docstring).

    The keys H are the batch, then the filled queue slots, then the prototypes.
    ``variant`` decides which of ``queue_z``/``prototypes`` are used: passing a queue
    to ``base`` or prototypes to ``bqueue`` is an error rather than silently ignored.
    ``beta`` only matters for ``msc``. Shapes as in :func:`msc_loss`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown contrastive variant {variant!r}; choose one of {sorted(VARIANTS)}")
    use_queue, use_protos, balanced = VARIANTS[variant]
    if not use_queue and (queue_z is not None or queue_y is not None):
        raise ValueError(f"variant {variant!r} uses no queue; pass queue_z=None or use 'bqueue'/'bqproto'/'msc'")
    if not use_protos and prototypes is not None:
        raise ValueError(f"variant {variant!r} uses no prototypes; pass prototypes=None or use 'bqproto'/'msc'")
    if use_protos and prototypes is None:
        raise ValueError(f"variant {variant!r} needs prototypes of shape (L, D)")
    _check_contrastive(z, y, temperature, beta if balanced else 1.0, prototypes, queue_z, queue_y)

    with _no_autocast(z):
        dtype = torch.promote_types(z.dtype, torch.float32)
        z = F.normalize(z.to(dtype), dim=1)
        A = y.to(dtype)  # (B, L) anchor labels
        B = z.shape[0]
        keys, key_y = [z], [A]
        if queue_z is not None and queue_z.shape[0] > 0:
            keys.append(F.normalize(queue_z.to(dtype), dim=1))
            key_y.append(queue_y.to(dtype))
        Z_H = torch.cat(keys)    # (M, D) instance keys: batch then queue
        Y_H = torch.cat(key_y)   # (M, L)
        M = Z_H.shape[0]

        logits = z @ Z_H.T / temperature                    # (B, M)
        off_self = torch.ones(B, M, dtype=torch.bool, device=z.device)
        off_self[:, :B].fill_diagonal_(False)
        # Log-weights of the denominator: beta for instance keys, 1 for prototypes.
        log_g = torch.log(torch.tensor(beta if balanced else 1.0, dtype=dtype, device=z.device))
        masked = logits.masked_fill(~off_self, torch.finfo(dtype).min) + log_g
        if use_protos:
            C = F.normalize(prototypes.to(dtype), dim=1)
            proto_logits = z @ C.T / temperature            # (B, L)
            denom = torch.logsumexp(torch.cat([masked, proto_logits], dim=1), dim=1, keepdim=True)
            log_p_proto = proto_logits - denom
        else:
            denom = torch.logsumexp(masked, dim=1, keepdim=True)
        # Self entries are never weighted; zero them so 0 * (huge) cannot appear.
        log_p = torch.where(off_self, logits - denom, torch.zeros_like(logits))  # (B, M)

        n_labels = A.sum(1)                                 # |y_i|, (B,)
        inter = A @ Y_H.T                                   # |y_i ∩ y_l|, (B, M)
        union = n_labels[:, None] + Y_H.sum(1)[None, :] - inter  # |y_i ∪ y_l|
        # union is a count: where it is 0 the intersection is 0 too, so clamping is exact.
        inv_union = off_self.to(dtype) / union.clamp_min(1)  # O / U, (B, M)

        if balanced:
            # N(i,c) = sum over other keys carrying c of 1/u(i,l), + 1 for prototype c.
            N = inv_union @ Y_H + 1                         # (B, L), >= 1
            a_over_n = A / N                                # prototype weights
            W = inv_union * ((a_over_n @ Y_H.T))            # instance weights, (B, M)
            attract = (W * log_p).sum(1) + (a_over_n * log_p_proto).sum(1)
            valid = n_labels > 0
            per_anchor = -attract / torch.where(valid, n_labels, torch.ones_like(n_labels))
        else:
            W = inter * inv_union                           # Jaccard, 0 on self
            attract = (W * log_p).sum(1)
            norm = W.sum(1)
            if use_protos:
                # Prototype c has label set {c}: Jaccard = 1/|y_i| if c in y_i, else 0.
                W_p = A / (n_labels[:, None] + 1 - A)
                attract = attract + (W_p * log_p_proto).sum(1)
                norm = norm + W_p.sum(1)
            valid = norm > 0
            per_anchor = -attract / torch.where(valid, norm, torch.ones_like(norm))

        if not valid.any():
            return (z.sum() * 0.0) + (0.0 if prototypes is None else prototypes.sum() * 0.0)
        return per_anchor[valid].mean()


# --------------------------------------------------------------------------- #
# Checks
# --------------------------------------------------------------------------- #
def _no_autocast(t: torch.Tensor):
    """Disable autocast on the tensor's device so the loss runs in float32."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def _check_binary(y: torch.Tensor, name: str) -> None:
    if y.dtype != torch.bool and not ((y == 0) | (y == 1)).all():
        raise ValueError(f"{name} must be multi-hot with 0/1 entries only (threshold or binarise your labels)")


def _check_contrastive(z, y, temperature, beta, prototypes, queue_z, queue_y) -> None:
    if z.ndim != 2:
        raise ValueError(f"z must be (B, D), got shape {tuple(z.shape)}")
    if y.ndim != 2 or y.shape[0] != z.shape[0]:
        raise ValueError(f"y must be (B, L) with B = {z.shape[0]} rows like z, got shape {tuple(y.shape)}")
    if z.shape[0] == 0:
        raise ValueError("empty batch: z has no rows")
    _check_binary(y, "y")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0 < beta <= 1:
        raise ValueError(f"beta must be in (0, 1], got {beta}")
    B, D = z.shape
    L = y.shape[1]
    if prototypes is not None and tuple(prototypes.shape) != (L, D):
        raise ValueError(
            f"prototypes must be (L, D) = ({L}, {D}): one vector per label, got {tuple(prototypes.shape)}"
        )
    if (queue_z is None) != (queue_y is None):
        raise ValueError("queue_z and queue_y go together: pass both (features and their labels) or neither")
    if queue_z is not None:
        if queue_z.ndim != 2 or queue_z.shape[1] != D:
            raise ValueError(f"queue_z must be (K, D={D}), got {tuple(queue_z.shape)}")
        if queue_y.ndim != 2 or tuple(queue_y.shape) != (queue_z.shape[0], L):
            raise ValueError(f"queue_y must be (K={queue_z.shape[0]}, L={L}), got {tuple(queue_y.shape)}")
        _check_binary(queue_y, "queue_y")
