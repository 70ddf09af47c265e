"""The data of a run: its dataset loaded, subsampled with the run's seed and filtered
(:func:`load_run_dataset`), then tokenised once and cached (:func:`prepare_data`). Used by
:mod:`abalone_core.training.train`, the command line and chapters 4 to 8 (per-label support).
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass

import numpy as np
import torch

from .. import atomic
from .batching import tokenize, tokenizer_digest
from ..training.config import Config
from .dataset import MultiLabelDataset
from .registry import load_dataset
from .splits import SPLITS

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

    @functools.cached_property
    def digest(self) -> str:
        """:func:`data_digest` of the dataset."""
        return data_digest(self.dataset)


def data_digest(ds: MultiLabelDataset) -> str:
    """SHA-256 (hex) of what a run trains, validates and tests on: per split, its texts and
    their label names, in order. A checkpoint and ``metrics.json`` record it, so that a run is
    never resumed on data edited since (other rows, labels or splits)."""
    h = hashlib.sha256()
    h.update(json.dumps(list(ds.label_names)).encode())
    for s in SPLITS:
        part = ds.split(s)
        h.update(f"\0{s}\0{len(part)}\0".encode())
        for text in part.texts:
            h.update(text.encode("utf-8", "replace") + b"\0")
        h.update(np.ascontiguousarray(part.labels, dtype=np.uint8).tobytes())
    return h.hexdigest()


def load_run_dataset(config: Config) -> MultiLabelDataset:
    """The dataset of a run: loaded, subsampled (``subset``, drawn with the run's seed), and
    without labels that no training document carries."""
    ds = load_dataset(config.dataset, **config.dataset_kwargs)
    if config.subset:
        ds = ds.sample({s: config.subset.get(s, len(ds)) for s in SPLITS}, seed=config.seed)
        if (ds.label_counts("train") == 0).any():
            ds = ds.drop_rare_labels(1)  # logs the labels it drops
    _warn_duplicates(ds)
    return ds


def _warn_duplicates(ds: MultiLabelDataset) -> None:
    """Log how many validation and test texts are also training texts (copies score too well)."""
    train = set(ds.split("train").texts)
    copies = {s: sum(t in train for t in ds.split(s).texts) for s in ("validation", "test")}
    if any(copies.values()):
        sizes = {s: int((ds.splits == s).sum()) for s in copies}
        logger.warning("dataset %r: %s also appear in training; their scores flatter the model: remove the copies "
                       "from validation and test", ds.name,
                       " and ".join(f"{n} of the {sizes[s]} {s} texts" for s, n in copies.items() if n))


def prepare_data(config: Config, tokenizer, progress: bool = True) -> Data:
    """Load, subsample and tokenise the dataset named by the configuration (cached); ``progress``
    False hides the tokeniser's progress bar (the chapters)."""
    ds = load_run_dataset(config)
    for s in SPLITS:
        if not (ds.splits == s).any():
            raise ValueError(f"dataset {ds.name!r} has no {s!r} documents; check `subset` or the split column")
    ids = {}
    for s in SPLITS:
        part = ds.split(s)
        ids[s] = _cached_tokens(part.texts, tokenizer, config, s, progress)
    labels = {s: ds.split(s).labels.astype(np.float32) for s in SPLITS}
    check_labels(ds, labels, config)
    pad = tokenizer.pad_token_id
    if pad is None:
        raise ValueError(f"tokenizer of {config.backbone!r} has no pad token; set tokenizer.pad_token")
    return Data(ds, ids, labels, pad)


def check_labels(ds: MultiLabelDataset, labels: dict, config: Config) -> None:
    """Refuse, before any training, labels the scores cannot be computed on: one distinct label
    in training, or no document without some label (no negative anywhere). Data without any
    label is left to the trainer's own message."""
    where = f"dataset {ds.name!r}" + (f" ({config.dataset_kwargs['path']})" if "path" in config.dataset_kwargs else "")
    present = np.flatnonzero(labels["train"].sum(0) > 0)
    if len(present) == 1:
        raise ValueError(f"{where}: every labelled training document carries the one label "
                         f"{ds.label_names[present[0]]!r}; multi-label training and its scores need at least two "
                         "distinct labels: check label_column and label_sep in dataset_kwargs, or the labels of "
                         "the data")
    every = np.concatenate([labels[s] for s in SPLITS])
    if every.size and every.all():
        raise ValueError(f"{where}: every document carries every label ({ds.label_names}), so no label can be "
                         "predicted or ranked; check label_column and label_sep in dataset_kwargs, or the data")


def _cached_tokens(texts, tokenizer, config: Config, split: str, progress: bool = True):
    """Token ids of ``texts`` (see :func:`abalone_core.data.batching.tokenize`), cached under
    ``$ABALONE_DATA_DIR/tokens`` by the tokenizer's content (:func:`tokenizer_digest`),
    ``max_length`` and the texts."""
    from filelock import FileLock

    from .registry import data_dir

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
        ids = tokenize(texts, tokenizer, config.max_length, progress=progress)
        atomic.save_torch(ids, path)
        return ids


__all__ = ["Data", "check_labels", "data_digest", "load_run_dataset", "prepare_data"]
