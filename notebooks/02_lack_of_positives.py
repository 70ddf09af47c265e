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
# # The lack of positives
#
# A supervised contrastive loss attracts an anchor towards the other documents of the batch
# that share one of its labels: its *positives*. With a long tail, a document carrying a rare
# label often finds no other document with that label in a batch of 32. Under L_Base such an
# anchor either has no positive at all (and is skipped) or is attracted only through its
# frequent labels. This chapter counts how often that happens on the real label matrices, as
# the batch grows, with a memory queue of earlier documents, and with one prototype per label.
#
# Rules (`abalone_core.analysis.lack_of_positives`): a batch is a random draw of B labelled
# training documents; with a queue of K keys the keys are the batch plus K other documents.
# An anchor lacks positives when no other key shares any of its labels; an (anchor, label c)
# pair lacks a positive when no other key carries c. Prototypes add one key per label, so
# every pair has at least one positive by construction (the `*_proto` columns check it).

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[book,offline-model] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value)
datasets = ["disaster", "foldoc"]
batch_sizes = [8, 16, 32, 64, 128, 256]
queue_sizes = [0, 512]            # 512: the paper's queue
n_draws = 200                     # random batches per (batch size, queue size)
seed = 0
profile = "cpu"                   # unused here: this chapter trains nothing

# %%
import pandas as pd
from IPython.display import Markdown, display

from abalone_core import analysis, plots
from abalone_core import notebook as nb
from abalone_core.data import load_dataset
from abalone_core.metrics import frequency_groups

env = nb.setup()
frames = {}
for name in datasets:
    train = load_dataset(name).split("train")
    y = train.labels[train.labels.any(axis=1)]  # contrastive training keeps labelled documents only
    groups = frequency_groups(y.sum(axis=0))
    frames[name] = analysis.lack_of_positives(y, batch_sizes, queue_sizes, n_draws=n_draws, seed=seed,
                                              groups=groups)
    print(f"{name}: {y.shape[0]} labelled training documents, {y.shape[1]} labels")

# %% [markdown]
# ## Anchors without any positive (L_Base)
#
# Share of labelled anchors with no positive in the batch (solid) or in the batch plus a
# queue (dashed), by the frequency group of the anchor's labels (an anchor counts in every
# group it has a label in).

# %%
for name, frame in frames.items():
    plots.lack_of_positives_curves(frame, "anchors_without_positive",
                                   title=f"{name}: anchors without any positive").show()

# %% [markdown]
# ## (Anchor, label) pairs without a positive
#
# The per-label view that L_MSC uses: for each label of each anchor, is there another key
# carrying that label? Tail pairs are the ones left without attraction.

# %%
for name, frame in frames.items():
    plots.lack_of_positives_curves(frame, "pairs_without_positive",
                                   title=f"{name}: (anchor, label) pairs without a positive").show()

# %% [markdown]
# ## At the paper's batch size
#
# The table reads the curves at B = 32 (the paper's batch size), for each queue size.
# The last two columns count the prototypes as keys.

# %%
cols = ["queue_size", "group", "anchors_without_positive", "pairs_without_positive",
        "anchors_without_positive_proto", "pairs_without_positive_proto"]
b = 32 if 32 in batch_sizes else batch_sizes[len(batch_sizes) // 2]
tables = {}
for name, frame in frames.items():
    t = frame[frame["batch_size"] == b][cols].set_index(["queue_size", "group"])
    tables[name] = t
    display(Markdown(f"**{name}**, batch size {b} (shares)"))
    display(t.style.format("{:.1%}"))

# %%
lines = []
for name, t in tables.items():
    k0, k1 = min(queue_sizes), max(queue_sizes)
    tail0 = t.loc[(k0, "tail"), "pairs_without_positive"]
    tail1 = t.loc[(k1, "tail"), "pairs_without_positive"]
    head0 = t.loc[(k0, "head"), "pairs_without_positive"]
    proto = t["pairs_without_positive_proto"].max()
    lines.append(f"- **{name}**: with B = {b} and no queue, {tail0:.0%} of the tail (anchor, label) pairs have no "
                 f"positive, against {head0:.0%} for head pairs; a queue of {k1} keys brings the tail share to "
                 f"{tail1:.0%}, and with prototypes it is {proto:.0%}.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# This is the first argument for the prototypes of L_BQProto and L_MSC: a queue shrinks
# the problem, prototypes remove it.
