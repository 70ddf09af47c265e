"""Helpers of the sweep tests (tests/test_sweep_*.py); no tests here.

The sweeps execute the toy notebook tests/data/sweep_toy.ipynb: metrics computed from its
parameters (micro_f1 = 50 + seed + 10 for msc / 5 for base), an optional pause, a seed that
fails while a flag file exists, and an optional file where the kernel writes its pid.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import yaml

from abalone_core import sweep as sw
from abalone_core.sweep.store import Store

ROOT = Path(__file__).resolve().parents[1]
TOY = Path(__file__).parent / "data" / "sweep_toy.ipynb"


def write_grid(folder: Path, **spec) -> Path:
    spec = {"notebook": str(TOY), "output_dir": "out", **spec}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="abalone")
    sw.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.fn(args)


def mtimes(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.ipynb")}


def fake_results(folder: Path, rows) -> Path:
    """A results database with finished runs: rows of (parameters, metrics, status)."""
    db = folder / "results.sqlite"
    store = Store(db)
    info = {"device": None, "notebook": None, "hardware": {}, "versions": {}, "git_revision": None, "git_dirty": None}
    for params, metrics, status in rows:
        rid = sw.run_id(params)
        assert store.claim(rid, params, False, info)
        store.finish(rid, status, metrics, None if status == "done" else "boom", 1.0)
    return db


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns a true value; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
