"""Where the notebooks run: processes on this machine, or Slurm jobs through submitit.

:class:`ExecutorSpec` is the choice (the grid file's ``executor:`` section, overridden by
``abalone sweep`` options). Both pools have the same small interface, used by
:mod:`.runner`: ``has_slot()``, ``next_device()``, ``submit(rid, task)``,
``wait(handles)``, ``outcome(handle)``, ``stop()`` and ``close()``.

* ``local`` (default): one thread per worker, each running :func:`.execute.execute` for one
  notebook at a time; ``devices`` gives each worker its device.
* ``slurm``: each run is one Slurm job (``partition``, ``gpus_per_run``, ``time_limit`` in
  minutes, ``cpus_per_run``, ``mem_gb``, ``setup`` lines, other ``slurm`` options such as
  ``account`` or ``qos``) running :func:`.execute.execute` on a node. The job writes the
  notebook and its result JSON under ``output_dir`` (which must be on a shared file system);
  the submitting process, which keeps running, records the result, or a failure when the
  job ends without one (time limit, node failure, cancelled). Job scripts and logs go to
  ``<output_dir>/jobs``.
* ``submitit-local``: the same through submitit's local executor, jobs on this machine: to
  try a cluster set-up without a cluster.
"""
from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path

from .execute import Children, Task, execute

NAMES = ("local", "slurm", "submitit-local")
CLUSTER_KEYS = ("partition", "gpus_per_run", "cpus_per_run", "mem_gb", "time_limit", "setup", "slurm", "folder",
                "max_parallel")


@dataclass
class ExecutorSpec:
    """How runs are executed (see the module docstring). ``time_limit`` is in minutes;
    ``max_parallel`` caps the jobs in flight (None: every run that is ready); ``folder`` holds
    submitit's job files and logs (relative to the grid file; default ``<output_dir>/jobs``);
    ``poll_s``: seconds between checks of the jobs."""

    name: str = "local"
    partition: str | None = None
    gpus_per_run: int | None = None
    cpus_per_run: int | None = None
    mem_gb: float | None = None
    time_limit: int | None = None
    setup: list = field(default_factory=list)
    slurm: dict = field(default_factory=dict)
    folder: str | Path | None = None
    max_parallel: int | None = None
    poll_s: float = 10.0

    def __post_init__(self) -> None:
        if self.name not in NAMES:
            raise ValueError(f"executor must be one of {list(NAMES)}, got {self.name!r}")
        given = [k for k in CLUSTER_KEYS if getattr(self, k) not in (None, [], {})]
        if self.name == "local" and given:
            raise ValueError(f"{given} are settings of a cluster executor: add executor: slurm "
                             "(or --executor slurm)")
        if self.name == "slurm" and self.time_limit is None:
            raise ValueError("a Slurm executor needs a time limit per run in minutes (time_limit, --time-limit); "
                             "submitit's default is 5 minutes")
        for key in ("gpus_per_run", "cpus_per_run", "time_limit", "max_parallel"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{key} must be a whole number >= 0, got {value!r}")
        if not isinstance(self.slurm, dict) or not isinstance(self.setup, list):
            raise ValueError("slurm must map sbatch options to values, setup must be a list of shell lines")

    @classmethod
    def of(cls, value) -> "ExecutorSpec":
        """From an ExecutorSpec, a name, a mapping (the grid file's section) or None (local)."""
        if isinstance(value, cls):
            return value
        if value is None or isinstance(value, str):
            return cls(name=value or "local")
        if not isinstance(value, dict):
            raise ValueError(f"executor must be a name or a mapping, got {value!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"executor: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**value)

    def submitit_parameters(self, name: str) -> dict:
        """Parameters of ``submitit.AutoExecutor.update_parameters`` for one run."""
        timeout = self.time_limit if self.time_limit is not None else 7 * 24 * 60
        params = {"name": name, "timeout_min": timeout, "nodes": 1, "tasks_per_node": 1,
                  "gpus_per_node": self.gpus_per_run, "cpus_per_task": self.cpus_per_run, "mem_gb": self.mem_gb}
        if self.name == "slurm":
            params.update(slurm_partition=self.partition, slurm_setup=list(self.setup) or None,
                          slurm_additional_parameters=dict(self.slurm) or None)
        elif self.setup:
            params["local_setup"] = list(self.setup)
        return {k: v for k, v in params.items() if v is not None}


class LocalPool:
    """Notebooks on this machine: one thread per device (None: the notebook's own default)."""

    def __init__(self, devices: list, env: dict | None = None):
        self.free = list(devices)
        self.env = dict(env or {})
        self.children = Children()
        self._threads = ThreadPoolExecutor(max_workers=len(devices))

    def has_slot(self) -> bool:
        return bool(self.free)

    def next_device(self):
        return self.free[0]

    def submit(self, rid: str, task: Task):
        device = self.free.pop(0)
        task.env = {**self.env, **task.env}
        future = self._threads.submit(execute, task, self.children.add, self.children.discard)
        future.device = device
        return future

    def wait(self, handles: list) -> list:
        done, _ = wait(handles, timeout=1.0, return_when=FIRST_COMPLETED)
        return list(done)

    def outcome(self, handle: Future) -> dict:
        self.free.append(handle.device)
        return handle.result()

    def stop(self) -> None:
        self.children.stop()

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)


class SubmititPool:
    """Each run one submitit job (Slurm, or submitit's local executor)."""

    def __init__(self, spec: ExecutorSpec, folder: Path, max_parallel: int | None = None):
        self.spec = spec
        self.folder = Path(folder)
        self.max_parallel = max_parallel if max_parallel is not None else spec.max_parallel
        self.executor = make_submitit_executor(spec, self.folder)
        self.jobs: list = []

    def has_slot(self) -> bool:
        return self.max_parallel is None or len(self.jobs) < self.max_parallel

    def next_device(self):
        return None  # the job's GPUs come from Slurm (CUDA_VISIBLE_DEVICES); the notebook picks "auto"

    def submit(self, rid: str, task: Task):
        if self.spec.cpus_per_run:  # the notebook's threads: the job's cores, not the node's
            task.env = {"OMP_NUM_THREADS": self.spec.cpus_per_run, "MKL_NUM_THREADS": self.spec.cpus_per_run,
                        **task.env}
        self.executor.update_parameters(**self.spec.submitit_parameters(f"abalone:{rid}"))
        job = self.executor.submit(execute, task)
        job.submitted_at = time.perf_counter()
        self.jobs.append(job)
        return job

    def wait(self, handles: list) -> list:
        done = [job for job in handles if job.done()]
        if not done:
            time.sleep(self.spec.poll_s)
        return done

    def outcome(self, job) -> dict:
        self.jobs.remove(job)
        try:
            return job.result()
        except Exception as err:  # the job ended without a result: killed, time limit, node failure
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return {"status": "failed", "metrics": None, "hardware": None,
                    "duration_s": time.perf_counter() - job.submitted_at,
                    "error": f"job {job.job_id} ended without a result ({job.state}): {first}\n"
                             f"logs: {job.paths.stdout} {job.paths.stderr}"}

    def stop(self) -> None:
        for job in self.jobs:
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001 - cancelling is best effort; the rows are recorded failed
                pass

    def close(self) -> None:
        pass


def make_submitit_executor(spec: ExecutorSpec, folder: Path):
    """A ``submitit.AutoExecutor`` for ``spec`` (cluster ``slurm`` or ``local``)."""
    try:
        import submitit
    except ImportError as err:
        raise RuntimeError("the slurm executor needs submitit: pip install 'abalone-core[cluster]'") from err
    cluster = "slurm" if spec.name == "slurm" else "local"
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(**spec.submitit_parameters("abalone"))
    return executor


__all__ = ["ExecutorSpec", "LocalPool", "SubmititPool", "make_submitit_executor", "NAMES"]
