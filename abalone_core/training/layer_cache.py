"""Hidden states of a frozen bottom, computed once per document and cached on disk.

With ``Config.train_layers = k`` only the top ``k`` transformer layers of the encoder
train (:class:`abalone_core.method.model.TextEncoder`); the embeddings and the layers below never
change, so their output for a document is the same at every step. :func:`frozen_states`
computes it once, stores it under the data cache (``$ABALONE_DATA_DIR/states``), and
training, validation, the momentum key encoder and the linear probe's embeddings all run
the top layers on these states instead of the whole network.

The cache key covers everything the states depend on: the backbone name, the tokenizer,
``max_length``, the cut (how many layers are frozen), the storage dtype, the frozen
weights themselves and the token ids of every document, so any change gives a new file.

Used by :mod:`abalone_core.training.train` (every objective) and the step benchmark.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..atomic import save_torch
from ..data.batching import collate

logger = logging.getLogger(__name__)
DTYPES = {"float16": torch.float16, "float32": torch.float32}


def cache_key(encoder, ids, tag: str, dtype: str) -> str:
    """Hex digest naming the states of ``ids`` under ``encoder``'s frozen bottom.

    Args:
        encoder: a :class:`~abalone_core.method.model.TextEncoder` with ``train_layers`` set.
        ids: N token-id lists.
        tag: what else identifies the inputs (backbone name, tokenizer, max_length).
        dtype: storage dtype name.
    """
    h = hashlib.sha1()
    h.update(f"{tag}|cut={encoder.cut}|{dtype}".encode())
    for module in encoder._frozen_modules():
        for name, t in module.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    for x in ids:
        h.update(np.asarray(x, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:24]


@torch.no_grad()
def compute_states(encoder, ids, dtype: str = "float16", batch_size: int = 64, device="cpu",
                   progress: bool = True) -> list[torch.Tensor]:
    """The frozen bottom's output for each document, without caching.

    Returns:
        list of N tensors of shape (T_i, hidden), ``dtype``, on the CPU, in the order of ``ids``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    was_training = encoder.training
    encoder.eval()
    order = np.argsort([-len(x) for x in ids], kind="stable")  # similar lengths together: little padding
    out: list = [None] * len(ids)
    starts = range(0, len(ids), batch_size)
    for start in tqdm(starts, desc="frozen layers", unit="batch", leave=False, disable=not progress):
        rows = order[start:start + batch_size]
        batch = collate([{"input_ids": list(ids[i]), "labels": torch.zeros(1), "index": int(i)} for i in rows], 0)
        mask = batch["attention_mask"].to(device)
        h = encoder.frozen_states(batch["input_ids"].to(device), mask).to(DTYPES[dtype]).cpu()
        for j, i in enumerate(rows):
            out[i] = h[j, :len(ids[i])].clone()
    encoder.train(was_training)
    return out


def frozen_states(encoder, ids, tag: str, dtype: str = "float16", batch_size: int = 64, device="cpu",
                  progress: bool = True, cache_dir: str | Path | None = None) -> list[torch.Tensor]:
    """:func:`compute_states`, read from or written to the on-disk cache.

    Args:
        encoder: a :class:`~abalone_core.method.model.TextEncoder` with ``train_layers`` set.
        ids: N token-id lists.
        tag: backbone, tokenizer and max_length as one string (part of the cache key).
        dtype: ``float16`` (half the disk and memory) or ``float32`` (bit-exact with
            running the frozen layers live).
        cache_dir: folder of the cache files; default ``$ABALONE_DATA_DIR/states``.
    Returns:
        list of N (T_i, hidden) tensors.
    """
    if cache_dir is None:
        from ..data import data_dir

        cache_dir = data_dir() / "states"
    from filelock import FileLock

    path = Path(cache_dir) / f"{cache_key(encoder, ids, tag, dtype)}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    # One process computes, the others (runs of a sweep starting together) wait and read.
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                saved = torch.load(path, map_location="cpu")
                return list(torch.split(saved["states"], saved["lengths"].tolist()))
            except Exception as e:  # a truncated file from a killed process: compute again
                logger.warning("layer cache %s is unreadable (%s); computing the states again", path, e)
        return _compute_and_save(encoder, ids, path, dtype, batch_size, device, progress)


def _compute_and_save(encoder, ids, path: Path, dtype, batch_size, device, progress) -> list[torch.Tensor]:
    states = compute_states(encoder, ids, dtype, batch_size, device, progress)
    flat = torch.cat(states) if states else torch.zeros(0, encoder.hidden, dtype=DTYPES[dtype])
    lengths = torch.tensor([len(s) for s in states], dtype=torch.long)
    # Atomic, under a private temporary name: runs of a sweep may compute the same states at once.
    save_torch({"states": flat, "lengths": lengths}, path)
    return list(torch.split(flat, lengths.tolist()))


__all__ = ["frozen_states", "compute_states", "cache_key", "DTYPES"]
