"""The data of a run: its dataset loaded, subsampled with the run's seed and filtered
(:func:`load_run_dataset`), then tokenised once and cached (:func:`prepare_data`). Used by
:mod:`abalone_core.train`, the command line and chapters 4 to 8 (per-label support).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import torch

from . import atomic
from .batching import tokenize, tokenizer_digest
from .config import Config
from .data import SPLITS, MultiLabelDataset, load_dataset

logger = logging.getLogger(__name__)


@dataclass
class Data:
    """A dataset with its token ids and label arrays per split."""

    dataset: MultiLabelDataset
    ids: dict
    labels: dict
    pad_token_id: int

    @property
    def train_counts(self) -> np.ndarray:
        return self.labels["train"].sum(0)


def load_run_dataset(config: Config) -> MultiLabelDataset:
    """The dataset of a run: loaded, subsampled (``subset``, drawn with the run's seed), and
    without labels that no training document carries."""
    ds = load_dataset(config.dataset, **config.dataset_kwargs)
    if config.subset:
        ds = ds.sample({s: config.subset.get(s, len(ds)) for s in SPLITS}, seed=config.seed)
        if (ds.label_counts("train") == 0).any():
            ds = ds.drop_rare_labels(1)  # logs the labels it drops
    return ds


def prepare_data(config: Config, tokenizer) -> Data:
    """Load, subsample and tokenise the dataset named by the configuration (cached)."""
    ds = load_run_dataset(config)
    for s in SPLITS:
        if not (ds.splits == s).any():
            raise ValueError(f"dataset {ds.name!r} has no {s!r} documents; check `subset` or the split column")
    ids = {}
    for s in SPLITS:
        part = ds.split(s)
        ids[s] = _cached_tokens(part.texts, tokenizer, config, s)
    labels = {s: ds.split(s).labels.astype(np.float32) for s in SPLITS}
    pad = tokenizer.pad_token_id
    if pad is None:
        raise ValueError(f"tokenizer of {config.backbone!r} has no pad token; set tokenizer.pad_token")
    return Data(ds, ids, labels, pad)


def _cached_tokens(texts, tokenizer, config: Config, split: str):
    """Token ids of ``texts`` (see :func:`abalone_core.batching.tokenize`), cached under
    ``$ABALONE_DATA_DIR/tokens`` by the tokenizer's content (:func:`tokenizer_digest`),
    ``max_length`` and the texts."""
    from filelock import FileLock

    from .data import data_dir

    h = hashlib.sha1()
    h.update(f"{config.max_length}|{tokenizer_digest(tokenizer)}".encode())
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\0")
    path = data_dir() / "tokens" / f"{h.hexdigest()[:20]}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    # One process tokenises, the others (runs of a sweep starting together) wait and read.
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                return torch.load(path)
            except Exception as err:  # noqa: BLE001 - a damaged cache file: tokenise again
                logger.warning("token cache %s is unreadable (%s); tokenising again", path, err)
        ids = tokenize(texts, tokenizer, config.max_length)
        atomic.save_torch(ids, path)
        return ids


__all__ = ["Data", "load_run_dataset", "prepare_data"]
