"""Helpers the book's notebooks call: figure display, Colab detection, profiles and run folders.

A chapter that trains starts with::

    from abalone_core import notebook as nb
    chapter = nb.chapter(profile, runs_dir, dataset=dataset, seed=seed, ...)  # calls setup()
    metrics = chapter.run("msc")          # trains once; later chapters reuse metrics.json

and one that only reads data or results with ``env = nb.setup()``. Importing this module
changes nothing in the process: :func:`setup` registers the plotly renderer, sets the
display options and quietens warnings and logs, for the kernel that calls it.

Profiles (:data:`PROFILES`) are the budgets shared by all chapters: ``cpu`` runs the
whole book in minutes on a laptop, ``gpu`` is the paper-like setting. The paper's figures
and row names come from :mod:`abalone_core.report.paper` (:func:`paper_table`, :func:`row_name`).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .report import paper
from .training.config import Config, read_settings
from .method.objectives import TABLE
from .report.rows import result_row
from .training.timing import device_timing

logger = logging.getLogger(__name__)

RENDERER = "abalone_html"

# Config overrides per profile; the "supervised" entry applies on top for bce / focal /
# asymmetric runs (baselines and fine-tuning). The cpu profile is a demonstration budget
# (numbers far from the paper's): lr_head is raised so that the freshly initialised
# projection head and prototypes move within a few dozen steps, and the classifier layer of
# supervised runs gets a higher one still (at 1e-3 it predicts no label at all after 30
# steps). The gpu profile follows Appendix A of the paper
# (batch 32, cosine schedule for contrastive runs, linear for supervised ones) on the full
# data, with fewer epochs than the paper's 80.
PROFILES: dict[str, dict] = {
    "cpu": {
        "dataset": "disaster",
        "backbone": "minilm",
        "subset": {"train": 600, "validation": 200, "test": 400},
        "max_length": 64,
        "batch_size": 32,
        "max_steps": 30,
        "eval_every": 10,
        "save_every": 30,
        "lr_head": 1e-3,
        "queue_size": 128,
        "probe": {"epochs": 20, "heads": 1, "lrs": (1.0, 0.1), "weight_decays": (0.01, 1e-4)},
        "supervised": {"lr_head": 3e-2},
    },
    "gpu": {
        "dataset": "disaster",
        "backbone": "roberta-base",
        "subset": None,
        "max_length": 128,
        "batch_size": 32,
        "epochs": 20,
        "eval_every": 0,
        "save_every": 0,
        "probe": {},
    },
}


# --------------------------------------------------------------------------- the paper's rows
def row_name(row: str) -> str:
    """The paper's name of a row (:data:`abalone_core.report.paper.NAMES`): ``msc`` -> ``L_MSC``,
    ``frozen`` -> ``L_MLM``; a fine-tuning row ``<contrastive>-ft`` the paper does not name
    gets ``<name of the contrastive row>-FT``; other rows keep their objective."""
    if row in paper.NAMES:
        return paper.NAMES[row]
    if row.endswith("-ft"):
        return f"{row_name(row[:-3])}-FT"
    return row


def row_order(rows) -> list:
    """``rows`` sorted in the paper's order (that of :data:`abalone_core.report.paper.NAMES`), others last."""
    rank = {r: i for i, r in enumerate(paper.NAMES)}
    return sorted(rows, key=lambda r: (rank.get(r, len(rank)), str(r)))


# The paper's tables as frames: which rows, which datasets and metrics (abalone_core.report.paper holds the values).
_PAPER_TABLES = {
    "linear": (lambda: {"AAPD": paper.TABLE2["aapd"], "RCV1": paper.TABLE2["rcv1"]},
               {"AAPD": paper.METRICS, "RCV1": paper.METRICS}, ("frozen", "base", "bqueue", "bqproto", "msc")),
    "supervised": (lambda: {"AAPD": paper.TABLE3["aapd"]}, {"AAPD": paper.METRICS[:2]},
                   ("bce", "focal", "asymmetric", "msc-ft")),
    "clustering": (lambda: {"RCV1": paper.TABLE4}, {"RCV1": ("silhouette", "davies_bouldin")},
                   ("frozen", "bce", "base", "msc", "msc-ft")),
}


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables as a frame, from :mod:`abalone_core.report.paper`.

    Args:
        name: ``linear`` (Table 2, linear evaluation on AAPD and RCV1), ``supervised`` (Table 3,
            supervised losses and fine-tuning on AAPD) or ``clustering`` (Table 4, RCV1).
    Returns:
        One row per objective: ``objective``, ``loss`` (:func:`row_name`) and ``<DATASET> <metric>``
        columns (F1 in percent, Hamming loss x 10^3).
    """
    if name not in _PAPER_TABLES:
        raise ValueError(f"unknown paper table {name!r}; choose one of {sorted(_PAPER_TABLES)}")
    tables, columns, objectives = _PAPER_TABLES[name]
    tables = tables()
    out = []
    for objective in objectives:
        row = {"objective": objective, "loss": row_name(objective)}
        for label, table in tables.items():
            row.update({f"{label} {m}": v for m, v in zip(columns[label], table[objective])})
        out.append(row)
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- environment
def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def _figure_html(fig_dict: dict) -> str:
    """A plotly figure as an HTML fragment that expects ``window.Plotly`` on the page."""
    import plotly.io as pio

    height = (fig_dict.get("layout") or {}).get("height") or 480
    # auto_play=False: a figure with frames (a slider) opens on its chosen step instead of playing them all
    return pio.to_html(fig_dict, include_plotlyjs=False, full_html=False, config={"responsive": True},
                       default_width="100%", default_height=f"{int(height)}px", validate=False, auto_play=False)


def register_renderer() -> str:
    """Register the book's plotly renderer under :data:`RENDERER` and return its name.

    It emits two representations of each figure: the plotly JSON (rendered natively
    by JupyterLab, VS Code, classic Jupyter) and an HTML fragment without plotly.js,
    which the built book shows with the single ``_static/plotly.min.js`` it serves.
    Plotly's own headless default emits the JSON only, which Jupyter Book drops.
    """
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    class BookRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            return {"application/vnd.plotly.v1+json": fig_dict, "text/html": _figure_html(fig_dict)}

    pio.renderers[RENDERER] = BookRenderer()
    return RENDERER


def setup(quiet: bool = True) -> dict:
    """Prepare a chapter's kernel: plotly renderer, pandas display, quieter libraries.

    In Colab figures use plotly's ``colab`` renderer; elsewhere the renderer of
    :func:`register_renderer`.

    Returns:
        dict with ``colab`` (bool) and ``renderer`` (name of the plotly renderer).
    """
    import plotly.io as pio

    colab = in_colab()
    pio.renderers.default = "colab" if colab else register_renderer()
    pd.set_option("display.precision", 2)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if quiet:
        for name in ("transformers", "abalone_core", "umap", "numba"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        # tqdm.auto warns when ipywidgets is missing; the chapters pass progress=False anyway.
        warnings.filterwarnings("ignore", message="IProgress not found")
        try:
            import transformers

            transformers.logging.set_verbosity_error()
            transformers.logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - transformers is a core dependency
            pass
    return {"colab": colab, "renderer": pio.renderers.default}


# --------------------------------------------------------------------------- profiles and runs
def profile_overrides(profile: str) -> dict:
    """A copy of the Config overrides of ``profile`` (``cpu`` or ``gpu``)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return json.loads(json.dumps(PROFILES[profile]))


def _runs_folder(path, profile: str) -> Path:
    if path:
        return Path(path)
    profile_overrides(profile)  # validates the name
    return (repo_root() or Path(".")) / "runs" / f"book-{profile}"


def repo_root(start=None) -> Path | None:
    """The checkout holding the book (a folder with ``_toc.yml`` and ``notebooks/``), searched
    from ``start`` (default: the working directory) upwards; None outside a checkout (Colab)."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").is_file() and (d / "notebooks").is_dir():
            return d
    return None


def runs_dir(path=None, profile: str = "cpu") -> Path:
    """Folder holding a profile's run directories.

    ``path`` if given, else ``runs/book-<profile>`` under the checkout (so a chapter
    opened from ``notebooks/`` finds the runs of the build), else under the working directory.
    """
    return _runs_folder(path, profile)


REPOSITORY = "https://github.com/abalone-book/abalone-book"  # where Colab fetches the committed results


def results_dir(path=None, repository: str = REPOSITORY) -> Path:
    """Folder of committed result files: ``path`` if given, else ``results/`` of the checkout,
    else (Colab, a pip-installed package) ``results/`` of a shallow clone of ``repository``
    made once under the data cache; a clone that fails is reported and ``./results`` is used."""
    if path:
        return Path(path)
    root = repo_root()
    if root is not None:
        return root / "results"
    if Path("results").is_dir():
        return Path("results")
    from .data import data_dir

    clone = data_dir() / "book-repository"
    if not (clone / "results").is_dir():
        import subprocess

        try:
            subprocess.run(["git", "clone", "--quiet", "--depth", "1", repository, str(clone)], check=True,
                           capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as err:
            detail = getattr(err, "stderr", "") or str(err)
            logger.warning("could not fetch the committed results from %s (%s); looking in ./results",
                           repository, detail.strip().splitlines()[-1] if detail.strip() else err)
            return Path("results")
    return clone / "results"


def grid_settings(name: str = "cpu_converged", results=None, dataset: str | None = None) -> dict:
    """The settings the runs of the committed grid ``sweeps/<name>.yaml`` share, flat: its
    ``parameters`` (with those its ``parameters_by`` gives ``dataset``, when named) and
    ``overrides`` merged in (``train_layers``, ``max_steps``, ...), and ``supervised_overrides``
    under its own key (used by chapters 4 to 8 to state the grid's budget from the grid file
    instead of repeating it).

    Args:
        name: the grid file's name without ``.yaml``.
        results: the committed results folder (default :func:`results_dir`); the grid file is
            read from ``sweeps/`` beside it.
        dataset: a dataset of the grid, for its own settings (``parameters_by: {dataset: ...}``).
    """
    import yaml

    from .sweep.grid import cell_parameters

    path = results_dir(results).parent / "sweeps" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: give the name of a grid file in sweeps/")
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    by = spec.get("parameters_by") or {}
    if dataset is not None and dataset not in (spec.get("grid") or {}).get("dataset", []):
        raise ValueError(f"{path} has no dataset {dataset!r} in its grid")
    params = cell_parameters(dict(spec.get("parameters") or {}), by, {} if dataset is None else {"dataset": dataset})
    params.pop("dataset", None)
    flat = {k: v for k, v in params.items() if k != "overrides"}
    flat.update(params.get("overrides") or {})
    flat.setdefault("supervised_overrides", {})
    return flat


def config_for(profile: str, objective: str, runs_dir=None, name: str | None = None, **overrides) -> Config:
    """The configuration of one book run.

    Args:
        profile: ``cpu`` or ``gpu`` (see :data:`PROFILES`).
        objective: a :class:`~abalone_core.training.config.Config` objective (``msc``, ``bce``, ``frozen``...);
            supervised objectives also get the profile's ``supervised`` overrides.
        runs_dir: parent folder; the run directory is ``runs_dir / name``.
        name: run directory name, default the objective (e.g. ``msc-ft`` for fine-tuning).
        **overrides: further Config values; ``None`` values are ignored, so notebook
            parameters left at None keep the profile's choice.
    """
    values = profile_overrides(profile)
    supervised = values.pop("supervised", {})
    if objective in TABLE and TABLE[objective].kind == "classifier":
        values.update(supervised)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["objective"] = objective
    values["output_dir"] = str(Path(runs_dir if runs_dir is not None else ".") / (name or objective))
    if values.get("max_steps") is not None and values.get("save_every"):
        values["save_every"] = min(values["save_every"], values["max_steps"])
    return Config.from_dict(values)


@dataclass
class Chapter:
    """What a chapter that trains shares with the others: its profile, the run folder and the
    settings of its parameters cell (:func:`chapter` builds it)."""

    profile: str
    root: Path
    settings: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    def config(self, objective: str, name: str | None = None, **extra) -> Config:
        """The configuration of one run of this chapter (:func:`config_for` with its settings;
        ``extra`` adds or replaces settings, e.g. ``init_from``)."""
        return config_for(self.profile, objective, runs_dir=self.root, name=name, **{**self.settings, **extra})

    def run(self, objective: str, name: str | None = None, **extra) -> dict:
        """Metrics of one run, trained once (:func:`run_or_load`)."""
        return run_or_load(self.config(objective, name=name, **extra))

    def run_dir(self, name: str) -> Path:
        """Folder of the run ``name`` (an objective, or e.g. ``msc-ft``)."""
        return self.root / name


def chapter(profile: str = "cpu", runs_dir=None, **settings) -> Chapter:
    """The preamble of a chapter that trains: :func:`setup`, the profile's run folder
    (:func:`runs_dir`) and the parameters every run of the chapter shares.

    Args:
        profile: ``cpu`` or ``gpu`` (see :data:`PROFILES`).
        runs_dir: the notebook's ``runs_dir`` parameter (None: ``runs/book-<profile>``).
        **settings: Config values of the parameters cell (``dataset``, ``backbone``, ``max_steps``,
            ``seed``, ``device``...); None keeps the profile's value.
    """
    profile_overrides(profile)  # validates the name before anything else
    root = _runs_folder(runs_dir, profile)
    return Chapter(profile=profile, root=root, settings=dict(settings), env=setup())


def saved_config(run_dir) -> dict | None:
    """The configuration stored in a run directory's metrics.json (None if not finished)."""
    from .training.run_folder import METRICS, read_metrics

    if not (Path(run_dir) / METRICS).exists():
        return None
    return read_metrics(run_dir).get("config")


def run_or_load(config: Config, progress: bool = False) -> dict:
    """Metrics of a run: read from ``metrics.json`` when that run already finished with the
    same configuration, else trained (resumed if a checkpoint of the same configuration
    exists, restarted if the folder holds another configuration).

    "The same configuration" follows :meth:`Config.differences
    <abalone_core.training.config.Config.differences>`, the rule by which :func:`abalone_core.training.runs.run`
    resumes a run folder: the run folder and the device do not count, every other field does.

    Returns:
        the metrics dict of :func:`abalone_core.training.runs.run`.
    """
    from .training.runs import run

    out = Path(config.output_dir)
    saved = saved_config(out)
    if saved is not None and not config.differences(saved):
        from .training.run_folder import read_metrics

        return read_metrics(out)
    restart = False
    if (out / "config.yaml").exists():
        try:
            differ = config.differences(read_settings(out / "config.yaml"))
        except (ValueError, OSError):  # a damaged config.yaml: runs.run names it and the way out
            differ = {}
        restart = bool(differ)
        if restart:
            logger.warning("%s holds a run with another configuration (%s); starting over", out, sorted(differ))
    return run(config, resume=not restart, progress=progress)


def history(run_dir) -> pd.DataFrame:
    """A run's ``history.jsonl`` as a frame (one row per evaluation: step, train_loss, ...)."""
    from .training.run_folder import HISTORY, read_history

    path = Path(run_dir) / HISTORY
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train the run first (run_or_load)")
    return pd.DataFrame(read_history(path))


def checkpoints(run_dir) -> pd.DataFrame:
    """Files saved in a run directory with their size in MB: its run files and config.yaml
    (:meth:`~abalone_core.training.run_folder.RunFolder.files`); the folder's lock and writes in
    progress are not run files and are left out."""
    from .training.run_folder import CONFIG, RunFolder

    folder = RunFolder(run_dir)
    files = [p for p in folder.files() if p.is_file()] + [p for p in [folder.file(CONFIG)] if p.is_file()]
    rows = [{"file": p.name, "MB": p.stat().st_size / 2 ** 20} for p in sorted(files)]
    return pd.DataFrame(rows, columns=["file", "MB"])


def scores_table(runs: dict, split: str = "test") -> pd.DataFrame:
    """One row per run: micro-F1, macro-F1 (percent), Hamming (x 10^3), head/medium/tail macro-F1.

    Args:
        runs: ``{run name: metrics dict}`` (from :func:`run_or_load` or metrics.json).
    """
    cols = ["micro_f1", "macro_f1", "hamming", "f1_head", "f1_medium", "f1_tail"]
    rows = []
    for name, m in runs.items():
        s = m[split]
        rows.append({"run": name, **{c: s.get(c, np.nan) for c in cols}})
    return pd.DataFrame(rows, columns=["run"] + cols).set_index("run")


# --------------------------------------------------------------------------- encoders of runs
def run_encoder(run_dir):
    """Rebuild the encoder of a finished run (see :func:`abalone_core.training.encoders.load_run_encoder`)."""
    from .training.encoders import load_run_encoder

    return load_run_encoder(run_dir)


def run_embeddings(run_dir, split: str = "test", batch_size: int = 64) -> dict:
    """Representations of one split with the encoder of a run
    (:func:`abalone_core.analysis.representations.run_embeddings`; imported on call, after :func:`setup`)."""
    from .analysis.representations import run_embeddings as embeddings

    return embeddings(run_dir, split, batch_size)


def shipped_encoders(grid: str = "encoder_depth", dataset: str = "disaster", results=None) -> dict:
    """The encoders of a grid shipped under ``results/<grid>/encoders/`` for one dataset
    (chapter 7; written by ``scripts/export_encoders.py``).

    Returns:
        ``{objective: path of the .pt file}``, empty when none is shipped.
    """
    found = {}
    for path in sorted((results_dir(results) / grid / "encoders").glob("*.pt")):
        meta = path.with_suffix(".json")
        record = json.loads(meta.read_text()) if meta.is_file() else {}
        if record.get("dataset") == dataset:
            found[record["objective"]] = path
    return found


def shipped_embeddings(files, split: str = "test", pretrained: str | None = "frozen", batch_size: int = 64) -> dict:
    """Representations of one split with shipped encoders and their pre-trained backbone
    (:func:`abalone_core.analysis.representations.shipped_embeddings`; imported on call)."""
    from .analysis.representations import shipped_embeddings as embeddings

    return embeddings(files, split, pretrained, batch_size)


# --------------------------------------------------------------------------- results
def _cpu_threads(n) -> str:
    """``CPU (1 thread)``, ``CPU (2 threads)``, ``CPU`` when the count is not recorded."""
    return "CPU" if n is None else f"CPU ({n} thread{'' if n == 1 else 's'})"


def _record(m: dict, source: str) -> dict:
    cfg = m.get("config") or {}
    test = m["test"]
    hw = m.get("hardware") or {}
    budget = cfg.get("max_steps") or (f"{cfg['epochs']} epochs" if "epochs" in cfg else None)
    if cfg.get("objective") in TABLE and not TABLE[cfg["objective"]].trains:  # a step budget means nothing there
        budget = None
    return {
        "objective": result_row(m),
        "dataset": m.get("dataset", cfg.get("dataset")),
        "backbone": cfg.get("backbone"),
        "micro_f1": test.get("micro_f1"),
        "macro_f1": test.get("macro_f1"),
        "hamming": test.get("hamming"),
        "f1_head": test.get("f1_head"),
        "f1_tail": test.get("f1_tail"),
        "train_docs": (m.get("n_documents") or {}).get("train"),
        "steps": m.get("steps"),
        "budget": budget,
        "seed": cfg.get("seed"),
        "train_minutes": (m.get("train_seconds") or 0.0) / 60,
        "hardware": hw.get("gpu") or _cpu_threads(hw.get("cpu_threads")) if hw else None,
        "source": source,
    }


def _run_folder(f: Path, m: dict) -> Path:
    """The run directory a result belongs to: a metrics.json's folder; for another record its
    ``config.output_dir`` (the sweep writes ``results/<run id>.json`` for the run in
    ``runs/<run id>``), else the file's folder."""
    from .training.run_folder import METRICS

    out = (m.get("config") or {}).get("output_dir")
    return Path(out).resolve() if out and f.name != METRICS else f.parent.resolve()


def collect_results(*roots) -> pd.DataFrame:
    """Every finished run found under ``roots``: run directories' metrics.json and JSON records.

    A JSON file counts when it holds ``objective`` and ``test`` keys (the format of
    metrics.json). A run counts once: when a record written for it (a sweep's ``result.json``,
    which names its row and adds clustering scores) is found, the run's own ``metrics.json``
    is left out, and so are the sub-runs of a run's ``lr_head_grid`` (``<run>/lr_head=<lr>/``).
    Missing roots are skipped.

    Returns:
        One row per run: objective (the row, :func:`abalone_core.report.rows.result_row`: ``msc-ft`` for fine-tuning), dataset,
        backbone, test micro_f1 / macro_f1 / hamming / f1_head / f1_tail, train_docs, steps, budget
        (None for rows that train nothing: ``frozen``, ``tfidf-linear``), seed, train_minutes, hardware,
        source (file path).
    """
    from .training.run_folder import METRICS

    found = []
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(root.rglob("*.json")) if root.is_dir() else []
        for f in files:
            try:
                m = json.loads(f.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(m, dict) and "objective" in m and isinstance(m.get("test"), dict):
                found.append((f, m))
    written = [(f, m) for f, m in found if f.name != METRICS]

    def recorded(f: Path, m: dict) -> bool:
        """A metrics.json whose run has a record of its own: the record names the run's folder,
        or sits beside it with the same configuration."""
        folder = f.parent.resolve()
        return any(_run_folder(g, r) == folder
                   or (g.parent.resolve() == folder and bool(m.get("config")) and m["config"] == r.get("config"))
                   for g, r in written)

    # a run with a grid of head learning rates keeps one sub-run per rate in its folder: the run counts once
    searched = {_run_folder(f, m) for f, m in found if "lr_head_search" in m}
    rows = [_record(m, str(f)) for f, m in found
            if not (f.name == METRICS and recorded(f, m)) and _run_folder(f, m).parent not in searched]
    columns = list(_record({"objective": "", "test": {}}, "").keys())
    return pd.DataFrame(rows, columns=columns)


__all__ = ["PROFILES", "RENDERER", "row_name", "row_order", "paper_table", "in_colab",
           "register_renderer", "setup", "profile_overrides", "repo_root", "runs_dir", "results_dir", "config_for",
           "grid_settings", "Chapter", "chapter", "saved_config", "run_or_load", "history", "checkpoints",
           "scores_table", "device_timing", "run_encoder", "run_embeddings", "shipped_encoders",
           "shipped_embeddings", "collect_results"]
