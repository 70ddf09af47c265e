"""The run store: one SQLite table ``runs`` in ``<output_dir>/results.sqlite``, the single
source of truth of a sweep.

* :class:`Store` writes: each write is one short ``BEGIN IMMEDIATE`` transaction, so several
  processes can share the file. Only the process that runs the sweep writes (a Slurm job
  writes its result JSON; the submitting process records it).
* :func:`read_rows` and :func:`records` only read (the file is opened read-only): a
  ``running`` row whose process is gone is *shown* as failed, and written as failed by the
  next :meth:`Store.reconcile` (at the start of a sweep's run).

A ``running`` row names the sweep process that runs it by its pid, the host and the time that
process started (:func:`process_start`), so a pid that a later process received after a crash
does not keep the row running (:func:`alive`).
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SCHEMA = """
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
    process_start TEXT,                    -- when that process started (process_start)
    hardware     TEXT,                     -- JSON
    versions     TEXT,                     -- JSON
    git_revision TEXT,
    git_dirty    INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0
)
"""
# The key of a dependent run's recorded parameters that names the runs it starts from
# (abalone_core.sweep.grid.Sweep.recorded_parameters).
DEPENDS_ON = "depends_on"
COLUMNS = ["run_id", "status", "parameters", "metrics", "error", "started", "finished", "duration_s", "device",
           "hardware", "versions", "git_revision", "git_dirty", "attempts", "notebook", "pid", "host", "process_start"]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def process_start(pid: int) -> str | None:
    """When process ``pid`` of this machine started, as text that tells it from a later process
    given the same pid: on Linux the boot id and the start time in clock ticks since boot
    (field 22 of ``/proc/<pid>/stat``), exact whatever the clock does; elsewhere psutil's
    creation time in seconds since the epoch. None when neither can tell.

    Raises:
        ProcessLookupError: no process ``pid`` runs.
    """
    boot = Path("/proc/sys/kernel/random/boot_id")
    if boot.is_file():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            raise ProcessLookupError(f"no process {pid}") from None
        except (OSError, IndexError):
            return None
        return f"{boot.read_text().strip()}:{fields[19]}"
    try:
        import psutil
    except ImportError:
        return None
    try:
        return f"{psutil.Process(pid).create_time():.3f}"
    except psutil.NoSuchProcess:
        raise ProcessLookupError(f"no process {pid}") from None
    except psutil.Error:
        return None


def alive(pid: int | None, host: str | None, start: str | None = None) -> bool:
    """Whether the process that recorded a row still runs: the same ``pid`` on this host and,
    when ``start`` was recorded, the same :func:`process_start` (a row recorded without it is
    judged by its pid alone). On another host it cannot be checked: assumed alive (a sweep
    that submits cluster jobs runs on one machine, the login node, and records its own pid)."""
    if host != socket.gethostname():
        return True
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        pass
    if start is None:
        return True
    try:
        current = process_start(pid)
    except ProcessLookupError:
        return False
    return current is None or current == start


def _gone(row: dict) -> str:
    return (f"the process running it (pid {row['pid']} on {row['host']}) ended before it finished: "
            "killed or crashed")


class Store:
    """Writes to the ``runs`` table (created on first use). Connections wait up to
    ``timeout`` seconds for a lock."""

    def __init__(self, path: Path, timeout: float = 60.0):
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._write() as db:
            db.execute(SCHEMA)
            have = {r["name"] for r in db.execute("PRAGMA table_info(runs)")}
            if "process_start" not in have:  # a store made before process start times were recorded
                db.execute("ALTER TABLE runs ADD COLUMN process_start TEXT")

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
        return read_rows(self.path, self.timeout)

    def reconcile(self) -> list[str]:
        """Write ``running`` rows whose process is gone as failed; returns their ids."""
        stale = []
        with self._write() as db:
            for r in db.execute("SELECT run_id, pid, host, process_start FROM runs "
                                "WHERE status = 'running'").fetchall():
                if not alive(r["pid"], r["host"], r["process_start"]):
                    db.execute("UPDATE runs SET status = 'failed', finished = ?, error = ? WHERE run_id = ?",
                               (now(), _gone(dict(r)), r["run_id"]))
                    stale.append(r["run_id"])
        return stale

    def claim(self, rid: str, params: dict, retry: bool, info: dict) -> bool:
        """Mark a run ``running`` for this process unless it is done, running elsewhere, or
        failed and ``retry`` is false. Returns whether this process now owns it."""
        with self._write() as db:
            row = db.execute("SELECT status, pid, host, process_start FROM runs WHERE run_id = ?",
                             (rid,)).fetchone()
            if row is not None:
                if row["status"] == "done" or (row["status"] == "failed" and not retry):
                    return False
                if row["status"] == "running" and alive(row["pid"], row["host"], row["process_start"]):
                    return False
            db.execute(
                """INSERT INTO runs (run_id, parameters, status, started, device, notebook, pid, host,
                                     process_start, hardware, versions, git_revision, git_dirty, attempts)
                   VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
                   ON CONFLICT(run_id) DO UPDATE SET
                     parameters = excluded.parameters, status = 'running', metrics = NULL, error = NULL,
                     started = excluded.started, finished = NULL, duration_s = NULL, device = excluded.device,
                     notebook = excluded.notebook, pid = excluded.pid, host = excluded.host,
                     process_start = excluded.process_start, hardware = excluded.hardware,
                     versions = excluded.versions, git_revision = excluded.git_revision,
                     git_dirty = excluded.git_dirty, attempts = runs.attempts + 1""",
                (rid, json.dumps(params, sort_keys=True), now(), info["device"], info["notebook"], os.getpid(),
                 socket.gethostname(), process_start(os.getpid()), _json(info["hardware"]),
                 json.dumps(info["versions"]), info["git_revision"], info["git_dirty"]),
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
                     git_dirty = excluded.git_dirty, attempts = excluded.attempts, pid = NULL, host = NULL,
                     process_start = NULL""",
                (rid, json.dumps(row["parameters"], sort_keys=True), json.dumps(row.get("metrics")),
                 row.get("started"), row.get("finished"), row.get("duration_s"), row.get("device"),
                 json.dumps(row.get("hardware")), json.dumps(row.get("versions")), row.get("git_revision"),
                 None if row.get("git_dirty") is None else int(row["git_dirty"]), row.get("attempts") or 1),
            )

    def forget(self, rid: str) -> None:
        """Remove a run's row (it reads as pending again)."""
        with self._write() as db:
            db.execute("DELETE FROM runs WHERE run_id = ?", (rid,))

    def finish(self, rid: str, status: str, metrics: dict | None, error: str | None, duration: float,
               hardware: dict | None = None) -> None:
        """Record the end of a run this process owns; ``hardware``: the machine that ran it
        (a cluster node), when known, replaces the one recorded at the start."""
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = ?, metrics = ?, error = ?, finished = ?, duration_s = ?, "
                "hardware = COALESCE(?, hardware) WHERE run_id = ? AND pid = ? AND host = ?",
                (status, _json(metrics), error, now(), duration, _json(hardware), rid, os.getpid(),
                 socket.gethostname()),
            )


def _json(value) -> str | None:
    return None if value is None else json.dumps(value)


def read_rows(path: str | Path, timeout: float = 60.0) -> dict[str, dict]:
    """``{run id: row}`` of a store, as stored (JSON columns as text); read-only, and empty
    when the file or its table does not exist yet."""
    path = Path(path)
    if not path.is_file():
        return {}
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=timeout)
    db.row_factory = sqlite3.Row
    try:
        return {r["run_id"]: dict(r) for r in db.execute("SELECT * FROM runs ORDER BY rowid")}
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return {}
        raise
    finally:
        db.close()


def as_seen(rows: dict[str, dict]) -> dict[str, dict]:
    """The rows as a reader should take them: a ``running`` row whose process is gone is failed
    (the store is not changed)."""
    out = {}
    for rid, row in rows.items():
        if row["status"] == "running" and not alive(row["pid"], row["host"], row.get("process_start")):
            row = {**row, "status": "failed", "error": _gone(row)}
        out[rid] = row
    return out


def db_path(source) -> Path:
    """The file behind ``source``: a sweep (its ``results.sqlite``), a folder (its
    ``results.sqlite``, else an export's ``runs.jsonl``) or a file."""
    path = Path(source) if isinstance(source, (str, os.PathLike)) else source.db
    if path.is_dir():
        db, export = path / "results.sqlite", path / "runs.jsonl"
        path = export if export.is_file() and not db.is_file() else db
    if not path.is_file():
        raise FileNotFoundError(f"no results database at {path}: run the sweep first (abalone sweep GRID.yaml)")
    return path


def records(source) -> "pd.DataFrame":
    """Every row of a results database, JSON columns decoded; reading changes nothing.

    Args:
        source: a :class:`~abalone_core.sweep.Sweep`, its ``output_dir``, the
            ``results.sqlite`` file, or a ``runs.jsonl`` written by
            :func:`~abalone_core.sweep.export` (or a folder holding one).
    Returns:
        One row per run (index ``run_id``): ``status`` (a ``running`` row whose process is
        gone reads as ``failed``), ``parameters`` (dict), ``metrics`` (dict or None),
        ``error``, ``started``, ``finished``, ``duration_s`` (seconds), ``device``,
        ``hardware`` / ``versions`` (dicts), ``git_revision``, ``git_dirty``, ``attempts``,
        ``notebook``, ``pid``, ``host``, ``process_start``.
    """
    import pandas as pd

    path = db_path(source)
    if path.suffix == ".jsonl":  # an export: already decoded
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        rows = list(as_seen(read_rows(path)).values())
        for r in rows:
            for key in ("parameters", "metrics", "hardware", "versions"):
                r[key] = None if r[key] is None else json.loads(r[key])
            r["git_dirty"] = None if r["git_dirty"] is None else bool(r["git_dirty"])
    return pd.DataFrame(rows, columns=COLUMNS).set_index("run_id")


__all__ = ["Store", "read_rows", "as_seen", "records", "db_path", "now", "alive", "process_start", "SCHEMA", "COLUMNS",
           "DEPENDS_ON"]
