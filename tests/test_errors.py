"""A catalogue of mistakes and faults, each answered by the command line in one line.

Every case runs ``abalone ...`` in-process (``abalone_core.cli.main``) and checks

* the exit code (2 for a mistake, 130 for an interruption, 1 for an unexpected bug),
* that stderr holds exactly one ``error:`` / ``interrupted:`` line and no traceback,
* that this line names the file, key or row at fault (and the way out where there is one),
* that nothing on disk changed that should not have (a snapshot of every file of the
  test's folder, the token cache and the run folder's lock file aside).

Then the four ways a run used to lose or mix data, each a test that failed before the fix:
``test_data_loss_1_...`` to ``test_data_loss_4_...``, and four bad inputs that gave a wrong result
or lost a file: ``test_bad_input_1_...`` to ``test_bad_input_4_...``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
import torch

from abalone_core import atomic
from abalone_core.cli import embed_paths, main
from abalone_core.training.config import Config
from abalone_core.training.runs import run
from abalone_core.training.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- #
# Harness
# --------------------------------------------------------------------------- #
def snapshot(root: Path) -> dict:
    """{relative path: sha256} of every file under ``root`` (caches and lock files aside)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] != "cache" and p.name != ".lock":
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temporaries(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*.tmp")]


def cli(argv, capsys) -> tuple[int, str]:
    """Run ``abalone argv``; returns (exit code, the one error/interrupted line)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    flagged = [line for line in err.splitlines() if line.startswith(("error:", "interrupted:"))]
    assert len(flagged) == 1, f"expected one error line, got:\n{err}"
    return code, flagged[0]


@pytest.fixture(scope="session")
def finished_msc(tiny_backbone, tiny_csv, tmp_path_factory) -> Path:
    """A finished tiny L_MSC run (4 steps, checkpoints and history at steps 2 and 4)."""
    root = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ABALONE_DATA_DIR", str(root / "cache"))
        cfg = Config(dataset="csv", dataset_kwargs={"path": tiny_csv, "label_sep": "|", "split_column": "split"},
                     backbone=tiny_backbone, max_length=16, proj_dim=16, batch_size=8, max_steps=4, queue_size=20,
                     momentum=0.9, lr_backbone=1e-3, lr_head=1e-3, eval_every=2, save_every=2, objective="msc",
                     output_dir=str(root / "msc"),
                     probe={"epochs": 3, "lrs": [0.1], "weight_decays": [0.01], "heads": 2})
        run(cfg, progress=False)
    return root / "msc"


@pytest.fixture
def ctx(tiny_config, tmp_path, finished_msc, tiny_csv):
    """A test's folder: run.yaml (the tiny msc configuration, output ``run``), ``done`` (a copy
    of a finished run of that configuration), and paths to build bad inputs from."""
    tiny_config()  # sets ABALONE_DATA_DIR to the test's own cache
    done = tmp_path / "done"
    shutil.copytree(finished_msc, done)
    cfg = Config.from_file(done / "config.yaml").replace(output_dir=str(tmp_path / "run"))
    cfg.save(tmp_path / "run.yaml")
    return SimpleNamespace(tmp=tmp_path, out=tmp_path / "run", yaml=tmp_path / "run.yaml", done=done, cfg=cfg,
                           csv=Path(tiny_csv))


def train(c, *extra, output=None):
    return ["train", "--config", c.yaml, "--output", output or c.out, "--quiet", *extra]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_csv(c, name, labels, splits=None) -> Path:
    import pandas as pd

    n = len(labels)
    splits = splits or (["train"] * (n - 10) + ["validation"] * 5 + ["test"] * 5)
    path = c.tmp / name
    pd.DataFrame({"text": ["flood water rain help"] * n, "labels": labels, "split": splits}).to_csv(path, index=False)
    return path


def csv_kwargs(path, **more) -> str:
    return "dataset_kwargs=" + json.dumps({"path": str(path), "label_sep": "|", "split_column": "split", **more})


@dataclass
class Case:
    """One mistake: how to make it, the command, what the one line must say, what may change."""

    argv: Callable
    says: Callable
    setup: Callable | None = None
    code: int = 2
    # What must hold afterwards besides "nothing changed": a callable(ctx) -> None.
    after: Callable | None = None
    changes_allowed: bool = False
    marks: list = field(default_factory=list)


def no_run_folder(c):
    assert not c.out.exists(), f"{c.out} was created"


def no_run_files(c):
    from abalone_core.training.run_folder import run_files

    assert run_files(c.out) == [] and not (c.out / "config.yaml").exists()


# --------------------------------------------------------------------------- #
# The catalogue
# --------------------------------------------------------------------------- #
def _config_cases() -> dict:
    """Wrong settings on the command line: refused before anything is created."""
    settings = {
        "string-for-number": ("lr_head=fast", ["lr_head must be a number", "'fast'"]),
        "string-for-temperature": ("temperature=abc", ["temperature must be a number"]),
        "null-epochs": ("epochs=null", ["epochs must be an integer, got null"]),
        "inf-learning-rate": ("lr_backbone=.inf", ["lr_backbone must be a finite number"]),
        "nan-temperature": ("temperature=.nan", ["temperature must be a finite number"]),
        "fractional-steps": ("max_steps=2.5", ["max_steps must be a whole number"]),
        "fractional-batch": ("batch_size=8.5", ["batch_size must be a whole number"]),
        "fractional-eval-every": ("eval_every=0.5", ["eval_every must be a whole number"]),
        "unknown-device": ("device=gpu", ["device must be auto, cpu, cuda"]),
        "malformed-cuda-device": ("device=cuda:x", ["device must be", "'cuda:x'"]),
        "dataset-kwargs-list": ("dataset_kwargs=[1, 2]", ["dataset_kwargs must be a mapping"]),
        "dataset-kwargs-string": ("dataset_kwargs=data.csv", ["dataset_kwargs must be a mapping", "data.csv"]),
        "boolean-as-string": ('deterministic="false"', ["deterministic must be true or false", "'false'"]),
        "boolean-as-number": ("keep_unlabelled=1", ["keep_unlabelled must be true or false"]),
        "unknown-key": ("lr=0.1", ["unknown configuration keys ['lr']", "--set"]),
        "misspelt-key": ("objectiv=msc", ["unknown configuration keys ['objectiv']", "'objective'"]),
        "unknown-objective": ("objective=supcon", ["objective must be one of"]),
        "objective-number": ("objective=3", ["objective must be a string"]),
        "negative-temperature": ("temperature=-1", ["temperature must be > 0"]),
        "beta-above-one": ("beta=3", ["beta must be in (0, 1]"]),
        "subset-bad-split": ("subset={training: 10}", ["subset keys must be train/validation/test"]),
        "subset-zero": ("subset={train: 0}", ["subset values must be positive integers"]),
        "probe-unknown-key": ("probe={epoch: 3}", ["unknown probe settings ['epoch']"]),
        "probe-not-mapping": ("probe=3", ["probe must be a mapping"]),
        "probe-bad-value": ("probe={lrs: [fast]}", ["probe:", "fast"]),
        "lr-grid-negative": ("lr_head_grid=[0.1, -1]", ["lr_head_grid must be"]),
        "max-length-tiny": ("max_length=4", ["max_length must be >= 8"]),
        "precision-unknown": ("mixed_precision=fp8", ["mixed_precision must be"]),
        "queue-size-string": ("queue_size=big", ["queue_size must be an integer", "'big'"]),
        "init-from-contrastive": ("init_from=runs/x", ["init_from", "supervised objective"]),
        "train-layers-fraction": ("train_layers=1.5", ["train_layers must be a whole number"]),
        "schedule-unknown": ("schedule=exp", ["schedule must be"]),
        "null-seed": ("seed=null", ["seed must be an integer, got null"]),
        "empty-dataset-name": ('dataset=""', ["dataset must name a dataset"]),
        "grad-clip-zero": ("grad_clip=0", ["grad_clip must be null or > 0"]),
        "seed-octal": ("seed=010", ["--set seed=010", "octal (8)", "seed=10"]),
        "lr-head-grid-contrastive": ("lr_head_grid=[0.1, 0.3]", ["lr_head_grid is for the objectives that train a "
                                                                 "classifier", "'msc'", "remove lr_head_grid"]),
        "dotted-key-into-a-number": ("seed.x=1", ["--set seed.x=1", "not a mapping"]),
    }
    cases = {f"config/{k}": Case(argv=lambda c, s=s: train(c, "--set", s), says=lambda c, w=w: w, after=no_run_folder)
             for k, (s, w) in settings.items()}
    cases["config/empty-output"] = Case(
        argv=lambda c: ["train", "--config", c.yaml, "--output", "", "--quiet"],
        says=lambda c: ["output_dir must name a folder"], after=no_run_folder)
    cases["config/override-without-equals"] = Case(
        argv=lambda c: train(c, "--set", "objective"), says=lambda c: ["'objective'", "key=value"], after=no_run_folder)
    cases["config/override-without-key"] = Case(
        argv=lambda c: train(c, "--set", "=3"), says=lambda c: ["no key"], after=no_run_folder)
    cases["config/override-bad-yaml"] = Case(
        argv=lambda c: train(c, "--set", "subset={train: "), says=lambda c: ["--set subset={train: ", "not valid YAML"],
        after=no_run_folder)
    cases["config/restart-and-resume-with-changes"] = Case(
        argv=lambda c: train(c, "--restart", "--resume-with-changes"), says=lambda c: ["give one of them"],
        after=no_run_folder)
    cases["cli/unknown-option"] = Case(
        argv=lambda c: train(c, "--sett", "x=1"), says=lambda c: ["unrecognized arguments: --sett", "--help"],
        after=no_run_folder)
    cases["cli/no-command"] = Case(argv=lambda c: [], says=lambda c: ["abalone", "required"])
    cases["cli/bad-split-choice"] = Case(
        argv=lambda c: ["embed", c.done, "--split", "dev", "--out", c.tmp / "x.npy"], says=lambda c: ["--split", "dev"])
    return cases


def _file_cases() -> dict:
    """Bad configuration files: every message names the file."""
    def bad_file(name, text):
        return lambda c: write(c.tmp / name, text)

    def cfg_file(c, name):
        return ["train", "--config", c.tmp / name, "--output", c.out, "--quiet"]

    specs = {
        "empty-yaml": ("empty.yaml", "", ["empty.yaml", "holds no settings"]),
        "comment-only-yaml": ("comments.yaml", "# objective: msc\n# nothing else\n", ["comments.yaml", "holds no settings"]),
        "yaml-syntax": ("syntax.yaml", "objective: msc\nsubset:\n  train: [1, 2\nseed: 0\n",
                        ["syntax.yaml, line", "YAML syntax error"]),
        "yaml-tab": ("tab.yaml", "objective: msc\n\tseed: 0\n", ["tab.yaml, line 2", "YAML syntax error"]),
        "json-syntax": ("bad.json", '{"objective": "msc",\n "seed": }\n', ["bad.json, line 2", "JSON syntax error"]),
        "empty-json": ("empty.json", "", ["empty.json, line 1", "JSON syntax error"]),
        "yaml-list": ("list.yaml", "- objective: msc\n", ["list.yaml must hold a mapping"]),
        "wrong-suffix": ("run.txt", "objective: msc\n", ["run.txt", ".yaml, .yml or .json"]),
        "unknown-key-in-file": ("typo.yaml", "objective: msc\nlearning_rate: 0.1\n",
                                ["typo.yaml", "unknown configuration keys ['learning_rate']"]),
        "bad-value-in-file": ("value.yaml", "lr_head: fast\n", ["value.yaml", "lr_head must be a number"]),
        "boolean-string-in-file": ("bool.yaml", 'keep_unlabelled: "no"\n', ["bool.yaml", "keep_unlabelled must be true or false"]),
        "null-epochs-in-file": ("null.yaml", "epochs:\n", ["null.yaml", "epochs must be an integer, got null"]),
    }
    cases = {f"file/{k}": Case(setup=bad_file(n, t), argv=lambda c, n=n: cfg_file(c, n), says=lambda c, w=w: w,
                               after=no_run_folder)
             for k, (n, t, w) in specs.items()}
    cases["file/not-utf8"] = Case(setup=lambda c: (c.tmp / "latin.yaml").write_bytes(b"objective: caf\xe9\n"),
                                  argv=lambda c: cfg_file(c, "latin.yaml"), says=lambda c: ["latin.yaml", "UTF-8"],
                                  after=no_run_folder)
    cases["file/missing"] = Case(argv=lambda c: cfg_file(c, "nowhere.yaml"),
                                 says=lambda c: ["configuration file not found", "nowhere.yaml"], after=no_run_folder)
    cases["file/folder"] = Case(setup=lambda c: (c.tmp / "conf.yaml").mkdir(), argv=lambda c: cfg_file(c, "conf.yaml"),
                                says=lambda c: ["conf.yaml is a folder"], after=no_run_folder)
    return cases


def split_files(c):
    """train.csv and test.csv from the tiny data, and a validation.csv holding its header only."""
    import pandas as pd

    df = pd.read_csv(c.csv)
    for s in ("train", "test"):
        df[df["split"] == s].drop(columns="split").to_csv(c.tmp / f"{s}.csv", index=False)
    write(c.tmp / "validation.csv", "text,labels\n")


def toy_grid_with_readonly_export(c, monkeypatch):
    """A grid of the sweep tests' toy notebook whose export folder refuses files."""
    import tempfile

    import yaml

    write(c.tmp / "grid.yaml", yaml.safe_dump({"notebook": str(ROOT / "tests" / "data" / "sweep_toy.ipynb"),
                                              "output_dir": "out", "grid": {"seed": [0]}, "export": "published"}))
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **kw):
        if dir is not None and Path(dir) == c.tmp / "published":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _setup_cases() -> dict:
    """Mistakes found at set-up: before any training file is written."""
    def deny_writes(c, monkeypatch):
        import tempfile

        real = tempfile.mkstemp

        def mkstemp(*a, dir=None, **kw):
            if dir is not None and Path(dir) == c.out:
                raise PermissionError(errno.EROFS, "Read-only file system")
            return real(*a, dir=dir, **kw)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)

    def offline(c, monkeypatch):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def lock_on_first_line(path):
        return ["--set", "objective=bce", "--set", csv_kwargs(path)]

    cases = {
        "setup/max-length-above-positions": Case(
            argv=lambda c: train(c, "--set", "max_length=100"),
            says=lambda c: ["max_length=100", "64 positions", "max_length to 64"], after=no_run_files),
        "setup/unknown-hub-backbone-offline": Case(
            setup=offline, argv=lambda c: train(c, "--set", "backbone=nobody/no-such-model"),
            says=lambda c: ["nobody/no-such-model", "HF_HUB_OFFLINE", "hf download"], after=no_run_folder),
        "setup/backbone-missing-folder": Case(
            argv=lambda c: train(c, "--set", f"backbone={c.tmp / 'models' / 'none'}"),
            says=lambda c: [str(c.tmp / "models" / "none"), "no such folder"], after=no_run_folder),
        "setup/backbone-folder-without-config": Case(
            setup=lambda c: (c.tmp / "empty_model").mkdir(),
            argv=lambda c: train(c, "--set", f"backbone={c.tmp / 'empty_model'}"),
            says=lambda c: [str(c.tmp / "empty_model"), "no config.json"], after=no_run_folder),
        "setup/cuda-device-missing": Case(
            argv=lambda c: train(c, "--set", "device=cuda:99"), says=lambda c: ["device='cuda:99'"],
            after=no_run_folder),
        "setup/data-file-missing": Case(
            argv=lambda c: train(c, "--set", csv_kwargs(c.tmp / "missing.csv")),
            says=lambda c: ["csv file not found", "missing.csv"], after=no_run_folder),
        "setup/data-file-empty": Case(
            setup=lambda c: write(c.tmp / "empty.csv", ""),
            argv=lambda c: train(c, "--set", csv_kwargs(c.tmp / "empty.csv")),
            says=lambda c: [str(c.tmp / "empty.csv"), "is empty", "header row"], after=no_run_folder),
        "setup/data-validation-file-header-only": Case(
            setup=split_files, argv=lambda c: train(c, "--set", "dataset_kwargs=" + json.dumps(
                {"path": {s: str(c.tmp / f"{s}.csv") for s in ("train", "validation", "test")}, "label_sep": "|"})),
            says=lambda c: [str(c.tmp / "validation.csv"), "holds no documents", "header without rows"],
            after=no_run_folder),
        "setup/data-kwargs-typo": Case(
            argv=lambda c: train(c, "--set", f"dataset_kwargs.paht={c.csv}"),
            says=lambda c: ["takes no argument(s) ['paht']", "dataset_kwargs", "did you mean 'path' for 'paht'"],
            after=no_run_folder),
        "setup/data-csv-without-path": Case(
            argv=lambda c: train(c, "--set", "dataset_kwargs={}"),
            says=lambda c: ["dataset 'csv' needs the argument(s) ['path']", "dataset_kwargs.path="],
            after=no_run_folder),
        "setup/data-one-label": Case(
            setup=lambda c: write_csv(c, "one.csv", ["water"] * 40),
            argv=lambda c: train(c, "--set", csv_kwargs(c.tmp / "one.csv")),
            says=lambda c: [str(c.tmp / "one.csv"), "the one label 'water'", "at least two", "label_sep"],
            after=no_run_folder),
        "setup/data-every-label-on-every-document": Case(
            setup=lambda c: write_csv(c, "all.csv", ["water|fire"] * 40),
            argv=lambda c: train(c, "--set", csv_kwargs(c.tmp / "all.csv")),
            says=lambda c: [str(c.tmp / "all.csv"), "every document carries every label"], after=no_run_folder),
        "setup/data-label-name-holds-the-separator": Case(
            argv=lambda c: train(c, "--set", csv_kwargs(c.csv, label_names=["water|food", "fire"])),
            says=lambda c: ["label_names: 'water|food' contains label_sep '|'", "separator"], after=no_run_folder),
        "setup/data-column-missing": Case(
            argv=lambda c: train(c, "--set", csv_kwargs(c.csv, label_column="tags")),
            says=lambda c: ["['tags'] not found", str(c.csv)], after=no_run_folder),
        "setup/data-split-value-unknown": Case(
            setup=lambda c: write_csv(c, "splits.csv", ["water"] * 30, ["train"] * 20 + ["valdation"] * 5 + ["test"] * 5),
            argv=lambda c: train(c, "--set", csv_kwargs(c.tmp / "splits.csv")),
            says=lambda c: ["splits.csv, data row 21", "'valdation'"], after=no_run_files),
        "setup/data-jsonl-broken-line": Case(
            setup=lambda c: write(c.tmp / "d.jsonl", '{"text": "a", "labels": ["x"], "split": "train"}\n{"text": "b\n'),
            argv=lambda c: train(c, "--set", "dataset=jsonl", "--set",
                                 "dataset_kwargs=" + json.dumps({"path": str(c.tmp / "d.jsonl"), "split_column": "split"})),
            says=lambda c: ["d.jsonl, line 2", "not a complete JSON object"], after=no_run_files),
        "setup/no-labelled-document-bce": Case(
            setup=lambda c: write_csv(c, "unlabelled.csv", [""] * 40),
            argv=lambda c: train(c, *lock_on_first_line(c.tmp / "unlabelled.csv")),
            says=lambda c: ["none of the 30 training documents has a label", "label_sep"], after=no_run_files),
        "setup/no-labelled-document-msc": Case(
            setup=lambda c: write_csv(c, "unlabelled.csv", [""] * 40),
            argv=lambda c: train(c, "--set", csv_kwargs(c.tmp / "unlabelled.csv")),
            says=lambda c: ["none of the 30 training documents has a label"], after=no_run_files),
        "setup/split-without-documents": Case(
            setup=lambda c: write_csv(c, "notest.csv", ["water"] * 30, ["train"] * 25 + ["validation"] * 5),
            argv=lambda c: train(c, "--set", csv_kwargs(c.tmp / "notest.csv")),
            says=lambda c: ["no 'test' documents"], after=no_run_files),
        "setup/unknown-dataset": Case(
            argv=lambda c: train(c, "--set", "dataset=nosuch"), says=lambda c: ["unknown dataset 'nosuch'"],
            after=no_run_files),
        "setup/read-only-output": Case(
            setup=deny_writes, argv=lambda c: train(c), says=lambda c: [str(c.out), "not writable"],
            after=no_run_files),
        "setup/output-is-a-file": Case(
            setup=lambda c: write(c.out, "not a folder"), argv=lambda c: train(c),
            says=lambda c: [str(c.out), "is a file"]),
        "setup/init-from-missing": Case(
            argv=lambda c: train(c, "--set", "objective=bce", "--set", f"init_from={c.tmp / 'nowhere'}"),
            says=lambda c: ["init_from: no encoder weights", "nowhere"], after=no_run_folder),
        "setup/init-from-unfinished": Case(
            setup=lambda c: (c.tmp / "unfinished").mkdir(),
            argv=lambda c: train(c, "--set", "objective=bce", "--set", f"init_from={c.tmp / 'unfinished'}"),
            says=lambda c: ["init_from:", "unfinished has no metrics.json"], after=no_run_folder),
        "setup/init-from-frozen-run": Case(
            setup=lambda c: write(c.tmp / "frozen" / "metrics.json", json.dumps({"objective": "frozen"})),
            argv=lambda c: train(c, "--set", "objective=bce", "--set", f"init_from={c.tmp / 'frozen'}"),
            says=lambda c: ["init_from:", str(c.tmp / "frozen"), "is a frozen run", "contrastive run"],
            after=no_run_folder),
        "setup/label-only-outside-training": Case(
            setup=lambda c: write_csv(c, "coverage.csv", ["water"] * 30 + ["fire"] * 10),
            argv=lambda c: train(c, "--set", csv_kwargs(c.tmp / "coverage.csv")),
            says=lambda c: ["never in training: ['fire']", "min_train_count=1"], after=no_run_files),
    }
    return cases


def _folder_cases() -> dict:
    """A folder holding a finished run (``done``): refused, nothing touched."""
    def ckpt(c):
        return c.done / "checkpoint.pt"

    def truncate(c):
        data = ckpt(c).read_bytes()
        ckpt(c).write_bytes(data[: len(data) // 2])

    def nan_weights(c):
        state = torch.load(ckpt(c), weights_only=False)
        first = next(k for k, v in state["model"].items() if v.is_floating_point())
        state["model"][first] = torch.full_like(state["model"][first], float("nan"))
        torch.save(state, ckpt(c))

    def cut_history(c):
        path = c.done / "history.jsonl"
        path.write_text(path.read_text()[:-20])

    def hold_lock(c, monkeypatch):
        from filelock import FileLock

        lock = FileLock(str(c.done / ".lock"), timeout=0)
        lock.acquire()
        monkeypatch.setattr(c, "lock", lock, raising=False)

    def foreign(c):
        (c.done / "config.yaml").unlink()
        ckpt(c).unlink()

    cases = {
        "folder/other-objective": Case(
            argv=lambda c: train(c, "--set", "objective=frozen", output=c.done),
            says=lambda c: ["different configuration", "objective: 'msc' -> 'frozen'", "--restart"]),
        "folder/other-temperature": Case(
            argv=lambda c: train(c, "--set", "temperature=0.5", output=c.done),
            says=lambda c: ["different configuration", "temperature: 0.1 -> 0.5", "--restart"]),
        "folder/other-learning-rate": Case(
            argv=lambda c: train(c, "--set", "lr_head=0.0001", output=c.done),
            says=lambda c: ["lr_head: 0.001 -> 0.0001", "--resume-with-changes"]),
        "folder/change-not-resumable": Case(
            argv=lambda c: train(c, "--set", "temperature=0.5", "--resume-with-changes", output=c.done),
            says=lambda c: ["temperature: 0.1 -> 0.5", "--restart"]),
        "folder/finished-checkpoint-deleted": Case(
            setup=lambda c: ckpt(c).unlink(), argv=lambda c: train(c, output=c.done),
            says=lambda c: ["checkpoint.pt is missing", "--restart", "abalone evaluate"]),
        "folder/checkpoint-garbage": Case(
            setup=lambda c: ckpt(c).write_bytes(b"not a checkpoint" * 10), argv=lambda c: train(c, output=c.done),
            says=lambda c: [str(ckpt(c)), "unreadable", "--restart"]),
        "folder/checkpoint-truncated": Case(
            setup=truncate, argv=lambda c: train(c, output=c.done), says=lambda c: [str(ckpt(c)), "unreadable", "--restart"]),
        "folder/checkpoint-empty": Case(
            setup=lambda c: ckpt(c).write_bytes(b""), argv=lambda c: train(c, output=c.done),
            says=lambda c: [str(ckpt(c)), "is empty", "--restart"]),
        "folder/checkpoint-nan-weights": Case(
            setup=nan_weights, argv=lambda c: train(c, output=c.done),
            says=lambda c: [str(ckpt(c)), "NaN or inf weights", "--restart"]),
        "folder/history-last-line-cut": Case(
            setup=cut_history, argv=lambda c: train(c, output=c.done),
            says=lambda c: [f"{c.done / 'history.jsonl'}, line 2", "--restart"]),
        "folder/config-yaml-damaged": Case(
            setup=lambda c: write(c.done / "config.yaml", "objective: msc\nsubset: {train: \n"),
            argv=lambda c: train(c, output=c.done), says=lambda c: [str(c.done / "config.yaml"), "--restart"]),
        "folder/config-yaml-empty": Case(
            setup=lambda c: write(c.done / "config.yaml", ""),
            argv=lambda c: train(c, output=c.done), says=lambda c: [str(c.done / "config.yaml"), "--restart"]),
        "folder/files-without-config": Case(
            setup=foreign, argv=lambda c: train(c, output=c.done), says=lambda c: ["no config.yaml", "--restart"]),
        "folder/locked-by-another-process": Case(
            setup=hold_lock, argv=lambda c: train(c, output=c.done), says=lambda c: [str(c.done), "is in use"]),
        "evaluate/metrics-corrupt": Case(
            setup=lambda c: write(c.done / "metrics.json", '{"test": {"micro_f1": 3'),
            argv=lambda c: ["evaluate", c.done], says=lambda c: [str(c.done / "metrics.json"), "unreadable", "--restart"]),
        "evaluate/metrics-empty": Case(
            setup=lambda c: write(c.done / "metrics.json", ""),
            argv=lambda c: ["evaluate", c.done], says=lambda c: [str(c.done / "metrics.json"), "empty"]),
        "evaluate/metrics-not-a-record": Case(
            setup=lambda c: write(c.done / "metrics.json", "[1, 2]"),
            argv=lambda c: ["evaluate", c.done], says=lambda c: [str(c.done / "metrics.json"), "metrics record"]),
        "evaluate/metrics-without-scores": Case(
            setup=lambda c: write(c.done / "metrics.json", '{"objective": "msc"}'),
            argv=lambda c: ["evaluate", c.done], says=lambda c: [str(c.done / "metrics.json"), "no validation or test"]),
        "folder/resume-with-changes-when-finished": Case(
            argv=lambda c: train(c, "--set", "lr_head=0.0005", "--resume-with-changes", output=c.done),
            says=lambda c: [str(c.done), "finished run (step 4 of 4)", "lr_head: 0.001 -> 0.0005", "--restart"]),
        "evaluate/csv-file": Case(
            argv=lambda c: ["evaluate", c.csv], says=lambda c: [str(c.csv), "is a file", "run folder"]),
        "embed/csv-file": Case(
            argv=lambda c: ["embed", c.csv, "--out", c.tmp / "x.npy"],
            says=lambda c: [str(c.csv), "is a file", "run folder"]),
        "embed/out-exists": Case(
            setup=lambda c: write(c.tmp / "x.labels.npy", "mine"),
            argv=lambda c: ["embed", c.done, "--out", c.tmp / "x.npy"],
            says=lambda c: [str(c.tmp / "x.labels.npy"), "already exist", "--force"]),
        "sweep/grid-yaml-syntax": Case(
            setup=lambda c: write(c.tmp / "grid.yaml", "notebook: run.ipynb\noutput_dir: out\ngrid:\n  seed: [0, 1\n"),
            argv=lambda c: ["sweep", c.tmp / "grid.yaml", "--dry-run"],
            says=lambda c: [f"{c.tmp / 'grid.yaml'}, line", "YAML syntax error"]),
        "sweep/export-not-writable": Case(
            setup=toy_grid_with_readonly_export, argv=lambda c: ["sweep", c.tmp / "grid.yaml", "--quiet"],
            says=lambda c: [f"export folder {c.tmp / 'published'}", "not writable", "export:"]),
        "evaluate/folder-missing": Case(
            argv=lambda c: ["evaluate", c.tmp / "nowhere"], says=lambda c: [str(c.tmp / "nowhere"), "does not exist"]),
        "evaluate/unfinished": Case(
            setup=lambda c: (c.done / "metrics.json").unlink(),
            argv=lambda c: ["evaluate", c.done], says=lambda c: [str(c.done / "metrics.json"), "has not finished"]),
        "embed/run-missing": Case(
            argv=lambda c: ["embed", c.tmp / "nowhere", "--out", c.tmp / "x.npy"],
            says=lambda c: [str(c.tmp / "nowhere"), "does not exist"]),
        "embed/unfinished": Case(
            setup=lambda c: (c.done / "metrics.json").unlink(),
            argv=lambda c: ["embed", c.done, "--out", c.tmp / "x.npy"], says=lambda c: ["has no metrics.json"]),
        "embed/config-damaged": Case(
            setup=lambda c: write(c.done / "config.yaml", "objective: [msc\n"),
            argv=lambda c: ["embed", c.done, "--out", c.tmp / "x.npy"],
            says=lambda c: [f"{c.done / 'config.yaml'}, line", "YAML syntax error"]),
        "embed/encoder-truncated": Case(
            setup=lambda c: [p.write_bytes(p.read_bytes()[:100]) for p in c.done.glob("encoder_*.pt")],
            argv=lambda c: ["embed", c.done, "--out", c.tmp / "x.npy"],
            says=lambda c: ["encoder_", "unreadable", "--restart"]),
        "embed/out-folder-missing": Case(
            argv=lambda c: ["embed", c.done, "--out", c.tmp / "no" / "such" / "x.npy"],
            says=lambda c: ["--out", str(c.tmp / "no" / "such"), "does not exist"]),
        "embed/device-missing": Case(
            argv=lambda c: ["embed", c.done, "--out", c.tmp / "x.npy", "--device", "cuda:99"],
            says=lambda c: ["device='cuda:99'"]),
        "stats/unknown-dataset": Case(argv=lambda c: ["stats", "nosuch"], says=lambda c: ["unknown dataset 'nosuch'"]),
        "stats/bad-loader-argument": Case(
            argv=lambda c: ["stats", "csv", "--set", f"path={c.tmp / 'none.csv'}"],
            says=lambda c: ["csv file not found", "none.csv"]),
    }
    return cases


CATALOGUE = {**_config_cases(), **_file_cases(), **_setup_cases(), **_folder_cases()}


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_mistake_is_one_clear_line(name, ctx, capsys, monkeypatch):
    case = CATALOGUE[name]
    if case.setup is not None:  # setup(ctx) or setup(ctx, monkeypatch)
        case.setup(*(ctx, monkeypatch)[:case.setup.__code__.co_argcount])
    # Work that must not start: embedding for --out into a missing folder.
    if name == "embed/out-folder-missing":
        monkeypatch.setattr("abalone_core.training.encoders.load_run_encoder",
                            lambda *a, **k: pytest.fail("the encoder was loaded before --out was checked"))
    before = snapshot(ctx.tmp)
    started = time.perf_counter()
    code, line = cli(case.argv(ctx), capsys)
    seconds = time.perf_counter() - started
    assert code == case.code, line
    for part in case.says(ctx):
        assert part in line, f"{part!r} not in {line!r}"
    assert "learning rate" not in line or "lr_" in line  # no generic advice for another cause
    assert snapshot(ctx.tmp) == before, "files changed"
    assert not temporaries(ctx.tmp)
    if case.after is not None:
        case.after(ctx)
    if name == "setup/unknown-hub-backbone-offline":
        assert seconds < 20, f"took {seconds:.0f} s: Hub retries?"
    if hasattr(ctx, "lock"):
        ctx.lock.release()


# --------------------------------------------------------------------------- #
# Faults during a run: interruptions, non-finite losses, a full disk, bugs
# --------------------------------------------------------------------------- #
def checkpoint_step(folder: Path) -> int:
    return torch.load(folder / "checkpoint.pt", weights_only=False)["state"]["step"]


def disk_full_on(monkeypatch, name: str, after: int = 0):
    """Writes of ``name`` fail with ENOSPC (as a full disk reports on flush), after ``after`` good ones."""
    real = os.fsync
    seen = {"n": 0}

    def fsync(fd):
        try:
            target = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        except OSError:
            target = ""
        if target.startswith(f".{name}."):
            seen["n"] += 1
            if seen["n"] > after:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def nan_loss_at(monkeypatch, step: int):
    original = Trainer._loss

    def loss(self, batch):
        value = original(self, batch)
        if self.model.training and self.state["step"] + 1 == step:
            value = value * float("nan")
        return value

    monkeypatch.setattr(Trainer, "_loss", loss)


class InfGradient(torch.autograd.Function):
    """Zero in the forward pass, an infinite gradient in the backward pass."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.new_zeros(())

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.full_like(x, float("inf"))


def inf_gradient_at(monkeypatch, step: int):
    original = Trainer._loss

    def loss(self, batch):
        value = original(self, batch)
        if self.model.training and self.state["step"] + 1 == step:
            value = value + InfGradient.apply(next(self.model.parameters()))
        return value

    monkeypatch.setattr(Trainer, "_loss", loss)


def test_fault_nan_loss_is_refused_and_resumable_with_changes(ctx, capsys, monkeypatch):
    with monkeypatch.context() as m:
        nan_loss_at(m, 3)
        code, line = cli(train(ctx, "--set", "save_every=2"), capsys)
    assert code == 2
    assert "loss became nan at step 3" in line and f"{ctx.out / 'checkpoint.pt'} still holds step 2" in line
    assert "--resume-with-changes" in line
    assert checkpoint_step(ctx.out) == 2 and not temporaries(ctx.tmp)
    code, line = cli(train(ctx, "--set", "save_every=2", "--set", "lr_head=0.0005"), capsys)
    assert code == 2 and "lr_head: 0.001 -> 0.0005" in line and "--resume-with-changes" in line
    assert main([str(a) for a in train(ctx, "--set", "save_every=2", "--set", "lr_head=0.0005",
                                       "--resume-with-changes")]) == 0
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["config"]["lr_head"] == 0.0005
    assert metrics["resumed_with_changes"] == [{"step": 2, "lr_head": {"was": 0.001, "now": 0.0005}}]


def test_fault_infinite_gradient_is_refused(ctx, capsys, monkeypatch):
    inf_gradient_at(monkeypatch, 3)
    code, line = cli(train(ctx, "--set", "save_every=2"), capsys)
    assert code == 2 and "gradient norm became inf at step 3" in line and "still holds step 2" in line
    state = torch.load(ctx.out / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_fault_disk_full_on_checkpoint_keeps_the_previous_one(ctx, capsys, monkeypatch):
    disk_full_on(monkeypatch, "checkpoint.pt", after=1)  # the step-2 save works, the step-4 one fails
    code, line = cli(train(ctx, "--set", "save_every=2"), capsys)
    assert code == 2 and "no space left on device" in line and str(ctx.out / "checkpoint.pt") in line
    assert checkpoint_step(ctx.out) == 2
    assert not temporaries(ctx.tmp)


def test_fault_disk_full_when_torch_save_fails_mid_write(ctx, capsys, monkeypatch):
    real = torch.save

    def save(obj, f, *a, **k):
        if "optimizer" in obj:  # a checkpoint: half written, then the disk is full
            f.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    code, line = cli(train(ctx), capsys)
    assert code == 2 and "no space left on device" in line and "checkpoint.pt" in line
    assert not (ctx.out / "checkpoint.pt").exists() and not temporaries(ctx.tmp)


def test_fault_disk_full_on_metrics_keeps_the_previous_record(ctx, capsys, monkeypatch):
    before = (ctx.done / "metrics.json").read_bytes()
    disk_full_on(monkeypatch, "metrics.json")
    code, line = cli(train(ctx, output=ctx.done), capsys)  # the same command again: evaluates again
    assert code == 2 and "no space left on device" in line and str(ctx.done / "metrics.json") in line
    assert (ctx.done / "metrics.json").read_bytes() == before and not temporaries(ctx.tmp)


@pytest.mark.parametrize("name", ["config.yaml", "history.jsonl"])
def test_fault_disk_full_on_records(ctx, capsys, monkeypatch, name):
    disk_full_on(monkeypatch, name)
    code, line = cli(train(ctx), capsys)
    assert code == 2 and "no space left on device" in line and str(ctx.out / name) in line
    assert not (ctx.out / name).exists() and not temporaries(ctx.tmp)


def test_fault_ctrl_c_during_final_evaluation(ctx, capsys, monkeypatch):
    def interrupt(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Trainer, "final_metrics", interrupt)
        code, line = cli(train(ctx), capsys)
    assert code == 130 and line.startswith("interrupted:") and "final evaluation" in line
    assert checkpoint_step(ctx.out) == 4 and not (ctx.out / "metrics.json").exists()
    assert main([str(a) for a in train(ctx)]) == 0 and (ctx.out / "metrics.json").exists()


def test_fault_sigterm_during_final_evaluation(ctx, capsys, monkeypatch):
    def terminate(self):
        signal.raise_signal(signal.SIGTERM)
        return {}

    handler = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(Trainer, "final_metrics", terminate)
    code, line = cli(train(ctx), capsys)
    assert code == 130 and "final evaluation" in line
    assert signal.getsignal(signal.SIGTERM) == handler  # the command line put the handler back


def test_fault_sigterm_during_training_saves_and_says_so(ctx, capsys, monkeypatch):
    original = Trainer._step

    def step(self, batch):
        loss = original(self, batch)
        if self.state["step"] == 1:
            signal.raise_signal(signal.SIGTERM)
        return loss

    monkeypatch.setattr(Trainer, "_step", step)
    code, line = cli(train(ctx), capsys)
    assert code == 130 and "stopped at step 2" in line
    assert checkpoint_step(ctx.out) == 2


def test_fault_ctrl_c_during_set_up(ctx, capsys, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("abalone_core.training.train.prepare_data", interrupt)
    code, line = cli(train(ctx), capsys)
    assert code == 130 and line.startswith("interrupted:")
    no_run_folder(ctx)  # nothing was written: neither the folder nor its lock file stays


def test_fault_failed_run_in_an_existing_folder_leaves_no_lock_file(ctx, capsys):
    ctx.out.mkdir()
    code, line = cli(train(ctx, "--set", csv_kwargs(ctx.tmp / "missing.csv")), capsys)
    assert code == 2 and "missing.csv" in line
    assert ctx.out.is_dir() and list(ctx.out.iterdir()) == []  # the user's folder stays, empty


def test_fault_resume_with_changes_that_fails_again_keeps_config_yaml(ctx, capsys, monkeypatch):
    """A ``--resume-with-changes`` that stopped again before its first checkpoint used to leave
    config.yaml with the new values, so the original command was then refused."""
    with monkeypatch.context() as m:
        nan_loss_at(m, 3)
        code, line = cli(train(ctx, "--set", "save_every=2"), capsys)
        assert code == 2 and checkpoint_step(ctx.out) == 2
        saved = (ctx.out / "config.yaml").read_bytes()
        code, line = cli(train(ctx, "--set", "save_every=2", "--set", "lr_head=0.0005", "--resume-with-changes"),
                         capsys)
        assert code == 2 and "loss became nan at step 3" in line
    assert (ctx.out / "config.yaml").read_bytes() == saved
    assert main([str(a) for a in train(ctx, "--set", "save_every=2")]) == 0  # the original command goes on
    assert json.loads((ctx.out / "metrics.json").read_text())["config"]["lr_head"] == 0.001


def test_fault_resume_with_changes_writes_config_yaml_with_its_first_checkpoint(ctx, capsys, monkeypatch):
    with monkeypatch.context() as m:
        nan_loss_at(m, 3)
        cli(train(ctx, "--set", "save_every=2"), capsys)
    with monkeypatch.context() as m:
        interrupt_after_step(m, 3)
        code, line = cli(train(ctx, "--set", "save_every=2", "--set", "lr_head=0.0005", "--resume-with-changes"),
                         capsys)
    assert code == 130 and checkpoint_step(ctx.out) == 3
    assert Config.from_file(ctx.out / "config.yaml").lr_head == 0.0005  # the checkpoint's settings
    assert main([str(a) for a in train(ctx, "--set", "save_every=2", "--set", "lr_head=0.0005")]) == 0


def test_fault_disk_full_reported_by_torch_as_its_own_error(ctx, capsys, monkeypatch):
    """torch's zip writer reports a failed write as "[enforce fail at inline_container.cc] unexpected pos"."""
    real = torch.save

    def save(obj, f, *a, **k):
        if "optimizer" in obj:
            f.write(b"\0" * 1000)
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 3266752 vs 3266640")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    code, line = cli(train(ctx), capsys)
    assert code == 2 and f"no space left on device while writing {ctx.out / 'checkpoint.pt'}" in line, line
    assert "enforce fail" not in line
    assert not (ctx.out / "checkpoint.pt").exists() and not temporaries(ctx.tmp)


def test_fault_temporary_files_of_a_killed_writer_are_removed(ctx, capsys):
    """A SIGKILL during a checkpoint write left its hidden temporary file for good."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = write(ctx.done / f".checkpoint.pt.{int(dead.stdout)}.0123abcd.tmp", "half a checkpoint")
    mine = write(ctx.done / "notes.tmp", "not a temporary of ours")
    assert main([str(a) for a in train(ctx, output=ctx.done)]) == 0  # the same command: evaluates again
    assert not stale.exists() and mine.exists()


def test_notebook_parameters_are_one_clear_line():
    """papermill ``-p max_steps ten`` and ``-p subset '{train: 100}'`` (text, not a mapping)."""
    from abalone_core.training.config import ConfigError
    from abalone_core.report.rows import ParameterError, row_config

    with pytest.raises(ParameterError) as err:
        row_config("msc", max_steps="ten", subset="{train: 100}")
    line = str(err.value)
    assert "\n" not in line and isinstance(err.value, ConfigError)
    assert "max_steps must be an integer or null, got 'ten'" in line
    assert "subset arrived as text" in line and "-y subset '{train: 100}'" in line
    with pytest.raises(ParameterError, match=r"overrides must be a mapping.*-y overrides"):
        row_config("bce", overrides="{lr_head: 0.01}")
    assert err.tb.tb_next is not None and err.tb.tb_next.tb_next is None  # raised in row_config itself


def test_copies_of_training_texts_in_test_are_reported(ctx, caplog):
    texts = [f"flood water {i}" for i in range(40)]
    texts[-1], texts[-2], texts[-6] = texts[0], texts[1], texts[2]  # two test and one validation copy
    import pandas as pd

    pd.DataFrame({"text": texts, "labels": ["water|fire", "fire"] * 20,
                  "split": ["train"] * 30 + ["validation"] * 5 + ["test"] * 5}).to_csv(ctx.tmp / "d.csv", index=False)
    from abalone_core.data.run_data import load_run_dataset

    with caplog.at_level("WARNING"):
        load_run_dataset(ctx.cfg.replace(dataset_kwargs={"path": str(ctx.tmp / "d.csv"), "label_sep": "|",
                                                         "split_column": "split"}))
    assert "1 of the 5 validation texts and 2 of the 5 test texts also appear in training" in caplog.text


def test_relative_data_path_in_a_config_file_starts_at_its_folder(ctx, tmp_path, monkeypatch):
    from abalone_core.cli import _config, build_parser

    folder = tmp_path / "project" / "configs"
    (folder / "data").mkdir(parents=True)
    shutil.copy(ctx.csv, folder / "data" / "docs.csv")
    settings = {**ctx.cfg.to_dict(), "dataset_kwargs": {"path": "data/docs.csv", "label_sep": "|"}}
    import yaml

    write(folder / "run.yaml", yaml.safe_dump(settings))
    monkeypatch.chdir(tmp_path)
    expected = str(folder / "data" / "docs.csv")
    assert Config.from_file(folder / "run.yaml").dataset_kwargs["path"] == expected
    args = build_parser().parse_args(["train", "--config", "project/configs/run.yaml", "--set",
                                      "dataset_kwargs.split_column=split"])
    assert _config(args).dataset_kwargs == {"path": expected, "label_sep": "|", "split_column": "split"}
    # On the command line a relative path starts at the current folder, as before.
    args = build_parser().parse_args(["train", "--config", "project/configs/run.yaml", "--set",
                                      "dataset_kwargs.path=docs.csv"])
    assert _config(args).dataset_kwargs["path"] == str(tmp_path / "docs.csv")


def test_fault_unexpected_bug_is_one_line_and_debug_shows_the_traceback(ctx, capsys, monkeypatch):
    def bug(self):
        raise KeyError("oops")

    monkeypatch.setattr(Trainer, "final_metrics", bug)
    code, line = cli(train(ctx), capsys)
    assert code == 1 and "unexpected KeyError" in line and "--debug" in line
    with pytest.raises(KeyError):
        main([str(a) for a in train(ctx, "--debug")])


# --------------------------------------------------------------------------- #
# The four ways data was lost or mixed
# --------------------------------------------------------------------------- #
def test_data_loss_1_non_finite_loss_keeps_last_good_checkpoint_and_resumes_with_changes(tiny_config, monkeypatch):
    """A NaN loss used to be applied by the optimiser and then saved over the last good
    checkpoint, and the advice (lower the learning rate) was refused on resume."""
    cfg = tiny_config(objective="msc", max_steps=6, save_every=2, eval_every=2)
    with monkeypatch.context() as m:
        nan_loss_at(m, 5)
        with pytest.raises(FloatingPointError, match="loss became nan") as stopped:
            run(cfg, progress=False)
    ckpt = torch.load(Path(cfg.output_dir) / "checkpoint.pt", weights_only=False)
    assert ckpt["state"]["step"] == 4
    for name, value in ckpt["model"].items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), f"{name} holds NaN or inf"
    assert "at step 5" in str(stopped.value) and "still holds step 4" in str(stopped.value)
    lower = cfg.replace(lr_backbone=5e-4, lr_head=5e-4)
    with pytest.raises(ValueError, match="different configuration"):
        run(lower, progress=False)  # a changed configuration needs the explicit permission
    metrics = run(lower, progress=False, allow_changes=("lr_backbone", "lr_head"))
    assert metrics["steps"] == 6 and np.isfinite(metrics["test"]["micro_f1"])
    assert metrics["resumed_with_changes"][0]["step"] == 4
    assert Config.from_file(Path(cfg.output_dir) / "config.yaml").lr_head == 5e-4


def test_data_loss_2_other_objective_cannot_overwrite_a_finished_run(ctx, capsys):
    """``--set objective=frozen`` into a finished msc folder used to exit 0 and replace
    metrics.json and config.yaml while the msc checkpoint, encoders and history stayed."""
    before = snapshot(ctx.done)
    code, line = cli(train(ctx, "--set", "objective=frozen", output=ctx.done), capsys)
    assert code == 2 and "objective: 'msc' -> 'frozen'" in line and "--restart" in line
    assert snapshot(ctx.done) == before
    # The way out it names works: the folder then holds the frozen run only.
    assert main([str(a) for a in train(ctx, "--set", "objective=frozen", "--restart", output=ctx.done)]) == 0
    assert sorted(p.name for p in ctx.done.iterdir() if not p.name.startswith(".")) == ["config.yaml", "metrics.json", "scores.npz"]
    assert main(["evaluate", str(ctx.done)]) == 0
    assert capsys.readouterr().out.startswith("frozen")


def test_data_loss_3_two_processes_cannot_share_a_run_folder(ctx, capsys):
    """Two ``abalone train`` into one folder used to interleave history.jsonl and leave
    config.yaml from one and metrics.json from the other."""
    first = ctx.cfg.replace(max_steps=40, eval_every=10, save_every=20)
    first.save(ctx.tmp / "first.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ABALONE_DATA_DIR": str(ctx.tmp / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "abalone_core.cli", "train", "--config", str(ctx.tmp / "first.yaml"),
                             "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (ctx.out / "config.yaml").exists():  # the first process is training
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the first process did not start training"
            time.sleep(0.05)
        code, line = cli(train(ctx, "--set", "temperature=0.2"), capsys)
        assert proc.poll() is None, "the first process finished too early for this test"
        assert code == 2 and "is in use" in line and str(ctx.out) in line
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    steps = [r["step"] for r in map(json.loads, (ctx.out / "history.jsonl").read_text().splitlines())]
    assert steps == [10, 20, 30, 40]
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    assert metrics["config"]["temperature"] == Config.from_file(ctx.out / "config.yaml").temperature == 0.1
    assert not temporaries(ctx.tmp)


def test_data_loss_4_relative_data_path_is_stored_absolute(tiny_config, tmp_path, monkeypatch, capsys):
    """A relative ``dataset_kwargs`` path used to be stored as given, so ``evaluate``/``embed``
    from another folder failed or read another file."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copy(tiny_config().dataset_kwargs["path"], project / "data" / "docs.csv")
    other = tmp_path / "elsewhere"
    (other / "data").mkdir(parents=True)
    (other / "data" / "docs.csv").write_text("text,labels,split\nnot,the,data\n")  # a different file, same name
    monkeypatch.chdir(project)
    cfg = tiny_config(objective="msc", max_steps=2, output_dir=str(tmp_path / "run"),
                      dataset_kwargs={"path": "data/docs.csv", "label_sep": "|", "split_column": "split"})
    run(cfg, progress=False)
    saved = Config.from_file(tmp_path / "run" / "config.yaml").dataset_kwargs["path"]
    assert saved == str(project / "data" / "docs.csv")
    monkeypatch.chdir(other)
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    assert main(["embed", str(tmp_path / "run"), "--split", "test", "--out", "test.npy"]) == 0
    x = np.load(other / "test.npy")
    assert x.shape[0] == 30  # the 30 test documents of the real data, not the other file


def test_finished_run_without_checkpoint_is_not_retrained_silently(ctx, capsys):
    """A finished run whose checkpoint.pt was deleted used to be wiped and retrained."""
    (ctx.done / "checkpoint.pt").unlink()
    before = snapshot(ctx.done)
    code, line = cli(train(ctx, output=ctx.done), capsys)
    assert code == 2 and "checkpoint.pt is missing" in line and "--restart" in line
    assert snapshot(ctx.done) == before


# --------------------------------------------------------------------------- #
# Bad inputs that gave a wrong result or lost a file
# --------------------------------------------------------------------------- #
def interrupt_after_step(monkeypatch, step: int):
    """Ctrl-C during training, after optimiser step ``step``."""
    original = Trainer._step

    def once(self, batch):
        loss = original(self, batch)
        if self.state["step"] + 1 == step:
            signal.raise_signal(signal.SIGINT)
        return loss

    monkeypatch.setattr(Trainer, "_step", once)


def test_bad_input_1_data_edited_before_resume_is_refused(ctx, capsys, monkeypatch):
    """A run stopped at step 2, its CSV edited (two labels swapped, rows added), the same command
    again: it used to train steps 1-2 on the old data and 3-4 on the new."""
    import pandas as pd

    data = ctx.tmp / "docs.csv"
    shutil.copy(ctx.csv, data)
    args = train(ctx, "--set", csv_kwargs(data))
    with monkeypatch.context() as m:
        interrupt_after_step(m, 2)
        code, line = cli(args, capsys)
    assert code == 130 and checkpoint_step(ctx.out) == 2
    old_digest = torch.load(ctx.out / "checkpoint.pt", weights_only=False).get("data")
    df = pd.read_csv(data, keep_default_na=False)
    swap = {"water": "food", "food": "water"}
    df["labels"] = ["|".join(swap.get(x, x) for x in cell.split("|")) for cell in df["labels"]]
    extra = df[df["split"] == "train"].head(8).assign(text=lambda d: "shelter tent " + d["text"])
    pd.concat([df, extra]).to_csv(data, index=False)
    before = snapshot(ctx.out)
    code, line = cli(args, capsys)
    assert code == 2 and str(ctx.out) in line and "other data" in line and "--restart" in line, line
    assert snapshot(ctx.out) == before
    # The way out it names: start over on the data as it is now; the digest is recorded.
    from abalone_core.data.run_data import data_digest, load_run_dataset

    assert main([str(a) for a in args + ["--restart"]]) == 0
    metrics = json.loads((ctx.out / "metrics.json").read_text())
    ckpt = torch.load(ctx.out / "checkpoint.pt", weights_only=False)
    now = data_digest(load_run_dataset(Config.from_file(ctx.out / "config.yaml")))
    assert metrics["data_digest"] == ckpt["data"] == now != old_digest


def test_data_digest_follows_texts_labels_and_splits(tiny_config):
    from abalone_core.data import MultiLabelDataset
    from abalone_core.data.run_data import data_digest, load_run_dataset

    cfg = tiny_config()
    ds = load_run_dataset(cfg)
    assert data_digest(ds) == data_digest(load_run_dataset(cfg))
    swapped = ds.labels.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    splits = ds.splits.copy()
    splits[[0, -1]] = splits[[-1, 0]]
    texts = list(ds.texts)
    texts[0] += " more"
    for other in (MultiLabelDataset._view(ds.name, ds.texts, swapped, ds.label_names, ds.splits),
                  MultiLabelDataset._view(ds.name, ds.texts, ds.labels, ds.label_names, splits),
                  MultiLabelDataset._view(ds.name, texts, ds.labels, ds.label_names, ds.splits)):
        assert data_digest(other) != data_digest(ds)
    assert data_digest(load_run_dataset(cfg.replace(subset={"train": 50}))) != data_digest(ds)


def test_bad_input_2_hand_written_config_is_not_overwritten(ctx, capsys):
    """A folder holding only the user's own config.yaml (another objective and temperature)
    used to be taken and its config.yaml replaced by ``abalone train ... --output`` it."""
    import yaml

    text = yaml.safe_dump({**ctx.cfg.to_dict(), "objective": "bce", "temperature": 0.3, "output_dir": "mine"})
    own = write(ctx.out / "config.yaml", text)
    before = snapshot(ctx.out)
    code, line = cli(train(ctx), capsys)
    assert code == 2 and str(own) in line and "objective: 'bce' -> 'msc'" in line and "--restart" in line, line
    assert "temperature: 0.3 -> 0.1" in line
    assert snapshot(ctx.out) == before and own.read_text() == text
    # A folder whose config.yaml is this run's configuration, and nothing else, is used.
    mine = ctx.tmp / "mine"
    ctx.cfg.replace(output_dir=str(mine)).save(mine / "config.yaml")
    assert main([str(a) for a in train(ctx, output=mine)]) == 0 and (mine / "metrics.json").exists()
    # And the way out it names.
    assert main([str(a) for a in train(ctx, "--restart")]) == 0
    assert Config.from_file(own).objective == "msc"


def test_bad_input_3_list_style_label_cells_are_read_as_lists(tmp_path, caplog):
    """A labels column holding "['food', 'water']" with label_sep=',' used to give labels such as
    "['food'" and " 'water']"."""
    import pandas as pd

    from abalone_core.data import load_dataset

    cells = ["['food', 'water']", "['fire']", "[]", "['water', 'fire']"] * 5
    splits = ["train"] * 12 + ["validation"] * 4 + ["test"] * 4
    path = tmp_path / "lists.csv"
    pd.DataFrame({"text": ["flood water rain"] * 20, "labels": cells, "split": splits}).to_csv(path, index=False)
    with caplog.at_level("WARNING"):
        ds = load_dataset("csv", path=str(path), label_sep=",", split_column="split")
    assert ds.label_names == ["fire", "food", "water"]
    assert ds.labels[:4].tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0], [1, 0, 1]]
    assert f"{path}, data row 1" in caplog.text and "is a list" in caplog.text
    # A cell that looks like a list and is not one is refused, naming its row.
    cells[5] = "[food, water]"
    pd.DataFrame({"text": ["flood"] * 20, "labels": cells, "split": splits}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"lists.csv, data row 6: cannot parse the label list '\[food, water\]'"):
        load_dataset("csv", path=str(path), label_sep=",", split_column="split")
    # JSON lines whose label field is a real list, with or without label_sep.
    lines = [json.dumps({"text": "flood", "labels": ["food", "water"] if i % 2 else ["fire"], "split": s})
             for i, s in enumerate(splits)]
    write(tmp_path / "lists.jsonl", "\n".join(lines) + "\n")
    for sep in (",", None):
        ds = load_dataset("jsonl", path=str(tmp_path / "lists.jsonl"), label_sep=sep, split_column="split")
        assert ds.label_names == ["fire", "food", "water"] and ds.labels[:2].tolist() == [[1, 0, 0], [0, 1, 1]]


def test_bad_input_4_set_takes_text_settings_as_typed(ctx, capsys, monkeypatch):
    """``--set label_sep=|`` used to become "" (a YAML block scalar), so ``abalone stats`` counted
    label combinations as labels; ``mixed_precision=no`` became false and was refused;
    ``seed=010`` became 8; a dotted key was an unknown setting."""
    from abalone_core.cli import _config, build_parser
    from abalone_core.training.overrides import parse_overrides

    stats = ["stats", "csv", "--set", f"path={ctx.csv}", "--set", "split_column=split"]
    assert main(stats + ["--set", "label_sep=|"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:3] == ["train", "100.0", "6.0"], table  # 6 labels, not their combinations
    assert parse_overrides(["label_sep=,", "label_sep2=|"], loader=True) == {"label_sep": ",", "label_sep2": "|"}
    # The same as one entry of dataset_kwargs, merged into the --config file's.
    args = build_parser().parse_args([str(a) for a in train(ctx, "--set", "dataset_kwargs.label_sep=|",
                                                            "--set", "mixed_precision=no")])
    cfg = _config(args)
    assert cfg.dataset_kwargs == {**ctx.cfg.dataset_kwargs, "label_sep": "|"} and cfg.mixed_precision == "no"
    assert parse_overrides(["mixed_precision='no'", "init_from=null", "objective=msc"]) == {
        "mixed_precision": "no", "init_from": None, "objective": "msc"}
    code, line = cli(train(ctx, "--set", "seed=010"), capsys)
    assert code == 2 and "--set seed=010" in line and "octal (8)" in line and "seed=10" in line
    assert not ctx.out.exists()
    # mixed_precision=no, as the non-finite-loss message advises, trains.
    assert main([str(a) for a in train(ctx, "--set", "mixed_precision=no")]) == 0
    assert Config.from_file(ctx.out / "config.yaml").mixed_precision == "no"


# --------------------------------------------------------------------------- #
# The files a command writes
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("out,features,labels", [
    ("v.npy", "v.npy", "v.labels.npy"),
    ("v", "v.npy", "v.labels.npy"),
    ("v.float32", "v.float32.npy", "v.float32.labels.npy"),
])
def test_embed_writes_the_names_it_prints(ctx, capsys, out, features, labels):
    assert embed_paths(str(ctx.tmp / out)) == (ctx.tmp / features, ctx.tmp / labels)
    assert main(["embed", str(ctx.done), "--split", "validation", "--out", str(ctx.tmp / out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {ctx.tmp / features} " in printed and f"and {ctx.tmp / labels} " in printed
    assert np.load(ctx.tmp / features).shape[0] == np.load(ctx.tmp / labels).shape[0] == 30
    assert not temporaries(ctx.tmp)


def test_atomic_write_leaves_old_file_and_no_temporary_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic.write_json(path, {"a": 1})
    disk_full_on(monkeypatch, "metrics.json")
    with pytest.raises(OSError, match="no space left on device while writing .*metrics.json") as err:
        atomic.write_json(path, {"a": 2})
    assert err.value.errno == errno.ENOSPC
    assert json.loads(path.read_text()) == {"a": 1} and not temporaries(tmp_path)
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "nan.json", {"x": float("nan")})  # never a bare NaN
    assert not (tmp_path / "nan.json").exists() and not temporaries(tmp_path)


def test_atomic_open_reports_disk_errors_and_passes_on_the_callers_own(tmp_path):
    """A lost connection while a download is copied, or a missing file the caller reads, is the
    caller's error and is raised as it is; a full disk or a refused write is a WriteFailed
    naming the file. Either way the old file stays and no temporary is left."""
    path = tmp_path / "data.csv"
    atomic.write_text(path, "old")
    for error in (ConnectionError("the download was cut"), FileNotFoundError(errno.ENOENT, "No such file", "src")):
        with pytest.raises(type(error)) as raised:
            with atomic.atomic_open(path) as f:
                f.write("partial")
                raise error
        assert raised.value is error
    for code, message in ((errno.ENOSPC, "no space left on device while writing"), (errno.EACCES, "cannot write")):
        with pytest.raises(atomic.WriteFailed, match=f"{message} .*data.csv") as raised:
            with atomic.atomic_open(path) as f:
                f.write("partial")
                raise OSError(code, os.strerror(code))
        assert raised.value.errno == code
    assert path.read_text() == "old" and not temporaries(tmp_path)


def test_catalogue_size():
    """The catalogue keeps covering the classes of mistakes the issue lists (about 76)."""
    faults = [n for n in globals() if n.startswith(("test_fault_", "test_data_loss_"))]
    assert len(CATALOGUE) + len(faults) >= 76, (len(CATALOGUE), len(faults))
