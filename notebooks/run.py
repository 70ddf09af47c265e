# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # One run of a sweep
#
# This notebook trains and evaluates one configuration and writes its scores as JSON to
# `result_path`. `abalone sweep GRID.yaml` executes it once per cell of a grid (see
# `sweeps/paper_grid.yaml` and `abalone_core.sweep`), passing the cell's values as
# parameters; it also runs on its own with the defaults below (a short CPU run).
#
# * `objective`: a loss of `abalone_core.training.config.Config` (`frozen`, `base`, `bqueue`,
#   `bqproto`, `msc`, `mulsupcon`, `bce`, `focal`, `asymmetric`, `db`, `tfidf-linear`, `tfidf-cut`), or `<contrastive>-ft` (e.g. `msc-ft`):
#   `finetune_loss` training that starts from the encoder of the run folder `init_from`
#   (a sweep fills `init_from` from its `depends_on` entry).
# * `supervised_overrides`: settings for the rows that train a classifier end to end (BCE,
#   focal, asymmetric, fine-tuning) and not for the contrastive rows, whose classifier is the
#   linear probe with its own grid of learning rates.
# * The JSON is the `metrics.json` of `abalone_core.training.runs.run` (scores under `test` and
#   `validation`), with `objective` set to the name above and, when `clustering` is on,
#   the silhouette and Davies-Bouldin scores of the test embeddings (half of the label
#   combinations, as in the paper's Table 4) at the top level.

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[colab] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value)
objective = "msc"          # Config objective, or "<contrastive>-ft" to fine-tune the run in init_from
dataset = "disaster"
seed = 0
temperature = 0.1
max_steps = 30             # optimiser steps (the same budget for every objective)
subset = {"train": 600, "validation": 200, "test": 400}  # documents per split; None keeps all
backbone = "minilm"
max_length = 64
batch_size = 32
device = "auto"
init_from = None           # run folder of the contrastive run that "-ft" objectives start from
finetune_loss = "bce"      # supervised loss of "-ft" objectives
clustering = True          # silhouette / Davies-Bouldin of the test embeddings
dataset_kwargs = {}        # passed to the dataset loader
train_layers = None        # top transformer layers trained: an integer k, "all" (the whole encoder), or None (as overrides say)
overrides = {}             # any other Config values, e.g. {"lr_head": 1e-3, "probe": {"epochs": 20}}
supervised_overrides = {}  # Config values for supervised rows only (bce, focal, asymmetric, "-ft"), after overrides
run_dir = None             # the run's folder; None: runs/sweep/<objective>-<dataset>-seed<seed>
result_path = None         # where the JSON goes; None: <run_dir>/result.json

# %% [markdown]
# Build the configuration (checked before anything runs).

# %%
import json
from pathlib import Path

import pandas as pd

from abalone_core import notebook as nb
from abalone_core.method import objectives
from abalone_core.report.rows import row_config, row_loss

nb.setup()
loss = row_loss(objective, finetune_loss)
if run_dir is None:
    run_dir = (nb.repo_root() or Path(".")) / "runs" / "sweep" / f"{objective}-{dataset}-seed{seed}"
config = row_config(
    objective, init_from=init_from, finetune_loss=finetune_loss, overrides=overrides,
    supervised_overrides=supervised_overrides, train_layers=train_layers, dataset=dataset,
    dataset_kwargs=dataset_kwargs, subset=subset, backbone=backbone, max_length=max_length,
    batch_size=batch_size, temperature=temperature, max_steps=max_steps, seed=seed, device=device,
    output_dir=str(run_dir),
)
config

# %% [markdown]
# Train and evaluate (linear evaluation for contrastive and frozen runs).

# %%
# Trains, resumes a checkpoint of the same configuration, or reads a finished run.
metrics = nb.run_or_load(config)
nb.scores_table({objective: metrics})

# %% [markdown]
# Representation quality: label combinations as clusters.

# %%
if clustering and objectives.get(loss).encoder:  # the TF-IDF rows have no encoder to embed with
    from abalone_core.analysis import clustering_scores

    emb = nb.run_embeddings(config.output_dir, "test")
    try:
        scores = clustering_scores(emb["x"], emb["y"], shares=(0.5,), sample_size=10_000, seed=seed).iloc[0]
        metrics.update(silhouette=float(scores["silhouette"]), davies_bouldin=float(scores["davies_bouldin"]))
    except ValueError as err:  # too few test documents for the label combinations kept
        metrics["clustering_error"] = str(err)
    print({k: metrics.get(k) for k in ("silhouette", "davies_bouldin", "clustering_error") if k in metrics})

# %% [markdown]
# Write the scores where the sweep reads them.

# %%
result = {**metrics, "objective": objective, "loss": loss}
path = Path(result_path) if result_path else Path(config.output_dir) / "result.json"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(result, indent=2))
print(f"wrote {path}")
