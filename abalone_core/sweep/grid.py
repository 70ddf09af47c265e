"""The grid: a notebook, fixed parameters and values to cross, read from a YAML grid file.

:class:`Sweep` checks the grid file, expands it into cells (``exclude`` drops some, each
gets a readable :func:`run_id`), orders ``depends_on`` cells, says where each run's files go
and which parameters its notebook receives (:meth:`Sweep.notebook_parameters`), and reports
the status of every cell from the run store (without writing to it). Running is
:mod:`.runner`'s job; :meth:`Sweep.run` hands over to it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .check import check_runs
from .executors import ExecutorSpec
from .runner import exported_done, import_export, run_sweep
from ..training.config import resolve_data_paths
from .store import DEPENDS_ON, as_seen, read_rows
from .tables import aggregate

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("pending", "running", "done", "failed", "changed")
FILE_KEYS = ("notebook", "output_dir", "parameters", "parameters_by", "grid", "exclude", "depends_on",
             "estimate_minutes_per_run", "table", "export", "executor")
INJECTED = ("result_path", "run_dir", "device")


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
        short = hashlib.sha1(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:10]
        rid = f"{rid[:109]},{short}"
    return rid


def digest(params: dict) -> str:
    """Short hex digest of recorded parameters (JSON with sorted keys), as a dependent run records it."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def cell_parameters(parameters: dict, parameters_by: dict, cell: dict) -> dict:
    """The parameters of one cell: the shared ``parameters``, then the ``parameters_by`` entries
    that match the cell's values, then the cell itself. A matching entry replaces a shared
    value, except that a mapping (e.g. ``overrides``) is merged key by key into the shared one.

    >>> cell_parameters({"max_steps": 800, "overrides": {"a": 1, "b": 2}},
    ...                 {"dataset": {"foldoc": {"max_steps": 1600, "overrides": {"b": 3}}}},
    ...                 {"dataset": "foldoc", "seed": 0})
    {'max_steps': 1600, 'overrides': {'a': 1, 'b': 3}, 'dataset': 'foldoc', 'seed': 0}
    """
    out = dict(parameters)
    for key, by_value in parameters_by.items():
        for name, value in by_value.get(cell.get(key), {}).items():
            if isinstance(value, dict) and isinstance(out.get(name), dict):
                out[name] = {**out[name], **value}
            else:
                out[name] = value
    return {**out, **cell}


def expand(grid: dict, exclude=()) -> list[dict]:
    """The cells of a grid, crossed in file order, less those matching an ``exclude`` entry."""
    keys = list(grid)
    cells = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    return [c for c in cells if not any(all(c[k] == v for k, v in ex.items()) for ex in exclude or ())]


@dataclass
class Sweep:
    """A notebook, fixed parameters and a grid of values to cross (see the package docstring).

    Relative paths (``notebook``, ``output_dir``, ``export`` and the data paths of
    ``dataset_kwargs``) start at ``base_dir``: the grid file's folder with :meth:`from_file`,
    else the working directory. Every key of ``parameters``, ``grid`` and ``depends_on`` must
    be a parameter of the notebook, and the notebook must declare ``result_path``.

    Args:
        notebook: the parameterised notebook (a cell tagged ``parameters``).
        output_dir: folder of executed notebooks, run folders, results and the database.
        parameters: values given to every run.
        parameters_by: ``{grid key: {value: {parameter: value}}}``: settings of the cells with
            that value, e.g. ``{"dataset": {"foldoc": {"max_steps": 1600}}}`` gives FOLDOC its
            own budget while the other cells keep theirs (and their run ids); see
            :func:`cell_parameters`.
        grid: ``{parameter: [values]}`` crossed in file order.
        exclude: partial cells; a cell matching every item of one of them is dropped.
        depends_on: ``{parameter: {grid key: {value: value of the needed cell}}}``; e.g.
            ``{"init_from": {"objective": {"msc-ft": "msc"}}}`` gives each ``msc-ft`` cell the
            ``run_dir`` of the ``msc`` cell with the same other values, and runs that one first;
            the ``msc-ft`` run records which run that is (:meth:`recorded_parameters`).
        estimate_minutes_per_run: guess used by :meth:`estimate` until runs have finished.
        table: default arguments of :func:`~abalone_core.sweep.aggregate` for this grid.
        export: folder of the committed export (see the package docstring), or None.
        executor: default executor settings (:class:`~abalone_core.sweep.ExecutorSpec`).
        base_dir: the folder relative paths start at.
    """

    notebook: str | Path
    output_dir: str | Path
    parameters: dict = field(default_factory=dict)
    parameters_by: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    exclude: list = field(default_factory=list)
    depends_on: dict = field(default_factory=dict)
    estimate_minutes_per_run: float | None = None
    table: dict = field(default_factory=dict)
    export: str | Path | None = None
    executor: dict = field(default_factory=dict)
    base_dir: str | Path | None = None

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir if self.base_dir is not None else ".").resolve()
        self.notebook = (self.base_dir / self.notebook).resolve()
        self.output_dir = (self.base_dir / self.output_dir).resolve()
        self.export = None if self.export is None else (self.base_dir / self.export).resolve()
        self.parameters = dict(self.parameters or {})
        self.parameters_by = dict(self.parameters_by or {})
        self.grid = dict(self.grid or {})
        self.exclude = list(self.exclude or [])
        self.depends_on = dict(self.depends_on or {})
        self.table = dict(self.table or {})
        self.executor = dict(self.executor or {})
        self._validate()

    @classmethod
    def from_file(cls, path: str | Path) -> "Sweep":
        """Read a YAML grid file; its relative paths start at the file's folder."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"grid file {path} does not exist")
        try:
            spec = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            from ..training.config import yaml_syntax_error

            raise yaml_syntax_error(path, err) from None
        if not isinstance(spec, dict):
            raise ValueError(f"{path} must hold a mapping (notebook, output_dir, parameters, grid, ...)")
        unknown = sorted(set(spec) - set(FILE_KEYS))
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; known: {list(FILE_KEYS)}")
        for key in ("notebook", "output_dir"):
            if key not in spec:
                raise ValueError(f"{path} needs a {key!r} entry")
        return cls(**spec, base_dir=path.parent)

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
        for key, by_value in self.parameters_by.items():
            if key not in self.grid or not isinstance(by_value, dict):
                raise ValueError(f"parameters_by[{key!r}] must be a grid key ({list(self.grid)}) mapped to "
                                 f"{{value: {{parameter: value}}}}, got {by_value!r}")
            for value, params in by_value.items():
                if value not in self.grid[key]:
                    raise ValueError(f"parameters_by[{key!r}] names {value!r}, which is not among grid[{key!r}] "
                                     f"{self.grid[key]}")
                if not isinstance(params, dict) or not params:
                    raise ValueError(f"parameters_by[{key!r}][{value!r}] must be a non-empty mapping of "
                                     f"parameters to values, got {params!r}")
                clash = sorted(set(params) & set(self.grid))
                if clash:
                    raise ValueError(f"parameters_by[{key!r}][{value!r}] sets grid keys {clash}; a cell's grid "
                                     "values cannot be overridden")
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
        by_names = {n for by_value in self.parameters_by.values() for p in by_value.values() for n in p}
        reserved = sorted(set(INJECTED) & (set(self.parameters) | by_names | set(self.grid) | set(self.depends_on)))
        if reserved:
            raise ValueError(f"{reserved} are set by the sweep for each run; remove them from the grid file")
        if self.depends_on and DEPENDS_ON in set(self.parameters) | by_names | set(self.grid):
            raise ValueError(f"{DEPENDS_ON!r} names the runs a run depends on in its record; rename that parameter "
                             "of the notebook")
        if self.estimate_minutes_per_run is not None and not self.estimate_minutes_per_run > 0:
            raise ValueError(f"estimate_minutes_per_run must be > 0, got {self.estimate_minutes_per_run}")
        ExecutorSpec.of(self.executor)  # a bad executor section fails here, not after the first runs
        declared = self._declared = self.declared_parameters()
        if "result_path" not in declared:
            raise ValueError(f"{self.notebook.name} must declare result_path in its parameters cell and write "
                             "its metrics there as JSON")
        unknown = sorted((set(self.parameters) | by_names | set(self.grid) | set(self.depends_on)) - declared)
        if unknown:
            raise ValueError(f"{unknown} are not parameters of {self.notebook.name}; it declares {sorted(declared)}")
        self._cells = self._expand()
        self._deps = self._dependencies()

    def declared_parameters(self) -> set[str]:
        """Names assigned in the notebook's ``parameters`` cell."""
        return set(self.notebook_defaults())

    def notebook_defaults(self) -> dict[str, str]:
        """``{name: default value as written}`` of the notebook's ``parameters`` cell."""
        try:
            import papermill
        except ImportError as err:
            raise RuntimeError("sweeps execute notebooks with papermill: pip install 'abalone-core[book]'") from err
        return {name: p["default"] for name, p in papermill.inspect_notebook(str(self.notebook)).items()}

    def _expand(self) -> dict[str, dict]:
        cells = {}
        for cell in expand(self.grid, self.exclude):
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
        """``(run id, parameters)`` of every cell in grid order, the parameters that are recorded
        and compared with earlier runs (:meth:`recorded_parameters`)."""
        return [(rid, self.recorded_parameters(rid)) for rid in self._cells]

    def recorded_parameters(self, rid: str) -> dict:
        """The parameters of run ``rid`` as recorded: fixed values, those of ``parameters_by``
        that match the cell, and the cell, as written in the grid file (:meth:`cell_parameters`);
        and for a run that depends on others, ``depends_on``: ``{parameter: {"run_id": id,
        "parameters": digest}}``, each run it starts from with a :func:`digest` of that run's own
        recorded parameters. A dependent run is thus ``changed`` whenever a run it starts from
        is (and so on down a chain); the other runs record their cell parameters alone."""
        params = self.cell_parameters(rid)
        needs = self.needs(rid)
        if needs:
            params[DEPENDS_ON] = {param: {"run_id": target, "parameters": digest(self.recorded_parameters(target))}
                                  for param, target in sorted(needs.items())}
        return params

    def cell_parameters(self, rid: str) -> dict:
        """The parameters of run ``rid`` as written in the grid file (see :func:`cell_parameters`)."""
        return cell_parameters(self.parameters, self.parameters_by, self._cells[rid])

    def paths(self, rid: str) -> dict[str, Path]:
        """Where a run's files go: ``notebook`` (executed), ``result`` (metrics JSON), ``run_dir``."""
        return {"notebook": self.output_dir / "notebooks" / f"{rid}.ipynb",
                "result": self.output_dir / "results" / f"{rid}.json",
                "run_dir": self.output_dir / "runs" / rid}

    def needs(self, rid: str) -> dict[str, str]:
        """``{parameter: run id}`` of the runs ``rid`` depends on."""
        return dict(self._deps.get(rid, {}))

    def notebook_parameters(self, rid: str, device: str | None = None) -> dict:
        """What the notebook of run ``rid`` receives: its parameters (data paths made absolute),
        ``result_path``, ``run_dir`` (if declared), ``device`` (if given) and the ``run_dir``
        of each run it depends on."""
        paths = self.paths(rid)
        params = resolve_data_paths(self.cell_parameters(rid), self.base_dir)
        params["result_path"] = str(paths["result"])
        if "run_dir" in self._declared:
            params["run_dir"] = str(paths["run_dir"])
        if device is not None:
            params["device"] = device
        for param, target in self.needs(rid).items():
            params[param] = str(self.paths(target)["run_dir"])
        return params

    def _state(self, params: dict, row: dict | None) -> str:
        if row is None:
            return "pending"
        if row["status"] == "done" and json.loads(row["parameters"]) != json.loads(json.dumps(params, sort_keys=True)):
            return "changed"
        return row["status"]

    def status(self, exported: bool = False) -> "pd.DataFrame":
        """One row per run (index ``run_id``): grid values, ``status`` (pending / running / done /
        failed / changed: done with other parameters), ``started``, ``duration_s``, ``device``,
        ``attempts`` and the first line of ``error``. A ``running`` row whose process is gone
        reads as failed. Reads the store only; with ``exported``, the runs that a run of the
        sweep would take as done from ``export`` (:func:`abalone_core.sweep.runner.exported_done`:
        a fresh clone) read as done too, with their recorded duration."""
        import pandas as pd

        if exported:
            st = self.status()
            for rid, row in exported_done(self).items():
                st.loc[rid, ["status", "started", "duration_s", "attempts"]] = [
                    "done", row.get("started"), row.get("duration_s"), row.get("attempts", 1)]
            return st

        rows = as_seen(read_rows(self.db))
        out = []
        for rid, params in self.runs():
            row = rows.get(rid) or {}
            out.append({"run_id": rid, **self._cells[rid], "status": self._state(params, rows.get(rid)),
                        "started": row.get("started"), "duration_s": row.get("duration_s"),
                        "device": row.get("device"), "attempts": row.get("attempts", 0),
                        "error": (row.get("error") or "").split("\n")[0] or None})
        columns = ["run_id", *self.grid, "status", "started", "duration_s", "device", "attempts", "error"]
        return pd.DataFrame(out, columns=columns).set_index("run_id")

    def estimate(self, workers: int = 1, retry_failed: bool = False, exported: bool = False) -> dict:
        """Size of the grid and time left.

        Returns:
            dict with ``runs`` (cells), counts per status (``done``, ``failed``, ``pending``,
            ``running``, ``changed``), ``to_run``, ``minutes_per_run`` (mean of finished runs
            when known, else ``estimate_minutes_per_run``, else None), ``source`` of that
            figure, ``minutes`` (to_run x minutes_per_run) and ``wall_minutes`` (/ workers).
            ``exported``: count the runs of ``export`` that a run would take as done (:meth:`status`).
        """
        st = self.status(exported)
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

    # ------------------------------------------------------------------ elsewhere
    def run(self, workers: int | None = None, devices=None, retry_failed: bool = False, progress: bool = True,
            executor=None, rerun_changed: bool = False, any_precision: bool = False) -> "pd.DataFrame":
        """Execute every pending run: see :func:`abalone_core.sweep.runner.run_sweep`."""
        return run_sweep(self, workers=workers, devices=devices, retry_failed=retry_failed, progress=progress,
                         executor=executor, rerun_changed=rerun_changed, any_precision=any_precision)

    def import_export(self) -> list[str]:
        """Take the finished runs of ``export`` as done: see :func:`abalone_core.sweep.runner.import_export`."""
        return import_export(self)

    def check(self) -> dict[str, str | None]:
        """Each run's configuration checked without running it: see :func:`abalone_core.sweep.check.check_runs`."""
        return check_runs(self)

    def aggregate(self, **kwargs) -> "pd.DataFrame":
        """:func:`~abalone_core.sweep.aggregate` of this sweep's finished runs, with the grid
        file's ``table`` defaults."""
        return aggregate(self, **{**self.table, **kwargs})


__all__ = ["Sweep", "run_id", "cell_parameters", "resolve_data_paths", "digest", "STATUSES", "FILE_KEYS", "INJECTED"]
