"""Linear evaluation of frozen embeddings: one logistic regression per label.

The paper's protocol (appendix A): the encoder is frozen and its projection head
discarded; for every label a logistic regression is trained with AdamW for 40
epochs on each setting of the grid lr in {1, 0.1, 0.01} x weight decay in
{1, 0.1, 0.01, 1e-4, 1e-6}; each setting trains 3 heads from different random
initialisations and predicts their mean probability; per label the setting with
the best validation F1 is kept, and a label is predicted at probability >= 0.5.

Here every (setting, head, label) regression is trained at once on cached
embeddings. The weights of one setting form a single tensor of shape (D, H, L),
one AdamW parameter group per setting carries its lr and weight decay, and the
loss is the sum over regressions of each one's mean binary cross-entropy over the
mini-batch. AdamW acts elementwise and regressions share no parameter, so each
regression follows exactly the trajectory it would follow if trained alone on the
same mini-batches from the same initialisation (up to float rounding).

Conventions:

- Heads of all settings start from the same H initialisations (uniform in
  +-1/sqrt(D), as ``torch.nn.Linear``), so settings differ only by lr and weight
  decay, and a run with a sub-grid reproduces the same settings of the full grid.
- Weight decay applies to the weights only, never to the biases (as for the
  encoder in the paper's training protocol): decaying the bias would pull rare
  labels towards probability 0.5.
- Mini-batches: one seeded permutation of the training documents per epoch,
  shared by all regressions; the last batch may be smaller.
- Selection (``selection="per_label"``, the paper's and the released code's
  choice): per label, highest validation F1; ties go to the first setting in grid
  order (lrs outer, weight decays inner). A label with no positive in the
  validation set has F1 0 under every setting, so for it the setting with the
  fewest validation false positives is kept instead (ties again to grid order).
  ``selection="global"`` keeps one setting for every label instead: the one whose
  predictions reach the highest validation micro-F1 over all labels (ties to grid
  order). Neither the paper nor the released code does this; it is a check of how
  much the per-label choice, made on the validation set, adds.

Switch reproducing the released code (``untrained_heads``): its linear evaluation
(``src/trainer/trainer.py``, ``eval_model``) trains ``nb_linear=3`` heads per
setting inside a ``LinearEvaluationMultiple`` that holds 5
(``src/model/linear_layer_multiple.py``) and predicts the mean probability of all
5, so 2 heads that keep their random initialisation (Xavier-uniform weights, zero
bias) enter every probability, during the selection on validation and at test
time. ``untrained_heads=U`` adds U such heads: with H trained heads the
probability of a label is ``(sum_h sigmoid(trained_h) + sum_u sigmoid(untrained_u))
/ (H + U)``. The untrained heads are drawn from their own random stream (the
trained heads do not change with U), with weights uniform in
``+-sqrt(6 / (D + L))`` and zero biases as in the released code, and are shared
by all settings (the released code draws new ones for each setting). The
defaults (``untrained_heads=0``, ``selection="per_label"``) are the paper's
protocol. The released probe differs in other ways too, left out here: its grid
is lr {1, 0.1} x weight decay {1, 0.1, 0.01, 1e-4} (``lrs``/``weight_decays``
set it), its learning rate decays linearly to 0 over the 40 epochs, its trained
heads also start Xavier-uniform with zero bias, and it drops the last incomplete
training batch (``book/reproduction_notes.md`` lists them with file references).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit
from tqdm.auto import tqdm

from ..data.labels import label_matrix
from .metrics import per_label_f1


SELECTIONS = ("per_label", "global")
PRECISIONS = ("fp32", "bf16")


@dataclass
class ProbeConfig:
    """Grid and training settings of the linear probe (paper defaults).

    ``standardize`` defaults to False because the paper mentions no feature
    scaling before its regressions (they see the frozen representation as is);
    setting it to True centres and scales each feature with training-set
    statistics (useful for embeddings whose features have very different
    scales, since weight decay is not scale-invariant).

    ``selection``: ``"per_label"`` (default; the paper and the released code) keeps
    for each label the setting with the best validation F1; ``"global"`` keeps one
    setting for all labels, the one with the best validation micro-F1.

    ``untrained_heads``: number of extra randomly initialised heads that are never
    trained but enter the mean probability (0 by default; the released code's
    protocol is ``heads=3, untrained_heads=2``). See the module docstring.

    ``precision``: ``"fp32"`` (default) or ``"bf16"``, the product of a batch with every
    regression's weights under bfloat16 autocast (weights, optimiser and loss stay in
    float32). With hundreds of labels that product is most of the probe's time: on a CPU
    with AMX or AVX512-BF16 the whole probe ran 1.86 times faster with 469 labels
    (``benchmarks/bench_probe.py --labels 469 --precision fp32 bf16``,
    ``benchmarks/results/probe_469_labels.json``); the scores move by a fraction of a point
    (``tests/test_probe.py``). Every row of one comparison must use the same value.
    """

    lrs: tuple = (1.0, 0.1, 0.01)
    weight_decays: tuple = (1.0, 0.1, 0.01, 1e-4, 1e-6)
    heads: int = 3
    epochs: int = 40
    batch_size: int = 256
    threshold: float = 0.5
    standardize: bool = False
    selection: str = "per_label"
    untrained_heads: int = 0
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"

    def __post_init__(self):
        self.lrs = tuple(float(v) for v in self.lrs)
        self.weight_decays = tuple(float(v) for v in self.weight_decays)
        if not self.lrs or not all(np.isfinite(v) and v > 0 for v in self.lrs):
            raise ValueError(f"lrs must be a non-empty tuple of positive numbers, got {self.lrs}")
        if not self.weight_decays or not all(np.isfinite(v) and v >= 0 for v in self.weight_decays):
            raise ValueError(
                f"weight_decays must be a non-empty tuple of numbers >= 0, got {self.weight_decays}"
            )
        for name in ("heads", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {self.threshold}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        u = self.untrained_heads
        if isinstance(u, bool) or not isinstance(u, (int, np.integer)) or u < 0:
            raise ValueError(f"untrained_heads must be an integer >= 0, got {u!r}")
        self.untrained_heads = int(u)

    @property
    def settings(self) -> list[tuple[float, float]]:
        """Grid of (lr, weight decay) pairs in grid order: lrs outer, weight decays inner."""
        return list(product(self.lrs, self.weight_decays))


@dataclass
class ProbeResult:
    """Chosen setting per label and the weights needed to predict.

    Attributes:
        best_lr, best_weight_decay: (L,) chosen lr and weight decay of each label.
        val_f1: (L,) validation F1 in percent of the chosen setting.
        weight: (D, L, H + U) weights of the chosen setting's H trained heads for each
            label, followed by the U untrained heads (``untrained_heads``).
        bias: (L, H + U) biases of the same heads (0 for the untrained ones).
        mean, scale: (D,) standardisation statistics from the training set, or None.
        threshold: probability at or above which a label is predicted.
        settings: (S, 2) the grid's (lr, weight decay) pairs in grid order.
        grid_f1: (S, L) validation F1 in percent of every setting and label.
        best_setting: (L,) index into ``settings`` of each label's choice (one value
            repeated for ``selection="global"``).
        grid_micro_f1: (S,) validation micro-F1 in percent of every setting applied to
            all labels.
        selection: ``"per_label"`` or ``"global"``, as configured.
        untrained_heads: U, the number of untrained heads at the end of ``weight``.
    """

    best_lr: np.ndarray
    best_weight_decay: np.ndarray
    val_f1: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    threshold: float = 0.5
    settings: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    grid_f1: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    best_setting: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    grid_micro_f1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    selection: str = "per_label"
    untrained_heads: int = 0

    def predict_proba(self, x) -> np.ndarray:
        """(N, L) probability of each label: mean over the chosen setting's heads
        (trained and untrained).

        Args:
            x: (N, D) embeddings (numpy array or torch tensor), same encoder as training.
        """
        x = _check_x(x, "x", dim=self.weight.shape[0])
        if self.mean is not None:
            x = (x - self.mean) / self.scale
        return _mean_proba(x, self.weight, self.bias)

    def predict(self, x) -> np.ndarray:
        """(N, L) 0/1 predictions: probability >= ``threshold``."""
        return (self.predict_proba(x) >= self.threshold).astype(np.int8)


def _to_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        return (a.float() if a.dtype in (torch.float16, torch.bfloat16) else a).numpy()
    return np.asarray(a)


def _check_x(x, name: str, dim: int | None = None) -> np.ndarray:
    x = _to_numpy(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (documents x features) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has {x.shape[1]} features, the probe was trained on {dim}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf values; check the encoder output before probing")
    return x


def _check_y(y, name: str, n: int) -> np.ndarray:
    return label_matrix(_to_numpy(y), name, rows=n, dtype=np.float32, rows_of="embedded documents")


def _mean_proba(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(N, L) mean over heads of sigmoid(x @ weight[:, l, h] + bias[l, h]); weight (D, L, H)."""
    d, n_labels, heads = weight.shape
    logits = x @ weight.reshape(d, n_labels * heads) + bias.reshape(-1)
    return expit(logits).reshape(len(x), n_labels, heads).mean(axis=2)


def init_heads(dim: int, n_labels: int, heads: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random initial weights (heads, D, L) and biases (heads, L), uniform in +-1/sqrt(D)."""
    gen = torch.Generator().manual_seed(int(seed))
    bound = 1.0 / np.sqrt(dim)
    w = (torch.rand(heads, dim, n_labels, generator=gen) * 2 - 1) * bound
    b = (torch.rand(heads, n_labels, generator=gen) * 2 - 1) * bound
    return w, b


def init_untrained_heads(dim: int, n_labels: int, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Heads that are never trained, as the released code leaves them.

    Weights are Xavier-uniform, uniform in +-sqrt(6 / (D + L)) (``nn.init.xavier_uniform_``
    on a (L, D) ``nn.Linear`` weight), biases 0.

    Returns:
        weights (D, L, count) and biases (L, count), float32.
    """
    gen = torch.Generator().manual_seed(int(seed))
    bound = np.sqrt(6.0 / (dim + n_labels))
    w = (torch.rand(count, dim, n_labels, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    w = w.permute(1, 2, 0).numpy().astype(np.float32)
    return np.ascontiguousarray(w), np.zeros((n_labels, count), dtype=np.float32)


def train_grid(
    x: torch.Tensor,
    y: torch.Tensor,
    settings,
    init_w: torch.Tensor,
    init_b: torch.Tensor,
    epochs: int = 40,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train S x H x L logistic regressions at once with AdamW and mini-batches.

    Every setting starts from the same initialisation; regression (s, h, l) sees
    the loss mean_b BCE(x_b . w[s, :, h, l] + b[s, h, l], y[b, l]) and its own
    lr and weight decay (the weight decay touches weights, not biases).

    Args:
        x: (N, D) training embeddings, float tensor on the training device.
        y: (N, L) 0/1 float targets, same device and dtype as ``x``.
        settings: sequence of S (lr, weight decay) pairs.
        init_w: (H, D, L) initial weights; init_b: (H, L) initial biases.
        epochs: passes over the training set.
        batch_size: documents per mini-batch.
        seed: seed of the per-epoch permutations of the documents.
        progress: show a tqdm bar over epochs.
        precision: ``"fp32"`` or ``"bf16"`` (the batch-by-weights product under bfloat16
            autocast; the loss is computed in the dtype of ``x``), see :class:`ProbeConfig`.
    Returns:
        weights (S, H, D, L) and biases (S, H, L), detached, on ``x``'s device.
    """
    n, dim = x.shape
    heads, n_labels = init_b.shape
    if init_w.shape != (heads, dim, n_labels) or y.shape != (n, n_labels):
        raise ValueError(
            f"shapes do not agree: x {tuple(x.shape)}, y {tuple(y.shape)}, "
            f"init_w {tuple(init_w.shape)}, init_b {tuple(init_b.shape)}"
        )
    n_settings = len(settings)
    if n_settings == 0:
        raise ValueError("settings must hold at least one (lr, weight decay) pair")
    # Store each setting's weights as (D, H*L) so the S blocks concatenate into
    # one (D, S*H*L) matrix: a single matmul computes every logit of a batch.
    w0 = init_w.to(x).permute(1, 0, 2).reshape(dim, heads * n_labels)
    b0 = init_b.to(x).reshape(heads * n_labels)
    weights = [torch.nn.Parameter(w0.clone()) for _ in settings]
    biases = [torch.nn.Parameter(b0.clone()) for _ in settings]
    groups = []
    for (lr, wd), w, b in zip(settings, weights, biases):
        groups.append({"params": [w], "lr": float(lr), "weight_decay": float(wd)})
        groups.append({"params": [b], "lr": float(lr), "weight_decay": 0.0})
    # The fused kernel is the fastest AdamW on CPU and CUDA (one pass per parameter).
    fused = True if x.device.type in ("cpu", "cuda") else None
    opt = torch.optim.AdamW(groups, fused=fused)
    gen = torch.Generator().manual_seed(int(seed))
    bar = tqdm(range(epochs), desc="linear probe", unit="epoch", disable=not progress)
    for _ in bar:
        order = torch.randperm(n, generator=gen).to(x.device)
        total = torch.zeros((), dtype=x.dtype, device=x.device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx]
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = xb @ torch.cat(weights, dim=1)
            logits = logits.to(x.dtype) + torch.cat(biases)
            target = yb[:, None, :].expand(-1, n_settings * heads, -1).reshape(len(idx), -1)
            # Sum over regressions of each one's batch mean: every regression gets
            # the gradient it would get alone.
            loss = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        if progress:  # mean loss of one regression over the epoch
            bar.set_postfix(loss=total.item() / n / (n_settings * heads * n_labels))
    w = torch.stack([p.detach().reshape(dim, heads, n_labels).permute(1, 0, 2) for p in weights])
    b = torch.stack([p.detach().reshape(heads, n_labels) for p in biases])
    return w, b


def linear_probe(train_x, train_y, val_x, val_y, config: ProbeConfig | None = None,
                 progress: bool = True) -> ProbeResult:
    """Fit the paper's linear evaluation on cached embeddings and pick a setting per label
    (or one for all labels with ``selection="global"``).

    Args:
        train_x: (N, D) training embeddings (numpy array or torch tensor, finite).
        train_y: (N, L) 0/1 training labels.
        val_x: (M, D) validation embeddings.
        val_y: (M, L) 0/1 validation labels.
        config: grid and training settings; ``ProbeConfig()`` (paper defaults) if None.
        progress: show a tqdm bar over epochs.
    Returns:
        ProbeResult with each label's chosen lr and weight decay, its validation F1
        (percent) and the weights to predict new embeddings.
    """
    config = config or ProbeConfig()
    tx = _check_x(train_x, "train_x")
    vx = _check_x(val_x, "val_x", dim=tx.shape[1])
    ty = _check_y(train_y, "train_y", len(tx))
    vy = _check_y(val_y, "val_y", len(vx))
    if ty.shape[1] != vy.shape[1]:
        raise ValueError(f"train_y has {ty.shape[1]} labels but val_y has {vy.shape[1]}")
    n_labels, dim = ty.shape[1], tx.shape[1]

    mean = scale = None
    if config.standardize:
        mean = tx.mean(axis=0)
        scale = tx.std(axis=0)
        scale[scale == 0] = 1.0  # constant features stay constant (zero) instead of dividing by 0
        tx = (tx - mean) / scale
        vx = (vx - mean) / scale

    init_seed, order_seed = np.random.SeedSequence(config.seed).generate_state(2)
    init_w, init_b = init_heads(dim, n_labels, config.heads, seed=int(init_seed))
    device = torch.device(config.device)
    settings = config.settings
    w, b = train_grid(
        torch.from_numpy(tx).to(device), torch.from_numpy(ty).to(device), settings, init_w, init_b,
        epochs=config.epochs, batch_size=config.batch_size, seed=int(order_seed), progress=progress,
        precision=config.precision,
    )
    w = w.cpu().permute(0, 2, 3, 1).numpy()  # (S, D, L, H)
    b = b.cpu().permute(0, 2, 1).numpy()  # (S, L, H)

    u = config.untrained_heads
    if u:
        # Their own stream: the trained heads and the batches do not depend on U.
        untrained_seed = np.random.SeedSequence(config.seed).spawn(1)[0].generate_state(1)[0]
        uw, ub = init_untrained_heads(dim, n_labels, u, seed=int(untrained_seed))

    def heads_of(s: int) -> tuple[np.ndarray, np.ndarray]:
        """(D, L, H + U) weights and (L, H + U) biases of setting s, untrained heads last."""
        if not u:
            return w[s], b[s]
        return np.concatenate([w[s], uw], axis=2), np.concatenate([b[s], ub], axis=1)

    true = vy.astype(np.int8)
    grid_f1 = np.empty((len(settings), n_labels))
    false_pos = np.empty((len(settings), n_labels))
    grid_micro = np.empty(len(settings))
    for s in range(len(settings)):
        pred = (_mean_proba(vx, *heads_of(s)) >= config.threshold).astype(np.int8)
        grid_f1[s] = per_label_f1(true, pred)
        false_pos[s] = (pred & (1 - true)).sum(axis=0)
        tp = int((pred & true).sum())
        wrong = int((pred != true).sum())  # false positives + false negatives
        grid_micro[s] = 100.0 * 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0
    labels = np.arange(n_labels)
    if config.selection == "global":
        best = np.full(n_labels, int(np.argmax(grid_micro)))  # first maximum: grid order breaks ties
    else:
        no_positive = true.sum(axis=0) == 0
        score = np.where(no_positive, -false_pos, grid_f1)
        best = np.argmax(score, axis=0)  # argmax keeps the first maximum: grid order breaks ties
    grid = np.asarray(settings, dtype=float)
    weight = w[best, :, labels, :].transpose(1, 0, 2)
    bias = b[best, labels, :]
    if u:
        weight = np.concatenate([weight, uw], axis=2)
        bias = np.concatenate([bias, ub], axis=1)
    return ProbeResult(
        best_lr=grid[best, 0],
        best_weight_decay=grid[best, 1],
        val_f1=grid_f1[best, labels],
        weight=np.ascontiguousarray(weight),
        bias=np.ascontiguousarray(bias),
        mean=mean,
        scale=scale,
        threshold=config.threshold,
        settings=grid,
        grid_f1=grid_f1,
        best_setting=best,
        grid_micro_f1=grid_micro,
        selection=config.selection,
        untrained_heads=u,
    )
