"""Training: contrastive pre-training, supervised baselines, fine-tuning, frozen baseline.

One entry point, :func:`run`, follows the paper's protocol for ``config.objective``:

* contrastive (``base``, ``bqueue``, ``bqproto``, ``msc``): pre-train, keep three candidate
  encoders (last, lowest training loss, lowest validation loss), linear-evaluate each and
  report the one with the best validation micro-F1;
* supervised (``bce``, ``focal``, ``asymmetric``), optionally from a contrastive encoder
  (``init_from``, the L_*-FT rows): train a classifier, keep the best validation micro-F1;
* ``frozen``: no training, linear evaluation of the pre-trained backbone (the L_MLM row).

A run directory holds ``config.yaml``, ``history.jsonl`` (one line per evaluation),
``checkpoint.pt`` (everything needed to resume) and ``metrics.json`` (final scores).
A run stopped by SIGTERM/SIGINT saves a checkpoint at the end of the current step;
``run(config, resume=True)`` (the default) continues it and ends with the same numbers.

Nothing is lost or mixed:

* every file is written atomically (:mod:`abalone_core.atomic`), and a run folder is
  locked by the process that trains in it (a second one gets :class:`RunLocked`);
* a folder belongs to one configuration, whatever the objective: another configuration,
  a finished run whose ``checkpoint.pt`` is gone, or an unreadable checkpoint or history
  is refused (:class:`RunFolderError`) until ``resume=False`` (``abalone train --restart``);
* a non-finite loss or gradient stops the run before the optimiser applies it
  (:class:`NonFiniteLoss`), and non-finite weights are never written: the last good
  checkpoint stays, and ``run(config, allow_changes=RESUMABLE_CHANGES)`` (``abalone train
  --resume-with-changes``) resumes it with lower learning rates, clipping or another precision;
* set-up problems (an unknown backbone, ``max_length`` above the backbone's positions, a
  missing device, data without labels, an unwritable folder) are reported before training.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import atomic
from .batching import LengthBucketSampler, TokenizedDataset, collate, tokenize
from .config import FROZEN, RESUMABLE_CHANGES, TFIDF, Config, ConfigError, read_settings
from .data import MultiLabelDataset, load_dataset
from .convergence import convergence
from .evaluate import embed, linear_evaluation, predict_proba, read_metrics, score, split_scores
from .losses import NonFiniteError, asymmetric_loss, bce_loss, db_loss, focal_loss
from .model import MINILM, ContrastiveModel, TextClassifier, TextEncoder, load_backbone
from .probe import ProbeConfig
from .provenance import hardware

logger = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")
CANDIDATES = ("last", "best_train_loss", "best_val_loss")


class Interrupted(RuntimeError):
    """Raised after a SIGTERM/SIGINT once the checkpoint is safely written."""


class RunFolderError(ValueError):
    """The output folder holds something this run must not touch or cannot use (another
    configuration, a finished run without its checkpoint, an unreadable file); the message
    names the file and the way out (``--restart``)."""


class RunLocked(RunFolderError):
    """Another process is training in the same output folder."""


class NonFiniteLoss(FloatingPointError):
    """The loss or the gradient became NaN or inf; the step was not applied and the last
    good checkpoint is unchanged."""


RUN_FILES = ("checkpoint.pt", "metrics.json", "history.jsonl", "model_best.pt")  # plus encoder_*.pt
LOCK_NAME = ".lock"


# --------------------------------------------------------------------------- #
# Set-up helpers
# --------------------------------------------------------------------------- #
def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def init_distributed() -> tuple[int, int]:
    """(rank, world size). Starts the process group when launched by torchrun/accelerate
    (``WORLD_SIZE`` > 1): NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(name)


def check_device(name: str) -> torch.device:
    """:func:`resolve_device`, refusing a device this machine does not have (before any work)."""
    device = resolve_device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r}: this torch ({torch.__version__}) sees no CUDA GPU; "
                             "use device=cpu or device=auto")
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise ValueError(f"device={name!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; "
                             "choose one of them or device=auto")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={name!r}: Apple's MPS is not available here; use device=cpu or device=auto")
    return device


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_backbone(name: str) -> None:
    """Fail fast on a backbone that cannot load: a missing folder, a name that is no Hub id,
    or a Hub id absent from the local cache while the Hub is off (``HF_HUB_OFFLINE=1``),
    instead of minutes of download retries. A Hub id with the Hub on is left to
    ``from_pretrained``."""
    if name == MINILM:
        return
    folder = Path(name).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"backbone={name!r} is a file; give a model folder (with config.json) or a Hub id")
        if not (folder / "config.json").exists():
            raise ValueError(f"backbone folder {folder} has no config.json: it is not a saved transformers "
                             "model (save one with model.save_pretrained(folder) and tokenizer.save_pretrained(folder))")
        return
    hint = "the offline default is backbone=minilm"
    if name.startswith((".", "/", "~")) or "\\" in name or HUB_ID.fullmatch(name) is None:
        raise ValueError(f"backbone={name!r}: no such folder, and it is not a Hugging Face Hub id "
                         f"(owner/name); give an existing model folder or a Hub id ({hint})")
    if _hub_offline():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
        except Exception:  # noqa: BLE001 - an unusual cache layout: let from_pretrained decide
            return
        if not isinstance(cached, str):
            raise ValueError(f"backbone={name!r} is not a local folder, and with HF_HUB_OFFLINE=1 it must be in the "
                             f"Hub cache, where it is not; on a machine with the Hub run `hf download {name}` (or "
                             f"unset HF_HUB_OFFLINE), or give a local folder ({hint})")


def max_positions(backbone) -> int | None:
    """Longest input, in tokens, that a backbone's position embeddings allow (None if unknown).
    RoBERTa-style models reserve ``padding_idx + 1`` positions."""
    positions = getattr(getattr(backbone, "config", None), "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    padding_idx = getattr(getattr(backbone, "embeddings", None), "padding_idx", None)
    return positions - (padding_idx + 1 if isinstance(padding_idx, int) else 0)


def autocast_for(config: Config, device: torch.device):
    """(context factory, needs GradScaler): bf16 where supported, fp16 with a scaler, or off."""
    mode = config.mixed_precision
    if mode == "auto":
        if device.type != "cuda":
            mode = "no"
        else:
            mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if mode == "no":
        return nullcontext, False
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), mode == "fp16"


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
    from .data import data_dir

    h = hashlib.sha1()
    h.update(f"{config.backbone}|{config.max_length}|{type(tokenizer).__name__}|{len(tokenizer)}".encode())
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\0")
    path = data_dir() / "tokens" / f"{h.hexdigest()[:20]}.pt"
    if path.exists():
        try:
            return torch.load(path)
        except Exception as err:  # noqa: BLE001 - a damaged cache file: tokenise again
            logger.warning("token cache %s is unreadable (%s); tokenising again", path, err)
    ids = tokenize(texts, tokenizer, config.max_length)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A private temporary name: runs of a sweep may tokenise the same split at once.
    atomic.save_torch(ids, path)
    return ids


def build_encoder(config: Config) -> tuple[TextEncoder, object]:
    """The encoder and tokenizer of a configuration; ``max_length`` above the backbone's
    position embeddings is refused here, before any data is tokenised."""
    check_backbone(config.backbone)
    backbone, tokenizer = load_backbone(config.backbone, dropout=config.dropout)
    limit = max_positions(backbone)
    if limit is not None and config.max_length > limit:
        raise ValueError(f"max_length={config.max_length} is above the {limit} positions of backbone "
                         f"{config.backbone!r}; set max_length to {limit} or less")
    encoder = TextEncoder(backbone, pooling=config.pooling, dim=config.proj_dim, train_layers=config.train_layers)
    return encoder, tokenizer


def cache_frozen_layers(config: Config, encoder: TextEncoder, tokenizer, data: "Data", device,
                        progress: bool = True) -> None:
    """Replace ``data.ids`` by the frozen bottom's cached states (``train_layers`` set and
    ``layer_cache`` not ``off``); nothing to do otherwise."""
    if config.train_layers is None or config.layer_cache == "off":
        return
    from .layer_cache import frozen_states

    tag = f"{config.backbone}|{type(tokenizer).__name__}|{len(tokenizer)}|{config.max_length}"
    encoder.to(device)
    data.ids = {s: frozen_states(encoder, ids, tag, config.layer_cache, batch_size=2 * config.batch_size,
                                 device=device, progress=progress)
                for s, ids in data.ids.items()}


def param_groups(model: torch.nn.Module, config: Config) -> list[dict]:
    """AdamW groups: backbone vs the rest (own learning rates), no decay on bias and norms."""
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "backbone" if ".backbone." in f".{name}" else "head"
        no_decay = name.endswith("bias") or "norm" in name.lower()
        key = (part, no_decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "lr": config.lr_backbone if part == "backbone" else config.lr_head,
                "weight_decay": 0.0 if no_decay else config.weight_decay,
                "name": f"{part}{'_no_decay' if no_decay else ''}",
            }
        groups[key]["params"].append(p)
    return list(groups.values())


def make_scheduler(optimizer, config: Config, total_steps: int):
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    warmup = int(round(config.warmup_ratio * total_steps))
    kind = config.resolved_schedule
    if kind == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)
    if kind == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    return get_constant_schedule_with_warmup(optimizer, warmup)


def supervised_loss_fn(config: Config, class_counts=None, n_train: int | None = None):
    """``fn(logits, y)`` of a supervised objective; ``db`` needs the training label counts
    (L,) and the number of training documents."""
    if config.objective == "bce":
        return bce_loss
    if config.objective == "focal":
        return lambda x, y: focal_loss(x, y, gamma=config.focal_gamma)
    if config.objective == "db":
        counts = torch.as_tensor(np.asarray(class_counts), dtype=torch.float32)
        return lambda x, y: db_loss(x, y, counts.to(x.device), n_train)
    return lambda x, y: asymmetric_loss(x, y, config.asl_gamma_pos, config.asl_gamma_neg, config.asl_margin)


def load_weights(path: str | Path, what: str = "weights", map_location="cpu", weights_only: bool | None = None):
    """``torch.load`` of a run file; a missing, empty, truncated or corrupt file is a
    :class:`RunFolderError` naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}")
    if path.stat().st_size == 0:
        raise RunFolderError(f"{path} is empty ({what}; a write was cut short); train that run again "
                             "(abalone train --restart)")
    try:
        if weights_only is None:
            return torch.load(path, map_location=map_location)
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a damaged file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunFolderError(f"{path} is unreadable ({what}, truncated or corrupt: {reason[:120]}); train that "
                             "run again (abalone train --restart)") from None


def load_encoder_state(path: str | Path) -> dict:
    """Encoder weights from a contrastive run directory (its selected candidate) or a file."""
    path = Path(path)
    if path.is_dir():
        metrics = path / "metrics.json"
        if not metrics.exists():
            raise FileNotFoundError(f"{path} has no metrics.json: finish (or resume) that contrastive run first")
        chosen = read_metrics(path).get("selected_candidate", "last")
        path = path / f"encoder_{chosen}.pt"
    if not path.exists():
        raise FileNotFoundError(f"no encoder weights at {path}")
    return load_weights(path, "encoder weights")


def load_run_encoder(run_dir):
    """Rebuild the encoder of a finished run, projection head discarded.

    Contrastive runs load their selected candidate, supervised runs the encoder part of
    ``model_best.pt`` (on top of ``init_from`` for fine-tuning), ``frozen`` runs the
    pre-trained backbone.

    Returns:
        (encoder, tokenizer, config)
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist: give the --output folder of `abalone train`")
    if not (run_dir / "metrics.json").exists():
        raise FileNotFoundError(f"{run_dir} has no metrics.json: train (or resume) it first")
    search = read_metrics(run_dir).get("lr_head_search")
    if search:  # a head learning-rate grid: the selected run
        run_dir = run_dir / search["selected_run"]
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"{run_dir} has no config.yaml: it is not a finished run folder")
    cfg = Config.from_file(run_dir / "config.yaml")
    if cfg.objective == TFIDF:
        raise ValueError(f"{run_dir} is a tfidf-linear run: it has no encoder to embed with")
    encoder, tokenizer = build_encoder(cfg)
    if cfg.contrastive:
        encoder.load_state_dict(load_encoder_state(run_dir))
    elif cfg.objective != "frozen":
        if cfg.init_from:
            encoder.load_state_dict(load_encoder_state(cfg.init_from))
        state = load_weights(run_dir / "model_best.pt", "classifier weights")
        body = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        missing, unexpected = encoder.load_state_dict(body, strict=False)
        if unexpected or any(not k.startswith("head.") for k in missing):
            raise RunFolderError(f"{run_dir}/model_best.pt does not match the encoder of its config.yaml; train "
                                 "that run again (abalone train --restart)")
    return encoder.eval(), tokenizer, cfg


# --------------------------------------------------------------------------- #
# The trainer
# --------------------------------------------------------------------------- #
class Trainer:
    """Runs one configuration in its output directory. Use :func:`run`."""

    def __init__(self, config: Config, progress: bool = True):
        self.config = config
        self.progress = progress
        self.out = Path(config.output_dir)
        self.device = resolve_device(config.device)
        self.rank, self.world = init_distributed()
        self.main = self.rank == 0  # only the first process writes files
        self.stop_requested = False
        self.saved_step = None  # step of the checkpoint on disk (None: none written yet)

    # ------------------------------------------------------------- set-up
    def setup(self) -> None:
        cfg = self.config
        seed_everything(cfg.seed, cfg.deterministic)
        encoder, tokenizer = build_encoder(cfg)
        self.tokenizer = tokenizer
        self.data = prepare_data(cfg, tokenizer)
        if cfg.init_from:  # before caching: the frozen layers' states come from these weights
            encoder.load_state_dict(load_encoder_state(cfg.init_from))
        L = self.data.labels["train"].shape[1]
        labelled = int((self.data.labels["train"].sum(1) > 0).sum())
        if L == 0 or labelled == 0:
            raise ValueError(
                f"dataset {self.data.dataset.name!r}: none of the {len(self.data.labels['train'])} training documents "
                f"has a label ({L} labels found); check label_column and label_sep in dataset_kwargs, or the label "
                "column of the data")
        cache_frozen_layers(cfg, encoder, tokenizer, self.data, self.device, self.progress)
        if cfg.objective == "frozen":
            self.model = encoder.to(self.device)
            return
        if cfg.contrastive:
            train_ids, train_y = self.data.ids["train"], self.data.labels["train"]
            val_ids, val_y = self.data.ids["validation"], self.data.labels["validation"]
            if not cfg.keep_unlabelled:
                keep, vkeep = train_y.sum(1) > 0, val_y.sum(1) > 0
                dropped = int((~keep).sum())
                if dropped:
                    logger.warning("contrastive training: dropped %d of %d training documents without a label "
                                   "(keep_unlabelled=True keeps them)", dropped, len(keep))
                train_ids = [x for x, k in zip(train_ids, keep) if k]
                train_y = train_y[keep]
                val_ids = [x for x, k in zip(val_ids, vkeep) if k]
                val_y = val_y[vkeep]
            if len(train_ids) < 2:
                raise ValueError("contrastive training needs at least 2 labelled training documents")
            self.train_set = TokenizedDataset(train_ids, train_y)
            self.val_set = TokenizedDataset(val_ids, val_y) if len(val_ids) else None
            self.model = ContrastiveModel(encoder, L, cfg.objective, cfg.temperature, cfg.beta,
                                          cfg.queue_size, cfg.momentum)
        else:
            self.train_set = TokenizedDataset(self.data.ids["train"], self.data.labels["train"])
            self.val_set = TokenizedDataset(self.data.ids["validation"], self.data.labels["validation"])
            self.model = TextClassifier(encoder, L, dropout=cfg.dropout)
            self.loss_fn = supervised_loss_fn(cfg, self.data.train_counts, len(self.data.labels["train"]))
        self.model.to(self.device)
        # Every rank draws the same global batches of world * batch_size documents and
        # trains on its own contiguous slice; full batches only, so slices match in size.
        self.sampler = LengthBucketSampler(self.train_set.lengths(), cfg.batch_size * self.world, shuffle=True,
                                           seed=cfg.seed, drop_last=self.world > 1)
        if len(self.sampler) == 0:
            raise ValueError(f"{len(self.train_set)} training documents cannot fill one batch of "
                             f"{cfg.batch_size} x {self.world} processes; lower batch_size")
        self.net = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        self.steps_per_epoch = len(self.sampler)
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(param_groups(self.model, cfg), fused=fused)
        self.scheduler = make_scheduler(self.optimizer, cfg, self.total_steps)
        self.autocast, use_scaler = autocast_for(cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": {}, "loss_sum": 0.0, "loss_n": 0,
                      "elapsed_s": 0.0}

    # ------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "state": self.state,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        }

    def save(self) -> None:
        """Write ``checkpoint.pt`` atomically; refuses (:class:`NonFiniteLoss`) to write
        NaN or inf weights, so the last good checkpoint is never replaced by a broken one."""
        if self.main:
            _check_finite_weights(self.model.state_dict(), self.out / "checkpoint.pt", self)
            atomic.save_torch(self.checkpoint(), self.out / "checkpoint.pt")
            self.saved_step = self.state["step"]

    def restore(self, ckpt: dict, allow_changes=()) -> None:
        """Continue from a checkpoint of the same configuration; the settings named in
        ``allow_changes`` (a subset of ``RESUMABLE_CHANGES``) may differ and take their new values."""
        saved = _comparable_config(ckpt["config"])
        differ = self.config.differences(saved)
        refused = sorted(set(differ) - set(allow_changes))
        if refused:
            raise RunFolderError(_other_configuration(self.out / "checkpoint.pt", {k: differ[k] for k in refused},
                                                      allow_changes))
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if "mixed_precision" not in differ:  # a scaler of another precision does not apply
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = ckpt["state"]
        self.saved_step = self.state["step"]
        if differ:
            self._apply_changes()
            self.state.setdefault("changes", []).append(
                {"step": self.state["step"], **{k: {"was": old, "now": new} for k, (new, old) in differ.items()}})
            logger.warning("resuming %s at step %d with changed settings: %s", self.out, self.state["step"],
                           ", ".join(f"{k} {old} -> {new}" for k, (new, old) in differ.items()))
        history = self.out / "history.jsonl"
        if history.exists() and self.main:  # drop records written after the checkpoint (a crash between the two)
            records = read_history(history)
            kept = [r for r in records if r["step"] <= self.state["step"]]
            if len(kept) != len(records):
                atomic.write_text(history, "".join(json.dumps(r) + "\n" for r in kept))
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        logger.info("resumed %s at step %d", self.out, self.state["step"])

    def _apply_changes(self) -> None:
        """After loading the optimiser and scheduler of a checkpoint: learning rates and weight
        decay from the (changed) configuration, at the schedule's current position."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            backbone = str(group.get("name", "")).startswith("backbone")
            group["initial_lr"] = cfg.lr_backbone if backbone else cfg.lr_head
            if not str(group.get("name", "")).endswith("no_decay"):
                group["weight_decay"] = cfg.weight_decay
        sched = self.scheduler
        sched.base_lrs = [g["initial_lr"] for g in self.optimizer.param_groups]
        lambdas = getattr(sched, "lr_lambdas", None)
        if lambdas is not None:
            for group, base, fn in zip(self.optimizer.param_groups, sched.base_lrs, lambdas):
                group["lr"] = base * fn(sched.last_epoch)
        sched._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    # ------------------------------------------------------------- training
    def _loss(self, batch) -> torch.Tensor:
        ids = batch["input_ids"].to(self.device, non_blocking=True)
        mask = batch["attention_mask"].to(self.device, non_blocking=True)
        y = batch["labels"].to(self.device, non_blocking=True)
        # Training goes through the DDP wrapper (gradient averaging); evaluation does not.
        net = self.net if self.model.training else self.model
        with self.autocast():
            if self.config.contrastive:
                return net(ids, mask, y)
            return self.loss_fn(net(ids, mask), y)

    def _step(self, batch) -> float:
        """One optimiser step; returns the loss. A NaN or inf loss or gradient (outside fp16,
        whose scaler skips such steps itself) raises :class:`NonFiniteLoss` *before* the
        optimiser applies anything, so the weights stay as they were."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        try:
            loss = self._loss(batch)
        except NonFiniteError as err:  # the loss refused NaN/inf projections, prototypes or queue
            raise NonFiniteLoss(self._non_finite(f"{err.name} held NaN or inf values")) from None
        self.scaler.scale(loss).backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = None
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        elif params and not self.scaler.is_enabled():
            norm = _total_norm(params)
        if self.scaler.is_enabled():  # fp16: inf gradients are expected, the scaler skips those steps
            norm = None
        checks = [loss.detach().float()] + ([norm.detach().float().to(loss.device)] if norm is not None else [])
        value, *norm_value = torch.stack(checks).tolist()  # one device sync for both
        if not math.isfinite(value) or not all(math.isfinite(v) for v in norm_value):
            self.optimizer.zero_grad(set_to_none=True)
            what = (f"the loss became {value}" if not math.isfinite(value)
                    else f"the gradient norm became {norm_value[0]}")
            raise NonFiniteLoss(self._non_finite(what))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.config.contrastive:
            self.model.momentum_update()
        return value

    def _non_finite(self, what: str) -> str:
        step = self.state["step"] + 1
        ckpt = self.out / "checkpoint.pt"
        kept = (f"{ckpt} still holds step {self.saved_step}, the last good state" if self.saved_step is not None
                else "no checkpoint was written yet")
        return (f"{what} at step {step}; the step was not applied and {kept}. Lower lr_backbone/lr_head, set "
                "grad_clip or use mixed_precision=no, then continue with `abalone train ... --resume-with-changes` "
                "(run(config, allow_changes=RESUMABLE_CHANGES))")

    def _batches(self, dataset, batch_sampler):
        for idx in batch_sampler:
            yield collate([dataset[i] for i in idx], self.data.pad_token_id)

    @torch.no_grad()
    def _validate(self) -> dict:
        cfg = self.config
        if cfg.contrastive:
            if self.val_set is None:
                return {}
            self.model.eval()
            # Batches of the global size, so the contrastive validation loss does not depend
            # on how many processes trained.
            sampler = LengthBucketSampler(self.val_set.lengths(), cfg.batch_size * self.world, shuffle=False)
            losses = [float(self._loss(b)) for b in self._batches(self.val_set, sampler)]
            return {"val_loss": float(np.mean(losses))}
        probs = predict_proba(self.model, self.data.ids["validation"], self.data.pad_token_id,
                              batch_size=2 * cfg.batch_size, device=self.device, progress=False)
        s = score(self.data.labels["validation"], (probs >= 0.5).astype(np.int8), self.data.train_counts)
        return {"val_micro_f1": s["micro_f1"], "val_macro_f1": s["macro_f1"]}

    def _evaluate_and_keep(self) -> None:
        cfg, st = self.config, self.state
        if not self.main:
            st["loss_sum"], st["loss_n"] = 0.0, 0
            return
        record = {"step": st["step"], "epoch": st["epoch"] + st["batch_in_epoch"] / self.steps_per_epoch,
                  "train_loss": st["loss_sum"] / max(st["loss_n"], 1),
                  "lr": self.scheduler.get_last_lr()[0], "elapsed_s": st["elapsed_s"]}
        record.update(self._validate())
        st["loss_sum"], st["loss_n"] = 0.0, 0
        atomic.append_line(self.out / "history.jsonl", json.dumps(_finite(record), allow_nan=False))
        best = st["best"]
        if cfg.contrastive:
            encoder_state = self.model.encoder.state_dict()
            for name, key in (("best_train_loss", "train_loss"), ("best_val_loss", "val_loss")):
                if key in record and record[key] < best.get(key, math.inf):
                    best[key] = record[key]
                    self._save_weights(encoder_state, self.out / f"encoder_{name}.pt")
        elif record["val_micro_f1"] > best.get("val_micro_f1", -1.0):
            best["val_micro_f1"] = record["val_micro_f1"]
            best["step"] = st["step"]
            self._save_weights(self.model.state_dict(), self.out / "model_best.pt")

    def _save_weights(self, state: dict, path: Path) -> None:
        _check_finite_weights(state, path, self)
        atomic.save_torch(state, path)

    def fit(self) -> None:
        cfg, st = self.config, self.state
        save_every = cfg.save_every or self.steps_per_epoch
        bar = tqdm(total=self.total_steps, initial=st["step"], desc=f"{cfg.objective} training",
                   disable=not self.progress, unit="step")
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def request_stop(signum, frame):
            self.stop_requested = True

        for s in previous:
            signal.signal(s, request_stop)
        try:
            while st["step"] < self.total_steps:
                batches = self.sampler.batches(st["epoch"])
                for idx in batches[st["batch_in_epoch"]:]:
                    if self.world > 1:
                        idx = idx[self.rank * cfg.batch_size:(self.rank + 1) * cfg.batch_size]
                    t0 = time.perf_counter()
                    # A NaN or inf loss raises NonFiniteLoss inside _step, before the optimiser moves,
                    # and nothing is saved: the checkpoint on disk stays the last good one.
                    loss = self._step(collate([self.train_set[i] for i in idx], self.data.pad_token_id))
                    st["elapsed_s"] += time.perf_counter() - t0
                    st["step"] += 1
                    st["batch_in_epoch"] += 1
                    st["loss_sum"] += loss
                    st["loss_n"] += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                    end_of_epoch = st["batch_in_epoch"] == len(batches)
                    done = st["step"] >= self.total_steps
                    due = st["step"] % cfg.eval_every == 0 if cfg.eval_every else end_of_epoch
                    if due or done:
                        self._evaluate_and_keep()
                    if end_of_epoch:
                        st["epoch"] += 1
                        st["batch_in_epoch"] = 0
                    if st["step"] % save_every == 0 or done or self.stop_requested:
                        self.save()
                    if self.stop_requested:
                        raise Interrupted(f"stopped at step {st['step']}; resume with the same configuration")
                    if done:
                        break
        finally:
            bar.close()
            for s, h in previous.items():
                signal.signal(s, h)
        if cfg.contrastive and self.main:
            self._save_weights(self.model.encoder.state_dict(), self.out / "encoder_last.pt")
        if self.world > 1:
            dist.barrier()

    # ------------------------------------------------------------- final scores
    def _features(self, encoder) -> dict:
        return {s: embed(encoder, self.data.ids[s], self.data.pad_token_id, batch_size=2 * self.config.batch_size,
                         device=self.device, progress=self.progress) for s in SPLITS}

    def final_metrics(self) -> dict:
        cfg = self.config
        probe = ProbeConfig(**{"device": str(self.device), "seed": cfg.seed, **cfg.probe})
        counts = self.data.train_counts
        out = {}
        if cfg.objective == "frozen" or cfg.contrastive:
            encoder = self.model if cfg.objective == "frozen" else self.model.encoder
            names = ["pretrained"] if cfg.objective == "frozen" else [
                c for c in (cfg.candidates or CANDIDATES) if (self.out / f"encoder_{c}.pt").exists()]
            seen, results = {}, {}
            for name in names:
                if name != "pretrained":
                    state = load_weights(self.out / f"encoder_{name}.pt", "encoder weights", self.device)
                    digest = _state_digest(state)
                    if digest in seen:  # same weights as another candidate
                        results[name] = results[seen[digest]]
                        continue
                    seen[digest] = name
                    encoder.load_state_dict(state)
                feats = self._features(encoder)
                results[name] = linear_evaluation(feats, self.data.labels, counts, probe, progress=self.progress)
            chosen = max(results, key=lambda n: results[n]["validation"]["micro_f1"])
            out.update(results[chosen])
            out["selected_candidate"] = chosen
            out["candidates"] = {n: {"validation_micro_f1": r["validation"]["micro_f1"],
                                     "test_micro_f1": r["test"]["micro_f1"]} for n, r in results.items()}
        else:
            self.model.load_state_dict(load_weights(self.out / "model_best.pt", "classifier weights", self.device))
            probs = {s: predict_proba(self.model, self.data.ids[s], self.data.pad_token_id,
                                      batch_size=2 * cfg.batch_size, device=self.device, progress=self.progress)
                     for s in ("validation", "test")}
            out.update(split_scores(self.data.labels, probs, counts, n_train=len(self.data.labels["train"])))
            out["selected_step"] = self.state["best"].get("step")
        return out


def run(config: Config, resume: bool = True, progress: bool = True, allow_changes=()) -> dict:
    """Train (or resume) and evaluate one configuration; returns and writes ``metrics.json``.

    The returned dict holds ``test`` and ``validation`` scores (micro_f1, macro_f1, hamming,
    f1_head/medium/tail, per_label_f1; the same at a threshold tuned on validation, ``*_tuned``;
    P@k, nDCG@k, PSP@k, mAP), plus ``converged`` and its ``convergence`` details,
    ``label_names``, ``train_label_counts``, timings and hardware. With ``lr_head_grid`` (rows
    that train a classifier), one run per head learning rate and the best on validation.

    Args:
        resume: continue the checkpoint in ``output_dir`` (the folder must hold a run of the
            same configuration, or none). False starts over there, replacing the folder's run
            files (``abalone train --restart``).
        allow_changes: settings of ``RESUMABLE_CHANGES`` (``lr_backbone``, ``lr_head``,
            ``weight_decay``, ``grad_clip``, ``mixed_precision``) that may differ from the
            checkpoint's and take their new values from here on, e.g. after a
            :class:`NonFiniteLoss`; True allows all of them (``--resume-with-changes``).
    Raises:
        ConfigError / ValueError (settings, data, backbone, device), RunFolderError (the
        folder holds another configuration, a finished run without checkpoint, damaged
        files), RunLocked, NonFiniteLoss, Interrupted, OSError (an unwritable folder, a
        full disk): each with one line naming the setting, file or row and what to do,
        and all but the last two before training starts.
    """
    allow = allowed_changes(allow_changes)
    if config.objective == TFIDF:
        return _run_tfidf(config, resume, allow)
    check_device(config.device)
    check_backbone(config.backbone)
    if config.lr_head_grid and not config.contrastive and config.objective != FROZEN:
        return _run_lr_head_grid(config, resume, progress, allow)
    return _run_one(config, resume, progress, allow)


def allowed_changes(allow_changes) -> tuple:
    """``allow_changes`` of :func:`run` as a tuple of setting names (True: all of RESUMABLE_CHANGES)."""
    if allow_changes is True:
        return RESUMABLE_CHANGES
    allow = tuple(allow_changes or ())
    unknown = sorted(set(allow) - set(RESUMABLE_CHANGES))
    if unknown:
        raise ValueError(f"allow_changes may name only {list(RESUMABLE_CHANGES)} (optimisation settings); "
                         f"got {unknown}: other settings make another run, in another output folder")
    return allow


# --------------------------------------------------------------------------- #
# The run folder: one configuration, one process, readable files
# --------------------------------------------------------------------------- #
@contextmanager
def run_folder(out: Path):
    """Check that ``out`` is writable (creating it), then hold its lock while the run works
    there. Under torchrun only the first process locks (all processes share the folder)."""
    out = Path(out)
    atomic.check_writable(out)
    if int(os.environ.get("RANK", "0")) != 0:
        yield out
        return
    from filelock import FileLock, Timeout

    lock = FileLock(str(out / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunLocked(f"{out} is in use: another training process works there (it holds {out / LOCK_NAME}); "
                        "wait for it to finish, or choose another output folder") from None
    try:
        yield out
    finally:
        lock.release()


def run_files(out: Path) -> list[Path]:
    """The files (and head learning-rate sub-runs) a run leaves in its folder, config.yaml aside."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [out / n for n in RUN_FILES if (out / n).exists()]
    found += sorted(out.glob("encoder_*.pt")) + sorted(p for p in out.glob("lr_head=*") if p.is_dir())
    return found


def clear_run_files(out: Path) -> None:
    """Delete the files of the run a folder held (a restart); sub-run folders stay."""
    for path in run_files(out):
        if path.is_file():
            path.unlink(missing_ok=True)


def read_history(path: Path) -> list[dict]:
    """Records of a ``history.jsonl``; a damaged line is a :class:`RunFolderError` naming it."""
    path = Path(path)
    records = []
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise RunFolderError(f"{path}, line {i}: not a complete JSON record ({getattr(err, 'msg', err)}); the "
                                 "history is damaged: delete that line if it is the last one (a write cut short), "
                                 "or add --restart to train the run again") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise RunFolderError(f"{path}, line {i}: not a history record (no integer 'step'); add --restart to "
                                 "train the run again")
        records.append(record)
    return records


def _comparable_config(d: dict) -> dict:
    """A saved configuration with today's defaults filled in and paths resolved, as a dict."""
    try:
        return Config.from_dict(dict(d)).to_dict()
    except (ConfigError, TypeError):
        return dict(d)


def _other_configuration(where: Path, differ: dict, allow=()) -> str:
    shown = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (new, old) in sorted(differ.items()))
    if len(shown) > 300:
        shown = shown[:297] + "..."
    message = (f"{where} holds a run of a different configuration ({shown}); add --restart to start over there "
               "(its run files are replaced), or choose another output folder")
    if set(differ) <= set(RESUMABLE_CHANGES):
        message += "; or continue its checkpoint with the new settings: --resume-with-changes"
    return message


def read_checkpoint(path: Path) -> dict:
    """A run's ``checkpoint.pt``; an empty, truncated or corrupt file, or one holding NaN
    weights, is a :class:`RunFolderError` naming it and offering ``--restart``."""
    path = Path(path)
    ckpt = load_weights(path, "checkpoint", map_location="cpu", weights_only=False)
    needed = {"config", "model", "optimizer", "scheduler", "scaler", "state", "rng"}
    if not isinstance(ckpt, dict) or not needed <= set(ckpt):
        raise RunFolderError(f"{path} is not a training checkpoint of this package (keys missing); add --restart to "
                             "train the run again")
    model = ckpt["model"]
    tensors = [v for v in model.values() if torch.is_tensor(v) and v.is_floating_point()]
    if tensors and not bool(torch.stack([torch.isfinite(v).all() for v in tensors]).all()):
        raise RunFolderError(f"{path} holds NaN or inf weights (saved after a non-finite loss by an earlier version); "
                             "add --restart to train the run again")
    return ckpt


def inspect_run_folder(config: Config, resume: bool, allow=(), trains: bool | None = None) -> dict | None:
    """Before any work: may this run use its folder? Returns the checkpoint to resume (None:
    start from scratch). Refuses (:class:`RunFolderError`) a folder holding another
    configuration (whatever the objective), a finished run whose checkpoint is gone, and
    damaged config.yaml, checkpoint.pt or history.jsonl, each with ``--restart`` as the way out."""
    out = Path(config.output_dir)
    files = run_files(out)
    if not resume or not files:
        return None
    if trains is None:
        trains = config.objective not in (FROZEN, TFIDF)
    ckpt_path = out / "checkpoint.pt"
    ckpt = None
    saved_path = out / "config.yaml"
    if saved_path.exists():
        try:
            saved = _comparable_config(read_settings(saved_path))
        except (ValueError, OSError) as err:
            raise RunFolderError(f"{err} (the run folder's config.yaml is damaged); add --restart to replace "
                                 "the run, or choose another output folder") from None
    elif ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path)
        saved = _comparable_config(ckpt["config"])
        saved_path = ckpt_path
    else:
        names = ", ".join(p.name for p in files)
        raise RunFolderError(f"{out} holds run files ({names}) but no config.yaml telling which configuration made "
                             "them; add --restart to replace them, or choose another output folder")
    differ = config.differences(saved)
    refused = {k: v for k, v in differ.items() if k not in allow}
    if refused:
        raise RunFolderError(_other_configuration(saved_path, refused, allow))
    if not trains:
        return None
    if not ckpt_path.exists():
        if (out / "metrics.json").exists():
            raise RunFolderError(
                f"{out} holds a finished run (metrics.json) whose checkpoint.pt is missing, so it cannot be "
                f"resumed; add --restart to train it again from the start (its run files are replaced), or see its "
                f"scores with `abalone evaluate {out}`")
        return None  # stopped before its first checkpoint: it starts over
    if ckpt is None:
        ckpt = read_checkpoint(ckpt_path)
    if (out / "history.jsonl").exists():
        read_history(out / "history.jsonl")
    return ckpt


def _check_finite_weights(state: dict, path: Path, trainer=None) -> None:
    """Refuse to write NaN or inf weights (:class:`NonFiniteLoss`); one device sync."""
    tensors = [(k, v) for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()]
    if not tensors:
        return
    flags = torch.stack([torch.isfinite(v).all() for _, v in tensors])
    if bool(flags.all()):
        return
    bad = next(k for (k, _), ok in zip(tensors, flags.tolist()) if not ok)
    what = f"the weights hold NaN or inf values ({bad}); {path} was not written"
    raise NonFiniteLoss(trainer._non_finite(what) if trainer is not None else what)


# --------------------------------------------------------------------------- #
# Runs
# --------------------------------------------------------------------------- #
def _run_tfidf(config: Config, resume: bool = True, allow=()) -> dict:
    """The ``tfidf-linear`` row: no network, TF-IDF features and linear classifiers whose
    settings and thresholds are chosen on validation (:mod:`abalone_core.tfidf`)."""
    with run_folder(Path(config.output_dir)) as out:
        inspect_run_folder(config, resume, allow)
        return _tfidf_metrics(config, out)


def _tfidf_metrics(config: Config, out: Path) -> dict:
    from scipy.special import expit

    from .metrics import best_global_threshold, multilabel_scores, ranking_scores
    from .tfidf import tfidf_linear

    out = Path(config.output_dir)
    t0 = time.perf_counter()
    seed_everything(config.seed, deterministic=False)
    ds = load_run_dataset(config)
    parts = {s: ds.split(s) for s in SPLITS}
    labels = {s: parts[s].labels.astype(np.int8) for s in SPLITS}
    counts = labels["train"].sum(0)
    if labels["train"].shape[1] == 0 or not (labels["train"].sum(1) > 0).any():
        raise ValueError(f"dataset {ds.name!r}: none of the {len(labels['train'])} training documents has a label; "
                         "check label_column and label_sep in dataset_kwargs, or the label column of the data")
    r = tfidf_linear(list(parts["train"].texts), labels["train"], list(parts["validation"].texts),
                     labels["validation"], list(parts["test"].texts), seed=config.seed)
    scores = {"validation": r.validation_scores, "test": r.test_scores}
    preds = {"validation": r.validation_pred, "test": r.test_pred}
    # Decision values are not probabilities: the global tuned threshold works on their sigmoid.
    probs = {s: expit(v) for s, v in scores.items()}
    tuned = best_global_threshold(labels["validation"], probs["validation"])
    metrics = {}
    for s in ("validation", "test"):
        d = score(labels[s], preds[s].astype(np.int8), counts)
        d.update({f"{k}_tuned": v for k, v in multilabel_scores(labels[s], (probs[s] >= tuned).astype(np.int8)).items()})
        d.update(ranking_scores(labels[s], scores[s], counts, n_train=len(labels["train"])))
        metrics[s] = d
    metrics.update({
        "threshold": "per-label thresholds chosen on validation by the linear library", "tuned_threshold": tuned,
        "tfidf": r.info, "objective": config.objective, "dataset": ds.name, "label_names": list(ds.label_names),
        "train_label_counts": counts.astype(int).tolist(), "n_documents": {s: len(labels[s]) for s in SPLITS},
        "steps": 0, "train_seconds": time.perf_counter() - t0, "wall_seconds_this_call": time.perf_counter() - t0,
        "hardware": hardware("cpu"), "config": config.to_dict(), "converged": None,
        "convergence": {"reason": "tfidf-linear: solved to the linear library's tolerance, no step budget"},
    })
    metrics = _finite(metrics)
    clear_run_files(out)
    config.save(out / "config.yaml")
    atomic.write_json(out / "metrics.json", metrics)
    return metrics


def lr_head_run_dir(config: Config, lr: float) -> Path:
    """Folder of the run of one head learning rate of ``config.lr_head_grid``."""
    return Path(config.output_dir) / f"lr_head={lr:g}"


def _run_lr_head_grid(config: Config, resume: bool, progress: bool, allow=()) -> dict:
    with run_folder(Path(config.output_dir)) as out:
        inspect_run_folder(config, resume, allow, trains=False)
        if not resume:
            clear_run_files(out)
        config.save(out / "config.yaml")  # the folder now belongs to this grid
        results = {}
        for lr in config.lr_head_grid:
            sub = config.replace(lr_head=lr, lr_head_grid=None, output_dir=str(lr_head_run_dir(config, lr)))
            results[lr] = _run_one(sub, resume, progress, allow)
        # The best validation micro-F1; ties go to the smaller learning rate.
        best = max(results, key=lambda lr: (results[lr]["validation"]["micro_f1"], -lr))
        metrics = {**results[best], "config": config.to_dict(), "lr_head_search": {
            "grid": list(config.lr_head_grid), "selected": best, "selected_run": lr_head_run_dir(config, best).name,
            "validation_micro_f1": {f"{lr:g}": r["validation"]["micro_f1"] for lr, r in results.items()},
            "converged": {f"{lr:g}": r.get("converged") for lr, r in results.items()}}}
        atomic.write_json(out / "metrics.json", _finite(metrics))
        return metrics


def _run_one(config: Config, resume: bool = True, progress: bool = True, allow=()) -> dict:
    with run_folder(Path(config.output_dir)) as out:
        ckpt = inspect_run_folder(config, resume, allow)
        trainer = Trainer(config, progress)
        t0 = time.perf_counter()
        trainer.setup()
        if config.objective != FROZEN and ckpt is not None:
            trainer.restore(ckpt, allow)
            ckpt = None
        elif trainer.main:
            clear_run_files(out)  # a restart, or a run stopped before its first checkpoint
        if trainer.main:
            config.save(out / "config.yaml")
        if config.objective != FROZEN:
            trainer.fit()
        if not trainer.main:
            return {}
        try:
            metrics = trainer.final_metrics()
        except KeyboardInterrupt:
            raise Interrupted(f"stopped during the final evaluation of {out}; the training is finished and saved "
                              "(checkpoint.pt): run the same command again to evaluate it") from None
        ds = trainer.data.dataset
        state = getattr(trainer, "state", {})
        metrics.update({
            "objective": config.objective,
            "dataset": ds.name,
            "label_names": list(ds.label_names),
            "train_label_counts": trainer.data.train_counts.astype(int).tolist(),
            "n_documents": {s: len(trainer.data.ids[s]) for s in SPLITS},
            "steps": state.get("step", 0),
            "train_seconds": state.get("elapsed_s", 0.0),
            "wall_seconds_this_call": time.perf_counter() - t0,
            "hardware": hardware(str(trainer.device)),
            "config": config.to_dict(),
        })
        if state.get("changes"):
            metrics["resumed_with_changes"] = state["changes"]
        metrics.update(run_convergence(config, out, getattr(trainer, "total_steps", 0)))
        metrics = _finite(metrics)
        atomic.write_json(out / "metrics.json", metrics)
        return metrics


def run_convergence(config: Config, out: Path, total_steps: int) -> dict:
    """``converged`` and its ``convergence`` details from the run's history (None for ``frozen``)."""
    if config.objective == FROZEN:
        return {"converged": None, "convergence": {"reason": "frozen: nothing trained"}}
    history = read_history(out / "history.jsonl")
    c = convergence(history, total_steps, "val_loss" if config.contrastive else "val_micro_f1")
    return {"converged": c["converged"], "convergence": c}


def _finite(obj):
    """NaN and infinities become None, so the JSON stays standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _total_norm(params) -> torch.Tensor:
    """L2 norm of all gradients together (no clipping)."""
    grads = [p.grad for p in params]
    if hasattr(torch.nn.utils, "get_total_norm"):
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


def _state_digest(state: dict) -> str:
    h = hashlib.sha1()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
