"""Experiment grids: one papermill execution of a notebook per grid cell, every run recorded
in SQLite, resumable, on this machine or on a Slurm cluster, and tabulated in the paper's layout.

Modules
-------
``grid``       the grid file, its cells and run ids, ``depends_on``, ``exclude``: :class:`Sweep`
``store``      the run store (``results.sqlite``); reading it never writes: :func:`records`
``execute``    one notebook in a child process tree that cannot outlive the sweep
``executors``  where notebooks run: local processes, or Slurm jobs via submitit
``runner``     running a grid: claims, dependencies, the export kept up to date
``check``      each run's configuration checked without running it (``--dry-run``)
``precision``  the runs left refused when this machine would train them in another precision
``tables``     :func:`aggregate`, :func:`records_table`, :func:`export`, :func:`write_table`
``cli``        ``abalone sweep``

A grid file (YAML)::

    notebook: ../notebooks/run.ipynb     # relative paths start at the grid file's folder
    output_dir: out/losses
    parameters: {max_steps: 500, temperature: 0.1}   # the same for every run
    parameters_by:                                    # optional: settings of some cells
      dataset: {foldoc: {max_steps: 1000}}            # (a mapping value is merged key by key)
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
    executor: {name: local}                           # optional: see "On a Slurm cluster"

Each cell gets a readable run id, e.g. ``dataset=disaster,objective=msc,seed=0``, and
the notebook is executed with the cell's values, the fixed parameters, and

* ``result_path = <output_dir>/results/<run id>.json``: **the notebook must write its
  metrics there as a JSON object** (for ``notebooks/run.ipynb``: ``metrics.json`` of
  :func:`abalone_core.training.runs.run`, scores under ``test``);
* ``run_dir = <output_dir>/runs/<run id>`` (if the notebook declares it): its working folder;
* ``device`` (when devices are given): the device of the worker running it;
* for ``depends_on`` entries: the ``run_dir`` of the cell it depends on (the same cell with
  ``objective=msc`` above), which is run first.

Local paths in ``dataset_kwargs`` (``path``, a file or ``{split: file}``, ``data_dir``, ...)
start at the grid file's folder too; they are recorded as written and made absolute for the
notebook. The executed notebooks go to ``<output_dir>/notebooks/<run id>.ipynb`` and one row
per run to ``<output_dir>/results.sqlite`` (parameters, status, metrics, error, timestamps;
hardware, versions and git revision from :mod:`abalone_core.training.provenance`). A rerun skips
finished runs; failed ones (an exception, a stopped sweep, or a ``running`` row whose
process is gone) run again with ``retry_failed``. A finished run whose parameters the grid
file has changed since (``changed``) stops the sweep before anything runs; with
``rerun_changed`` (``--rerun-changed``) its files and record move to
``<output_dir>/superseded/<time>/`` and it runs again. Because ``parameters_by`` changes only
the cells it names, the other cells keep their run ids and finished runs. A ``depends_on``
run records the run it starts from (its id and a digest of its parameters, under
``depends_on``), so a change to that run makes it ``changed`` too, and it runs again after it.
``--dry-run`` builds every run's configuration and prints why one is invalid.

With ``export``, the folder written by :func:`export` (``runs.jsonl`` and the table) is
rewritten each time a run finishes, so it can be committed as the grid goes; and a run of
the grid on another machine (a fresh clone without ``results.sqlite``) takes the finished
runs of that export as done and skips them. A finished run that another pending run
needs as ``depends_on`` (its weights) is taken only if its run folder is still there.

On a Slurm cluster (``pip install 'abalone-core[cluster]'``), each run is one job; the
command keeps running on the login node (in ``tmux``), submits the runs as their
dependencies finish, and records every result in the store; ``output_dir`` must be on a
file system the nodes share::

    abalone sweep sweeps/paper_grid.yaml --executor slurm --partition gpu \\
        --gpus-per-run 1 --cpus-per-run 8 --mem-gb 32 --time-limit 120 --slurm account=myproject

or in the grid file::

    executor: {name: slurm, partition: gpu, gpus_per_run: 1, cpus_per_run: 8, mem_gb: 32,
               time_limit: 120, slurm: {account: myproject}, setup: ["module load cuda"]}

>>> sweep = Sweep.from_file("sweeps/paper_grid.yaml")
>>> sweep.run(workers=2, devices="cuda:0,cuda:1")
>>> aggregate(sweep, rows="objective", columns=("dataset",), over="seed")
"""
from __future__ import annotations

from .check import check_runs
from .cli import add_parser, cmd_sweep
from .executors import ExecutorSpec
from .grid import STATUSES, Sweep, run_id
from ..training.provenance import git_state, gpu_names, hardware, versions
from .store import records
from .tables import (RECORD_METRICS, aggregate, dataset_label, export, export_scores, finished, metric_value,
                     read_export_scores, records_table, write_table)

__all__ = ["Sweep", "aggregate", "records", "records_table", "RECORD_METRICS", "export", "export_scores",
           "finished", "read_export_scores", "metric_value", "run_id",
           "write_table", "add_parser", "cmd_sweep", "hardware", "versions", "git_state",
           "gpu_names", "STATUSES", "ExecutorSpec", "dataset_label", "check_runs"]
