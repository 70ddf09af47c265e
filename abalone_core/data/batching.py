"""Tokenise once, batch documents of similar length, pad each batch to its longest row.

Padding every batch to a fixed 300 tokens wastes most of the compute on short texts;
padding to the longest document of a random batch still wastes much when lengths are
skewed. :class:`LengthBucketSampler` shuffles, then sorts by length inside large
chunks, so each batch holds documents of similar length while batch order stays random.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import tempfile
import weakref
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm


def tokenize(texts, tokenizer, max_length: int, batch_size: int = 1000, progress: bool = True) -> list:
    """Token ids of each text, special tokens included, truncated to ``max_length``, unpadded.

    Args:
        texts: sequence of N strings.
        tokenizer: a Hugging Face tokenizer (a fast one tokenises batches in Rust).
        max_length: maximum number of tokens per text.
        batch_size: texts per tokenizer call; a progress bar shows for long lists (unless
            ``progress`` is False).
    Returns:
        list of N lists of ints.
    """
    texts = list(texts)
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"{len(bad)} texts are not strings (first rows: {bad[:5]})")
    ids = []
    starts = range(0, len(texts), batch_size)
    for start in tqdm(starts, desc="tokenize", unit="batch", disable=not progress or len(texts) < 10 * batch_size):
        enc = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length,
                        padding=False, return_attention_mask=False, return_token_type_ids=False)
        ids.extend(list(map(list, enc["input_ids"])))
    return ids


_DIGESTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # tokenizer -> (its size, digest)


def tokenizer_digest(tokenizer) -> str:
    """Hex digest of what decides a tokenizer's ids, to key caches of token ids on.

    A fast tokenizer is its ``backend_tokenizer`` as JSON (vocabulary, added tokens,
    normaliser, pre-tokeniser, post-processor), without the truncation and padding that
    every call sets; another tokenizer is the files ``save_pretrained`` writes. With the
    class name, so two tokenizers of one class and one vocabulary size but different
    vocabularies differ. Computed once per tokenizer object (again after tokens are added).
    """
    size = len(tokenizer)
    try:
        known = _DIGESTS.get(tokenizer)
    except TypeError:  # an object that cannot be weakly referenced: no memo
        known = None
    if known is not None and known[0] == size:
        return known[1]
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        for key in ("truncation", "padding"):
            state.pop(key, None)
        h.update(json.dumps(state, sort_keys=True).encode())
    else:
        with tempfile.TemporaryDirectory() as folder:
            tokenizer.save_pretrained(folder)
            for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
                h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    digest = h.hexdigest()[:24]
    try:
        _DIGESTS[tokenizer] = (size, digest)
    except TypeError:
        pass
    return digest


class TokenizedDataset(Dataset):
    """Token ids (or cached hidden states) with their label rows.

    Items are dicts: ``input_ids`` (a list of ints, or a (T, hidden) float tensor of a
    frozen bottom's states, see :mod:`abalone_core.training.layer_cache`), ``labels`` (float32
    tensor (L,)), ``index`` (int, the row number, so predictions can be put back in order).
    """

    def __init__(self, ids, labels):
        labels = np.asarray(labels)
        if labels.ndim != 2:
            raise ValueError(f"labels must be 2-D (N, L), got shape {labels.shape}")
        if len(ids) != labels.shape[0]:
            raise ValueError(f"{len(ids)} token sequences but {labels.shape[0]} label rows")
        empty = [i for i, x in enumerate(ids) if len(x) == 0]
        if empty:
            raise ValueError(f"{len(empty)} token sequences are empty (first rows: {empty[:5]})")
        self.ids = ids
        self.labels = torch.as_tensor(labels, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        x = self.ids[i]
        return {"input_ids": x if torch.is_tensor(x) else list(x), "labels": self.labels[i], "index": int(i)}

    def lengths(self) -> np.ndarray:
        """(N,) number of tokens of each row."""
        return np.array([len(x) for x in self.ids])


class LengthBucketSampler(Sampler):
    """Batch sampler that groups documents of similar length.

    With ``shuffle=True``, each epoch: random permutation; cut into chunks of
    ``bucket_size_multiplier * batch_size`` rows; sort each chunk by length; cut
    chunks into batches; shuffle the batch order. The permutation depends only on
    (seed, epoch). Each pass over the sampler uses the current epoch then advances
    it by one, so successive epochs differ even without :meth:`set_epoch`;
    ``set_epoch(e)`` makes the next pass use epoch e (same seed and epoch -> same
    batches). With ``shuffle=False`` batches are consecutive rows in order.

    Args:
        lengths: (N,) token counts.
        batch_size: rows per batch.
        shuffle: random buckets (training) or sequential order (evaluation).
        seed: base seed.
        drop_last: drop the final incomplete batch.
        bucket_size_multiplier: chunk size in batches; larger gives tighter length
            groups but less randomness.
    """

    def __init__(self, lengths, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, bucket_size_multiplier: int = 50):
        self.lengths = np.asarray(lengths)
        if self.lengths.ndim != 1:
            raise ValueError(f"lengths must be 1-D, got shape {self.lengths.shape}")
        if batch_size < 1 or bucket_size_multiplier < 1:
            raise ValueError("batch_size and bucket_size_multiplier must be >= 1")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.bucket_size_multiplier = int(bucket_size_multiplier)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self, epoch: int) -> list:
        """The batches (lists of row indices) of one epoch."""
        n, b = self.lengths.size, self.batch_size
        if not self.shuffle:
            order = np.arange(n)
            batches = [order[i:i + b] for i in range(0, n, b)]
        else:
            rng = np.random.default_rng([self.seed, epoch])
            perm = rng.permutation(n)
            chunk = b * self.bucket_size_multiplier
            batches = []
            for start in range(0, n, chunk):
                rows = perm[start:start + chunk]
                rows = rows[np.argsort(-self.lengths[rows], kind="stable")]
                batches += [rows[i:i + b] for i in range(0, rows.size, b)]
            # Shuffle first, drop after: the full batches keep the same order with or
            # without drop_last (a distributed run then follows the single-process one).
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.drop_last:
            batches = [x for x in batches if x.size == b]
        return [x.tolist() for x in batches]

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        yield from self.batches(epoch)

    def __len__(self) -> int:
        n = self.lengths.size
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


def collate(items, pad_token_id: int) -> dict:
    """Pad a list of items to the longest one.

    Returns:
        dict with ``input_ids`` LongTensor (B, T), ``attention_mask`` LongTensor (B, T)
        (1 on tokens, 0 on padding), ``labels`` FloatTensor (B, L), ``index`` LongTensor (B,).
        Items holding hidden states ((T, hidden) tensors) give float32 ``input_ids``
        (B, T, hidden), zero on padding.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    t = max(len(x["input_ids"]) for x in items)
    first = items[0]["input_ids"]
    if torch.is_tensor(first) and first.is_floating_point():
        input_ids = torch.zeros((len(items), t, first.shape[-1]), dtype=torch.float32)
    else:
        input_ids = torch.full((len(items), t), int(pad_token_id), dtype=torch.long)
    mask = torch.zeros((len(items), t), dtype=torch.long)
    for row, x in enumerate(items):
        k = len(x["input_ids"])
        input_ids[row, :k] = torch.as_tensor(x["input_ids"], dtype=input_ids.dtype)
        mask[row, :k] = 1
    labels = torch.stack([torch.as_tensor(x["labels"], dtype=torch.float32) for x in items])
    index = torch.tensor([int(x["index"]) for x in items], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels, "index": index}


def length_sorted_batches(lengths, batch_size: int) -> list[np.ndarray]:
    """Row indices cut into batches after sorting by length, longest first (stable).

    For evaluation, where the batches' composition does not change the result: each batch
    is padded to nearly its own length, which halves the compute on skewed lengths.
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, lengths.size, batch_size)]


def make_loader(ids, labels, batch_size: int, pad_token_id: int, shuffle: bool, seed: int,
                drop_last: bool = False, bucket: bool = True, num_workers: int = 0,
                sort_by_length: bool = False) -> DataLoader:
    """DataLoader over token ids and labels with dynamic padding.

    With ``bucket=True`` batches come from a :class:`LengthBucketSampler`
    (``loader.batch_sampler``; call its ``set_epoch`` to pin an epoch); otherwise from
    plain random (seeded) or sequential batches. ``sort_by_length=True`` (evaluation,
    ``shuffle=False``) batches the rows sorted by length (:func:`length_sorted_batches`);
    each batch's ``index`` says where its rows belong.
    """
    if pad_token_id is None:
        raise ValueError("pad_token_id is None; set tokenizer.pad_token first")
    dataset = TokenizedDataset(ids, labels)
    fn = functools.partial(collate, pad_token_id=pad_token_id)
    if sort_by_length:
        if shuffle or drop_last:
            raise ValueError("sort_by_length is for evaluation: use it with shuffle=False and drop_last=False")
        return DataLoader(dataset, batch_sampler=length_sorted_batches(dataset.lengths(), batch_size),
                          collate_fn=fn, num_workers=num_workers)
    if bucket:
        sampler = LengthBucketSampler(dataset.lengths(), batch_size, shuffle=shuffle, seed=seed,
                                      drop_last=drop_last)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=fn, num_workers=num_workers)
    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      collate_fn=fn, num_workers=num_workers, generator=gen)


def _padded_tokens(lengths: np.ndarray, batches) -> int:
    return int(sum(len(b) * lengths[b].max() for b in batches if len(b)))


def padding_stats(lengths, batch_size: int, bucket: bool, seed: int = 0) -> dict:
    """Token counts of one training epoch with dynamic padding.

    Returns:
        dict with ``tokens`` (real tokens), ``padded_tokens`` (tokens computed with
        the chosen batching), ``padding_share`` (share of computed tokens that are
        padding), ``random_padded_tokens`` (same with random batches) and
        ``saved_vs_random`` (share of the random-batch tokens saved; 0 without buckets).
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.size == 0:
        raise ValueError("lengths must be a non-empty 1-D array")
    rng = np.random.default_rng([int(seed), 0])
    perm = rng.permutation(lengths.size)
    random_batches = [perm[i:i + batch_size] for i in range(0, lengths.size, batch_size)]
    random_padded = _padded_tokens(lengths, random_batches)
    if bucket:
        sampler = LengthBucketSampler(lengths, batch_size, shuffle=True, seed=seed)
        padded = _padded_tokens(lengths, [np.array(b) for b in sampler.batches(0)])
    else:
        padded = random_padded
    real = int(lengths.sum())
    return {
        "tokens": real,
        "padded_tokens": padded,
        "padding_share": 1.0 - real / padded if padded else 0.0,
        "random_padded_tokens": random_padded,
        "saved_vs_random": 1.0 - padded / random_padded if random_padded else 0.0,
    }
