"""Experiment grids: one papermill execution of a notebook per grid cell, every run
recorded in SQLite, resumable, and aggregated into the paper's table layout.

A grid file (YAML)::

    notebook: ../notebooks/run.ipynb     # relative paths start at the grid file's folder
    output_dir: out/losses
    parameters: {max_steps: 500, temperature: 0.1}   # the same for every run
    grid:                                             # crossed: 3 x 3 x 2 = 18 runs
      objective: [msc, base, bce]
      seed: [0, 1, 2]
      dataset: [disaster, foldoc]
    exclude:                                          # partial cells to drop
      - {objective: bce, dataset: foldoc}
    depends_on:                                       # optional: a parameter naming another run's folder
      init_from: {objective: {msc-ft: msc}}
    estimate_minutes_per_run: 12                      # optional, for --dry-run
    table: {rows: objective, columns: [dataset], over: seed}   # optional, for --aggregate
    export: ../results/losses                         # optional: kept up to date as runs finish

Each cell gets a readable run id, e.g. ``dataset=disaster,objective=msc,seed=0``, and
the notebook is executed with the cell's values, the fixed parameters, and

* ``result_path = <output_dir>/results/<run id>.json``: **the notebook must write its
  metrics there as a JSON object** (for ``notebooks/run.ipynb``: ``metrics.json`` of
  :func:`abalone_core.train.run`, scores under ``test``);
* ``run_dir = <output_dir>/runs/<run id>`` (if the notebook declares it): its working folder;
* ``device`` (when devices are given): the device of the worker running it;
* for ``depends_on`` entries: the ``run_dir`` of the cell it depends on (the same cell with
  ``objective=msc`` above), which is run first.

The executed notebooks go to ``<output_dir>/notebooks/<run id>.ipynb`` and one row per run
to ``<output_dir>/results.sqlite`` (table ``runs``: parameters, status, metrics, error,
timestamps, hardware, versions, git revision). A rerun skips finished runs; failed ones
(an exception, or a ``running`` row whose process is gone) run again with
``retry_failed=True``.

With ``export``, the folder written by :func:`export` (``runs.jsonl`` and the table) is
rewritten each time a run finishes, so it can be committed as the grid goes; and a run of
the grid on another machine (a fresh clone without ``results.sqlite``) takes the finished
runs of that export as done and skips them. A finished run that another pending run
needs as ``depends_on`` (its weights) is taken only if its run folder is still there.

>>> sweep = Sweep.from_file("sweeps/paper_grid.yaml")
>>> sweep.run(workers=2, devices="cuda:0,cuda:1")
>>> aggregate(sweep, rows="objective", columns=("dataset",), over="seed")
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from . import paper

if TYPE_CHECKING:
    import argparse

    import pandas as pd

# The paper's test scores, (dataset, objective) -> {metric: value}: see abalone_core.paper.
PAPER: dict[tuple[str, str], dict[str, float]] = paper.scores()
PAPER_NAMES = paper.NAMES

STATUSES = ("pending", "running", "done", "failed", "changed")
_FILE_KEYS = ("notebook", "output_dir", "parameters", "grid", "exclude", "depends_on",
              "estimate_minutes_per_run", "table", "export")
_INJECTED = ("result_path", "run_dir", "device")


# --------------------------------------------------------------------------- #
# Run ids
# --------------------------------------------------------------------------- #
def run_id(cell: dict) -> str:
    """Readable, stable id of a grid cell: ``key=value`` pairs sorted by key, joined by commas.

    Characters other than letters, digits, ``.``, ``_``, ``-`` and ``+`` become ``-``;
    ids longer than 120 characters are cut and end with a hash of the cell.
    """
    if not cell:
        return "default"
    parts = []
    for key in sorted(cell):
        value = cell[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        parts.append(f"{key}={re.sub(r'[^A-Za-z0-9._+-]+', '-', text).strip('-') or '-'}")
    rid = ",".join(parts)
    if len(rid) > 120:
        import hashlib

        digest = hashlib.sha1(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:10]
        rid = f"{rid[:109]},{digest}"
    return rid


# --------------------------------------------------------------------------- #
# The results store
# --------------------------------------------------------------------------- #
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    parameters   TEXT NOT NULL,            -- JSON: fixed parameters and grid cell
    status       TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    metrics      TEXT,                     -- JSON the notebook wrote to result_path
    error        TEXT,
    started      TEXT,                     -- ISO 8601, UTC
    finished     TEXT,
    duration_s   REAL,
    device       TEXT,
    notebook     TEXT,                     -- the executed notebook
    pid          INTEGER,                  -- sweep process running it (liveness of 'running' rows)
    host         TEXT,
    hardware     TEXT,                     -- JSON
    versions     TEXT,                     -- JSON
    git_revision TEXT,
    git_dirty    INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0
)
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _alive(pid: int | None, host: str | None) -> bool:
    """Whether a process runs. On another host it cannot be checked: assumed alive."""
    if host != socket.gethostname():
        return True
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class _Store:
    """The ``runs`` table. Every write is one short ``BEGIN IMMEDIATE`` transaction, and
    connections wait up to ``timeout`` seconds for a lock, so several processes can share it."""

    def __init__(self, path: Path, timeout: float = 60.0):
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._write() as db:
            db.execute(_SCHEMA)

    @contextmanager
    def _write(self):
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def rows(self) -> dict[str, dict]:
        db = sqlite3.connect(self.path, timeout=self.timeout)
        db.row_factory = sqlite3.Row
        try:
            return {r["run_id"]: dict(r) for r in db.execute("SELECT * FROM runs ORDER BY rowid")}
        finally:
            db.close()

    def reconcile(self) -> list[str]:
        """Mark ``running`` rows whose process is gone as failed; returns their ids."""
        stale = []
        with self._write() as db:
            for r in db.execute("SELECT run_id, pid, host FROM runs WHERE status = 'running'").fetchall():
                if not _alive(r["pid"], r["host"]):
                    db.execute("UPDATE runs SET status = 'failed', finished = ?, error = ? WHERE run_id = ?",
                               (_now(), f"the process running it (pid {r['pid']} on {r['host']}) ended before "
                                "it finished: killed or crashed", r["run_id"]))
                    stale.append(r["run_id"])
        return stale

    def claim(self, rid: str, params: dict, retry: bool, info: dict) -> bool:
        """Mark a run ``running`` for this process unless it is done, running elsewhere, or
        failed and ``retry`` is false. Returns whether this process now owns it."""
        with self._write() as db:
            row = db.execute("SELECT status, pid, host FROM runs WHERE run_id = ?", (rid,)).fetchone()
            if row is not None:
                if row["status"] == "done" or (row["status"] == "failed" and not retry):
                    return False
                if row["status"] == "running" and _alive(row["pid"], row["host"]):
                    return False
            db.execute(
                """INSERT INTO runs (run_id, parameters, status, started, device, notebook, pid, host, hardware,
                                     versions, git_revision, git_dirty, attempts)
                   VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
                   ON CONFLICT(run_id) DO UPDATE SET
                     parameters = excluded.parameters, status = 'running', metrics = NULL, error = NULL,
                     started = excluded.started, finished = NULL, duration_s = NULL, device = excluded.device,
                     notebook = excluded.notebook, pid = excluded.pid, host = excluded.host,
                     hardware = excluded.hardware, versions = excluded.versions,
                     git_revision = excluded.git_revision, git_dirty = excluded.git_dirty,
                     attempts = runs.attempts + 1""",
                (rid, json.dumps(params, sort_keys=True), _now(), info["device"], info["notebook"], os.getpid(),
                 socket.gethostname(), json.dumps(info["hardware"]), json.dumps(info["versions"]),
                 info["git_revision"], info["git_dirty"]),
            )
        return True

    def insert_done(self, rid: str, row: dict) -> None:
        """Record a finished run read from an export (no process, no local notebook)."""
        with self._write() as db:
            db.execute(
                """INSERT INTO runs (run_id, parameters, status, metrics, started, finished, duration_s, device,
                                     hardware, versions, git_revision, git_dirty, attempts)
                   VALUES (?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(run_id) DO UPDATE SET
                     parameters = excluded.parameters, status = 'done', metrics = excluded.metrics,
                     error = NULL, started = excluded.started, finished = excluded.finished,
                     duration_s = excluded.duration_s, device = excluded.device, hardware = excluded.hardware,
                     versions = excluded.versions, git_revision = excluded.git_revision,
                     git_dirty = excluded.git_dirty, attempts = excluded.attempts, pid = NULL, host = NULL""",
                (rid, json.dumps(row["parameters"], sort_keys=True), json.dumps(row.get("metrics")),
                 row.get("started"), row.get("finished"), row.get("duration_s"), row.get("device"),
                 json.dumps(row.get("hardware")), json.dumps(row.get("versions")), row.get("git_revision"),
                 None if row.get("git_dirty") is None else int(row["git_dirty"]), row.get("attempts") or 1),
            )

    def finish(self, rid: str, status: str, metrics: dict | None, error: str | None, duration: float) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = ?, metrics = ?, error = ?, finished = ?, duration_s = ? "
                "WHERE run_id = ? AND pid = ? AND host = ?",
                (status, None if metrics is None else json.dumps(metrics), error, _now(), duration, rid,
                 os.getpid(), socket.gethostname()),
            )


def records(source) -> "pd.DataFrame":
    """Every row of a results database, JSON columns decoded.

    Args:
        source: a :class:`Sweep`, its ``output_dir``, the ``results.sqlite`` file, or a
            ``runs.jsonl`` written by :func:`export` (or a folder holding one).
    Returns:
        One row per run (index ``run_id``): ``status``, ``parameters`` (dict), ``metrics``
        (dict or None), ``error``, ``started``, ``finished``, ``duration_s`` (seconds),
        ``device``, ``hardware`` / ``versions`` (dicts), ``git_revision``, ``git_dirty``,
        ``attempts``, ``notebook``, ``pid``, ``host``.
    """
    import pandas as pd

    path = _db_path(source)
    if path.suffix == ".jsonl":  # an export: already decoded
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        rows = list(_Store(path).rows().values())
        for r in rows:
            for key in ("parameters", "metrics", "hardware", "versions"):
                r[key] = None if r[key] is None else json.loads(r[key])
            r["git_dirty"] = None if r["git_dirty"] is None else bool(r["git_dirty"])
    columns = ["run_id", "status", "parameters", "metrics", "error", "started", "finished", "duration_s", "device",
               "hardware", "versions", "git_revision", "git_dirty", "attempts", "notebook", "pid", "host"]
    return pd.DataFrame(rows, columns=columns).set_index("run_id")


def _finished(source) -> "pd.DataFrame":
    """:func:`records` of the finished (``done``) runs; for a :class:`Sweep`, only its cells."""
    recs = records(source)
    if isinstance(source, Sweep):
        recs = recs[recs.index.isin([rid for rid, _ in source.runs()])]
    return recs[recs["status"] == "done"]


def _db_path(source) -> Path:
    path = source.db if isinstance(source, Sweep) else Path(source)
    if path.is_dir():  # the database, else an export's runs.jsonl
        db, export = path / "results.sqlite", path / "runs.jsonl"
        path = export if export.is_file() and not db.is_file() else db
    if not path.is_file():
        raise FileNotFoundError(f"no results database at {path}: run the sweep first (abalone sweep GRID.yaml)")
    return path


# --------------------------------------------------------------------------- #
# Provenance of a run
# --------------------------------------------------------------------------- #
def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def versions() -> dict:
    """Versions of the packages a run depends on (None where not installed)."""
    from . import __version__

    return {"abalone_core": __version__, "torch": _version("torch"), "transformers": _version("transformers"),
            "papermill": _version("papermill"), "python": platform.python_version()}


@functools.lru_cache(maxsize=1)
def gpu_names() -> tuple[str, ...]:
    """Names of the NVIDIA GPUs from ``nvidia-smi`` (empty without one); no CUDA context made."""
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def hardware(device: str | None = None) -> dict:
    """Machine of the runs: platform, python, torch, CPU count, host, GPUs and the run's GPU."""
    gpus = gpu_names()
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": _version("torch"),
            "cpu_count": os.cpu_count(), "host": socket.gethostname(), "gpus": list(gpus), "gpu": None}
    if device and device.startswith("cuda") and gpus:
        index = int(device.split(":")[1]) if ":" in device else 0
        info["gpu"] = gpus[index] if index < len(gpus) else None
    elif device in (None, "auto") and gpus:
        info["gpu"] = gpus[0]
    return info


def git_state(folder: str | Path) -> tuple[str | None, bool | None]:
    """(``git rev-parse HEAD``, whether tracked files differ from it) for the repository
    holding ``folder``; (None, None) outside a repository or without git."""
    def git(*args):
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()

    try:
        revision = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return revision, dirty


# --------------------------------------------------------------------------- #
# Executing one notebook
# --------------------------------------------------------------------------- #
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _notebook_error(path: Path) -> str | None:
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


def _execute(notebook: Path, output: Path, params: dict, result_path: Path, procs: set,
             lock: threading.Lock, env: dict | None = None) -> dict:
    """Run papermill in a child process (a crashing kernel cannot take the sweep down; Ctrl-C
    reaches it) with environment ``env`` (None: this one). Returns ``status``, ``metrics``,
    ``error`` and ``duration_s``."""
    import yaml

    result_path.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(params, f)  # a file keeps types exact (YAML reads "1e-05" from -p as a string)
    cmd = [sys.executable, "-m", "papermill", str(notebook), str(output), "-f", f.name,
           "--cwd", str(notebook.parent), "--no-progress-bar"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        with lock:
            procs.add(proc)
        try:
            _, stderr = proc.communicate()
        finally:
            with lock:
                procs.discard(proc)
    finally:
        os.unlink(f.name)
    duration = time.perf_counter() - t0
    if proc.returncode != 0:
        error = _notebook_error(output) or f"papermill exited with {proc.returncode}:\n{stderr[-4000:]}"
        return {"status": "failed", "metrics": None, "error": error, "duration_s": duration}
    if not result_path.is_file():
        return {"status": "failed", "metrics": None, "duration_s": duration,
                "error": f"the notebook finished without writing {result_path}: it must write its metrics "
                         "as a JSON object to the path in its result_path parameter"}
    try:
        metrics = json.loads(result_path.read_text())
    except ValueError as err:
        return {"status": "failed", "metrics": None, "duration_s": duration,
                "error": f"{result_path} is not valid JSON: {err}"}
    if not isinstance(metrics, dict):
        return {"status": "failed", "metrics": None, "duration_s": duration,
                "error": f"{result_path} holds a {type(metrics).__name__}, not a JSON object of metrics"}
    return {"status": "done", "metrics": metrics, "error": None, "duration_s": duration}


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _thread_env(workers: int) -> dict | None:
    """Environment of the notebooks when several run at once: the CPU cores shared between
    them (``OMP_NUM_THREADS``, read by PyTorch), unless the caller set it already. Without
    it each notebook starts one thread per core and the runs slow each other down."""
    if workers < 2 or "OMP_NUM_THREADS" in os.environ:
        return None
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def _devices(workers: int | None, devices) -> list[str | None]:
    """One device per worker; None: the notebook keeps its own ``device`` default."""
    if isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    if devices:
        devices = list(devices)
        if workers is not None and workers != len(devices):
            raise ValueError(f"{workers} workers but {len(devices)} devices {devices}: give one device per worker "
                             "(repeat a device to run two notebooks on it), or leave workers out")
        return devices
    workers = 1 if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return [None] * workers


# --------------------------------------------------------------------------- #
# The grid
# --------------------------------------------------------------------------- #
@dataclass
class Sweep:
    """A notebook, fixed parameters and a grid of values to cross (see the module docstring).

    Relative paths are taken from the working directory (from the grid file's folder with
    :meth:`from_file`). Every key of ``parameters``, ``grid`` and ``depends_on`` must be a
    parameter of the notebook, and the notebook must declare ``result_path``.

    Args:
        notebook: the parameterised notebook (a cell tagged ``parameters``).
        output_dir: folder of executed notebooks, run folders, results and the database.
        parameters: values given to every run.
        grid: ``{parameter: [values]}`` crossed in file order.
        exclude: partial cells; a cell matching every item of one of them is dropped.
        depends_on: ``{parameter: {grid key: {value: value of the needed cell}}}``; e.g.
            ``{"init_from": {"objective": {"msc-ft": "msc"}}}`` gives each ``msc-ft`` cell the
            ``run_dir`` of the ``msc`` cell with the same other values, and runs that one first.
        estimate_minutes_per_run: guess used by :meth:`estimate` until runs have finished.
        table: default arguments of :func:`aggregate` for this grid (rows, columns, metrics, over).
        export: folder of the committed export (see the module docstring), or None.
    """

    notebook: str | Path
    output_dir: str | Path
    parameters: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    exclude: list = field(default_factory=list)
    depends_on: dict = field(default_factory=dict)
    estimate_minutes_per_run: float | None = None
    table: dict = field(default_factory=dict)
    export: str | Path | None = None

    def __post_init__(self) -> None:
        self.notebook = Path(self.notebook).resolve()
        self.output_dir = Path(self.output_dir).resolve()
        self.export = None if self.export is None else Path(self.export).resolve()
        self.parameters = dict(self.parameters or {})
        self.grid = dict(self.grid or {})
        self.exclude = list(self.exclude or [])
        self.depends_on = dict(self.depends_on or {})
        self.table = dict(self.table or {})
        self._validate()
        self._lock = threading.Lock()
        self._procs: set = set()

    @classmethod
    def from_file(cls, path: str | Path) -> "Sweep":
        """Read a YAML grid file; its relative paths start at the file's folder."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"grid file {path} does not exist")
        spec = yaml.safe_load(path.read_text()) or {}
        if not isinstance(spec, dict):
            raise ValueError(f"{path} must hold a mapping (notebook, output_dir, parameters, grid, ...)")
        unknown = sorted(set(spec) - set(_FILE_KEYS))
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; known: {list(_FILE_KEYS)}")
        for key in ("notebook", "output_dir"):
            if key not in spec:
                raise ValueError(f"{path} needs a {key!r} entry")
            spec[key] = path.parent / spec[key]
        if spec.get("export") is not None:
            spec["export"] = path.parent / spec["export"]
        return cls(**spec)

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        if not self.notebook.is_file():
            raise FileNotFoundError(f"notebook {self.notebook} does not exist")
        if not isinstance(self.parameters, dict) or not isinstance(self.grid, dict):
            raise ValueError("parameters and grid must be mappings of parameter names to values")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}")
            seen = [json.dumps(v, sort_keys=True) for v in values]
            if len(set(seen)) != len(seen):
                raise ValueError(f"grid[{key!r}] repeats a value: {values}")
        both = sorted(set(self.parameters) & set(self.grid))
        if both:
            raise ValueError(f"{both} appear in both parameters and grid: keep each in one place")
        for ex in self.exclude:
            if not isinstance(ex, dict) or not ex or not set(ex) <= set(self.grid):
                raise ValueError(f"exclude entries must be non-empty mappings of grid keys {list(self.grid)} "
                                 f"to values, got {ex!r}")
        for param, rule in self.depends_on.items():
            ok = isinstance(rule, dict) and all(k in self.grid and isinstance(m, dict) for k, m in rule.items())
            if not ok:
                raise ValueError(f"depends_on[{param!r}] must map a grid key to {{value: needed value}}, "
                                 f"e.g. {{objective: {{msc-ft: msc}}}}; got {rule!r}")
            if param in self.parameters or param in self.grid:
                raise ValueError(f"depends_on parameter {param!r} is also set in parameters or grid")
        reserved = sorted(set(_INJECTED) & (set(self.parameters) | set(self.grid) | set(self.depends_on)))
        if reserved:
            raise ValueError(f"{reserved} are set by the sweep for each run; remove them from the grid file")
        if self.estimate_minutes_per_run is not None and not self.estimate_minutes_per_run > 0:
            raise ValueError(f"estimate_minutes_per_run must be > 0, got {self.estimate_minutes_per_run}")
        declared = self._declared = self.declared_parameters()
        if "result_path" not in declared:
            raise ValueError(f"{self.notebook.name} must declare result_path in its parameters cell and write "
                             "its metrics there as JSON")
        unknown = sorted((set(self.parameters) | set(self.grid) | set(self.depends_on)) - declared)
        if unknown:
            raise ValueError(f"{unknown} are not parameters of {self.notebook.name}; it declares {sorted(declared)}")
        self._cells = self._expand()
        self._deps = self._dependencies()

    def declared_parameters(self) -> set[str]:
        """Names assigned in the notebook's ``parameters`` cell."""
        try:
            import papermill
        except ImportError as err:
            raise RuntimeError("sweeps execute notebooks with papermill: pip install 'abalone-core[book]'") from err
        return set(papermill.inspect_notebook(str(self.notebook)))

    def _expand(self) -> dict[str, dict]:
        keys = list(self.grid)
        cells = {}
        for values in itertools.product(*(self.grid[k] for k in keys)):
            cell = dict(zip(keys, values))
            if any(all(cell[k] == v for k, v in ex.items()) for ex in self.exclude):
                continue
            rid = run_id(cell)
            if rid in cells:
                raise ValueError(f"two grid cells share the run id {rid!r}: make their values differ "
                                 "in letters or digits")
            cells[rid] = cell
        return cells

    def _dependencies(self) -> dict[str, dict[str, str]]:
        """run id -> {parameter: run id it needs}; checks that needed cells exist, without cycles."""
        deps: dict[str, dict[str, str]] = {}
        for rid, cell in self._cells.items():
            for param, rule in self.depends_on.items():
                for key, mapping in rule.items():
                    if cell[key] in mapping:
                        target = run_id({**cell, key: mapping[cell[key]]})
                        if target not in self._cells:
                            raise ValueError(f"run {rid} depends on {target} ({param}), which is not in the grid "
                                             "(excluded?)")
                        deps.setdefault(rid, {})[param] = target
        state: dict[str, int] = {}  # 1: on the current path, 2: checked

        def visit(rid, path):
            if state.get(rid) == 1:
                raise ValueError(f"depends_on makes a cycle: {' -> '.join(path + [rid])}")
            if state.get(rid) != 2:
                state[rid] = 1
                for target in deps.get(rid, {}).values():
                    visit(target, path + [rid])
                state[rid] = 2

        for rid in self._cells:
            visit(rid, [])
        return deps

    # ------------------------------------------------------------------ the runs
    @property
    def db(self) -> Path:
        return self.output_dir / "results.sqlite"

    def runs(self) -> list[tuple[str, dict]]:
        """``(run id, parameters)`` of every cell in grid order; parameters = fixed values + cell."""
        return [(rid, {**self.parameters, **cell}) for rid, cell in self._cells.items()]

    def paths(self, rid: str) -> dict[str, Path]:
        """Where a run's files go: ``notebook`` (executed), ``result`` (metrics JSON), ``run_dir``."""
        return {"notebook": self.output_dir / "notebooks" / f"{rid}.ipynb",
                "result": self.output_dir / "results" / f"{rid}.json",
                "run_dir": self.output_dir / "runs" / rid}

    def _rows(self) -> dict[str, dict]:
        if not self.db.is_file():
            return {}
        store = _Store(self.db)
        store.reconcile()
        return store.rows()

    def _state(self, rid: str, params: dict, row: dict | None) -> str:
        if row is None:
            return "pending"
        if row["status"] == "done" and json.loads(row["parameters"]) != json.loads(json.dumps(params, sort_keys=True)):
            return "changed"
        return row["status"]

    def status(self) -> "pd.DataFrame":
        """One row per run (index ``run_id``): grid values, ``status`` (pending / running / done /
        failed / changed: done with other parameters), ``started``, ``duration_s``, ``device``,
        ``attempts`` and the first line of ``error``. Rows left ``running`` by a process that is
        gone are recorded as failed first."""
        import pandas as pd

        rows = self._rows()
        out = []
        for rid, params in self.runs():
            row = rows.get(rid) or {}
            out.append({"run_id": rid, **self._cells[rid], "status": self._state(rid, params, rows.get(rid)),
                        "started": row.get("started"), "duration_s": row.get("duration_s"),
                        "device": row.get("device"), "attempts": row.get("attempts", 0),
                        "error": (row.get("error") or "").split("\n")[0] or None})
        columns = ["run_id", *self.grid, "status", "started", "duration_s", "device", "attempts", "error"]
        return pd.DataFrame(out, columns=columns).set_index("run_id")

    def estimate(self, workers: int = 1, retry_failed: bool = False) -> dict:
        """Size of the grid and time left.

        Returns:
            dict with ``runs`` (cells), counts per status (``done``, ``failed``, ``pending``,
            ``running``, ``changed``), ``to_run``, ``minutes_per_run`` (mean of finished runs
            when known, else ``estimate_minutes_per_run``, else None), ``source`` of that
            figure, ``minutes`` (to_run x minutes_per_run) and ``wall_minutes`` (/ workers).
        """
        st = self.status()
        counts = {s: int((st["status"] == s).sum()) for s in STATUSES}
        to_run = counts["pending"] + (counts["failed"] if retry_failed else 0)
        done = st.loc[st["status"] == "done", "duration_s"].dropna()
        if len(done):
            per_run, source = float(done.mean()) / 60, f"mean of {len(done)} finished runs"
        elif self.estimate_minutes_per_run:
            per_run, source = float(self.estimate_minutes_per_run), "estimate_minutes_per_run"
        else:
            per_run, source = None, "unknown: set estimate_minutes_per_run in the grid file"
        minutes = None if per_run is None else to_run * per_run
        return {"runs": len(st), **counts, "to_run": to_run, "minutes_per_run": per_run, "source": source,
                "minutes": minutes, "wall_minutes": None if minutes is None else minutes / max(workers, 1)}

    def run(self, workers: int | None = None, devices=None, retry_failed: bool = False,
            progress: bool = True) -> "pd.DataFrame":
        """Execute every pending run (and failed ones with ``retry_failed``); returns :meth:`status`.

        Args:
            workers: notebooks executed at once (default: one per device, else 1). With
                several, each notebook gets cores // workers CPU threads (``OMP_NUM_THREADS``)
                unless that variable is set.
            devices: ``"cuda:0,cuda:1"`` or a list, one per worker; each run gets its worker's
                device as its ``device`` parameter. None: the notebook's own default.
            retry_failed: run failed runs (and their dependants) again.
            progress: a progress bar and one line per failure.
        Raises:
            ValueError: a finished run was made with other parameters than the grid's now.
        """
        from tqdm.auto import tqdm

        devices = _devices(workers, devices)
        if any(d is not None for d in devices) and "device" not in self._declared:
            raise ValueError(f"devices given but {self.notebook.name} has no device parameter")
        imported = self.import_export()
        st = self.status()
        changed = list(st.index[st["status"] == "changed"])
        if changed:
            raise ValueError(f"{len(changed)} finished runs were made with other parameters (e.g. {changed[0]}); "
                             f"write this grid to another output_dir, or delete {self.db} to start over")
        wanted = {"pending", "failed"} if retry_failed else {"pending"}
        waiting = [rid for rid in st.index if st.at[rid, "status"] in wanted]
        params = dict(self.runs())
        store = _Store(self.db)
        revision, dirty = git_state(self.notebook.parent)
        common = {"notebook": None, "versions": versions(), "git_revision": revision,
                  "git_dirty": None if dirty is None else int(dirty)}
        free = list(devices)
        inflight: dict = {}
        owned: set[str] = set()
        bar = tqdm(total=len(waiting), desc=self.output_dir.name, unit="run", disable=not progress)

        def note(message):
            if progress:
                bar.write(message)

        previous = None
        if threading.current_thread() is threading.main_thread():  # SIGTERM (e.g. a batch scheduler) as Ctrl-C
            previous = signal.signal(signal.SIGTERM, _interrupt)
        env = _thread_env(len(devices))
        pool = ThreadPoolExecutor(max_workers=len(devices))
        try:
            while waiting or inflight:
                for rid in list(waiting):
                    if not free:
                        break
                    blocked = self._blocked(rid, store, set(waiting) | {r for r, _ in inflight.values()})
                    if blocked == "wait":
                        continue
                    waiting.remove(rid)
                    info = {**common, "device": free[0], "hardware": hardware(free[0]),
                            "notebook": str(self.paths(rid)["notebook"])}
                    if not store.claim(rid, params[rid], retry_failed, info):
                        note(f"skipped {rid}: done or running in another process")
                        bar.update(1)
                        continue
                    owned.add(rid)
                    if blocked:
                        store.finish(rid, "failed", None, blocked, 0.0)
                        owned.discard(rid)
                        note(f"failed  {rid}: {blocked}")
                        bar.update(1)
                        continue
                    device = free.pop(0)
                    future = pool.submit(self._execute_one, rid, params[rid], device, env)
                    inflight[future] = (rid, device)
                if not inflight:
                    break  # only runs waiting on runs that are not coming: left pending
                finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for future in finished:
                    rid, device = inflight.pop(future)
                    free.append(device)
                    out = future.result()
                    store.finish(rid, out["status"], out["metrics"], out["error"], out["duration_s"])
                    owned.discard(rid)
                    bar.update(1)
                    if out["status"] == "failed":
                        note(f"failed  {rid}: {out['error'].splitlines()[0]}")
                    elif self.export is not None:
                        try:
                            export(self, self.export)
                        except Exception as err:  # never lose the grid for its export: it can be redone
                            note(f"could not export to {self.export}: {err}")
        except BaseException:  # Ctrl-C or an error here: stop the notebooks, then record them
            with self._lock:
                for proc in self._procs:
                    proc.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for rid in owned:
                store.finish(rid, "failed", None, "the sweep was interrupted before this run finished", 0.0)
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        for rid in waiting:
            note(f"left pending {rid}: it needs {sorted(self._deps[rid].values())}, not finished yet")
        if imported:
            note(f"{len(imported)} runs were taken as done from {self.export}")
        return self.status()

    def import_export(self) -> list[str]:
        """Record the finished runs of ``export``'s ``runs.jsonl`` as done in this sweep's store
        when the store lacks them (a fresh clone). Only runs whose parameters equal the grid's
        are taken, and a run that a pending run depends on only if its run folder exists.
        Returns the ids taken."""
        if self.export is None or not (self.export / "runs.jsonl").is_file():
            return []
        store = _Store(self.db)
        have = store.rows()
        params = dict(self.runs())
        exported = {}
        for line in (self.export / "runs.jsonl").read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                exported[row["run_id"]] = row
        done = {rid for rid, r in have.items() if r["status"] == "done"}
        done |= {rid for rid, r in exported.items() if r.get("status") == "done"}
        taken = []
        for rid, row in exported.items():
            if rid not in params or row.get("status") != "done" or (have.get(rid) or {}).get("status") == "done":
                continue
            if json.dumps(row["parameters"], sort_keys=True) != json.dumps(params[rid], sort_keys=True):
                continue  # made with other parameters: run it again
            needed_by = [r for r, deps in self._deps.items() if rid in deps.values() and r not in done]
            if needed_by and not self.paths(rid)["run_dir"].is_dir():
                continue  # its weights are needed and gone: run it again
            store.insert_done(rid, row)
            taken.append(rid)
        return taken

    def _blocked(self, rid: str, store: _Store, coming: set[str]) -> str | None:
        """None when the runs ``rid`` needs are done, ``"wait"`` while they are still to run
        here, else why it cannot run."""
        needs = self._deps.get(rid, {})
        if not needs:
            return None
        rows = store.rows()
        for target in needs.values():
            status = (rows.get(target) or {}).get("status", "pending")
            if status == "done":
                continue
            if target in coming or status == "running":
                return "wait"
            return f"it needs run {target}, which is {status}"
        return None

    def _execute_one(self, rid: str, params: dict, device: str | None, env: dict | None = None) -> dict:
        paths = self.paths(rid)
        injected = {**params, "result_path": str(paths["result"])}
        if "run_dir" in self._declared:
            injected["run_dir"] = str(paths["run_dir"])
        if device is not None:
            injected["device"] = device
        for param, target in self._deps.get(rid, {}).items():
            injected[param] = str(self.paths(target)["run_dir"])
        return _execute(self.notebook, paths["notebook"], injected, paths["result"], self._procs, self._lock, env)

    def aggregate(self, **kwargs) -> "pd.DataFrame":
        """:func:`aggregate` of this sweep's finished runs, with the grid file's ``table`` defaults."""
        return aggregate(self, **{**self.table, **kwargs})


# --------------------------------------------------------------------------- #
# Tables
# --------------------------------------------------------------------------- #
def metric_value(result: dict, name: str) -> float:
    """A metric of a result JSON: a dotted path (``validation.micro_f1``), else ``test.<name>``,
    else the top-level ``<name>`` (e.g. ``silhouette``); NaN when absent."""
    if "." in name:
        value = result
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    else:
        test = result.get("test")
        value = test[name] if isinstance(test, dict) and name in test else result.get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def aggregate(source, rows="objective", columns=("dataset",), metrics=("micro_f1", "macro_f1", "hamming"),
              over="seed", where: dict | None = None, stat: str = "text", paper: str = "matching",
              digits: int = 2) -> "pd.DataFrame":
    """Finished runs in the paper's table layout: one row per ``rows`` value, one column per
    ``columns`` value and metric, each cell a statistic over the values of ``over`` (seeds).

    Args:
        source: a :class:`Sweep` (only its cells), its ``output_dir`` or ``results.sqlite``.
        rows: parameter(s) naming the rows (e.g. ``"objective"``).
        columns: parameters whose values head column groups (``("dataset",)``), or ``()``.
        metrics: names read by :func:`metric_value` (F1 in percent, Hamming x 10^3 for
            :func:`abalone_core.train.run`; ``silhouette``, ``davies_bouldin`` at the top level).
        over: the parameter averaged over. Any other parameter that varies raises ValueError:
            put it in rows or columns, or keep one value with ``where``.
        where: ``{parameter: value}`` filter applied first.
        stat: ``"text"`` (``"mean ± std"``, sample std over ``over``; the mean alone for one run),
            ``"mean"``, ``"std"`` or ``"count"`` (numbers).
        paper: ``"matching"``: beside each metric of a dataset the paper reports (aapd, rcv1,
            uk-lex), a ``(paper)`` column from :data:`PAPER`; ``"all"``: also the paper's other
            datasets as extra columns; ``"none"``.
        digits: decimals of the text cells.
    Returns:
        DataFrame indexed by the rows values (first-finished order), columns named
        ``"<column value> <metric>"`` (values of several column keys joined by ``/``).
    """
    import numpy as np
    import pandas as pd

    if stat not in ("text", "mean", "std", "count"):
        raise ValueError(f"stat must be text, mean, std or count, got {stat!r}")
    if paper not in ("matching", "all", "none"):
        raise ValueError(f"paper must be 'matching', 'all' or 'none', got {paper!r}")
    row_keys = [rows] if isinstance(rows, str) else list(rows)
    col_keys = [columns] if isinstance(columns, str) else list(columns)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if not row_keys or not metrics:
        raise ValueError("aggregate needs at least one rows key and one metric")
    recs = _finished(source)
    if where:
        recs = recs[[all(p.get(k) == v for k, v in where.items()) for p in recs["parameters"]]]
    if recs.empty:
        raise ValueError("no finished run to aggregate (check the sweep's status and the where filter)")
    params = pd.DataFrame(list(recs["parameters"]), index=recs.index)
    keys = row_keys + col_keys
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"{missing} are not parameters of these runs; they have {sorted(params.columns)}")
    varying = [k for k in params.columns if k not in keys and k != over
               and params[k].map(lambda v: json.dumps(v, sort_keys=True)).nunique() > 1]
    if varying:
        raise ValueError(f"{varying} vary between runs but are not in rows, columns or over: add them to one "
                         "of these, or keep one value with where={...}")
    def plain(v):  # lists and dicts cannot be group keys
        return v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v)

    long = params[keys].apply(lambda col: col.map(plain))
    for m in metrics:
        long[m] = [metric_value(r or {}, m) for r in recs["metrics"]]
    groups = long.groupby(keys, sort=False, dropna=False)[metrics]
    stats = {"mean": groups.mean(), "std": groups.std(ddof=1), "count": groups.count()}

    def label(values) -> str:
        return "/".join(str(v) for v in values)

    row_values = list(dict.fromkeys(tuple(r) for r in long[row_keys].itertuples(index=False)))
    col_values = list(dict.fromkeys(tuple(r) for r in long[col_keys].itertuples(index=False))) if col_keys else [()]

    def cell(r, c, m):
        key = r + c if len(keys) > 1 else (r + c)[0]
        if key not in stats["count"].index or stats["count"].at[key, m] == 0:
            return "" if stat == "text" else np.nan
        mean, std, n = (stats[s].at[key, m] for s in ("mean", "std", "count"))
        if stat == "text":
            return f"{mean:.{digits}f}" if n < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"
        return {"mean": mean, "std": std, "count": n}[stat]

    with_paper = paper != "none" and row_keys == ["objective"] and col_keys == ["dataset"]
    if paper == "all" and not with_paper:
        raise ValueError("paper='all' needs rows='objective' and columns=('dataset',)")

    def paper_value(dataset, objective, m):
        v = PAPER.get((str(dataset).lower(), objective), {}).get(m, np.nan)
        if stat == "text":
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return v if stat == "mean" else np.nan

    def add_paper(name, dataset, m):  # only columns the paper has figures for
        values = [paper_value(dataset, r[0], m) for r in row_values]
        if any(v != "" and not (isinstance(v, float) and np.isnan(v)) for v in values):
            table[name] = values

    papers = list(dict.fromkeys(d for d, _ in PAPER))
    table: dict[str, list] = {}
    for c in col_values:
        for m in metrics:
            table[f"{label(c)} {m}".strip()] = [cell(r, c, m) for r in row_values]
            if with_paper and str(c[0]).lower() in papers:
                add_paper(f"{label(c)} {m} (paper)", c[0], m)
    if paper == "all":
        present = {str(c[0]).lower() for c in col_values}
        for dataset in (d for d in papers if d not in present):
            for m in metrics:
                add_paper(f"{dataset} {m} (paper)", dataset, m)
    index = (pd.MultiIndex.from_tuples(row_values, names=row_keys) if len(row_keys) > 1
             else pd.Index([r[0] for r in row_values], name=row_keys[0]))
    return pd.DataFrame(table, index=index)


RECORD_METRICS = ("micro_f1", "macro_f1", "hamming", "f1_head", "f1_medium", "f1_tail",
                  "micro_f1_tuned", "macro_f1_tuned", "p_at_1", "p_at_3", "p_at_5", "ndcg_at_3", "ndcg_at_5",
                  "psp_at_1", "psp_at_3", "psp_at_5", "map", "silhouette", "davies_bouldin")


def records_table(source, metrics=RECORD_METRICS) -> "pd.DataFrame":
    """Finished runs as a flat table: one row per run (index ``run_id``), a column per grid
    parameter of scalar value, one per metric (read by :func:`metric_value`; NaN where a run
    lacks it), ``converged`` (True / False, None when the record cannot tell or nothing was
    trained), ``minutes`` (wall time of the run) and ``hardware`` (the GPU, else the CPU threads)."""
    import pandas as pd

    recs = _finished(source)
    rows = []
    for rid, r in recs.iterrows():
        params = {k: v for k, v in (r["parameters"] or {}).items() if isinstance(v, (str, int, float, bool))}
        hw = r["hardware"] or {}
        result = r["metrics"] or {}
        rows.append({"run_id": rid, **params, **{m: metric_value(result, m) for m in metrics},
                     "converged": result.get("converged"),
                     "minutes": (r["duration_s"] or float("nan")) / 60,
                     "hardware": hw.get("gpu") or f"CPU ({hw.get('cpu_count', '?')} cores)"})
    return pd.DataFrame(rows).set_index("run_id") if rows else pd.DataFrame()


def export(source, dest: str | Path, **aggregate_kwargs) -> list[Path]:
    """Publish a sweep's finished runs in a folder meant to be committed: ``runs.jsonl`` (one
    line per run with its parameters, metrics, timing, hardware, versions and git revision,
    readable again by :func:`records` / :func:`aggregate`) and ``table.csv`` / ``table.md``
    (:func:`aggregate` with ``aggregate_kwargs``, or the sweep's ``table`` defaults).
    Host names and process ids are left out, and paths inside the sweep's folder (the runs'
    ``output_dir``, ``init_from``) are written relative to it. Returns the paths written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    recs = _finished(source)
    if recs.empty:
        raise ValueError("no finished run to export (check the sweep's status)")
    keep = ["status", "parameters", "metrics", "started", "finished", "duration_s", "device", "hardware",
            "versions", "git_revision", "git_dirty", "attempts"]
    root = str(_db_path(source).parent.resolve())

    def relative(value):  # paths inside the sweep's folder, written relative to it
        if isinstance(value, dict):
            return {k: relative(v) for k, v in value.items()}
        if isinstance(value, list):
            return [relative(v) for v in value]
        if isinstance(value, str) and value.startswith(root + os.sep):
            return value[len(root) + 1:]
        return value

    lines = []
    for rid, r in recs.iterrows():
        row = {"run_id": rid, **{k: r[k] for k in keep}}
        row["metrics"] = relative(r["metrics"])
        row["hardware"] = {k: v for k, v in (r["hardware"] or {}).items() if k != "host"}
        lines.append(json.dumps(row, sort_keys=True, default=str))
    runs = dest / "runs.jsonl"
    tmp = runs.with_name(runs.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(runs)
    kwargs = {**(source.table if isinstance(source, Sweep) else {}), **aggregate_kwargs}
    if "columns" not in kwargs:  # the default columns, when the runs have such a parameter
        names = set().union(*(p or {} for p in recs["parameters"]))
        kwargs["columns"] = tuple(c for c in ("dataset",) if c in names)
    return [runs, *write_table(aggregate(runs, **kwargs), dest / "table")]


def write_table(table: "pd.DataFrame", stem: str | Path) -> list[Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` (Markdown via tabulate); returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    table.to_csv(csv)
    md.write_text(table.to_markdown() + "\n")
    return [csv, md]


# --------------------------------------------------------------------------- #
# Command line: abalone sweep
# --------------------------------------------------------------------------- #
def add_parser(subparsers) -> "argparse.ArgumentParser":
    """Register ``abalone sweep`` on an argparse subparsers object."""
    p = subparsers.add_parser("sweep", help="execute a notebook over a grid of parameters (papermill), "
                                            "record and tabulate the results")
    p.add_argument("grid", help="grid file (YAML): notebook, output_dir, parameters, grid, exclude, ...")
    p.add_argument("--workers", type=int, help="notebooks executed at once (default: one per device, else 1)")
    p.add_argument("--devices", help="comma-separated, one per worker, e.g. cuda:0,cuda:1 (passed as the "
                                     "notebook's device parameter; default: the notebook's own)")
    p.add_argument("--dry-run", action="store_true", help="list the runs, their status and the time left; run nothing")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--aggregate", action="store_true",
                   help="tabulate finished runs into <output_dir>/table.csv and table.md and print it; run nothing")
    p.add_argument("--export", metavar="DIR",
                   help="write the finished runs (runs.jsonl) and their table (table.csv, table.md) to DIR, "
                        "e.g. to commit them; run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_sweep)
    return p


def _minutes(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def cmd_sweep(args) -> int:
    sweep = Sweep.from_file(args.grid)
    if args.dry_run:
        import pandas as pd

        workers = len(_devices(args.workers, args.devices))
        st = sweep.status()
        with pd.option_context("display.max_rows", None, "display.max_colwidth", 80, "display.width", 200):
            print(st[["status", "duration_s", "error"]].to_string())
        e = sweep.estimate(workers, args.retry_failed)
        print(f"\n{e['runs']} runs in {args.grid} (notebook {sweep.notebook}, output {sweep.output_dir})")
        print("  " + ", ".join(f"{s} {e[s]}" for s in STATUSES if e[s]))
        if e["minutes"] is None:
            print(f"  {e['to_run']} to run; time per run {e['source']}")
        else:
            print(f"  {e['to_run']} to run x {e['minutes_per_run']:.1f} min ({e['source']}) = {_minutes(e['minutes'])}"
                  f" min; about {_minutes(e['wall_minutes'])} min with {workers} worker(s)")
        if e["failed"] and not args.retry_failed:
            print(f"  {e['failed']} failed runs are not retried without --retry-failed")
    if args.aggregate:
        table = sweep.aggregate()
        paths = write_table(table, sweep.output_dir / "table")
        print(table.to_markdown())
        print(f"wrote {', '.join(map(str, paths))}")
    if args.export:
        paths = export(sweep, args.export)
        print(f"wrote {', '.join(map(str, paths))}")
    if args.dry_run or args.aggregate or args.export:
        return 0
    try:
        st = sweep.run(workers=args.workers, devices=args.devices, retry_failed=args.retry_failed,
                       progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"interrupted: the runs in progress are recorded as failed in {sweep.db}; run the same command "
              "with --retry-failed to redo them", file=sys.stderr)
        return 130
    counts = st["status"].value_counts()
    print(", ".join(f"{s} {counts.get(s, 0)}" for s in STATUSES if counts.get(s, 0)) + f"  ({sweep.db})")
    return 1 if counts.get("failed", 0) or counts.get("pending", 0) else 0


__all__ = ["Sweep", "aggregate", "records", "records_table", "RECORD_METRICS", "export", "metric_value", "run_id", "write_table",
           "add_parser", "cmd_sweep", "PAPER", "PAPER_NAMES", "hardware", "versions", "git_state", "gpu_names"]
