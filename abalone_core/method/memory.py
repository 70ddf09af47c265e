"""Labelled memory queue and momentum (key) encoder, after MoCo (He et al. 2020)."""
from __future__ import annotations

import copy

import torch
import torch.distributed as dist
from torch import nn


class LabelQueue(nn.Module):
    """FIFO queue of K key projections with their multi-hot labels.

    Everything lives in buffers, so ``state_dict`` (and every checkpoint) carries the
    queue. ``count`` says how many slots hold a real key: empty slots are never
    returned, and no fake labels are ever used.

    Buffers:
        z: (K, D) projections, float32.
        y: (K, L) labels, uint8.
        ptr: () next slot to write.
        count: () number of filled slots, <= K.
    """

    def __init__(self, size: int, dim: int, num_labels: int):
        super().__init__()
        if size < 1 or dim < 1 or num_labels < 1:
            raise ValueError(f"queue size, dim and num_labels must be >= 1, got {size}, {dim}, {num_labels}")
        self.size = size
        self.register_buffer("z", torch.zeros(size, dim))
        self.register_buffer("y", torch.zeros(size, num_labels, dtype=torch.uint8))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.count)

    @torch.no_grad()
    def enqueue(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch of keys, overwriting the oldest ones; wraps around at K.

        Args:
            z: (b, D) key projections (detached here).
            y: (b, L) their multi-hot labels.
        """
        if z.ndim != 2 or z.shape[1] != self.z.shape[1]:
            raise ValueError(f"keys must be (b, {self.z.shape[1]}), got {tuple(z.shape)}")
        if tuple(y.shape) != (z.shape[0], self.y.shape[1]):
            raise ValueError(f"key labels must be ({z.shape[0]}, {self.y.shape[1]}), got {tuple(y.shape)}")
        z, y = z.detach()[-self.size:], y.detach()[-self.size:]  # a batch larger than K keeps its newest keys
        idx = (self.ptr + torch.arange(z.shape[0], device=self.ptr.device)) % self.size
        self.z[idx] = z.to(self.z.dtype)
        self.y[idx] = y.to(self.y.dtype)
        self.ptr.copy_((self.ptr + z.shape[0]) % self.size)
        self.count.copy_(torch.clamp(self.count + z.shape[0], max=self.size))

    def keys(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The filled slots, oldest first: (n, D) projections and (n, L) labels."""
        n = int(self.count)
        if n < self.size:
            return self.z[:n], self.y[:n]
        order = (torch.arange(self.size, device=self.ptr.device) + self.ptr) % self.size
        return self.z[order], self.y[order]


class MomentumEncoder(nn.Module):
    """Key encoder: a frozen copy of a module updated as ``θk ← m θk + (1 − m) θ``.

    Its parameters have ``requires_grad=False``, so no optimiser built from
    trainable parameters ever touches them; only :meth:`update` changes them. It stays in
    eval mode (no dropout) whatever mode its parent is put in.

    Parameters that are already frozen in ``module`` (``requires_grad=False``, e.g. the
    frozen bottom layers of a partly trained encoder) are shared, not copied: they never
    change, so the key encoder holds a copy of the trainable part only.
    """

    def __init__(self, module: nn.Module, momentum: float = 0.999):
        super().__init__()
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum
        frozen = {id(p): p for p in module.parameters() if not p.requires_grad}
        self.module = copy.deepcopy(module, memo=frozen)
        for p in self.module.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "MomentumEncoder":
        """The key encoder always runs in eval mode: keys are targets, so no dropout noise
        (and no cost of drawing dropout masks) goes into them."""
        super().train(mode)
        self.module.eval()
        return self

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Move the key weights towards ``module``'s (same architecture); buffers are copied."""
        pairs = list(zip(self.module.parameters(), module.parameters()))
        if len(pairs) != len(list(module.parameters())) or len(pairs) != len(list(self.module.parameters())):
            raise ValueError("momentum update needs the same architecture as the key encoder")
        pairs = [(k, q.detach()) for k, q in pairs if k is not q]  # shared frozen parameters stay
        if pairs:
            keys, queries = map(list, zip(*pairs))
            # m k + (1 - m) q == lerp(k, q, 1 - m); one fused call over all tensors.
            torch._foreach_lerp_(keys, queries, 1 - self.momentum)
        for bk, bq in zip(self.module.buffers(), module.buffers()):
            bk.copy_(bq)

    @torch.no_grad()
    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


@torch.no_grad()
def gather(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` from every rank along dim 0 (rank order); ``t`` itself without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)
