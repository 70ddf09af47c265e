"""The command ``abalone sweep GRID.yaml``: run, check (``--dry-run``), tabulate
(``--aggregate``) or publish (``--export``) a grid, on this machine or on a Slurm cluster."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .executors import NAMES, ExecutorSpec
from .grid import STATUSES, Sweep
from .precision import precision_mismatch
from .runner import exported_done, local_devices, runs_to_do
from .store import read_rows
from .tables import export, write_table

if TYPE_CHECKING:
    import argparse


def add_parser(subparsers) -> "argparse.ArgumentParser":
    """Register ``abalone sweep`` on an argparse subparsers object."""
    p = subparsers.add_parser("sweep", help="execute a notebook over a grid of parameters (papermill), "
                                            "record and tabulate the results")
    p.add_argument("grid", help="grid file (YAML): notebook, output_dir, parameters, grid, exclude, ...")
    p.add_argument("--workers", type=int, help="notebooks executed at once (default: one per device, else 1; "
                                               "Slurm: jobs in flight, default all that are ready)")
    p.add_argument("--devices", help="comma-separated, one per worker, e.g. cuda:0,cuda:1 (passed as the "
                                     "notebook's device parameter; default: the notebook's own)")
    p.add_argument("--dry-run", action="store_true",
                   help="check every run's configuration, list the runs, their status and the time left; run nothing")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--rerun-changed", action="store_true",
                   help="run again the finished runs whose parameters the grid file has changed since (their "
                        "files and records are moved to <output_dir>/superseded/ first)")
    p.add_argument("--aggregate", action="store_true",
                   help="tabulate finished runs into <output_dir>/table.csv and table.md and print it; run nothing")
    p.add_argument("--export", metavar="DIR",
                   help="write the finished runs (runs.jsonl) and their table (table.csv, table.md) to DIR, "
                        "e.g. to commit them; run nothing")
    p.add_argument("--any-precision", action="store_true",
                   help="run even when this machine would train in another precision (e.g. float32 on a CPU "
                        "without bfloat16) than the grid's finished runs, which is refused by default")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    c = p.add_argument_group("cluster", "run each notebook as a Slurm job (submitit); these override the grid "
                                        "file's executor section")
    c.add_argument("--executor", choices=NAMES, help="local processes (default), slurm, or submitit-local "
                                                     "(submitit's jobs on this machine)")
    c.add_argument("--partition", help="Slurm partition")
    c.add_argument("--gpus-per-run", type=int, help="GPUs of each job")
    c.add_argument("--cpus-per-run", type=int, help="CPU cores of each job (also its OMP_NUM_THREADS)")
    c.add_argument("--mem-gb", type=float, help="memory of each job")
    c.add_argument("--time-limit", type=int, metavar="MINUTES", help="time limit of each job (required for slurm)")
    c.add_argument("--slurm", action="append", metavar="KEY=VALUE", default=[],
                   help="another sbatch option, e.g. account=proj or qos=normal (repeatable)")
    p.set_defaults(fn=cmd_sweep)
    return p


def executor_spec(sweep: Sweep, args) -> ExecutorSpec:
    """The grid file's executor section with the command line's options on top
    (``--executor local`` leaves the file's cluster settings out)."""
    local = getattr(args, "executor", None) == "local"
    spec = {} if local else dict(sweep.executor)
    for key in ("partition", "gpus_per_run", "cpus_per_run", "mem_gb", "time_limit"):
        if getattr(args, key, None) is not None:
            spec[key] = getattr(args, key)
    if getattr(args, "executor", None):
        spec["name"] = args.executor
    for pair in getattr(args, "slurm", None) or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm {pair!r}: write KEY=VALUE, e.g. account=proj")
        spec.setdefault("slurm", {})
        spec["slurm"] = {**spec["slurm"], key.strip(): value.strip()}
    return ExecutorSpec.of(spec)


def _minutes(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def dry_run(sweep: Sweep, args, spec: ExecutorSpec) -> int:
    """Print each run's status and configuration check, and the time left; 1 when a run's
    configuration is invalid. Runs finished in the grid's ``export`` (a fresh clone) read as
    done, as the sweep would take them; nothing is written."""
    import pandas as pd

    st = sweep.status(exported=True)
    reasons = sweep.check()
    st["check"] = ["ok" if reasons[rid] is None else "INVALID" for rid in st.index]
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 80, "display.width", 200):
        print(st[["status", "check", "duration_s", "error"]].to_string())
    bad = {rid: why for rid, why in reasons.items() if why is not None}
    for rid, why in bad.items():
        print(f"\n{rid}\n  " + why.replace("\n", "\n  "))
    if spec.name == "local":
        workers = len(local_devices(args.workers, args.devices))
    else:
        workers = args.workers or spec.max_parallel or max(len(st), 1)
    e = sweep.estimate(workers, args.retry_failed, exported=True)
    print(f"\n{e['runs']} runs in {args.grid} (notebook {sweep.notebook}, output {sweep.output_dir}, "
          f"executor {spec.name})")
    print("  " + ", ".join(f"{s} {e[s]}" for s in STATUSES if e[s]))
    if e["minutes"] is None:
        print(f"  {e['to_run']} to run; time per run {e['source']}")
    else:
        print(f"  {e['to_run']} to run x {e['minutes_per_run']:.1f} min ({e['source']}) = {_minutes(e['minutes'])}"
              f" min; about {_minutes(e['wall_minutes'])} min with {workers} worker(s)")
    if e["failed"] and not args.retry_failed:
        print(f"  {e['failed']} failed runs are not retried without --retry-failed")
    if bad:
        print(f"  {len(bad)} runs have an invalid configuration (above)")
    if spec.name == "local":
        # read-only: the store's rows and the runs the sweep would take from its export
        mismatch = precision_mismatch(sweep, {**read_rows(sweep.db), **exported_done(sweep)},
                                      runs_to_do(st, args.retry_failed), local_devices(args.workers, args.devices))
        if mismatch:
            print(f"  refused without --any-precision: {mismatch}")
    return 1 if bad else 0


def cmd_sweep(args) -> int:
    sweep = Sweep.from_file(args.grid)
    spec = executor_spec(sweep, args)
    code = 0
    if args.dry_run:
        code = dry_run(sweep, args, spec)
    if args.aggregate:
        table = sweep.aggregate()
        paths = write_table(table, sweep.output_dir / "table")
        print(table.to_markdown())
        print(f"wrote {', '.join(map(str, paths))}")
    if args.export:
        paths = export(sweep, args.export)
        print(f"wrote {', '.join(map(str, paths))}")
    if args.dry_run or args.aggregate or args.export:
        return code
    try:
        st = sweep.run(workers=args.workers, devices=args.devices, retry_failed=args.retry_failed,
                       progress=not args.quiet, executor=spec, rerun_changed=args.rerun_changed,
                       any_precision=args.any_precision)
    except KeyboardInterrupt:
        print(f"interrupted: the runs in progress were stopped and are recorded as failed in {sweep.db}; run the "
              "same command with --retry-failed to redo them", file=sys.stderr)
        return 130
    counts = st["status"].value_counts()
    print(", ".join(f"{s} {counts.get(s, 0)}" for s in STATUSES if counts.get(s, 0)) + f"  ({sweep.db})")
    if counts.get("failed", 0):
        print(f"{counts['failed']} failed: run the same command with --retry-failed to run them again (their "
              f"errors: abalone sweep {args.grid} --dry-run)")
    return 1 if counts.get("failed", 0) or counts.get("pending", 0) else 0


__all__ = ["add_parser", "cmd_sweep", "executor_spec", "dry_run"]
