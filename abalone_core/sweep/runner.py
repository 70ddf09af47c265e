"""Running a sweep: every pending cell executed once, in dependency order, each recorded in
the run store by this process.

:func:`run_sweep` claims a run in the store, hands its notebook to the executor's pool
(:mod:`.executors`), records the outcome, and rewrites the ``export`` folder after each
finished run. :func:`import_export` (called first) takes the runs of that export as done
when the store lacks them (a fresh clone). SIGTERM, SIGHUP and Ctrl-C stop the notebooks in
flight (their whole process trees, or their jobs) and record them as failed.
"""
from __future__ import annotations

import json
import os
import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .. import atomic
from .execute import Task
from .executors import ExecutorSpec, LocalPool, SubmititPool
from ..training.provenance import git_state, hardware, versions
from .store import Store, records
from .precision import precision_mismatch
from .tables import export, export_lines

if TYPE_CHECKING:
    import pandas as pd

    from .grid import Sweep


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def _signals_interrupt():
    """SIGTERM (a batch scheduler, ``kill``) and SIGHUP (a closed terminal) act as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def thread_env(workers: int) -> dict:
    """Variables for the notebooks when several run at once on this machine: the CPU cores
    shared between them (``OMP_NUM_THREADS``, read by PyTorch), unless the caller set it. Without
    it each notebook starts one thread per core and the runs slow each other down."""
    if workers < 2 or "OMP_NUM_THREADS" in os.environ:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def run_hardware(device, env: dict) -> dict:
    """:func:`abalone_core.provenance.hardware` as the notebook sees it: this process measures
    it, but the notebook runs with the pool's ``env``, whose ``OMP_NUM_THREADS`` (several
    workers on one machine) sets the threads it computes with, and so its numbers."""
    hw = hardware(device)
    if env.get("OMP_NUM_THREADS"):
        hw["cpu_threads"] = int(env["OMP_NUM_THREADS"])
    return hw


def local_devices(workers: int | None, devices) -> list[str | None]:
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


def make_pool(sweep: "Sweep", spec: ExecutorSpec, workers: int | None, devices):
    if spec.name == "local":
        devices = local_devices(workers, devices)
        if any(d is not None for d in devices) and "device" not in sweep.declared_parameters():
            raise ValueError(f"devices given but {sweep.notebook.name} has no device parameter")
        return LocalPool(devices, thread_env(len(devices)))
    if devices:
        raise ValueError("devices are for the local executor; a cluster job gets its GPUs from gpus_per_run")
    folder = sweep.base_dir / spec.folder if spec.folder is not None else sweep.output_dir / "jobs"
    return SubmititPool(spec, folder, max_parallel=workers)


def runs_to_do(status: "pd.DataFrame", retry_failed: bool = False) -> list[str]:
    """Ids of the runs a sweep would start, in grid order: pending ones, and failed ones with
    ``retry_failed`` (``status``: :meth:`Sweep.status`)."""
    wanted = {"pending", "failed"} if retry_failed else {"pending"}
    return [rid for rid in status.index if status.at[rid, "status"] in wanted]


def run_sweep(sweep: "Sweep", workers: int | None = None, devices=None, retry_failed: bool = False,
              progress: bool = True, executor=None, rerun_changed: bool = False,
              any_precision: bool = False) -> "pd.DataFrame":
    """Execute every pending run of ``sweep`` (and failed ones with ``retry_failed``); returns its status.

    Args:
        workers: notebooks executed at once (default: one per device, else 1). Locally, with
            several, each notebook gets cores // workers CPU threads (``OMP_NUM_THREADS``)
            unless that variable is set. With a cluster executor: jobs in flight at once
            (default: the executor's ``max_parallel``, else every run that is ready).
        devices: ``"cuda:0,cuda:1"`` or a list, one per worker (local executor); each run gets
            its worker's device as its ``device`` parameter. None: the notebook's own default.
        retry_failed: run failed runs (and their dependants) again.
        rerun_changed: run again the finished runs whose parameters are not the grid's any more
            (:func:`supersede` moves their files and records aside first); without it such runs
            stop the sweep before anything runs.
        progress: a progress bar and one line per failure.
        executor: an :class:`~abalone_core.sweep.ExecutorSpec`, a name or a mapping; None: the
            grid file's ``executor`` section, else local.
        any_precision: run here even when this machine would train in another precision than
            the finished runs (:func:`abalone_core.sweep.precision.precision_mismatch`).
    Raises:
        ValueError: a finished run was made with other parameters than the grid's now, and
            ``rerun_changed`` is false; or, locally and without ``any_precision``, the runs left
            would train in another precision than the finished ones (before any run starts).
    """
    from tqdm.auto import tqdm

    spec = ExecutorSpec.of(executor if executor is not None else sweep.executor)
    if sweep.export is not None:  # rewritten after each finished run: refuse now rather than at every run
        try:
            atomic.check_writable(sweep.export)
        except OSError as err:
            reason = os.strerror(err.errno) if err.errno else str(err)
            raise atomic.WriteFailed(f"the export folder {sweep.export} (export: in the grid file) is not writable "
                                     f"({reason}); fix its permissions, or change or remove export:",
                                     err.errno) from None
    pool = make_pool(sweep, spec, workers, devices)
    imported = import_export(sweep)
    store = Store(sweep.db)
    store.reconcile()
    st = sweep.status()
    changed = list(st.index[st["status"] == "changed"])
    if changed and not rerun_changed:
        raise ValueError(f"{len(changed)} finished runs were made with other parameters (e.g. {changed[0]}); "
                         "run again with --rerun-changed to keep them aside and redo them, or write this grid to "
                         "another output_dir")
    if changed:
        folder = supersede(sweep, changed)
        st = sweep.status()
        if progress:
            print(f"{len(changed)} runs made with other parameters were moved to {folder}; they run again")
    waiting = runs_to_do(st, retry_failed)
    if spec.name == "local" and not any_precision:  # a cluster job's precision is its own node's
        mismatch = precision_mismatch(sweep, store.rows(), waiting, local_devices(workers, devices))
        if mismatch:
            pool.close()
            raise ValueError(mismatch)
    params = dict(sweep.runs())
    revision, dirty = git_state(sweep.notebook.parent)
    common = {"versions": versions(), "git_revision": revision, "git_dirty": None if dirty is None else int(dirty)}
    inflight: dict = {}  # handle -> run id
    owned: set[str] = set()
    bar = tqdm(total=len(waiting), desc=sweep.output_dir.name, unit="run", disable=not progress)

    def note(message):
        if progress:
            bar.write(message)

    with _signals_interrupt():
        try:
            while waiting or inflight:
                for rid in list(waiting):
                    if not pool.has_slot():
                        break
                    blocked = _blocked(sweep, rid, store, set(waiting) | set(inflight.values()))
                    if blocked == "wait":
                        continue
                    waiting.remove(rid)
                    device = pool.next_device()
                    info = {**common, "device": device, "notebook": str(sweep.paths(rid)["notebook"]),
                            "hardware": run_hardware(device, pool.env) if spec.name == "local" else None}
                    if not store.claim(rid, params[rid], retry_failed, info):
                        note(f"skipped {rid}: done or running in another process")
                        bar.update(1)
                        continue
                    if blocked:
                        store.finish(rid, "failed", None, blocked, 0.0)
                        note(f"failed  {rid}: {blocked}")
                        bar.update(1)
                        continue
                    owned.add(rid)
                    paths = sweep.paths(rid)
                    task = Task(sweep.notebook, paths["notebook"], sweep.notebook_parameters(rid, device),
                                paths["result"])
                    inflight[pool.submit(rid, task)] = rid
                if not inflight:
                    break  # only runs waiting on runs that are not coming: left pending
                for handle in pool.wait(list(inflight)):
                    rid = inflight.pop(handle)
                    out = pool.outcome(handle)
                    store.finish(rid, out["status"], out["metrics"], out["error"], out["duration_s"],
                                 out.get("hardware"))
                    owned.discard(rid)
                    bar.update(1)
                    if out["status"] == "failed":
                        note(f"failed  {rid}: {out['error'].splitlines()[0]}")
                    elif sweep.export is not None:
                        try:
                            export(sweep, sweep.export)
                        except Exception as err:  # never lose the grid for its export: it can be redone
                            note(f"could not export to {sweep.export}: {err}")
        except BaseException:  # Ctrl-C, SIGTERM or an error here: stop the notebooks, then record them
            pool.stop()
            raise
        finally:
            pool.close()
            for rid in owned:
                store.finish(rid, "failed", None, "the sweep was interrupted before this run finished", 0.0)
            bar.close()
    for rid in waiting:
        note(f"left pending {rid}: it needs {sorted(sweep.needs(rid).values())}, not finished yet")
    if imported:
        note(f"{len(imported)} runs were taken as done from {sweep.export}")
    return sweep.status()


def supersede(sweep: "Sweep", rids: list[str]) -> "Path":
    """Move the files of finished runs (executed notebook, result, run folder) to
    ``<output_dir>/superseded/<time>/`` with their records (``runs.jsonl``, in the export's
    format), and remove them from the store, so that they run again with the grid's parameters
    without losing what they computed. Returns that folder."""
    import shutil
    import time
    from pathlib import Path

    folder = Path(sweep.output_dir) / "superseded" / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    recs = records(sweep)
    lines = export_lines(recs[recs.index.isin(rids)], sweep.output_dir)
    atomic.write_text(folder / "runs.jsonl", "\n".join(lines) + "\n")  # the records first: nothing is lost
    for rid in rids:
        for kind, path in sweep.paths(rid).items():
            if path.exists():
                (folder / kind).mkdir(exist_ok=True)
                shutil.move(str(path), str(folder / kind / path.name))
    store = Store(sweep.db)
    for rid in rids:
        store.forget(rid)
    return folder


def exported_done(sweep: "Sweep") -> dict:
    """The finished runs of ``sweep.export``'s ``runs.jsonl`` that a run of the sweep would take
    as done, ``{run id: record}``, without writing anything: runs the sweep's store does not
    already hold as done, whose parameters equal the grid's, and, for a run that a pending run
    depends on, only if its run folder exists (its weights are needed)."""
    if sweep.export is None or not (sweep.export / "runs.jsonl").is_file():
        return {}
    st = sweep.status()
    have = set(st.index[st["status"].isin(["done", "changed"])])
    params = dict(sweep.runs())
    exported = {}
    for line in (sweep.export / "runs.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            exported[row["run_id"]] = row
    same = {rid for rid, row in exported.items() if rid in params and row.get("status") == "done"
            and json.dumps(row["parameters"], sort_keys=True) == json.dumps(params[rid], sort_keys=True)}
    done = have | same
    taken = {}
    for rid, row in exported.items():
        if rid not in same or rid in have:
            continue  # made with other parameters (run it again), or already here
        needed_by = [r for r, _ in sweep.runs() if rid in sweep.needs(r).values() and r not in done]
        if needed_by and not sweep.paths(rid)["run_dir"].is_dir():
            continue  # its weights are needed and gone: run it again
        taken[rid] = row
    return taken


def import_export(sweep: "Sweep") -> list[str]:
    """Record the finished runs of ``sweep.export``'s ``runs.jsonl`` as done in the sweep's store
    when the store lacks them (a fresh clone): :func:`exported_done`. Returns the ids taken."""
    taken = exported_done(sweep)
    if taken:
        store = Store(sweep.db)
        for rid, row in taken.items():
            store.insert_done(rid, row)
    return list(taken)


def _blocked(sweep: "Sweep", rid: str, store: Store, coming: set[str]) -> str | None:
    """None when the runs ``rid`` needs are done, ``"wait"`` while they are still to run
    here, else why it cannot run."""
    needs = sweep.needs(rid)
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


__all__ = ["run_sweep", "runs_to_do", "supersede", "import_export", "exported_done", "make_pool", "local_devices", "thread_env", "run_hardware"]
