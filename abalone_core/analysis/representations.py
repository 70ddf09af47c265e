"""Representations of one split (projection head discarded) with the encoder of a finished run
(:func:`run_embeddings`, used by ``notebooks/run.ipynb`` and chapter 7's demonstration) or
with encoders shipped in ``results/`` (:func:`shipped_embeddings`, chapter 7). Through
:mod:`abalone_core.notebook` the chapters call them as ``nb.run_embeddings`` and
``nb.shipped_embeddings``.
"""
from __future__ import annotations

import numpy as np


def run_embeddings(run_dir, split: str = "test", batch_size: int = 64) -> dict:
    """Representations of one split with the encoder of a run.

    Returns:
        dict with ``x`` (N, hidden) float32 embeddings, ``y`` (N, L) 0/1 labels, ``texts``
        (N,), ``label_names`` (L,) and ``train_counts`` (L,) of the run's data.
    """
    from ..data.run_data import prepare_data
    from ..training.devices import resolve_device
    from ..training.encoders import load_run_encoder

    encoder, tokenizer, cfg = load_run_encoder(run_dir)
    data = prepare_data(cfg, tokenizer, progress=False)
    return _split_embeddings(encoder, tokenizer, cfg, data, split, resolve_device(cfg.device), batch_size)


def shipped_embeddings(files, split: str = "test", pretrained: str | None = "frozen", batch_size: int = 64) -> dict:
    """Representations of one split with encoders shipped in ``results/`` (see
    :func:`abalone_core.training.encoders.load_exported`), and, under the key ``pretrained``,
    with the pre-trained backbone they were trained from (L_MLM on the same documents). The
    data is read once, and the frozen bottom's states are computed once for all of them.

    Args:
        files: ``{name: path of a shipped .pt file}`` (:func:`abalone_core.notebook.shipped_encoders`),
            all trained on the same data and backbone.
    Returns:
        ``{name: dict}``, each dict as :func:`run_embeddings` gives it plus ``provenance``
        (the shipped file's record; for ``pretrained``, the record of the first file).
    """
    from ..data.run_data import prepare_data
    from ..training.devices import resolve_device
    from ..training.encoders import build_encoder, load_exported

    loaded = {name: load_exported(path) for name, path in files.items()}
    if not loaded:
        raise ValueError("no shipped encoder given")
    shared = ("dataset", "dataset_kwargs", "subset", "max_length", "backbone", "train_layers")
    first_name, (_, tokenizer, cfg, first_meta) = next(iter(loaded.items()))
    for name, (_, _, other, _) in loaded.items():
        differ = [k for k in shared if getattr(other, k) != getattr(cfg, k)]
        if differ:
            raise ValueError(f"shipped encoders {first_name!r} and {name!r} differ in {differ}: embed them apart")
    if pretrained:
        loaded = {pretrained: (build_encoder(cfg)[0].eval(), tokenizer, cfg, first_meta), **loaded}
    data = prepare_data(cfg, tokenizer, progress=False)
    device = resolve_device(cfg.device)
    return {name: {**_split_embeddings(encoder, tokenizer, cfg, data, split, device, batch_size), "provenance": meta}
            for name, (encoder, _, _, meta) in loaded.items()}


def _split_embeddings(encoder, tokenizer, cfg, data, split: str, device, batch_size: int) -> dict:
    """One encoder's representations of ``split`` of ``data`` (prepared once by the caller);
    with ``train_layers`` set, through the frozen bottom's cached states
    (:mod:`abalone_core.training.layer_cache`), as in training, so encoders sharing a backbone
    compute them once."""
    from dataclasses import replace

    from ..evaluation.evaluate import embed
    from ..training.encoders import cache_frozen_layers

    part = replace(data, ids={split: data.ids[split]})  # the other splits are not embedded
    cache_frozen_layers(cfg, encoder, tokenizer, part, device, progress=False)
    x = embed(encoder.to(device), part.ids[split], part.pad_token_id, batch_size=batch_size, device=device,
              progress=False)
    return {"x": x, "y": data.labels[split].astype(np.int64), "texts": list(data.dataset.split(split).texts),
            "label_names": list(data.dataset.label_names), "train_counts": data.train_counts.astype(np.int64)}


__all__ = ["run_embeddings", "shipped_embeddings"]
