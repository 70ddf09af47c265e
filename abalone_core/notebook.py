"""Helpers the book's notebooks call: figure display, Colab detection, profiles and run folders.

Every chapter starts with::

    from abalone_core import notebook as nb
    env = nb.setup()                      # plotly renderer, quiet logs, Colab detection
    cfg = nb.config_for("cpu", "msc", runs_dir=nb.runs_dir(None, "cpu"))
    metrics = nb.run_or_load(cfg)         # trains once; later chapters reuse metrics.json

Profiles (:data:`PROFILES`) are the budgets shared by all chapters: ``cpu`` runs the
whole book in minutes on a laptop, ``gpu`` is the paper-like setting.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from . import paper
from .config import SUPERVISED, Config

# tqdm.auto warns when ipywidgets is missing; the chapters pass progress=False anyway.
warnings.filterwarnings("ignore", message="IProgress not found")

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

# The paper's test scores as tables (abalone_core.paper): Table 2 (linear evaluation),
# Table 3 (supervised baselines and fine-tuning, AAPD) and Table 4 (representation quality, RCV1).
LOSS_NAMES = {**paper.NAMES, "frozen": "L_MLM (frozen)"}


def _paper_frame(rows: dict, columns: dict, objectives) -> pd.DataFrame:
    """rows: dataset label -> {objective: values}; columns: dataset label -> metric names."""
    out = []
    for objective in objectives:
        row = {"objective": objective, "loss": LOSS_NAMES[objective]}
        for label, table in rows.items():
            row.update({f"{label} {m}": v for m, v in zip(columns[label], table[objective])})
        out.append(row)
    return pd.DataFrame(out)


PAPER_LINEAR = _paper_frame({"AAPD": paper.TABLE2["aapd"], "RCV1": paper.TABLE2["rcv1"]},
                            {"AAPD": paper.METRICS, "RCV1": paper.METRICS},
                            ("frozen", "base", "bqueue", "bqproto", "msc"))
PAPER_SUPERVISED = _paper_frame({"AAPD": paper.TABLE3["aapd"]}, {"AAPD": paper.METRICS[:2]},
                                ("bce", "focal", "asymmetric", "msc-ft"))
PAPER_CLUSTERING = _paper_frame({"RCV1": paper.TABLE4}, {"RCV1": ("silhouette", "davies_bouldin")},
                                ("frozen", "bce", "base", "msc", "msc-ft"))
PAPER_COST = paper.COST


# --------------------------------------------------------------------------- environment
def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def _figure_html(fig_dict: dict) -> str:
    """A plotly figure as an HTML fragment that expects ``window.Plotly`` on the page."""
    import plotly.io as pio

    height = (fig_dict.get("layout") or {}).get("height") or 480
    return pio.to_html(fig_dict, include_plotlyjs=False, full_html=False, config={"responsive": True},
                       default_width="100%", default_height=f"{int(height)}px", validate=False)


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
    if path:
        return Path(path)
    profile_overrides(profile)  # validates the name
    return (repo_root() or Path(".")) / "runs" / f"book-{profile}"


def results_dir(path=None) -> Path:
    """Folder of committed result files: ``path`` if given, else ``results/`` of the checkout."""
    if path:
        return Path(path)
    return (repo_root() or Path(".")) / "results"


def config_for(profile: str, objective: str, runs_dir=None, name: str | None = None, **overrides) -> Config:
    """The configuration of one book run.

    Args:
        profile: ``cpu`` or ``gpu`` (see :data:`PROFILES`).
        objective: a :class:`~abalone_core.config.Config` objective (``msc``, ``bce``, ``frozen``...);
            supervised objectives also get the profile's ``supervised`` overrides.
        runs_dir: parent folder; the run directory is ``runs_dir / name``.
        name: run directory name, default the objective (e.g. ``msc-ft`` for fine-tuning).
        **overrides: further Config values; ``None`` values are ignored, so notebook
            parameters left at None keep the profile's choice.
    """
    values = profile_overrides(profile)
    supervised = values.pop("supervised", {})
    if objective in SUPERVISED:
        values.update(supervised)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["objective"] = objective
    values["output_dir"] = str(Path(runs_dir if runs_dir is not None else ".") / (name or objective))
    if values.get("max_steps") is not None and values.get("save_every"):
        values["save_every"] = min(values["save_every"], values["max_steps"])
    return Config.from_dict(values)


def _comparable(d: dict) -> dict:
    d = json.loads(json.dumps(d))  # tuples -> lists, as in metrics.json
    d.pop("output_dir", None)
    return d


def saved_config(run_dir) -> dict | None:
    """The configuration stored in a run directory's metrics.json (None if not finished)."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("config")


def run_or_load(config: Config, progress: bool = False) -> dict:
    """Metrics of a run: read from ``metrics.json`` when that run already finished with the
    same configuration, else trained (resumed if a checkpoint of the same configuration
    exists, restarted if the folder holds another configuration).

    Returns:
        the metrics dict of :func:`abalone_core.train.run`.
    """
    from .train import run

    out = Path(config.output_dir)
    saved = saved_config(out)
    if saved is not None and _comparable(saved) == _comparable(config.to_dict()):
        return json.loads((out / "metrics.json").read_text())
    restart = False
    if (out / "config.yaml").exists():
        previous = Config.from_file(out / "config.yaml")
        restart = _comparable(previous.to_dict()) != _comparable(config.to_dict())
        if restart:
            logger.warning("%s holds a run with another configuration; starting over", out)
    return run(config, resume=not restart, progress=progress)


def history(run_dir) -> pd.DataFrame:
    """A run's ``history.jsonl`` as a frame (one row per evaluation: step, train_loss, ...)."""
    path = Path(run_dir) / "history.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train the run first (run_or_load)")
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])


def checkpoints(run_dir) -> pd.DataFrame:
    """Files saved in a run directory with their size in MB."""
    run_dir = Path(run_dir)
    rows = [{"file": p.name, "MB": p.stat().st_size / 2 ** 20} for p in sorted(run_dir.iterdir()) if p.is_file()]
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
    """Rebuild the encoder of a finished run (see :func:`abalone_core.train.load_run_encoder`)."""
    from .train import load_run_encoder

    return load_run_encoder(run_dir)


def run_embeddings(run_dir, split: str = "test", batch_size: int = 64) -> dict:
    """Representations (head discarded) of one split with the encoder of a run.

    Returns:
        dict with ``x`` (N, hidden) float32 embeddings, ``y`` (N, L) 0/1 labels, ``texts``
        (N,), ``label_names`` (L,) and ``train_counts`` (L,) of the run's data.
    """
    from .evaluate import embed
    from .train import cache_frozen_layers, prepare_data, resolve_device

    encoder, tokenizer, cfg = run_encoder(run_dir)
    data = prepare_data(cfg, tokenizer)
    device = resolve_device(cfg.device)
    cache_frozen_layers(cfg, encoder, tokenizer, data, device, progress=False)
    x = embed(encoder.to(device), data.ids[split], data.pad_token_id, batch_size=batch_size, device=device,
              progress=False)
    return {"x": x, "y": data.labels[split].astype(np.int64), "texts": list(data.dataset.split(split).texts),
            "label_names": list(data.dataset.label_names), "train_counts": data.train_counts.astype(np.int64)}


# --------------------------------------------------------------------------- results
def _record(m: dict, source: str) -> dict:
    cfg = m.get("config") or {}
    test = m["test"]
    hw = m.get("hardware") or {}
    budget = cfg.get("max_steps") or (f"{cfg['epochs']} epochs" if "epochs" in cfg else None)
    objective = m["objective"]
    if objective in ("bce", "focal", "asymmetric") and cfg.get("init_from"):
        objective = f"{Path(str(cfg['init_from'])).name}-ft"
    return {
        "objective": objective,
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
        "hardware": hw.get("gpu") or f"CPU ({hw.get('cpu_threads', '?')} threads)" if hw else None,
        "source": source,
    }


def collect_results(*roots) -> pd.DataFrame:
    """Every finished run found under ``roots``: run directories' metrics.json and JSON records.

    A JSON file counts when it holds ``objective`` and ``test`` keys (the format of
    metrics.json). Missing roots are skipped.

    Returns:
        One row per run: objective (``<run>-ft`` for fine-tuning), dataset, backbone, test
        micro_f1 / macro_f1 / hamming / f1_head / f1_tail, train_docs, steps, budget, seed,
        train_minutes, hardware, source (file path).
    """
    rows = []
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(root.rglob("*.json")) if root.is_dir() else []
        for f in files:
            try:
                m = json.loads(f.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(m, dict) and "objective" in m and isinstance(m.get("test"), dict):
                rows.append(_record(m, str(f)))
    columns = list(_record({"objective": "", "test": {}}, "").keys())
    return pd.DataFrame(rows, columns=columns)


def label_group_of_docs(labels, train_counts) -> np.ndarray:
    """(N,) group of each document's rarest label (``head``/``medium``/``tail``, ``none`` if unlabelled)."""
    from .metrics import frequency_groups

    y = np.asarray(labels)
    counts = np.asarray(train_counts)
    groups = frequency_groups(counts)
    out = np.full(y.shape[0], "none", dtype=object)
    masked = np.where(y > 0, counts[None, :], np.inf)
    has = y.any(axis=1)
    out[has] = groups[masked[has].argmin(axis=1)]
    return out.astype(str)


__all__ = ["PROFILES", "RENDERER", "PAPER_LINEAR", "PAPER_SUPERVISED", "PAPER_CLUSTERING", "PAPER_COST",
           "LOSS_NAMES", "in_colab", "register_renderer", "setup", "profile_overrides", "repo_root", "runs_dir",
           "results_dir",
           "config_for", "saved_config", "run_or_load", "history", "checkpoints", "scores_table",
           "run_encoder", "run_embeddings", "collect_results", "label_group_of_docs"]
