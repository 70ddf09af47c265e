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
# # Contrastive pre-training: the four losses of Table 2
#
# The paper's ablation adds one ingredient at a time:
#
# | run | loss | queue | prototypes | per-label iteration and β |
# |---|---|---|---|---|
# | `base` | L_Base | no | no | no |
# | `bqueue` | L_BQueue | yes | no | no |
# | `bqproto` | L_BQProto | yes | yes | no |
# | `msc` | L_MSC (ABALONE) | yes | yes | yes |
#
# Each run pre-trains the backbone with its loss, keeps three candidate encoders (last
# step, lowest training loss, lowest validation loss) and reports the one whose linear
# evaluation is best on validation (`abalone_core.train.run`). This chapter trains the four
# runs; the next one reads their scores. Runs are stored under `runs_dir` and reused by the
# later chapters; a finished run is never trained twice.
#
# With the default `cpu` profile each run is a few dozen steps on a subset of the disaster
# messages: enough to watch the losses move, far from the paper's 80 epochs. Run the
# notebook with `-p profile gpu` (see [Reproducing the paper](../book/reproduce.md)) for
# the paper-like budget.

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[colab] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value)
profile = "cpu"        # "cpu": minutes on a laptop; "gpu": paper-like budget (abalone_core.notebook.PROFILES)
dataset = None         # None: the profile's dataset ("disaster")
backbone = None        # None: the profile's backbone ("minilm" on cpu, "roberta-base" on gpu)
max_steps = None       # None: the profile's budget
seed = 0
device = "auto"        # "auto", "cpu", "cuda", "cuda:1", ...
runs_dir = None        # None: runs/book-<profile> in the checkout (shared by chapters 4 to 8)

# %%
import time

import pandas as pd

from abalone_core import notebook as nb
from abalone_core import plots

chapter = nb.chapter(profile, runs_dir, dataset=dataset, backbone=backbone, max_steps=max_steps, seed=seed,
                     device=device)  # setup(), the run folder, the settings every run of the chapter shares
root, config = chapter.root, chapter.config
objectives = ["base", "bqueue", "bqproto", "msc"]
configs = {o: config(o) for o in objectives}
shown = ["dataset", "backbone", "subset", "max_length", "batch_size", "max_steps", "epochs", "temperature", "beta",
         "queue_size", "momentum", "proj_dim", "lr_backbone", "lr_head", "schedule"]
# the four runs differ only by their objective
pd.Series({k: str(getattr(configs["msc"], k)) for k in shown}, name="value").to_frame()

# %% [markdown]
# ## Training
#
# `nb.run_or_load` trains a run, or reads its `metrics.json` when the same configuration
# already finished (a run stopped half-way resumes from its checkpoint).

# %%
metrics, timing = {}, {}
for o, cfg in configs.items():
    t0 = time.perf_counter()
    metrics[o] = nb.run_or_load(cfg)
    timing[o] = time.perf_counter() - t0
pd.DataFrame({o: {"steps": m["steps"], "training seconds": m["train_seconds"],
                  "this call (s)": timing[o], "selected encoder": m["selected_candidate"],
                  "train documents": m["n_documents"]["train"]} for o, m in metrics.items()}).T

# %% [markdown]
# ## Training curves
#
# Each point of `history.jsonl` is one evaluation: the mean training loss since the previous
# point and the contrastive loss on the labelled validation documents. The four losses have
# different scales (prototypes and the β weighting change the denominator), so compare their
# shapes, not their levels.

# %%
curves = pd.concat([nb.history(cfg.output_dir).assign(run=nb.row_name(o)) for o, cfg in configs.items()])
plots.training_curves(curves, x="step", y="train_loss", title="Training loss").show()
if "val_loss" in curves:
    plots.training_curves(curves, x="step", y="val_loss", title="Validation loss").show()

# %% [markdown]
# ## What a run directory holds
#
# `config.yaml` (the full configuration), `history.jsonl`, `checkpoint.pt` (model, momentum
# encoder, queue, optimiser, scheduler and random states: everything needed to resume), the
# three candidate encoders `encoder_*.pt` and `metrics.json` (final scores, timings, hardware).

# %%
listing = pd.concat([nb.checkpoints(cfg.output_dir).assign(run=o) for o, cfg in configs.items()])
listing.pivot(index="file", columns="run", values="MB").round(1)

# %%
nb.scores_table({nb.row_name(o): m for o, m in metrics.items()})

# %% [markdown]
# The table gives test scores of the linear evaluation (micro- and macro-F1 in percent,
# Hamming loss × 10³, macro-F1 inside the head / medium / tail thirds). The next chapter
# reads them in detail.
