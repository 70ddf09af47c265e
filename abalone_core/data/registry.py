"""The registry: dataset name -> loader, and the data folder.

* :func:`register_dataset` adds a loader ``fn(**kwargs) -> MultiLabelDataset``.
* :func:`load_dataset` is the one entry point: it checks the arguments against the
  loader's signature, hands it the data folder and turns a label-coverage error into
  advice that names the loader's own arguments.
* :func:`data_dir` is the folder for downloads and caches.
"""
from __future__ import annotations

import difflib
import inspect
import os
import pathlib
from typing import Callable

from .dataset import LabelCoverageError, MultiLabelDataset

DATASETS: dict = {}


class ArgumentError(TypeError, ValueError):
    """A loader was given an argument it does not take, or not one it needs (``dataset_kwargs``)."""


def register_dataset(name: str, fn: Callable | None = None):
    """Register ``fn(**kwargs) -> MultiLabelDataset`` under ``name`` (usable as a decorator).

    A loader that accepts a ``data_dir`` argument receives the resolved data folder.
    """
    def deco(f):
        DATASETS[name.lower()] = f
        return f
    return deco(fn) if fn is not None else deco


def data_dir(path=None) -> pathlib.Path:
    """Folder for downloaded and cached data: ``path``, else $ABALONE_DATA_DIR, else ~/.cache/abalone."""
    if path is None:
        path = os.environ.get("ABALONE_DATA_DIR") or pathlib.Path.home() / ".cache" / "abalone"
    return pathlib.Path(path).expanduser()


def load_dataset(dataset: str, /, *, data_dir: str | os.PathLike | None = None, **kwargs) -> MultiLabelDataset:
    """Load a registered dataset; extra keyword arguments go to its loader.

    ``dataset`` is positional-only, so a loader argument called ``name`` (the name
    the csv / jsonl / hub loaders give the result) passes through.
    """
    fn = DATASETS.get(str(dataset).lower())
    if fn is None:
        raise ValueError(f"unknown dataset {dataset!r}; registered: {sorted(DATASETS)} "
                         "(add your own with register_dataset(name, fn))")
    params = inspect.signature(fn).parameters
    takes = sorted(set(params) - {"data_dir"})
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            close = {k: difflib.get_close_matches(str(k), takes, n=1) for k in unknown}
            hint = ", ".join(f"{c[0]!r} for {k!r}" for k, c in close.items() if c)
            hint = f"; did you mean {hint}?" if hint else ""
            raise ArgumentError(f"dataset {dataset!r} takes no argument(s) {unknown} (dataset_kwargs{hint}); "
                                f"its arguments are {takes}")
    required = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n != "data_dir"
                and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    missing = [n for n in required if n not in kwargs]
    if missing:
        raise ArgumentError(f"dataset {dataset!r} needs the argument(s) {missing}: give them in dataset_kwargs, "
                            f"e.g. --set dataset_kwargs.{missing[0]}=...")
    if "data_dir" in params:
        kwargs["data_dir"] = _resolve(data_dir)
    try:
        ds = fn(**kwargs)
    except LabelCoverageError as err:
        if err.advice is not None:
            raise
        raise LabelCoverageError(err.missing, _coverage_advice(dataset, params, kwargs)) from None
    if not isinstance(ds, MultiLabelDataset):
        raise TypeError(f"loader for {dataset!r} returned {type(ds).__name__}, expected MultiLabelDataset")
    return ds


_resolve = data_dir  # load_dataset's ``data_dir`` argument shadows the function


def _coverage_advice(dataset, params, kwargs) -> str:
    """What to pass to this loader so that every label occurs in training."""
    options = []
    if "min_train_count" in params:
        options.append("min_train_count=1 (drops them)")
    if "resplit" in params and not kwargs.get("resplit"):
        options.append("resplit=True (re-splits all rows with iterative stratification)")
    if "split_column" in params and kwargs.get("split_column") is not None:
        options.append("split_column=None (re-splits all rows with iterative stratification, split_sizes=...)")
    if not options:
        return (f"The loader of {dataset!r} has no argument that drops labels or re-splits; "
                "fix the split of the source data.")
    return f"Pass load_dataset({dataset!r}, ...) " + " or ".join(options) + "."
