"""A run's folder, one owner: its files, its lock, the readers that every other module and
the chapters use, and what a restore keeps. Used by :mod:`abalone_core.training.runs` (the lifecycle),
:mod:`abalone_core.training.train` (checkpoints, history, best candidates), :mod:`abalone_core.training.encoders`
and :mod:`abalone_core.notebook`.

=====================  ==========================================================
``config.yaml``        the configuration the folder belongs to
``history.jsonl``      one line per evaluation (:func:`read_history`)
``checkpoint.pt``      everything needed to resume (:func:`read_checkpoint`)
``encoder_<c>.pt``     a contrastive run's candidate encoders (last, best_train_loss, best_val_loss)
``model_best.pt``      a classifier's weights of best validation micro-F1
``metrics.json``       the final scores (:func:`read_metrics`)
``scores.npz``         validation and test scores of the reported model
``lr_head=<value>/``   the sub-runs of a head learning-rate search
``.lock``              held by the one process that trains there
=====================  ==========================================================

What a restore keeps. A best candidate found at an evaluation is written *pending*
(``<name>.step<k>.pending``) and takes its name when the next checkpoint is written, together
with that checkpoint. A restore to the checkpoint's step ``s`` (after an interrupt, a crash or a
non-finite loss) keeps the history lines and pending candidates of steps up to ``s`` and deletes
those after it, so the final scores never come from weights the history no longer accounts for.
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

import torch

from .. import atomic
from ..errors import RunFolderError

CONFIG, HISTORY, CHECKPOINT, METRICS = "config.yaml", "history.jsonl", "checkpoint.pt", "metrics.json"
SCORES_NAME = "scores.npz"  # validation and test scores of the reported model (evaluate.save_scores)
BEST_MODEL = "model_best.pt"
RUN_FILES = (CHECKPOINT, METRICS, HISTORY, BEST_MODEL, SCORES_NAME)  # plus encoder_*.pt and pending candidates
LOCK_NAME = ".lock"
PENDING = re.compile(r"(?P<name>.+)\.step(?P<step>\d+)\.pending")


class RunLocked(RunFolderError):
    """Another process is training in the same output folder."""


class RunFolder:
    """One run's folder (see the module's table of files).

    >>> folder = RunFolder("runs/msc")
    >>> with folder.lock():
    ...     records = folder.read_history()
    """

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def encoder(self, candidate: str) -> Path:
        """``encoder_<candidate>.pt`` (``last``, ``best_train_loss``, ``best_val_loss``)."""
        return self.path / f"encoder_{candidate}.pt"

    # ----------------------------------------------------------------- the lock
    def lock(self):
        """Check that the folder is writable (creating it), then hold its lock while a run
        works there (:func:`locked`)."""
        return locked(self.path)

    # ----------------------------------------------------------------- files
    def files(self) -> list[Path]:
        """The files (and head learning-rate sub-runs) a run leaves in its folder, config.yaml aside."""
        return run_files(self.path)

    def clear(self) -> None:
        """Delete the files of the run the folder held (a restart); sub-run folders stay."""
        clear_run_files(self.path)

    # ----------------------------------------------------------------- readers
    def read_history(self) -> list[dict]:
        return read_history(self.path / HISTORY) if (self.path / HISTORY).exists() else []

    def read_metrics(self) -> dict:
        return read_metrics(self.path)

    def read_checkpoint(self) -> dict:
        return read_checkpoint(self.path / CHECKPOINT)

    # ----------------------------------------------------------------- writers
    def append_history(self, record: dict) -> None:
        atomic.append_line(self.path / HISTORY, json.dumps(record, allow_nan=False))

    def save_checkpoint(self, checkpoint: dict) -> None:
        """Write ``checkpoint.pt`` atomically, then give the pending best candidates of steps up
        to the checkpoint's their names (a crash in between is mended by :meth:`restore_to`)."""
        atomic.save_torch(checkpoint, self.path / CHECKPOINT)
        self.commit_best(checkpoint["state"]["step"])

    def save_best(self, name: str, state: dict, step: int) -> Path:
        """Write a best candidate found at ``step`` as pending (see the module docstring)."""
        path = self.path / f"{name}.step{step}.pending"
        atomic.save_torch(state, path)
        for old in self.pending(name):  # an earlier pending best of the same candidate is superseded
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def pending(self, name: str | None = None) -> list[Path]:
        """Pending best candidates (of ``name``, or all), oldest step first."""
        found = [(int(m["step"]), p) for p in self.path.glob("*.pending")
                 if (m := PENDING.fullmatch(p.name)) and (name is None or m["name"] == name)]
        return [p for _, p in sorted(found)]

    def commit_best(self, upto: int) -> None:
        """Give the pending candidates of steps up to ``upto`` their names (the latest of each wins)."""
        for path in self.pending():
            m = PENDING.fullmatch(path.name)
            if int(m["step"]) <= upto:
                os.replace(path, self.path / m["name"])

    def restore_to(self, step: int) -> None:
        """Make the folder what it was at the checkpoint of ``step``: history lines after it
        dropped, pending candidates up to it named, those after it deleted."""
        records = self.read_history()
        kept = [r for r in records if r["step"] <= step]
        if len(kept) != len(records):
            atomic.write_text(self.path / HISTORY, "".join(json.dumps(r) + "\n" for r in kept))
        self.commit_best(step)
        for path in self.pending():
            path.unlink(missing_ok=True)


@contextmanager
def locked(out: Path):
    """Check that ``out`` is writable (creating it), then hold its lock while the run works
    there. Under torchrun only the first process locks (all processes share the folder).

    With the lock taken, the temporary files of writers killed mid-write are deleted; a run
    that fails before writing anything leaves no lock file behind, nor the folder if it made it."""
    out = Path(out)
    created = not out.exists()
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
    empty = False
    try:
        atomic.remove_temporaries(out)
        yield out
    except BaseException:
        empty = [p.name for p in out.iterdir()] == [LOCK_NAME]
        if empty:  # deleted while still locked: no other process can take it in between
            (out / LOCK_NAME).unlink(missing_ok=True)
        raise
    finally:
        lock.release()
        if empty and created:
            try:
                out.rmdir()
            except OSError:  # something appeared meanwhile: leave it
                pass


def run_files(out: Path) -> list[Path]:
    """The files (and head learning-rate sub-runs) a run leaves in its folder, config.yaml aside."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [out / n for n in RUN_FILES if (out / n).exists()]
    found += sorted(out.glob("encoder_*.pt")) + sorted(out.glob("*.pending"))
    found += sorted(p for p in out.glob("lr_head=*") if p.is_dir())
    return found


def clear_run_files(out: Path) -> None:
    """Delete the files of the run a folder held (a restart); sub-run folders stay."""
    for path in run_files(out):
        if path.is_file():
            path.unlink(missing_ok=True)


def read_checkpoint(path: Path) -> dict:
    """A run's ``checkpoint.pt``; an empty, truncated or corrupt file, or one holding NaN
    weights, is a :class:`RunFolderError` naming it and offering ``--restart``."""
    path = Path(path)
    from .encoders import load_weights

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


def read_metrics(run_dir) -> dict:
    """``metrics.json`` of a finished run. A missing folder or file, or an empty, truncated
    or corrupt file, is an error (``FileNotFoundError`` / ``ValueError``) naming it and what to do."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise ValueError(f"{run_dir} is a file: give a run folder (the --output folder of `abalone train`), which "
                         "holds the run's metrics.json")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist: give the --output folder of `abalone train`")
    path = run_dir / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the run has not finished; run `abalone train` with "
                                f"--output {run_dir} (it resumes from its checkpoint)")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        reason = "empty" if not path.read_bytes().strip() else f"truncated or corrupt: {str(err)[:80]}"
        raise ValueError(f"{path} is unreadable ({reason}); run the same `abalone train` command again to "
                         "recompute it from the run's checkpoint, or add --restart to train again") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path} does not hold a metrics record (a JSON object); add --restart to train again")
    return metrics


def other_configuration(where: Path, differ: dict, allow=()) -> str:
    shown = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (new, old) in sorted(differ.items()))
    if len(shown) > 300:
        shown = shown[:297] + "..."
    message = (f"{where} holds a run of a different configuration ({shown}); add --restart to start over there "
               "(its run files are replaced), or choose another output folder")
    from .config import RESUMABLE_CHANGES

    if set(differ) <= set(RESUMABLE_CHANGES):
        message += "; or continue its checkpoint with the new settings: --resume-with-changes"
    return message


__all__ = ["RunFolder", "RunLocked", "locked", "run_files", "clear_run_files", "read_checkpoint", "read_history",
           "read_metrics", "other_configuration", "RUN_FILES", "LOCK_NAME", "SCORES_NAME", "CONFIG", "HISTORY",
           "CHECKPOINT", "METRICS", "BEST_MODEL"]
