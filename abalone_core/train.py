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
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import random
import signal
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import __version__
from .batching import LengthBucketSampler, TokenizedDataset, collate, tokenize
from .config import TFIDF, Config
from .data import MultiLabelDataset, load_dataset
from .convergence import convergence
from .evaluate import embed, linear_evaluation, predict_proba, score, split_scores
from .losses import asymmetric_loss, bce_loss, db_loss, focal_loss
from .model import ContrastiveModel, TextClassifier, TextEncoder, load_backbone
from .probe import ProbeConfig

logger = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")
CANDIDATES = ("last", "best_train_loss", "best_val_loss")


class Interrupted(RuntimeError):
    """Raised after a SIGTERM/SIGINT once the checkpoint is safely written."""


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
        return torch.load(path)
    ids = tokenize(texts, tokenizer, config.max_length)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A private temporary name: runs of a sweep may tokenise the same split at once.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    torch.save(ids, tmp)
    tmp.replace(path)
    return ids


def build_encoder(config: Config) -> tuple[TextEncoder, object]:
    backbone, tokenizer = load_backbone(config.backbone, dropout=config.dropout)
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


def load_encoder_state(path: str | Path) -> dict:
    """Encoder weights from a contrastive run directory (its selected candidate) or a file."""
    path = Path(path)
    if path.is_dir():
        metrics = path / "metrics.json"
        if not metrics.exists():
            raise FileNotFoundError(f"{path} has no metrics.json: finish (or resume) that contrastive run first")
        chosen = json.loads(metrics.read_text()).get("selected_candidate", "last")
        path = path / f"encoder_{chosen}.pt"
    if not path.exists():
        raise FileNotFoundError(f"no encoder weights at {path}")
    return torch.load(path, map_location="cpu")


def load_run_encoder(run_dir):
    """Rebuild the encoder of a finished run, projection head discarded.

    Contrastive runs load their selected candidate, supervised runs the encoder part of
    ``model_best.pt`` (on top of ``init_from`` for fine-tuning), ``frozen`` runs the
    pre-trained backbone.

    Returns:
        (encoder, tokenizer, config)
    """
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").exists():
        raise FileNotFoundError(f"{run_dir} has no metrics.json: train (or resume) it first")
    search = json.loads((run_dir / "metrics.json").read_text()).get("lr_head_search")
    if search:  # a head learning-rate grid: the selected run
        run_dir = run_dir / search["selected_run"]
    cfg = Config.from_file(run_dir / "config.yaml")
    encoder, tokenizer = build_encoder(cfg)
    if cfg.contrastive:
        encoder.load_state_dict(load_encoder_state(run_dir))
    elif cfg.objective != "frozen":
        if cfg.init_from:
            encoder.load_state_dict(load_encoder_state(cfg.init_from))
        state = torch.load(run_dir / "model_best.pt", map_location="cpu")
        body = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        missing, unexpected = encoder.load_state_dict(body, strict=False)
        if unexpected or any(not k.startswith("head.") for k in missing):
            raise RuntimeError(f"{run_dir}/model_best.pt does not match the encoder of its config.yaml")
    return encoder.eval(), tokenizer, cfg


def hardware() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "abalone_core": __version__, "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


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

    # ------------------------------------------------------------- set-up
    def setup(self) -> None:
        cfg = self.config
        seed_everything(cfg.seed, cfg.deterministic)
        encoder, tokenizer = build_encoder(cfg)
        self.tokenizer = tokenizer
        self.data = prepare_data(cfg, tokenizer)
        if cfg.init_from:  # before caching: the frozen layers' states come from these weights
            encoder.load_state_dict(load_encoder_state(cfg.init_from))
        cache_frozen_layers(cfg, encoder, tokenizer, self.data, self.device, self.progress)
        L = self.data.labels["train"].shape[1]
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
        if self.main:
            _atomic_save(self.checkpoint(), self.out / "checkpoint.pt")

    def restore(self, ckpt: dict) -> None:
        saved = ckpt["config"]
        mine = self.config.to_dict()
        differ = sorted(k for k in mine if k not in ("output_dir", "device") and saved.get(k) != mine[k])
        if differ:
            raise ValueError(
                f"{self.out}/checkpoint.pt was written with a different configuration ({differ}); "
                "use another output_dir, or resume=False to start over"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state = ckpt["state"]
        history = self.out / "history.jsonl"
        if history.exists():  # drop records written after the checkpoint (a crash between the two)
            lines = [l for l in history.read_text().splitlines() if json.loads(l)["step"] <= self.state["step"]]
            history.write_text("".join(l + "\n" for l in lines))
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        logger.info("resumed %s at step %d", self.out, self.state["step"])

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
        self.model.train()
        loss = self._loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.config.contrastive:
            self.model.momentum_update()
        return float(loss.detach())

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
        with open(self.out / "history.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        best = st["best"]
        if cfg.contrastive:
            encoder_state = self.model.encoder.state_dict()
            for name, key in (("best_train_loss", "train_loss"), ("best_val_loss", "val_loss")):
                if key in record and record[key] < best.get(key, math.inf):
                    best[key] = record[key]
                    _atomic_save(encoder_state, self.out / f"encoder_{name}.pt")
        elif record["val_micro_f1"] > best.get("val_micro_f1", -1.0):
            best["val_micro_f1"] = record["val_micro_f1"]
            best["step"] = st["step"]
            _atomic_save(self.model.state_dict(), self.out / "model_best.pt")

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
                    loss = self._step(collate([self.train_set[i] for i in idx], self.data.pad_token_id))
                    st["elapsed_s"] += time.perf_counter() - t0
                    if not math.isfinite(loss):
                        self.save()
                        raise FloatingPointError(
                            f"loss became {loss} at step {st['step']}; checkpoint saved. Lower the learning "
                            "rate, raise the temperature or use mixed_precision='no'"
                        )
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
            _atomic_save(self.model.encoder.state_dict(), self.out / "encoder_last.pt")
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
                c for c in CANDIDATES if (self.out / f"encoder_{c}.pt").exists()]
            seen, results = {}, {}
            for name in names:
                if name != "pretrained":
                    state = torch.load(self.out / f"encoder_{name}.pt", map_location=self.device)
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
            self.model.load_state_dict(torch.load(self.out / "model_best.pt", map_location=self.device))
            probs = {s: predict_proba(self.model, self.data.ids[s], self.data.pad_token_id,
                                      batch_size=2 * cfg.batch_size, device=self.device, progress=self.progress)
                     for s in ("validation", "test")}
            out.update(split_scores(self.data.labels, probs, counts, n_train=len(self.data.labels["train"])))
            out["selected_step"] = self.state["best"].get("step")
        return out


def run(config: Config, resume: bool = True, progress: bool = True) -> dict:
    """Train (or resume) and evaluate one configuration; returns and writes ``metrics.json``.

    The returned dict holds ``test`` and ``validation`` scores (micro_f1, macro_f1, hamming,
    f1_head/medium/tail, per_label_f1; the same at a threshold tuned on validation, ``*_tuned``;
    P@k, nDCG@k, PSP@k, mAP), plus ``converged`` and its ``convergence`` details,
    ``label_names``, ``train_label_counts``, timings and hardware. With ``lr_head_grid`` (rows
    that train a classifier), one run per head learning rate and the best on validation.
    """
    if config.objective == TFIDF:
        return _run_tfidf(config)
    if config.lr_head_grid and not config.contrastive and config.objective != "frozen":
        return _run_lr_head_grid(config, resume, progress)
    return _run_one(config, resume, progress)


def _run_tfidf(config: Config) -> dict:
    """The ``tfidf-linear`` row: no network, TF-IDF features and linear classifiers whose
    settings and thresholds are chosen on validation (:mod:`abalone_core.tfidf`)."""
    from scipy.special import expit

    from .metrics import best_global_threshold, multilabel_scores, ranking_scores
    from .tfidf import tfidf_linear

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seed_everything(config.seed, deterministic=False)
    ds = load_run_dataset(config)
    parts = {s: ds.split(s) for s in SPLITS}
    labels = {s: parts[s].labels.astype(np.int8) for s in SPLITS}
    counts = labels["train"].sum(0)
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
        "hardware": hardware(), "config": config.to_dict(), "converged": None,
        "convergence": {"reason": "tfidf-linear: solved to the linear library's tolerance, no step budget"},
    })
    metrics = _finite(metrics)
    config.save(out / "config.yaml")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False))
    return metrics


def lr_head_run_dir(config: Config, lr: float) -> Path:
    """Folder of the run of one head learning rate of ``config.lr_head_grid``."""
    return Path(config.output_dir) / f"lr_head={lr:g}"


def _run_lr_head_grid(config: Config, resume: bool, progress: bool) -> dict:
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for lr in config.lr_head_grid:
        sub = config.replace(lr_head=lr, lr_head_grid=None, output_dir=str(lr_head_run_dir(config, lr)))
        results[lr] = _run_one(sub, resume, progress)
    # The best validation micro-F1; ties go to the smaller learning rate.
    best = max(results, key=lambda lr: (results[lr]["validation"]["micro_f1"], -lr))
    metrics = {**results[best], "config": config.to_dict(), "lr_head_search": {
        "grid": list(config.lr_head_grid), "selected": best, "selected_run": lr_head_run_dir(config, best).name,
        "validation_micro_f1": {f"{lr:g}": r["validation"]["micro_f1"] for lr, r in results.items()},
        "converged": {f"{lr:g}": r.get("converged") for lr, r in results.items()}}}
    config.save(out / "config.yaml")
    (out / "metrics.json").write_text(json.dumps(_finite(metrics), indent=2, allow_nan=False))
    return metrics


def _run_one(config: Config, resume: bool = True, progress: bool = True) -> dict:
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, progress)
    t0 = time.perf_counter()
    trainer.setup()
    ckpt_path = out / "checkpoint.pt"
    if config.objective != "frozen":
        if resume and ckpt_path.exists():
            trainer.restore(torch.load(ckpt_path, map_location="cpu", weights_only=False))
        elif trainer.main:
            for stale in list(out.glob("encoder_*.pt")) + [out / "history.jsonl", out / "model_best.pt",
                                                           out / "metrics.json"]:
                stale.unlink(missing_ok=True)
    if trainer.main:
        config.save(out / "config.yaml")
    if config.objective != "frozen":
        trainer.fit()
    if not trainer.main:
        return {}
    metrics = trainer.final_metrics()
    ds = trainer.data.dataset
    metrics.update({
        "objective": config.objective,
        "dataset": ds.name,
        "label_names": list(ds.label_names),
        "train_label_counts": trainer.data.train_counts.astype(int).tolist(),
        "n_documents": {s: len(trainer.data.ids[s]) for s in SPLITS},
        "steps": getattr(trainer, "state", {}).get("step", 0),
        "train_seconds": getattr(trainer, "state", {}).get("elapsed_s", 0.0),
        "wall_seconds_this_call": time.perf_counter() - t0,
        "hardware": hardware(),
        "config": config.to_dict(),
    })
    metrics.update(run_convergence(config, out, getattr(trainer, "total_steps", 0)))
    metrics = _finite(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False))
    return metrics


def run_convergence(config: Config, out: Path, total_steps: int) -> dict:
    """``converged`` and its ``convergence`` details from the run's history (None for ``frozen``)."""
    if config.objective == "frozen":
        return {"converged": None, "convergence": {"reason": "frozen: nothing trained"}}
    history = [json.loads(l) for l in (out / "history.jsonl").read_text().splitlines() if l.strip()]
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


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _state_digest(state: dict) -> str:
    h = hashlib.sha1()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
