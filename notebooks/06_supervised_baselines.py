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
# # Supervised baselines
#
# The paper compares the contrastive encoders with three losses trained end to end on the
# labels (Table 3), all with the same backbone and budget:
#
# - **BCE**, binary cross-entropy over every (document, label);
# - **focal loss** (Lin et al. 2017) with γ = 2, which down-weights easy examples;
# - **asymmetric loss** (ASL, Ridnik et al. 2021) with γ+ = 0, γ− = 3 and a probability
#   margin m = 0.3 on negatives, built for the excess of negatives in multi-label data.
#
# Supervised runs keep documents without labels (they are all-negative examples) and select
# the checkpoint with the best validation micro-F1.
#
# With the default `cpu` profile each run has 30 optimiser steps: enough to compare the
# losses' first moves, not their converged scores (see the caveat in the previous chapter).

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
import pandas as pd
from IPython.display import Markdown, display

from abalone_core import notebook as nb
from abalone_core import plots

chapter = nb.chapter(profile, runs_dir, dataset=dataset, backbone=backbone, max_steps=max_steps, seed=seed,
                     device=device)  # setup(), the run folder, the settings every run of the chapter shares
root, config = chapter.root, chapter.config
objectives = ["bce", "focal", "asymmetric"]
metrics = {o: nb.run_or_load(config(o)) for o in objectives}
# the contrastive L_MSC run, only if an earlier chapter trained it with the same settings
msc = config("msc")
if nb.saved_config(msc.output_dir) is not None:
    metrics["msc"] = nb.run_or_load(msc)
scores = nb.scores_table({nb.row_name(o): m for o, m in metrics.items()})
scores

# %%
nb.paper_table("supervised").set_index("loss").drop(columns="objective")

# %% [markdown]
# ## Validation F1 during training

# %%
curves = pd.concat([nb.history(config(o).output_dir).assign(run=nb.row_name(o)) for o in objectives])
plots.training_curves(curves, x="step", y="val_macro_f1", title="Validation macro-F1").show()
plots.training_curves(curves, x="step", y="train_loss", title="Training loss (each loss on its own scale)").show()

# %% [markdown]
# ## Per-label F1 against label frequency

# %%
first = metrics["bce"]
plots.f1_vs_frequency({nb.row_name(o): m["test"]["per_label_f1"] for o, m in metrics.items()},
                      first["train_label_counts"], names=first["label_names"]).show()

# %%
tail_best = scores["f1_tail"].idxmax()
display(Markdown(
    f"With this budget, the best tail macro-F1 is {scores.loc[tail_best, 'f1_tail']:.1f} ({tail_best}) and the "
    f"best micro-F1 {scores['micro_f1'].max():.1f} ({scores['micro_f1'].idxmax()})."))
