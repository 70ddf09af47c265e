"""Losses for long-tailed multi-label classification.

Supervised (on logits): :func:`bce_loss`, :func:`focal_loss`, :func:`asymmetric_loss`,
and the distribution-balanced loss :func:`db_loss` (a comparison row; it needs the
training label counts). ``SUPERVISED_LOSSES`` maps names to these functions.

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
:func:`contrastive_loss` covers every variant. :func:`mulsupcon_loss` (Zhang and Wu,
AAAI 2024) is a comparison row outside the ladder: it is not in ``VARIANTS`` (whose
flags drive the model's queue and prototypes) but in ``OTHER_CONTRASTIVE``, a
name -> function mapping with the call ``fn(z, y, temperature=, queue_z=, queue_y=)``.
All contrastive losses

* L2-normalise ``z``, ``queue_z`` and ``prototypes`` themselves (exactly, at any finite
  norm: rows are scaled by their largest entry first),
* refuse NaN or inf in any of them with a :class:`NonFiniteError` (a ``ValueError``)
  naming the tensor,
* use matrix products only: memory O(B * (B + K + L)), never B x |H| x L,
* run in float32 (float64 if given float64) even under autocast,
* leave out anchors that cannot contribute, and return a zero that still
  back-propagates when no anchor can, so they never give NaN or inf.
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

from ..data.labels import check_label_tensor

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
    _check_finite(logits, "logits")
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
    _check_finite(z, "z", prototypes, "prototypes", queue_z, "queue_z")

    with _no_autocast(z):
        z, A, Z_H, Y_H, off_self = _instance_keys(z, y, queue_z, queue_y)
        dtype = z.dtype
        logits = z @ Z_H.T / temperature                    # (B, M)
        # Log-weights of the denominator: beta for instance keys, 1 for prototypes.
        log_g = torch.log(torch.tensor(beta if balanced else 1.0, dtype=dtype, device=z.device))
        if use_protos:
            C = _unit(prototypes.to(dtype))
            proto_logits = z @ C.T / temperature            # (B, L)
            log_p, denom = _log_softmax_off_self(logits, off_self, log_g, proto_logits)
            log_p_proto = proto_logits - denom
        else:
            log_p, _ = _log_softmax_off_self(logits, off_self, log_g)

        n_labels, inter, inv_union = label_overlap(A, Y_H, off_self)

        if balanced:
            N = msc_counts(inv_union, Y_H)                  # N(i, c), (B, L), >= 1
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


def label_overlap(A, Y_H, off_self):
    """How the label sets of anchors and keys overlap: what L_Base and L_MSC weigh pairs by.

    Takes torch tensors or numpy arrays (the analysis of :mod:`abalone_core.analysis`
    uses the same weights on label matrices).

    Args:
        A: (B, L) 0/1 anchor labels (float).
        Y_H: (M, L) 0/1 key labels, same dtype.
        off_self: (B, M) bool, False where key l is anchor i itself.
    Returns:
        ``(n_labels, inter, inv_union)``: |y_i| (B,), |y_i ∩ y_l| (B, M), and
        1 / |y_i ∪ y_l| (B, M), 0 where l is i. A union is a count, 0 only where the
        intersection is 0 too; it is taken as 1 there, so every weight built on it is exact.
    """
    n_labels = A.sum(1)
    inter = A @ Y_H.T
    union = n_labels[:, None] + Y_H.sum(1)[None, :] - inter
    return n_labels, inter, off_self / (union + (union == 0))


def msc_counts(inv_union, Y_H):
    """N(i, c) of L_MSC: the sum over the keys l != i carrying c of 1 / u(i, l), plus 1
    for prototype c. inv_union (B, M) from :func:`label_overlap`, Y_H (M, L), tensors or
    arrays; returns (B, L), >= 1."""
    return inv_union @ Y_H + 1


def mulsupcon_loss(
    z: torch.Tensor,
    y: torch.Tensor,
    temperature: float = 0.1,
    queue_z: torch.Tensor | None = None,
    queue_y: torch.Tensor | None = None,
) -> torch.Tensor:
    """MulSupCon (Zhang and Wu, "Multi-Label Supervised Contrastive Learning", AAAI 2024).

    Every (document, label) pair with ``y[i, c] = 1`` is an anchor of its own. Over the
    keys H (the batch, then the queue) and with s(i, a) = <z_i, h_a> / tau on unit
    vectors::

        A(i)    = H minus {i}                    (the other batch documents and the queue)
        P(i, c) = {a in A(i) : y_ac = 1}
        S       = {(i, c) : y_ic = 1 and |P(i, c)| > 0}
        l(i, c) = -1/|P(i, c)| * sum_{p in P(i, c)} [ s(i, p) - log sum_{a in A(i)} exp s(i, a) ]
        loss    = 1/|S| * sum_{(i, c) in S} l(i, c)

    Normalisation: a plain mean over all (document, label) anchors, so a document
    with k labels weighs k times one with a single label. This is the authors'
    released default (williamzhangsjtu/MulSupCon, ``codes/utils.py``
    ``generate_output_MulSupCon`` gives every anchor the weight 1/|S|, the number of
    anchors, unless ``with_weight`` is set; ``codes/config/pretrain_yeast.yaml`` has
    ``with_weight: False``; ``codes/losses.py`` ``WeightedSupCon`` sums the weighted
    per-anchor SupCon terms). Their ``with_weight: True`` alternative, 1/(|y_i| B)
    (mean per document first), is not what their configuration uses.

    Differences from the released code, both needed for one view of text: the
    anchor's own entry is left out of H (as in the ladder's variants; their keys are
    momentum keys of a second view, so the anchor's key is among them), and pairs
    with no positive are dropped from S (their code never meets one because of that
    own key). The softmax does not depend on c, so one log-softmax per document
    serves all its labels. With one-hot labels this is SupCon (Khosla et al. 2020)
    with one view, averaged over anchors with a positive.

    Args:
        z: (B, D) projections (normalised inside).
        y: (B, L) multi-hot labels.
        temperature: tau > 0 (0.1 in the authors' configuration).
        queue_z: (K, D) projections of earlier documents, or None.
        queue_y: (K, L) their labels; required with ``queue_z``.
    Returns:
        Scalar. A differentiable zero when no pair has a positive.
    Cost:
        memory O(B * (B + K + L)): the sums over positives are the products
        ``log_p @ Y_H`` and ``O @ Y_H`` ((B, M) by (M, L), log_p zero on the anchor,
        O the off-self mask), never a (B, L, B + K) tensor.
    """
    _check_contrastive(z, y, temperature, 1.0, None, queue_z, queue_y)
    _check_finite(z, "z", queue_z, "queue_z")
    with _no_autocast(z):
        z, A, Z_H, Y_H, off_self = _instance_keys(z, y, queue_z, queue_y)
        log_p, _ = _log_softmax_off_self(z @ Z_H.T / temperature, off_self)  # (B, M), 0 on self
        O = off_self.to(z.dtype)
        n_pos = O @ Y_H                                     # |P(i, c)|, (B, L)
        attract = log_p @ Y_H                               # sum over P(i, c) of log p, (B, L)
        valid = (A > 0) & (n_pos > 0)
        if not valid.any():
            return z.sum() * 0.0
        per_pair = -attract / torch.where(valid, n_pos, torch.ones_like(n_pos))
        return per_pair[valid].mean()


def db_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    class_counts: torch.Tensor,
    n_train: int,
    alpha: float = 0.1,
    beta: float = 10.0,
    mu: float = 0.9,
    kappa: float = 0.05,
    lam: float = 2.0,
    focal: bool = True,
    gamma: float = 2.0,
    focal_alpha: float = 0.5,
) -> torch.Tensor:
    """Distribution-balanced loss (Wu et al., ECCV 2020) as used for multi-label text
    classification by Huang et al., EMNLP 2021 ("Balancing Methods for Multi-label Text
    Classification with Long-Tailed Class Distribution"), mean over N x L.

    With n_c the training documents carrying label c and N = ``n_train``:

    * re-balanced weight, the same for positives and negatives of document i::

          r_ic   = (1/n_c) / sum_{c' in y_i} (1/n_c')          # P^C_c / P^I_i
          rhat_ic = alpha + sigmoid(beta * (r_ic - mu))

      A document without labels has P^I = 0, r = inf and takes the limit
      rhat = alpha + 1 (alpha + 0.5 when beta = 0, where the map is constant).
    * negative-tolerant regularisation on the shifted logit x = z + kappa * b_c,
      b_c = -log(N / n_c - 1) = log(p_c / (1 - p_c)), p_c = n_c / N (the class prior's
      logit; a fixed shift, added as in the released code)::

          pos: y     * rhat * log(1 + exp(-x))
          neg: (1-y) * rhat / lam * log(1 + exp(lam * x))

    * focal term (on when ``focal``): the positive term times
      focal_alpha * (1 - sigmoid(x))^gamma, the negative term times
      (1 - focal_alpha) * sigmoid(lam * x)^gamma (the focal probability of the
      negative is taken on the scaled logit lam * x, as in the released code).

    Defaults: the text paper's DB configuration, Roche/BalancedLossNLP
    ``Reuters/train.py`` ("DBloss"): ``ResampleLoss(reweight_func='rebalance',
    focal=dict(focal=True, alpha=0.5, gamma=2), logit_reg=dict(init_bias=0.05,
    neg_scale=2.0), map_param=dict(alpha=0.1, beta=10.0, gamma=0.9), loss_weight=1.0)``:
    alpha 0.1, beta 10, mu 0.9 (the map's ``gamma``), kappa 0.05 (``init_bias``),
    lam 2 (``neg_scale``), focal on with gamma 2 and focal_alpha 0.5. Their
    ``PubMed/train.py`` differs only in mu = 0.05. The formula follows
    ``Reuters/util_loss.py`` ``ResampleLoss`` (reduction ``mean``, no weight
    normalisation).

    Args:
        logits: (N, L) classifier outputs.
        y: (N, L) multi-hot labels.
        class_counts: (L,) training documents per label; counts are clamped to
            [1, n_train - 1] so a label absent from (or on every) training document
            keeps a finite weight and bias.
        n_train: number of training documents (>= 2), labelled or not.
    Returns:
        Scalar.
    """
    if not lam > 0:
        raise ValueError(f"lam (negative scale) must be > 0, got {lam}")
    if not (gamma >= 0 and alpha >= 0 and beta >= 0):
        raise ValueError(f"gamma, alpha and beta must be >= 0, got {gamma}, {alpha}, {beta}")
    if not (kappa >= 0 and 0 <= focal_alpha <= 1):
        raise ValueError(f"kappa must be >= 0 and focal_alpha in [0, 1], got {kappa}, {focal_alpha}")
    try:
        n_train = operator.index(n_train)
    except TypeError:
        raise ValueError(f"n_train must be an integer (training documents), got {n_train!r}") from None
    if n_train < 2:
        raise ValueError(f"n_train must be >= 2 (training documents), got {n_train}")
    logits, y = _check_logits(logits, y)
    counts = torch.as_tensor(class_counts, device=logits.device)
    if tuple(counts.shape) != (y.shape[1],):
        raise ValueError(f"class_counts must be (L,) = ({y.shape[1]},), got {tuple(counts.shape)}")
    if not (torch.isfinite(counts).all() and (counts >= 0).all() and (counts <= n_train).all()):
        raise ValueError(f"class_counts must be finite counts in [0, n_train = {n_train}]")
    with _no_autocast(logits):
        counts = counts.to(logits.dtype).clamp(1, n_train - 1)
        inv = 1.0 / counts                                  # (L,) proportional to P^C
        p_inst = y @ inv                                    # (N,) proportional to P^I
        has = (p_inst > 0)[:, None]
        r = inv[None, :] / torch.where(has, p_inst[:, None], torch.ones_like(p_inst[:, None]))
        limit = 1.0 if beta > 0 else 0.5
        rhat = alpha + torch.where(has, torch.sigmoid(beta * (r - mu)), torch.full_like(r, limit))
        x = logits + kappa * (torch.log(counts) - torch.log(n_train - counts))
        pos = -F.logsigmoid(x)                              # log(1 + e^-x), exact at any x
        neg = -F.logsigmoid(-lam * x) / lam                 # log(1 + e^(lam x)) / lam
        if focal:
            # sigmoid(.)^gamma as exp(gamma * logsigmoid(.)): finite gradients for any gamma >= 0.
            pos = focal_alpha * torch.exp(gamma * F.logsigmoid(-x)) * pos
            neg = (1 - focal_alpha) * torch.exp(gamma * F.logsigmoid(lam * x)) * neg
        return (rhat * (y * pos + (1 - y) * neg)).mean()


SUPERVISED_LOSSES = {
    # name: fn(logits, y, **settings); "db" also needs class_counts= and n_train=.
    "bce": bce_loss,
    "focal": focal_loss,
    "asymmetric": asymmetric_loss,
    "db": db_loss,
}

OTHER_CONTRASTIVE = {
    # Contrastive rows outside the Table 2 ladder (not in VARIANTS):
    # fn(z, y, temperature=, queue_z=, queue_y=); no prototypes, no beta.
    "mulsupcon": mulsupcon_loss,
}


# --------------------------------------------------------------------------- #
# Shared pieces of the contrastive losses
# --------------------------------------------------------------------------- #
def _instance_keys(z, y, queue_z, queue_y):
    """Unit anchors and the instance keys H: the batch, then the queue's rows.

    Returns z (B, D), A = y (B, L), Z_H (M, D), Y_H (M, L) in the loss dtype (float32,
    or float64 if given float64) and off_self (B, M), False where key a is anchor i.
    """
    dtype = torch.promote_types(z.dtype, torch.float32)
    z = _unit(z.to(dtype))
    A = y.to(dtype)
    B = z.shape[0]
    keys, key_y = [z], [A]
    if queue_z is not None and queue_z.shape[0] > 0:
        keys.append(_unit(queue_z.to(dtype)))
        key_y.append(queue_y.to(dtype))
    Z_H, Y_H = torch.cat(keys), torch.cat(key_y)
    off_self = torch.ones(B, Z_H.shape[0], dtype=torch.bool, device=z.device)
    off_self[:, :B].fill_diagonal_(False)
    return z, A, Z_H, Y_H, off_self


def _log_softmax_off_self(logits, off_self, log_g=None, extra=None):
    """log p(i, a) = logits[i, a] - denom_i, with
    denom_i = log( sum_{a != i} g * exp(logits[i, a]) + sum_c exp(extra[i, c]) ).

    logits: (B, M); off_self: (B, M) bool; log_g: log of the instance keys' weight
    (None for 1); extra: (B, E) logits of further keys (prototypes) or None.
    Returns log_p (B, M), set to 0 on the anchor's own entry so that 0 * (huge)
    cannot appear, and denom (B, 1).
    """
    masked = logits.masked_fill(~off_self, torch.finfo(logits.dtype).min)
    if log_g is not None:
        masked = masked + log_g
    if extra is not None:
        masked = torch.cat([masked, extra], dim=1)
    denom = torch.logsumexp(masked, dim=1, keepdim=True)
    return torch.where(off_self, logits - denom, torch.zeros_like(logits)), denom


# --------------------------------------------------------------------------- #
# Checks
# --------------------------------------------------------------------------- #
def _no_autocast(t: torch.Tensor):
    """Disable autocast on the tensor's device so the loss runs in float32."""
    return torch.autocast(device_type=t.device.type, enabled=False)


class NonFiniteError(ValueError):
    """An input of a loss holds NaN or inf values; ``name`` says which tensor."""

    def __init__(self, name: str):
        super().__init__(f"{name} contains NaN or inf values")
        self.name = name


def _check_finite(*named) -> None:
    """``_check_finite(z, "z", queue_z, "queue_z", ...)``: raise :class:`NonFiniteError` naming the
    first tensor with a NaN or inf (None tensors are skipped). One device sync for all of them."""
    pairs = [(t, n) for t, n in zip(named[::2], named[1::2]) if t is not None and t.is_floating_point()]
    if not pairs:
        return
    flags = [torch.isfinite(t).all() for t, _ in pairs]
    if bool(torch.stack(flags).all()):
        return
    for (t, name), ok in zip(pairs, flags):
        if not bool(ok):
            raise NonFiniteError(name)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm, exact for any finite magnitude: each row is first divided
    by its largest absolute entry (a constant for autograd; the result does not depend on
    it), so squaring cannot overflow (norms of 1e20 and more in float32) or underflow; an
    all-zero row stays zero."""
    scale = x.detach().abs().amax(dim=1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return F.normalize(x / scale, dim=1)


_check_binary = check_label_tensor  # one check of label matrices for the whole library (abalone_core.data.labels)


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
