"""The run lifecycle: one entry point, :func:`run`, shared by ``abalone train``, the sweeps and the notebooks.

:func:`run` follows the paper's protocol for ``config.objective``:

* contrastive (``base``, ``bqueue``, ``bqproto``, ``msc``): pre-train, keep three candidate
  encoders (last, lowest training loss, lowest validation loss), linear-evaluate each and
  report the one with the best validation micro-F1;
* supervised (``bce``, ``focal``, ``asymmetric``), optionally from a contrastive encoder
  (``init_from``, the L_*-FT rows): train a classifier, keep the best validation micro-F1;
  with ``lr_head_grid``, one such run per head learning rate and the best on validation;
* ``frozen``: no training, linear evaluation of the pre-trained backbone (the L_MLM row);
* ``tfidf-linear``: no network, TF-IDF features of the whole documents and linear
  classifiers with the library's own per-label thresholds (LibMultiLabel as shipped);
  ``tfidf-cut``: the same on the text a neural row sees (its first ``max_length`` tokens).

Every row's validation and test scores are saved beside ``metrics.json`` (``scores.npz``,
float16), so a decision rule or metric can be recomputed without training.

The training itself is :class:`abalone_core.training.train.Trainer`'s; this module owns the run
folder. It holds ``config.yaml``, ``history.jsonl`` (one line per evaluation),
``checkpoint.pt`` (everything needed to resume) and ``metrics.json`` (final scores).
A run stopped by SIGTERM/SIGINT saves a checkpoint at the end of the current step;
``run(config, resume=True)`` (the default) continues it and ends with the same numbers.

Nothing is lost or mixed:

* every file is written atomically (:mod:`abalone_core.atomic`), and a run folder is
  locked by the process that trains in it (a second one gets
  :class:`~abalone_core.training.run_folder.RunLocked`);
* a folder belongs to one configuration, whatever the objective (the rule is
  :meth:`Config.differences <abalone_core.training.config.Config.differences>`): another
  configuration, a finished run whose ``checkpoint.pt`` is gone, or an unreadable
  checkpoint or history is refused (:class:`~abalone_core.errors.RunFolderError`) until ``resume=False``
  (``abalone train --restart``);
* a non-finite loss or gradient stops the run before the optimiser applies it
  (:class:`~abalone_core.errors.NonFiniteLoss`), and non-finite weights are never written: the last good
  checkpoint stays, and ``run(config, allow_changes=RESUMABLE_CHANGES)`` (``abalone train
  --resume-with-changes``) resumes it with lower learning rates, clipping or another precision;
* set-up problems (an unknown backbone, ``max_length`` above the backbone's positions, a
  missing device, data without labels, an unwritable folder) are reported before training.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import atomic
from .config import RESUMABLE_CHANGES, Config, read_settings
from .convergence import contrastive_metric, convergence, early_stopping
from ..data import SPLITS
from ..evaluation.evaluate import save_scores, split_scores
from .provenance import hardware
from .devices import check_device, resolve_precision, seed_everything
from .encoders import check_backbone
from ..errors import Interrupted, RunFolderError
from ..data.run_data import data_digest, load_run_dataset
from .run_folder import (CHECKPOINT, CONFIG, HISTORY, METRICS, SCORES_NAME, clear_run_files, locked,
                         other_configuration, read_checkpoint, read_history, run_files)
from .train import Trainer, _finite


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
            :class:`~abalone_core.errors.NonFiniteLoss`; True allows all of them (``--resume-with-changes``).
    Raises:
        ConfigError / ValueError (settings, data, backbone, device), RunFolderError (the
        folder holds another configuration, a finished run without checkpoint, damaged
        files), RunLocked, NonFiniteLoss, Interrupted, OSError (an unwritable folder, a
        full disk): each with one line naming the setting, file or row and what to do,
        and all but the last two before training starts.
    """
    allow = allowed_changes(allow_changes)
    if config.spec.kind == "tfidf":
        return _run_tfidf(config, resume, allow)
    check_device(config.device)
    check_backbone(config.backbone)
    if config.lr_head_grid and config.spec.kind == "classifier":
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
def inspect_run_folder(config: Config, resume: bool, allow=(), trains: bool | None = None) -> dict | None:
    """Before any work: may this run use its folder? Returns the checkpoint to resume (None:
    start from scratch). Refuses (:class:`~abalone_core.errors.RunFolderError`) a folder holding another
    configuration (whatever the objective), a finished run whose checkpoint is gone, and
    damaged config.yaml, checkpoint.pt or history.jsonl, each with ``--restart`` as the way out. A
    folder holding only a config.yaml is this run's only if that file is this run's configuration."""
    out = Path(config.output_dir)
    files = run_files(out)
    if not resume or not (files or (out / CONFIG).exists()):
        return None
    if trains is None:
        trains = config.spec.trains
    ckpt_path = out / CHECKPOINT
    ckpt = None
    saved_path = out / CONFIG
    if saved_path.exists():
        try:
            saved = read_settings(saved_path)
        except (ValueError, OSError) as err:
            raise RunFolderError(f"{err} (the run folder's config.yaml is damaged); add --restart to replace "
                                 "the run, or choose another output folder") from None
    elif ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path)
        saved = ckpt["config"]
        saved_path = ckpt_path
    else:
        names = ", ".join(p.name for p in files)
        raise RunFolderError(f"{out} holds run files ({names}) but no config.yaml telling which configuration made "
                             "them; add --restart to replace them, or choose another output folder")
    differ = config.differences(saved)
    refused = {k: v for k, v in differ.items() if k not in allow}
    if refused:
        raise RunFolderError(other_configuration(saved_path, refused, allow))
    if not trains:
        return None
    if not ckpt_path.exists():
        if (out / METRICS).exists():
            raise RunFolderError(
                f"{out} holds a finished run (metrics.json) whose checkpoint.pt is missing, so it cannot be "
                f"resumed; add --restart to train it again from the start (its run files are replaced), or see its "
                f"scores with `abalone evaluate {out}`")
        return None  # stopped before its first checkpoint: it starts over
    if ckpt is None:
        ckpt = read_checkpoint(ckpt_path)
    if (out / HISTORY).exists():
        read_history(out / HISTORY)
    return ckpt



# --------------------------------------------------------------------------- #
# Runs
# --------------------------------------------------------------------------- #
def _run_tfidf(config: Config, resume: bool = True, allow=()) -> dict:
    """The ``tfidf-linear`` row: no network, TF-IDF features and linear classifiers whose
    settings and thresholds are chosen on validation (:mod:`abalone_core.evaluation.tfidf`)."""
    with locked(Path(config.output_dir)) as out:
        inspect_run_folder(config, resume, allow)
        return _tfidf_metrics(config, out)


def cut_texts(texts, backbone: str, max_length: int) -> list[str]:
    """The text a neural row sees: each document's first ``max_length`` tokens of the
    backbone's tokenizer (special tokens included, as in training), decoded back to words
    (for MiniLM: lower-cased, accents stripped). Used by the ``tfidf-cut`` row."""
    from transformers import AutoTokenizer

    from ..method.model import resolve_backbone

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone(backbone))
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return tokenizer.batch_decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)


def _tfidf_metrics(config: Config, out: Path) -> dict:
    from ..evaluation.tfidf import tfidf_linear

    out = Path(config.output_dir)
    t0 = time.perf_counter()
    seed_everything(config.seed)
    ds = load_run_dataset(config)
    parts = {s: ds.split(s) for s in SPLITS}
    labels = {s: parts[s].labels.astype(np.int8) for s in SPLITS}
    counts = labels["train"].sum(0)
    if labels["train"].shape[1] == 0 or not (labels["train"].sum(1) > 0).any():
        raise ValueError(f"dataset {ds.name!r}: none of the {len(labels['train'])} training documents has a label; "
                         "check label_column and label_sep in dataset_kwargs, or the label column of the data")
    texts = {s: list(parts[s].texts) for s in SPLITS}
    if config.spec.text == "cut":
        texts = {s: cut_texts(t, config.backbone, config.max_length) for s, t in texts.items()}
    r = tfidf_linear(texts["train"], labels["train"], texts["validation"], labels["validation"], texts["test"],
                     seed=config.seed)
    scores = {"validation": r.validation_scores, "test": r.test_scores}
    # The library's own rule (its per-label thresholds, chosen by cross-validation on the
    # training split) is the decision value's sign; the two tuned rules are every row's.
    metrics = split_scores(labels, scores, counts, n_train=len(labels["train"]), threshold=0.0,
                           decision_values=True)
    metrics.update({
        "threshold": "per-label thresholds chosen by the linear library (cross-validation on the training split)",
        "tfidf": r.info, "objective": config.objective, "dataset": ds.name, "label_names": list(ds.label_names),
        "text": (f"the first {config.max_length} tokens of {config.backbone}'s tokenizer"
                 if config.spec.text == "cut" else "whole documents"),
        "train_label_counts": counts.astype(int).tolist(), "n_documents": {s: len(labels[s]) for s in SPLITS},
        "data_digest": data_digest(ds),
        "steps": 0, "train_seconds": time.perf_counter() - t0, "wall_seconds_this_call": time.perf_counter() - t0,
        "hardware": hardware("cpu"), "config": config.to_dict(), "converged": None,
        "convergence": {"reason": f"{config.objective}: solved to the linear library's tolerance, no step budget"},
    })
    if ds.provenance:
        metrics["dataset_provenance"] = ds.provenance
    metrics = _finite(metrics)
    clear_run_files(out)
    config.save(out / CONFIG)
    save_scores(out / SCORES_NAME, scores)
    atomic.write_json(out / METRICS, metrics)
    return metrics


def lr_head_run_dir(config: Config, lr: float) -> Path:
    """Folder of the run of one head learning rate of ``config.lr_head_grid``."""
    return Path(config.output_dir) / f"lr_head={lr:g}"


def _run_lr_head_grid(config: Config, resume: bool, progress: bool, allow=()) -> dict:
    with locked(Path(config.output_dir)) as out:
        inspect_run_folder(config, resume, allow, trains=False)
        if not resume:
            clear_run_files(out)
        config.save(out / CONFIG)  # the folder now belongs to this grid
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
        chosen_scores = lr_head_run_dir(config, best) / SCORES_NAME
        if chosen_scores.exists():
            atomic.write_bytes(out / SCORES_NAME, chosen_scores.read_bytes())
        atomic.write_json(out / METRICS, _finite(metrics))
        return metrics


def _run_one(config: Config, resume: bool = True, progress: bool = True, allow=()) -> dict:
    with locked(Path(config.output_dir)) as out:
        ckpt = inspect_run_folder(config, resume, allow)
        trainer = Trainer(config, progress)
        t0 = time.perf_counter()
        trainer.setup()
        if config.spec.trains and ckpt is not None:
            trainer.restore(ckpt, allow)
            ckpt = None
        elif trainer.main:
            clear_run_files(out)  # a restart, or a run stopped before its first checkpoint
        if trainer.main and not trainer.config_pending:
            config.save(out / CONFIG)
        if config.spec.trains:
            trainer.fit()
        if not trainer.main:
            return {}
        try:
            metrics = trainer.final_metrics()
        except KeyboardInterrupt:
            raise Interrupted(f"stopped during the final evaluation of {out}; the training is finished and saved "
                              "(checkpoint.pt): run the same command again to evaluate it") from None
        save_scores(out / SCORES_NAME, metrics.pop("scores"))
        ds = trainer.data.dataset
        state = getattr(trainer, "state", {})
        metrics.update({
            "objective": config.objective,
            "dataset": ds.name,
            "label_names": list(ds.label_names),
            "train_label_counts": trainer.data.train_counts.astype(int).tolist(),
            "n_documents": {s: len(trainer.data.ids[s]) for s in SPLITS},
            "data_digest": trainer.data.digest,
            "steps": state.get("step", 0),
            "train_seconds": state.get("elapsed_s", 0.0),
            "wall_seconds_this_call": time.perf_counter() - t0,
            "hardware": hardware(str(trainer.device)),
            "precision": resolve_precision(config.mixed_precision, trainer.device),
            "config": config.to_dict(),
        })
        if ds.provenance:
            metrics["dataset_provenance"] = ds.provenance
        if state.get("changes"):
            metrics["resumed_with_changes"] = state["changes"]
        metrics.update(run_convergence(config, out, getattr(trainer, "total_steps", 0)))
        metrics = _finite(metrics)
        atomic.write_json(out / METRICS, metrics)
        return metrics


def run_convergence(config: Config, out: Path, total_steps: int) -> dict:
    """``converged`` and its ``convergence`` details from the run's history (None for
    ``frozen``): the early-stopping rule when the run used it, else the last-quarter rule
    (:mod:`abalone_core.training.convergence`)."""
    if not config.spec.trains:
        return {"converged": None, "convergence": {"reason": f"{config.objective}: nothing trained"}}
    history = read_history(out / HISTORY)
    metric = contrastive_metric(history) if config.contrastive else config.spec.selection
    if config.early_stopping is not None:
        c = early_stopping(history, metric, config.early_stopping, cap=total_steps)
    else:
        c = convergence(history, total_steps, metric)
    return {"converged": c["converged"], "convergence": c}
