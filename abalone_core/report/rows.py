"""What a row of the comparison tables is: its name, and the configuration that trains it.

A row is a Config objective (``msc``, ``bce``, ``frozen``, ``tfidf-linear``, ...) or a
fine-tuning row ``<contrastive>-ft`` (``msc-ft``: a supervised loss, BCE by default, trained
from the encoder of a finished contrastive run, ``init_from``). Rows that train a classifier
(the supervised losses and the ``-ft`` rows) take their own settings on top of the shared
ones (``supervised_overrides``; e.g. their head learning-rate grid), since the contrastive
rows' classifier is the linear probe with its own grid.

Used by ``notebooks/run.ipynb`` (every sweep), ``scripts/gpu_grid.py`` and the chapters;
:func:`result_row` reads the row back from a finished run's record.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..training.config import Config, ConfigError
from ..method.objectives import TABLE, names, row_kind
from ..training.run_folder import CONFIG, METRICS


def is_finetune(row: str) -> bool:
    """``msc-ft``, ``base-ft``...: fine-tuning a contrastive encoder with a supervised loss."""
    return row.endswith("-ft") and row[:-3] in TABLE and row_kind(row) == "fine-tuning"


def row_loss(row: str, finetune_loss: str = "bce") -> str:
    """The Config objective that trains ``row``."""
    if is_finetune(row):
        return finetune_loss
    if row not in TABLE:
        raise ValueError(f"unknown row {row!r}: use an objective ({', '.join(TABLE)}) "
                         "or '<contrastive>-ft' (e.g. msc-ft)")
    return row


class ParameterError(ConfigError):
    """Wrong values for a row's configuration (a notebook's parameters), said in one line: the
    line papermill shows under the traceback of a notebook that stopped on it."""

    def __str__(self) -> str:
        return "; ".join(self.problems)


def _as_text_hint(name: str, value) -> str:
    """Advice for a mapping or list that arrived as text (papermill's ``-p`` passes text)."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        return (f" ({name} arrived as text: with papermill give mappings and lists with -y, e.g. "
                f"-y {name} {value.strip()!r}, not -p)")
    return ""


def row_config(row: str, *, init_from: str | None = None, finetune_loss: str = "bce", overrides: dict | None = None,
               supervised_overrides: dict | None = None, train_layers=None, **values) -> Config:
    """The validated configuration of one row; wrong values raise :class:`ParameterError`
    (a :class:`~abalone_core.training.config.ConfigError` in one line naming each value and what it must be).

    Args:
        row: an objective or ``<contrastive>-ft``.
        init_from: for ``-ft`` rows (required), the contrastive run folder they start from.
        finetune_loss: the supervised loss of ``-ft`` rows.
        overrides: Config values for every row, applied after ``values``.
        supervised_overrides: Config values for the rows that train a classifier, applied last.
        train_layers: the top transformer layers trained, as a grid names them: an integer
            k, ``"all"`` (the whole encoder), or None (whatever ``overrides`` or the default say).
        values: Config values (dataset, seed, max_steps, output_dir, ...).
    """
    if is_finetune(row) and finetune_loss not in names("classifier"):
        raise ValueError(f"finetune_loss must be one of {names('classifier')}, got {finetune_loss!r}")
    loss = row_loss(row, finetune_loss)
    if is_finetune(row) and not init_from:
        raise ValueError(f"row {row!r} fine-tunes a contrastive run: set init_from to its run folder")
    if init_from and not is_finetune(row):
        raise ValueError(f"init_from is for '<contrastive>-ft' rows, not {row!r}")
    for name, value in (("overrides", overrides), ("supervised_overrides", supervised_overrides)):
        if value is not None and not isinstance(value, dict):
            raise ParameterError([f"{name} must be a mapping of Config settings, got {value!r}"
                                  + _as_text_hint(name, value)])
    d = {**values, "objective": loss, "init_from": init_from, **(overrides or {})}
    if train_layers is not None:
        if train_layers != "all" and not (isinstance(train_layers, int) and not isinstance(train_layers, bool)
                                          and train_layers >= 0):
            raise ParameterError([f"train_layers must be an integer >= 0, 'all' (the whole encoder) or None, "
                                  f"got {train_layers!r}"])
        d["train_layers"] = None if train_layers == "all" else train_layers
    if TABLE[loss].kind == "classifier":
        d.update(supervised_overrides or {})
    try:
        return Config.from_dict(d)
    except ConfigError as err:
        problems = [p + _as_text_hint(p.split(" ", 1)[0], d.get(p.split(" ", 1)[0])) for p in err.problems]
        raise ParameterError(problems, err.source) from None


def _source_objective(init_from) -> str | None:
    """The objective of the contrastive run a fine-tuning started from: read from that run's
    ``config.yaml`` or ``metrics.json``; None when the folder is not there any more."""
    folder = Path(str(init_from))
    for name in (METRICS, CONFIG):
        path = folder / name
        try:
            if name.endswith(".json"):
                record = json.loads(path.read_text())
                saved = {"objective": record.get("objective"), **(record.get("config") or {})}
            else:
                import yaml

                saved = yaml.safe_load(path.read_text()) or {}
        except (OSError, ValueError, AttributeError):
            continue
        objective = saved.get("objective") if isinstance(saved, dict) else None
        if objective:
            return objective
    return None


def result_row(m: dict) -> str:
    """The row of the comparison tables a result (a ``metrics.json`` or a sweep's record) belongs to.

    A record that names its row (the sweep notebook writes ``objective: msc-ft`` with
    ``loss: bce``) keeps it. A run's own ``metrics.json`` names its loss: a supervised loss
    trained from a contrastive encoder (``config.init_from``) is the row ``<contrastive>-ft``,
    the contrastive objective read from that run's files (``?-ft`` when they are gone).
    """
    objective = m["objective"]
    cfg = m.get("config") or {}
    if objective in names("classifier") and cfg.get("init_from") and "loss" not in m:
        source = _source_objective(cfg["init_from"])
        if source is None and Path(str(cfg["init_from"])).name in names("contrastive"):  # the book's runs/<objective>
            source = Path(str(cfg["init_from"])).name
        return f"{source if source in names('contrastive') else '?'}-ft"
    return objective


__all__ = ["ParameterError", "is_finetune", "row_loss", "row_config", "result_row"]
