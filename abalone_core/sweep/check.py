"""Checking every run of a grid before running it (``abalone sweep GRID --dry-run``).

For a notebook that builds its configuration with :func:`abalone_core.report.rows.row_config` (as
``notebooks/run.ipynb`` does), each run's :class:`~abalone_core.training.config.Config` is built the
way the notebook builds it: its ``row_config(...)`` call is read from the notebook and
evaluated with the run's parameters (the notebook's defaults, the grid's values and what the
sweep injects), so a bad value or an unknown key in ``overrides`` is reported per run. The
dataset is checked too: a registered loader, arguments it takes, and data files that exist
(relative paths start at the grid file's folder). Nothing is trained, loaded or written.
"""
from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .grid import Sweep


def config_call(notebook: Path) -> ast.Call | None:
    """The first ``row_config(...)`` call in the notebook's code cells, or None."""
    nb = json.loads(Path(notebook).read_text())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if "row_config(" not in source:
            continue
        code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name == "row_config":
                    return node
    return None


def _defaults(sweep: "Sweep") -> dict:
    """The notebook's parameter defaults that are literals (others are left out)."""
    out = {}
    for name, text in sweep.notebook_defaults().items():
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            pass
    return out


def _reason(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def check_dataset(config) -> str | None:
    """Why the dataset of ``config`` cannot load (unknown loader, an argument it does not
    take, a missing data file), or None."""
    from ..data import DATASETS

    fn = DATASETS.get(str(config.dataset).lower())
    if fn is None:
        return f"unknown dataset {config.dataset!r}; registered: {sorted(DATASETS)}"
    kwargs = dict(config.dataset_kwargs or {})
    params = inspect.signature(fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            return (f"dataset {config.dataset!r} takes no argument(s) {unknown}; "
                    f"its arguments are {sorted(set(params) - {'data_dir'})}")
    path = kwargs.get("path")
    for file in (path.values() if isinstance(path, dict) else [path] if path else []):
        if not Path(str(file)).expanduser().is_file():
            return f"dataset_kwargs path {file} does not exist"
    return None


def run_config(sweep: "Sweep", rid: str):
    """The :class:`~abalone_core.training.config.Config` that run ``rid``'s notebook will build: its
    ``row_config(...)`` call evaluated with the run's parameters. Raises what the notebook
    would raise (ValueError for a bad value or key); LookupError when the notebook has no
    such call."""
    from ..report.rows import row_config

    call = config_call(sweep.notebook)
    if call is None:
        raise LookupError(f"{sweep.notebook.name} does not build its configuration with row_config(...)")
    namespace = {**_defaults(sweep), **sweep.notebook_parameters(rid), "row_config": row_config}
    try:
        return eval(compile(ast.Expression(call), str(sweep.notebook), "eval"), {}, namespace)
    except NameError as err:
        raise LookupError(f"cannot check: the notebook's row_config(...) call uses a value that is not a "
                          f"parameter ({err})") from None


def check_runs(sweep: "Sweep") -> dict[str, str | None]:
    """``{run id: None when its configuration is valid, else why not}`` for every run.

    Runs of a notebook without a ``row_config(...)`` call map to None: only their parameter
    names are checked (when the grid is read)."""
    if config_call(sweep.notebook) is None:
        return {rid: None for rid, _ in sweep.runs()}
    out = {}
    for rid, _ in sweep.runs():
        try:
            config = run_config(sweep, rid)
        except LookupError as err:
            out[rid] = str(err)
            continue
        except Exception as err:  # noqa: BLE001 - the reason is what the dry run prints
            out[rid] = _reason(err)
            continue
        out[rid] = check_dataset(config)
    return out


__all__ = ["check_runs", "run_config", "check_dataset", "config_call"]
