"""One validated configuration object for every run, YAML/JSON in and out.

>>> cfg = Config(objective="msc", max_steps=20)
>>> cfg = Config.from_file("run.yaml").replace(seed=1)

Every value is checked when the object is made, so a typo or an impossible value
fails at once instead of after hours of training.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .losses import OTHER_CONTRASTIVE, SUPERVISED_LOSSES, VARIANTS

SUPERVISED = tuple(SUPERVISED_LOSSES)  # bce, focal, asymmetric, db
CONTRASTIVE = tuple(VARIANTS) + tuple(OTHER_CONTRASTIVE)  # base, bqueue, bqproto, msc; mulsupcon
FROZEN = "frozen"  # no training: linear evaluation of the pre-trained backbone (L_MLM row)
TFIDF = "tfidf-linear"  # TF-IDF features and one-vs-rest linear classifiers (abalone_core.tfidf)
OBJECTIVES = CONTRASTIVE + SUPERVISED + (FROZEN, TFIDF)


@dataclass
class Config:
    """Settings of one training run (defaults: the paper's, Appendix A, on the offline data/backbone).

    Data
        dataset: registered dataset name (``disaster``, ``foldoc``, ``aapd``, ``rcv1``,
            ``uk-lex``, ``csv``, ``jsonl``, ``hub``); dataset_kwargs: passed to the loader.
        subset: documents kept per split for small runs, e.g. ``{"train": 2000,
            "validation": 500, "test": 1000}``; None keeps everything.
        keep_unlabelled: keep documents without labels for contrastive training
            (they are dropped by default; supervised losses always keep them).
        max_length: tokens per document (300 in the paper).
    Model
        backbone: ``minilm`` (offline default), a folder, or a Hub id; pooling: ``cls``/``mean``;
        proj_dim: projection head output; dropout: backbone dropout.
        init_from: a contrastive run directory (or checkpoint file) whose encoder starts a
            supervised run: the L_*-FT fine-tuning rows.
        train_layers: None trains the whole encoder (the paper). With k, only the top k
            transformer layers (and the heads) train; the embeddings and the layers below are
            frozen, and their output is computed once per document and cached
            (:mod:`abalone_core.layer_cache`), which makes a step several times cheaper.
        layer_cache: how the frozen layers' output is kept: ``float16`` (default),
            ``float32`` (bit-exact with running them live), or ``off`` (run them at every step).
    Objective
        objective: ``base``/``bqueue``/``bqproto``/``msc`` (contrastive pre-training, then
            linear evaluation; ``mulsupcon``, Zhang and Wu's loss, likewise),
            ``bce``/``focal``/``asymmetric``/``db`` (supervised), ``frozen`` (linear evaluation
            of the pre-trained backbone, the paper's L_MLM row), or ``tfidf-linear`` (no
            network: TF-IDF and linear classifiers).
        temperature, beta, queue_size, momentum: contrastive settings.
        focal_gamma, asl_gamma_pos, asl_gamma_neg, asl_margin: supervised loss settings.
    Optimisation
        epochs, max_steps (a budget that overrides epochs when set), batch_size,
        lr_backbone, lr_head (head, prototypes, classifier), weight_decay (not on
        bias/LayerNorm), warmup_ratio, schedule (``auto``: cosine for contrastive,
        linear for supervised), grad_clip, mixed_precision (``auto``/``bf16``/``fp16``/``no``).
        lr_head_grid: for the rows that train a classifier (supervised objectives), a list
            of head learning rates: one run per value (in ``output_dir/lr_head=<value>``), and
            the run with the best validation micro-F1 is the result (``lr_head`` is ignored).
    Run
        seed, deterministic, device (``auto``/``cpu``/``cuda``/``cuda:1``...),
        output_dir, eval_every (optimiser steps between validation passes; 0 = each epoch),
        save_every (steps between resumable checkpoints; 0 = each epoch),
        probe: overrides of :class:`abalone_core.probe.ProbeConfig` for linear evaluation.
    """

    dataset: str = "disaster"
    dataset_kwargs: dict = field(default_factory=dict)
    subset: dict | None = None
    keep_unlabelled: bool = False
    max_length: int = 300

    backbone: str = "minilm"
    pooling: str = "cls"
    proj_dim: int = 256
    dropout: float = 0.1
    init_from: str | None = None
    train_layers: int | None = None
    layer_cache: str = "float16"

    objective: str = "msc"
    temperature: float = 0.1
    beta: float = 0.1
    queue_size: int = 512
    momentum: float = 0.999
    focal_gamma: float = 2.0
    asl_gamma_pos: float = 0.0
    asl_gamma_neg: float = 3.0
    asl_margin: float = 0.3

    epochs: int = 80
    max_steps: int | None = None
    batch_size: int = 32
    lr_backbone: float = 5e-5
    lr_head: float = 5e-5
    lr_head_grid: list | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    schedule: str = "auto"
    grad_clip: float = 1.0
    mixed_precision: str = "auto"

    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    output_dir: str = "runs/default"
    eval_every: int = 0
    save_every: int = 0
    probe: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        errors = []
        # YAML 1.1 reads "5e-5" (no dot) as a string: accept numbers written that way.
        for f in fields(self):
            value = getattr(self, f.name)
            if "float" in str(f.type) and isinstance(value, str):
                try:
                    setattr(self, f.name, float(value))
                except ValueError:
                    errors.append(f"{f.name} must be a number, got {value!r}")
            elif "int" in str(f.type) and isinstance(value, float) and value.is_integer():
                setattr(self, f.name, int(value))
        if errors:
            raise ValueError("invalid configuration:\n  - " + "\n  - ".join(errors))

        def need(ok: bool, msg: str) -> None:
            if not ok:
                errors.append(msg)

        need(self.objective in OBJECTIVES, f"objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        need(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        need(0 < self.beta <= 1, f"beta must be in (0, 1], got {self.beta}")
        need(self.queue_size >= 1, f"queue_size must be >= 1, got {self.queue_size}")
        need(0 <= self.momentum <= 1, f"momentum must be in [0, 1], got {self.momentum}")
        need(self.focal_gamma >= 0, f"focal_gamma must be >= 0, got {self.focal_gamma}")
        need(self.asl_gamma_pos >= 0 and self.asl_gamma_neg >= 0, "asl_gamma_pos and asl_gamma_neg must be >= 0")
        need(0 <= self.asl_margin < 1, f"asl_margin must be in [0, 1), got {self.asl_margin}")
        need(self.max_length >= 8, f"max_length must be >= 8 tokens, got {self.max_length}")
        need(self.proj_dim >= 1, f"proj_dim must be >= 1, got {self.proj_dim}")
        need(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.train_layers is None or (isinstance(self.train_layers, int) and self.train_layers >= 0),
             f"train_layers must be None (whole encoder) or an integer >= 0, got {self.train_layers!r}")
        need(self.layer_cache in ("float16", "float32", "off"),
             f"layer_cache must be float16, float32 or off, got {self.layer_cache!r}")
        need(self.pooling in ("cls", "mean"), f"pooling must be 'cls' or 'mean', got {self.pooling!r}")
        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.max_steps is None or self.max_steps >= 1, f"max_steps must be None or >= 1, got {self.max_steps}")
        need(self.batch_size >= 2, f"batch_size must be >= 2 (contrastive losses need pairs), got {self.batch_size}")
        need(self.lr_backbone > 0 and self.lr_head > 0, "learning rates must be > 0")
        if self.lr_head_grid is not None:
            grid = self.lr_head_grid
            ok = isinstance(grid, (list, tuple)) and len(grid) > 0 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in grid)
            need(ok, f"lr_head_grid must be None or a non-empty list of positive numbers, got {grid!r}")
            if ok:
                self.lr_head_grid = [float(v) for v in grid]
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        need(self.schedule in ("auto", "cosine", "linear", "constant"),
             f"schedule must be auto, cosine, linear or constant, got {self.schedule!r}")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be None or > 0")
        need(self.mixed_precision in ("auto", "bf16", "fp16", "no"),
             f"mixed_precision must be auto, bf16, fp16 or no, got {self.mixed_precision!r}")
        need(self.eval_every >= 0 and self.save_every >= 0, "eval_every and save_every must be >= 0")
        need(self.device == "auto" or self.device == "cpu" or self.device.startswith(("cuda", "mps")),
             f"device must be auto, cpu, cuda[:i] or mps, got {self.device!r}")
        if self.subset is not None:
            bad = set(self.subset) - {"train", "validation", "test"}
            need(not bad, f"subset keys must be train/validation/test, got {sorted(bad)}")
            need(all(isinstance(v, int) and v > 0 for v in self.subset.values()),
                 "subset values must be positive integers (documents per split)")
        need(self.init_from is None or self.objective in SUPERVISED,
             f"init_from (fine-tuning a contrastive encoder) needs a supervised objective: {', '.join(SUPERVISED)}")
        if self.probe:
            from .probe import ProbeConfig

            known = {f.name for f in fields(ProbeConfig)}
            unknown = set(self.probe) - known
            need(not unknown, f"unknown probe settings {sorted(unknown)}; known: {sorted(known)}")
        if errors:
            raise ValueError("invalid configuration:\n  - " + "\n  - ".join(errors))

    @property
    def contrastive(self) -> bool:
        return self.objective in CONTRASTIVE

    @property
    def resolved_schedule(self) -> str:
        if self.schedule != "auto":
            return self.schedule
        return "cosine" if self.contrastive else "linear"

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> "Config":
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            d = json.loads(text)
        else:
            raise ValueError(f"configuration files are .yaml, .yml or .json, got {path.name}")
        if not isinstance(d, dict):
            raise ValueError(f"{path} must hold a mapping of settings, got {type(d).__name__}")
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(json.dumps(self.to_dict(), indent=2))

    def replace(self, **changes) -> "Config":
        """A validated copy with some values changed (unknown keys rejected)."""
        return self.from_dict({**self.to_dict(), **changes})


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["lr_backbone=2e-5", "subset={train: 100}"]`` -> dict, values parsed as YAML."""
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"override {pair!r} must look like key=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


__all__ = ["Config", "OBJECTIVES", "CONTRASTIVE", "SUPERVISED", "FROZEN", "TFIDF", "parse_overrides"]
