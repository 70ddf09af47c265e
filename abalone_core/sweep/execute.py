"""Executing one notebook with papermill, in a child process that cannot outlive the sweep.

:func:`execute` is what runs a grid cell, on this machine (one thread per worker) or inside
a Slurm job. papermill starts in its own process group (session), with a parent-death signal
on Linux; the kernel it starts has a session of its own. When the sweep stops (SIGTERM,
Ctrl-C, an exception) :func:`kill_tree` ends papermill, the kernel and whatever they started,
so no notebook keeps training and writes its results behind a run recorded as failed.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..training.provenance import hardware

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Linux: papermill gets SIGKILL when the process that started it dies, even by SIGKILL; the
# kernel's own parent poller then ends the kernel. prctl(PR_SET_PDEATHSIG) survives exec.
_PDEATHSIG = ("import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGKILL); "
              "os.getppid() == int(sys.argv[1]) or sys.exit(137); "
              "os.execv(sys.executable, [sys.executable, '-m', 'papermill', *sys.argv[2:]])")


@dataclass
class Task:
    """One notebook execution: ``params`` are the notebook's parameters (see
    :meth:`~abalone_core.sweep.Sweep.notebook_parameters`), ``env`` variables added to the
    environment. Picklable: a Slurm job receives it."""

    notebook: Path
    output: Path
    params: dict
    result_path: Path
    env: dict = field(default_factory=dict)


class Children:
    """The papermill processes started by one sweep's threads; :meth:`stop` ends them all and
    every one started afterwards."""

    def __init__(self):
        self._lock = threading.Lock()
        self._procs: set = set()
        self._stopped = False

    def add(self, proc) -> None:
        with self._lock:
            self._procs.add(proc)
            stopped = self._stopped
        if stopped:
            kill_tree(proc)

    def discard(self, proc) -> None:
        with self._lock:
            self._procs.discard(proc)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            procs = list(self._procs)
        for proc in procs:
            kill_tree(proc)


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (Linux ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped yet, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def kill_tree(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """End ``proc`` (a papermill started by :func:`execute`), the kernel and their children, and
    return once they are gone: SIGTERM to each of their process groups, SIGKILL to what is
    left after ``grace`` seconds."""
    pids = [proc.pid, *_descendants(proc.pid)]
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    groups.discard(os.getpgrp())  # never this process's own group

    def send(sig):
        for group in groups:
            try:
                os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def gone(seconds: float) -> bool:
        end = time.monotonic() + seconds
        while True:
            if proc.poll() is not None and not any(_running(pid) for pid in pids[1:]):
                return True
            if time.monotonic() > end:
                return False
            time.sleep(0.05)

    send(signal.SIGTERM)
    if not gone(grace):
        send(signal.SIGKILL)
        gone(grace)


def notebook_error(path: Path) -> str | None:
    """``Name: message`` and traceback of the first error output of an executed notebook."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                trace = _ANSI.sub("", "\n".join(out.get("traceback", [])))
                return f"{out.get('ename')}: {out.get('evalue')}\n{trace}"
    return None


def execute(task: Task, started: Callable | None = None, finished: Callable | None = None) -> dict:
    """Run papermill on ``task`` in a child process and read the metrics it wrote.

    ``started`` / ``finished`` are called with the child process (a :class:`Children`'s
    ``add`` / ``discard``). Whatever ends this call early (KeyboardInterrupt, a job's
    time-limit signal) ends the child's process tree first.

    Returns:
        ``status`` (done / failed), ``metrics``, ``error``, ``duration_s`` and ``hardware``
        (the machine that ran it).
    """
    import yaml

    task.result_path.unlink(missing_ok=True)
    task.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(task.params, f)  # a file keeps types exact (YAML reads "1e-05" from -p as a string)
    args = [str(task.notebook), str(task.output), "-f", f.name, "--cwd", str(task.notebook.parent),
            "--no-progress-bar"]
    cmd = ([sys.executable, "-c", _PDEATHSIG, str(os.getpid()), *args] if sys.platform.startswith("linux")
           else [sys.executable, "-m", "papermill", *args])
    env = {**os.environ, **{k: str(v) for k, v in task.env.items()}}
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        if started is not None:
            started(proc)
        try:
            _, stderr = proc.communicate()
        except BaseException:
            kill_tree(proc)
            raise
        finally:
            if finished is not None:
                finished(proc)
    finally:
        os.unlink(f.name)
    out = {"duration_s": time.perf_counter() - t0, "hardware": hardware(task.params.get("device")),
           "status": "failed", "metrics": None}
    if proc.returncode != 0:
        error = notebook_error(task.output) or f"papermill exited with {proc.returncode}:\n{stderr[-4000:]}"
        return {**out, "error": error}
    if not task.result_path.is_file():
        return {**out, "error": f"the notebook finished without writing {task.result_path}: it must write its "
                                "metrics as a JSON object to the path in its result_path parameter"}
    try:
        metrics = json.loads(task.result_path.read_text())
    except ValueError as err:
        return {**out, "error": f"{task.result_path} is not valid JSON: {err}"}
    if not isinstance(metrics, dict):
        return {**out, "error": f"{task.result_path} holds a {type(metrics).__name__}, not a JSON object of metrics"}
    return {**out, "status": "done", "metrics": metrics, "error": None}


__all__ = ["Task", "Children", "execute", "kill_tree", "notebook_error"]
