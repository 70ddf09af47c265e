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
# # Long tails in multi-label text data
#
# A multi-label corpus rarely spreads its documents evenly over its labels: a handful of
# *head* labels tag most documents while a long *tail* of labels tags a few each. This
# chapter measures that imbalance on the two corpora this book can read without the
# Hugging Face Hub, the disaster-response messages and the FOLDOC computing dictionary
# (see [the method page](../book/method.md) for why the tail matters to contrastive losses).
#
# Head, medium and tail are defined once for the whole book: labels are sorted by their
# number of training documents and cut into thirds (`abalone_core.metrics.frequency_groups`).

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[book,offline-model] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value)
datasets = ["disaster", "foldoc"]  # registered dataset names (abalone_core.data)
profile = "cpu"                    # unused here: this chapter trains nothing
seed = 0

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from abalone_core import notebook as nb
from abalone_core import plots
from abalone_core.data import load_dataset
from abalone_core.metrics import frequency_groups

env = nb.setup()
corpora = {name: load_dataset(name) for name in datasets}
{name: repr(ds) for name, ds in corpora.items()}

# %% [markdown]
# ## Corpus summary
#
# One row per split: documents, labels present, mean labels per document (all documents
# and labelled ones only), the share of documents with no label and the mean length in words.

# %%
for name, ds in corpora.items():
    display(Markdown(f"**{name}**: {len(ds.label_names)} labels"))
    display(ds.stats()["splits"])

# %% [markdown]
# ## Label frequency
#
# Each marker is a label, ranked from the most to the least frequent in the training split;
# the y axis is logarithmic. Colours give the head / medium / tail third of each label.
# Hover a marker to read the label's name.

# %%
summary = []
for name, ds in corpora.items():
    counts = ds.label_counts("train")
    groups = frequency_groups(counts)
    plots.label_frequency(counts, groups, ds.label_names, title=f"{name}: training documents per label").show()
    by_group = {g: int(counts[groups == g].sum()) for g in ("head", "medium", "tail")}
    total = sum(by_group.values())
    summary.append({"dataset": name, "labels": len(counts), "max count": int(counts.max()),
                    "median count": float(np.median(counts)),
                    "min count": int(counts.min()), "max / min": counts.max() / max(counts.min(), 1),
                    **{f"{g} share of label occurrences": v / total for g, v in by_group.items()}})


summary = pd.DataFrame(summary).set_index("dataset")
summary

# %%
lines = []
for name, row in summary.iterrows():
    lines.append(f"- **{name}**: the most frequent label tags {row['max count']:.0f} training documents, "
                 f"the rarest {row['min count']:.0f} ({row['max / min']:.0f} times fewer); the head third of "
                 f"the labels accounts for {100 * row['head share of label occurrences']:.0f}% of all label "
                 f"occurrences and the tail third for {100 * row['tail share of label occurrences']:.1f}%.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Labels per document
#
# Bars give the share of each split's documents carrying 0, 1, 2, ... labels. Documents
# without any label cannot be anchors of a supervised contrastive loss: contrastive
# training drops them (`Config.keep_unlabelled`), while the supervised baselines keep them
# as all-negative examples.

# %%
for name, ds in corpora.items():
    split_labels = {s: ds.split(s).labels for s in ("train", "validation", "test")}
    plots.labels_per_document(split_labels, title=f"{name}: labels per document").show()

# %% [markdown]
# ## Do tail labels travel alone?
#
# A cell of the heatmap is the share of the documents carrying a tail label (column) that
# also carry a head label (row). Dark columns are tail labels that almost always come with
# a head label: in an instance-based contrastive loss such a document is pulled towards
# the head cluster far more often than towards the few other documents of its tail label.

# %%
for name, ds in corpora.items():
    train = ds.split("train")
    groups = frequency_groups(train.labels.sum(axis=0))
    fig = plots.cooccurrence_heatmap(train.labels, groups, ds.label_names, rows="head", cols="tail",
                                     title=f"{name}: P(head label | tail label), training split")
    fig.update_layout(height=420 + 6 * int((groups == "head").sum()))
    fig.show()

# %%
rows = []
for name, ds in corpora.items():
    y = ds.split("train").labels
    groups = frequency_groups(y.sum(axis=0))
    tail_docs = y[:, groups == "tail"].any(axis=1)
    with_head = y[:, groups == "head"].any(axis=1)
    rows.append({"dataset": name, "documents with a tail label": int(tail_docs.sum()),
                 "share of them with a head label too": float(with_head[tail_docs].mean())})
pd.DataFrame(rows).set_index("dataset")
