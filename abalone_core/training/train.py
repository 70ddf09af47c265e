"""Training: the :class:`Trainer`, its optimiser groups and schedules, the supervised losses
and the run's ``history.jsonl``.

What it builds on lives in its own modules: devices, seeding and deterministic kernels
(:mod:`abalone_core.training.devices`), the encoder and the saved weights (:mod:`abalone_core.training.encoders`),
the run's data (:mod:`abalone_core.data.run_data`) and the errors (:mod:`abalone_core.errors`).

:class:`Trainer` trains one configuration in its output folder: contrastive pre-training
(keeping three candidate encoders), a supervised classifier (keeping the best validation
micro-F1), or nothing for ``frozen``; it checkpoints, resumes, stops cleanly on
SIGTERM/SIGINT (:class:`Interrupted`) and refuses non-finite losses and weights
(:class:`NonFiniteLoss`). The run folder itself, its lock and what may resume there, and
the entry point :func:`abalone_core.training.runs.run` are in :mod:`abalone_core.training.runs`.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .. import atomic
from ..data.batching import LengthBucketSampler, TokenizedDataset, collate
from .config import CANDIDATES, Config
from .convergence import early_stopping
from ..data import SPLITS
from .devices import autocast_for, deterministic_mode, init_distributed, resolve_device, seed_everything
from .encoders import build_encoder, cache_frozen_layers, load_encoder_state, load_weights
from ..errors import Interrupted, NonFiniteLoss, RunFolderError
from ..evaluation.evaluate import embed, linear_evaluation, predict_proba, score, split_scores
from ..method.losses import NonFiniteError
from ..method.model import ContrastiveModel, TextClassifier
from ..evaluation.probe import ProbeConfig
from ..data.run_data import prepare_data
from .run_folder import BEST_MODEL, CHECKPOINT, CONFIG, RunFolder, other_configuration

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- #
# Set-up helpers
# --------------------------------------------------------------------------- #
def _deterministic(method):
    """A :class:`Trainer` method run in :func:`deterministic_mode` of the trainer's configuration."""
    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with deterministic_mode(self.config.deterministic):
            return method(self, *args, **kwargs)
    return wrapped


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
    """``fn(logits, y)`` of a classifier objective (:mod:`abalone_core.method.objectives`); ``db``
    needs the training label counts (L,) and the number of training documents."""
    return config.spec.loss(config, class_counts, n_train)


# --------------------------------------------------------------------------- #
# The trainer
# --------------------------------------------------------------------------- #
class Trainer:
    """Runs one configuration in its output directory. Use :func:`abalone_core.training.runs.run`."""

    def __init__(self, config: Config, progress: bool = True):
        self.config = config
        self.progress = progress
        self.out = Path(config.output_dir)
        self.folder = RunFolder(self.out)
        self.device = resolve_device(config.device)
        self.rank, self.world = init_distributed()
        self.main = self.rank == 0  # only the first process writes files
        self.stop_requested = False
        self.saved_step = None  # step of the checkpoint on disk (None: none written yet)
        self.config_pending = False  # resumed with changes: config.yaml follows the first checkpoint with them

    # ------------------------------------------------------------- set-up
    @_deterministic
    def setup(self) -> None:
        cfg = self.config
        seed_everything(cfg.seed)
        encoder, tokenizer = build_encoder(cfg)
        self.tokenizer = tokenizer
        self.data = prepare_data(cfg, tokenizer)
        if cfg.init_from:  # before caching: the frozen layers' states come from these weights
            encoder.load_state_dict(load_encoder_state(cfg.init_from, "init_from"))
        L = self.data.labels["train"].shape[1]
        labelled = int((self.data.labels["train"].sum(1) > 0).sum())
        if L == 0 or labelled == 0:
            raise ValueError(
                f"dataset {self.data.dataset.name!r}: none of the {len(self.data.labels['train'])} training documents "
                f"has a label ({L} labels found); check label_column and label_sep in dataset_kwargs, or the label "
                "column of the data")
        cache_frozen_layers(cfg, encoder, tokenizer, self.data, self.device, self.progress)
        if not cfg.spec.trains:  # untrained: the linear probe of the pre-trained encoder
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
            "data": self.data.digest,
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
            _check_finite_weights(self.model.state_dict(), self.out / CHECKPOINT, self)
            self.folder.save_checkpoint(self.checkpoint())
            self.saved_step = self.state["step"]
            if self.config_pending:
                self.config.save(self.out / CONFIG)
                self.config_pending = False

    def restore(self, ckpt: dict, allow_changes=()) -> None:
        """Continue from a checkpoint of the same configuration; the settings named in
        ``allow_changes`` (a subset of ``RESUMABLE_CHANGES``) may differ and take their new values.
        The data must be the checkpoint's (:func:`~abalone_core.data.run_data.data_digest`)."""
        if ckpt.get("data") is not None and ckpt["data"] != self.data.digest:
            raise RunFolderError(
                f"{self.out} was trained up to step {ckpt['state']['step']} on other data: the texts, labels or "
                f"splits of dataset {self.data.dataset.name!r} have changed since; add --restart to train it again "
                "on the data as it is now, or restore the data it was trained on")
        differ = self.config.differences(ckpt["config"])
        refused = sorted(set(differ) - set(allow_changes))
        if refused:
            raise RunFolderError(other_configuration(self.out / CHECKPOINT, {k: differ[k] for k in refused},
                                                      allow_changes))
        if differ and ckpt["state"]["step"] >= self.total_steps:
            shown = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (new, old) in sorted(differ.items()))
            raise RunFolderError(
                f"{self.out} holds a finished run (step {ckpt['state']['step']} of {self.total_steps}): no step is "
                f"left to train with the changed settings ({shown}); run the command without the changes to "
                "evaluate it again, or replace --resume-with-changes by --restart to train it again with them")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if "mixed_precision" not in differ:  # a scaler of another precision does not apply
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = ckpt["state"]
        self.saved_step = self.state["step"]
        if differ:
            self.config_pending = True  # config.yaml keeps the checkpoint's settings until a step used the new ones
            self._apply_changes()
            self.state.setdefault("changes", []).append(
                {"step": self.state["step"], **{k: {"was": old, "now": new} for k, (new, old) in differ.items()}})
            logger.warning("resuming %s at step %d with changed settings: %s", self.out, self.state["step"],
                           ", ".join(f"{k} {old} -> {new}" for k, (new, old) in differ.items()))
        if self.main:  # history lines and best candidates written after the checkpoint go (a crash between the two)
            self.folder.restore_to(self.state["step"])
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
    def _on_device(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch's token ids, attention mask and labels on the training device."""
        return tuple(batch[k].to(self.device, non_blocking=True) for k in ("input_ids", "attention_mask", "labels"))

    def _loss(self, batch) -> torch.Tensor:
        ids, mask, y = self._on_device(batch)
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
        ckpt = self.out / CHECKPOINT
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
            losses = []
            for batch in self._batches(self.val_set, sampler):
                with self.autocast():
                    losses.append(self.model.validation_losses(*self._on_device(batch)))
            return {key: float(np.mean([l[key] for l in losses])) for key in ("val_loss", "val_loss_in_batch")}
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
        self.folder.append_history(_finite(record))
        metric = self.selection_metric
        if metric in record:
            st.setdefault("evals", []).append({"step": st["step"], metric: record[metric]})
        best = st["best"]
        if cfg.contrastive:
            encoder_state = self.model.encoder.state_dict()
            for name, key in (("best_train_loss", "train_loss"), ("best_val_loss", "val_loss")):
                if key in record and record[key] < best.get(key, math.inf):
                    best[key] = record[key]
                    self._save_best(encoder_state, f"encoder_{name}.pt")
        elif record["val_micro_f1"] > best.get("val_micro_f1", -1.0):
            best["val_micro_f1"] = record["val_micro_f1"]
            best["step"] = st["step"]
            self._save_best(self.model.state_dict(), "model_best.pt")

    @property
    def selection_metric(self) -> str:
        """What the convergence rule judges: the validation loss with in-batch keys for a
        contrastive run, validation micro-F1 for a classifier (:mod:`abalone_core.training.convergence`)."""
        return self.config.spec.selection

    def _stop_early(self) -> bool:
        """Whether the early-stopping rule fires after the latest evaluation (every process
        gets the first process's answer)."""
        stop = False
        if self.main:
            evals = self.state.get("evals", [])
            stop = early_stopping(evals, self.selection_metric, self.config.early_stopping)["stop"]
        if self.world > 1:
            flag = torch.tensor([int(stop)], device=self.device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        return stop

    def _save_best(self, state: dict, name: str) -> None:
        """A best candidate, pending until the next checkpoint (:class:`~abalone_core.training.run_folder.RunFolder`)."""
        _check_finite_weights(state, self.out / name, self)
        self.folder.save_best(name, state, self.state["step"])

    def _save_weights(self, state: dict, path: Path) -> None:
        _check_finite_weights(state, path, self)
        atomic.save_torch(state, path)

    @_deterministic
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
            while st["step"] < self.total_steps and not st.get("stopped_early"):
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
                        if cfg.early_stopping is not None and not done and self._stop_early():
                            st["stopped_early"] = done = True
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

    @_deterministic
    def final_metrics(self) -> dict:
        cfg = self.config
        probe = ProbeConfig(**{"device": str(self.device), "seed": cfg.seed, **cfg.probe})
        counts = self.data.train_counts
        out = {}
        if cfg.spec.probed:
            untrained = not cfg.spec.trains
            encoder = self.model if untrained else self.model.encoder
            names = ["pretrained"] if untrained else [
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
                results[name] = linear_evaluation(feats, self.data.labels, counts, probe, progress=self.progress,
                                                  keep_scores=True)
            chosen = max(results, key=lambda n: results[n]["validation"]["micro_f1"])
            out.update(results[chosen])  # with "scores": the arrays, saved apart by the run folder
            out["selected_candidate"] = chosen
            out["candidates"] = {n: {"validation_micro_f1": r["validation"]["micro_f1"],
                                     "test_micro_f1": r["test"]["micro_f1"]} for n, r in results.items()}
        else:
            self.model.load_state_dict(load_weights(self.out / BEST_MODEL, "classifier weights", self.device))
            probs = {s: predict_proba(self.model, self.data.ids[s], self.data.pad_token_id,
                                      batch_size=2 * cfg.batch_size, device=self.device, progress=self.progress)
                     for s in ("validation", "test")}
            out.update(split_scores(self.data.labels, probs, counts, n_train=len(self.data.labels["train"])))
            out["scores"] = probs
            out["selected_step"] = self.state["best"].get("step")
        return out


# --------------------------------------------------------------------------- #
# Run files the trainer reads and writes
# --------------------------------------------------------------------------- #
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
