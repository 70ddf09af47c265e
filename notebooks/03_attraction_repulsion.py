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
# # Attraction and repulsion: who dominates the loss?
#
# A contrastive loss is a sum of attraction terms (the numerator: an anchor pulled towards
# its positives) and repulsion terms (the denominator: the anchor pushed away from every
# key). Following Graf et al. (2021) and the paper's appendix E, this chapter looks at both
# on real batches of the disaster messages, and asks which labels they serve.
#
# Three losses are compared on the same batches:
#
# - **L_Base**, the Jaccard-weighted SupCon: attraction flows through pairs of documents;
# - **L_MSC** with β = 0.1: each anchor iterates over its labels (every label of an anchor
#   gets the same share of its attraction), instance keys weigh β in the denominator while
#   prototypes weigh 1;
# - **L_MSC** with β = 1: the per-label iteration without the reweighting of the denominator.
#
# The weights depend on labels only (`analysis.term_counts`); the gradient norms
# (`analysis.gradient_mass`) use real document embeddings from the pre-trained MiniLM
# backbone (projection head discarded).

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[book,offline-model] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value)
dataset = "disaster"
backbone = "minilm"      # offline default; any Hub id works where the Hub is reachable
batch_size = 32          # the paper's batch size
queue_size = 512         # the paper's queue
n_batches = 50           # random batches averaged for the term counts
n_docs = 256             # documents embedded for S_att / S_rep and the gradient norms
max_length = 64
beta = 0.1
temperature = 0.1
seed = 0
device = "auto"
profile = "cpu"          # unused here: this chapter trains nothing

# %%
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from abalone_core import analysis, losses, plots
from abalone_core import notebook as nb
from abalone_core.batching import tokenize
from abalone_core.config import Config
from abalone_core.data import load_dataset
from abalone_core.evaluate import embed
from abalone_core.metrics import frequency_groups
from abalone_core.train import build_encoder, resolve_device

env = nb.setup()
train = load_dataset(dataset).split("train")
labelled = np.flatnonzero(train.labels.any(axis=1))
y_all = train.labels[labelled].astype(np.int64)
names = train.label_names
groups = frequency_groups(y_all.sum(axis=0))
rng = np.random.default_rng(seed)
print(f"{len(labelled)} labelled training documents, {len(names)} labels")

# %% [markdown]
# ## Term counts on real batches
#
# For each of `n_batches` random batches (plus a queue of earlier documents), the loss's
# weights are attributed to labels and averaged. `attraction_share` is the share of all
# attraction a label receives; `repulsion_from_share` is the share of the denominator its
# keys make up (who pushes).

# %%
variants = {"L_Base": dict(loss="base"), f"L_MSC (beta={beta})": dict(loss="msc", beta=beta),
            "L_MSC (beta=1)": dict(loss="msc", beta=1.0)}
parts = {name: [] for name in variants}
for _ in range(n_batches):
    idx = rng.choice(len(y_all), size=batch_size + queue_size, replace=False)
    batch, queue = y_all[idx[:batch_size]], y_all[idx[batch_size:]]
    for name, kw in variants.items():
        queue_labels = queue if kw["loss"] == "msc" else None  # L_Base is in-batch
        parts[name].append(analysis.term_counts(batch, queue_labels=queue_labels, groups=groups, names=names, **kw))
numeric = ["n_anchors", "attraction", "repulsion", "repulsion_from", "attraction_share", "repulsion_share",
           "repulsion_from_share", "attraction_per_anchor"]
terms = {}
for name, frames in parts.items():
    stacked = pd.concat(frames)
    mean = stacked.groupby("label")[numeric].mean()
    terms[name] = frames[0][["label", "name", "group"]].set_index("label").join(mean).reset_index()
plots.term_share_bars(terms, title="Share of attraction and of repulsion by label group").show()

# %%
table = pd.DataFrame({name: t.groupby("group")[["attraction_share", "repulsion_from_share"]].sum().stack()
                      for name, t in terms.items()}).T
table.style.format("{:.1%}")

# %% [markdown]
# Per anchor, how much of its attraction goes to each label? Under L_Base a frequent label
# takes more than its share (it is shared with more keys); under L_MSC every label of an
# anchor gets 1/|y_i|, so the bars are flat across frequencies.

# %%
plots.term_share_bars(terms, columns=("attraction_per_anchor",), by="label",
                      title="Mean share of an anchor's attraction given to each label (labels by frequency)").show()

# %% [markdown]
# ## Attraction and repulsion scores in the pre-trained space
#
# S_att (minus the mean similarity to the other documents of the label) and S_rep (mean
# similarity to documents without the label), per label, on the pre-trained MiniLM
# representation before any contrastive training. A contrastive loss should push S_att down
# (positives closer) and S_rep down (negatives farther).

# %%
encoder, tokenizer = build_encoder(Config(backbone=backbone, max_length=max_length))
dev = resolve_device(device)
pick = rng.choice(len(labelled), size=min(n_docs, len(labelled)), replace=False)
texts = [train.texts[labelled[i]] for i in pick]
ids = tokenize(texts, tokenizer, max_length)
z = embed(encoder.to(dev), ids, tokenizer.pad_token_id, batch_size=64, device=dev, progress=False)
y = y_all[pick]
scores = analysis.attraction_repulsion(z, y, groups=groups, names=names)
plots.attraction_repulsion_bars(scores, title=f"S_att and S_rep per label, {len(pick)} documents, pre-trained MiniLM").show()

# %% [markdown]
# ## Where the gradient goes
#
# The same documents as one large batch: the mean norm of the loss gradient on the
# embeddings carrying each label, and each label's share of the total. Prototypes are drawn
# at random, as at the start of training.

# %%
torch.manual_seed(seed)
prototypes = torch.randn(len(names), z.shape[1])
grads = {
    "L_Base": analysis.gradient_mass(z, y, losses.base_loss, groups=groups, names=names, temperature=temperature),
    f"L_MSC (beta={beta})": analysis.gradient_mass(z, y, losses.msc_loss, groups=groups, names=names,
                                                   prototypes=prototypes, temperature=temperature, beta=beta),
    "L_MSC (beta=1)": analysis.gradient_mass(z, y, losses.msc_loss, groups=groups, names=names,
                                             prototypes=prototypes, temperature=temperature, beta=1.0),
}
grad_table = pd.DataFrame({name: g.groupby("group")["grad_share"].sum() for name, g in grads.items()}).T
display(grad_table.style.format("{:.1%}"))
mean_norm = pd.DataFrame({name: g.groupby("group")["grad_norm"].mean() for name, g in grads.items()}).T
mean_norm

# %%
base, msc = terms["L_Base"], terms[f"L_MSC (beta={beta})"]
share = lambda t, g, c: t.loc[t["group"] == g, c].sum()
display(Markdown(
    f"On these batches the tail third of the labels receives {share(base, 'tail', 'attraction_share'):.1%} of "
    f"L_Base's attraction and {share(msc, 'tail', 'attraction_share'):.1%} of L_MSC's; the head third receives "
    f"{share(base, 'head', 'attraction_share'):.1%} and {share(msc, 'head', 'attraction_share'):.1%}. "
    f"Head keys make up {share(base, 'head', 'repulsion_from_share'):.1%} of L_Base's repulsion mass and "
    f"{share(msc, 'head', 'repulsion_from_share'):.1%} of L_MSC's with beta = {beta}, where the prototypes "
    f"(weight 1, one per label whatever its frequency) take part of the denominator."))
